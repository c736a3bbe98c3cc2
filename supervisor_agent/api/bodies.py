"""Reading a request body: JSON only, 64 KiB at most, 32 levels deep at most, an object,
whole within 10 s.

The size is enforced while reading (a chunked body has no Content-Length to
trust), so an oversized body costs at most 64 KiB of memory.  The nesting depth
is checked on the text before it is parsed: the JSON parser recurses once per
level and raises ``RecursionError`` near 1000, which would be a 500; no body of
any seed is more than a few levels deep, so a deep one is refused by name.

The time is bounded too: a register sends its body with its head, in milliseconds.  One
whose body stops short of its ``Content-Length`` (a client that crashed mid-send, a
proxy that holds the rest) would otherwise hold its handler and connection for as long
as TCP keeps the socket, counted against its address's connection cap; it gets 408
``BODY_TIMEOUT`` after :data:`BODY_READ_TIMEOUT_S`, with ``Connection: close`` (aiohttp
closes it once its lingering for the rest of the body, 10 s at most, ends).
Nothing has been journaled or sent to the terminal by then.
"""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from typing import Any, Literal

from aiohttp import web

from supervisor_agent.api import error_codes
from supervisor_agent.api.errors import ApiError, invalid, location
from supervisor_agent.api.wire_json import JsonSyntaxError, loads

MAX_BODY_BYTES = 64 * 1024
READ_CHUNK_BYTES = 16 * 1024
MAX_JSON_DEPTH = 32  # nested arrays/objects; the deepest seed body (a cart line) has 3
BODY_READ_TIMEOUT_S = 10.0  # from the first read to the body's end
# A JSON number at or beyond 10**309 is past an IEEE double (a register's JSON library
# reads it as Infinity) and far past any field of the seeds (amounts: 12 digits).  Such a
# number is refused where it stands, before anything computes with it: int() of
# ``1e999999999`` (11 bytes of body) would hold the event loop for hours, and Decimal
# arithmetic on ``1e999999`` overflows.
MAX_NUMBER_EXPONENT = 308
_INT_LIMIT = 10 ** (MAX_NUMBER_EXPONENT + 1)

# What the depth scan looks at: an escape (two characters, skipped whole, so an
# escaped quote does not end a string), a quote, or a bracket.
_STRUCTURE = re.compile(r'\\.|["\[\]{}]', re.DOTALL)


# What a route takes: ``json`` is application/json or a ``+json`` suffix type (the
# desktop and kiosk routes); ``application`` is any application/* type, read as JSON (the
# POS API seed's postOrder declares its RootOrder body as ``application/*``).
MediaRule = Literal["json", "application"]


def _accepts(content_type: str, media: MediaRule) -> bool:
    main, _, sub = content_type.lower().partition("/")
    if main != "application":
        return False
    return media == "application" or sub == "json" or sub.endswith("+json")


async def read_json_object(request: web.Request, media: MediaRule = "json") -> dict[str, Any]:
    """The body as a JSON object, or the ApiError saying why not.  A request without a
    Content-Type reads as application/octet-stream (aiohttp, RFC 9110)."""
    if not _accepts(request.content_type, media):
        wanted = "application/json" if media == "json" else "an application/* type"
        raise ApiError(
            415,
            error_codes.UNSUPPORTED_MEDIA_TYPE,
            f"the body must be {wanted} holding JSON, got {request.content_type or 'none'!r}",
            path="Content-Type",
            rule="media_type",
            value=request.headers.get("Content-Type"),
            has_value=True,
        )
    declared = request.content_length
    if declared is not None and declared > MAX_BODY_BYTES:
        raise _too_large(declared)
    raw = bytearray()
    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT_S):
            while True:
                chunk = await request.content.read(READ_CHUNK_BYTES)
                if not chunk:
                    break
                raw += chunk
                if len(raw) > MAX_BODY_BYTES:
                    raise _too_large(None)
    except TimeoutError:
        raise ApiError(
            408,
            error_codes.BODY_TIMEOUT,
            f"the body did not arrive within {BODY_READ_TIMEOUT_S:g} s "
            f"({len(raw)} of {declared if declared is not None else 'an unknown number of'} "
            "bytes)",
            path="(body)",
            rule="read_timeout",
            headers={"Connection": "close"},
        ) from None
    charset = request.charset or "utf-8"
    try:
        text = bytes(raw).decode(charset)
    except (UnicodeDecodeError, LookupError):
        raise ApiError(
            400,
            error_codes.INVALID_JSON,
            f"the body is not valid {charset} text",
            path="(body)",
            rule="encoding",
        ) from None
    if not text.strip():
        raise ApiError(
            400, error_codes.INVALID_JSON, "the body is empty", path="(body)", rule="json"
        )
    depth = nesting_depth(text, MAX_JSON_DEPTH)
    if depth > MAX_JSON_DEPTH:
        raise ApiError(
            400,
            error_codes.INVALID_JSON,
            f"the body nests arrays/objects more than {MAX_JSON_DEPTH} levels deep",
            path="(body)",
            rule="max_depth",
        )
    try:
        data = loads(text)
    except JsonSyntaxError as exc:
        raise ApiError(
            400,
            error_codes.INVALID_JSON,
            f"the body is not JSON: {exc}",
            path="(body)",
            rule="json",
        ) from None
    if not isinstance(data, dict):
        raise ApiError(
            400,
            error_codes.INVALID_JSON,
            f"the body must be a JSON object, got a JSON {_kind(data)}",
            path="(body)",
            rule="object",
        )
    huge = out_of_range_number(data, ())
    if huge is not None:
        where, value = huge
        raise invalid(
            location(where),
            "number_range",
            f"is out of range: a number here must be below 1e{MAX_NUMBER_EXPONENT + 1} "
            "in magnitude",
            value,
        )
    return data


def out_of_range_number(
    value: Any, where: tuple[int | str, ...]
) -> tuple[tuple[int | str, ...], Any] | None:
    """Where the first number too large for any field stands, and the number; None if none.

    The body is at most 32 levels deep (checked before parsing), so recursion is bounded.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return (
            (where, value) if value.is_finite() and value.adjusted() > MAX_NUMBER_EXPONENT else None
        )
    if isinstance(value, int):
        return (where, value) if abs(value) >= _INT_LIMIT else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = out_of_range_number(item, (*where, key))
        if found is not None:
            return found
    return None


def nesting_depth(text: str, limit: int) -> int:
    """The deepest bracket nesting outside strings, counted up to ``limit + 1``.

    A scan of the quotes, escapes and brackets only (a regular expression does
    the skipping), cheap on 64 KiB; it trusts nothing about the text being JSON:
    the parser that runs after it reports syntax errors.
    """
    depth = deepest = 0
    in_string = False
    for match in _STRUCTURE.finditer(text):
        char = match.group()
        if char == '"':
            in_string = not in_string
        elif in_string or len(char) > 1:
            continue
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


def _too_large(declared: int | None) -> ApiError:
    size = f"{declared} bytes" if declared is not None else "more than that"
    return ApiError(
        413,
        error_codes.BODY_TOO_LARGE,
        f"the body may be at most {MAX_BODY_BYTES} bytes, got {size}",
        path="(body)",
        rule="max_size",
    )


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
