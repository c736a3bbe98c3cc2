"""JSON in and out without binary floats.

Request bodies are parsed with ``parse_float=Decimal`` so ``9.99`` stays the
text the register wrote; answers are written by :func:`dumps`, which prints a
``Decimal`` as the JSON number it came from (``json.dumps`` cannot: it would
need a float, or would quote it).  Echoed fields (cart, customData, a kiosk's
``amount: 100``) therefore go back byte for byte in value.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from aiohttp import web

JSON_CONTENT_TYPE = "application/json"
_encode_str = json.encoder.encode_basestring_ascii


class JsonSyntaxError(ValueError):
    """Body text that is not JSON, or holds NaN/Infinity."""


def _reject_constant(name: str) -> Any:
    raise JsonSyntaxError(f"{name} is not a JSON number")


# Python refuses to turn longer digit runs into an int (sys.get_int_max_str_digits, 4300)
# and json.loads would raise a bare ValueError: such a run is kept as a Decimal, for the
# caller's range check (bodies.py) to refuse by name.
LONGEST_INT_TEXT = 4000


def _parse_int(text: str) -> int | Decimal:
    return int(text) if len(text) <= LONGEST_INT_TEXT else Decimal(text)


def loads(text: str | bytes) -> Any:
    """Parse JSON with every non-integer number as a Decimal; NaN/Infinity refused."""
    try:
        return json.loads(
            text, parse_float=Decimal, parse_int=_parse_int, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        raise JsonSyntaxError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None


def dumps(value: Any) -> str:
    """Compact JSON; Decimals as numbers, never through a float."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_encode_str(value))
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("cannot write a non-finite number as JSON")
        out.append(str(value))
    elif isinstance(value, float):  # only from code, never from a request or an amount
        out.append(json.dumps(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(_encode_str(str(key)))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=dumps(data),
        status=status,
        content_type=JSON_CONTENT_TYPE,
        charset="utf-8",
        headers=headers,
    )
