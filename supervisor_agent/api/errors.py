"""JSON error bodies: one shape for every non-2xx answer, in every flavour.

The shape is the POS API seed's ``ErrorResponse`` (``{"error": {status, code,
message, description, details: {path}}}``), extended inside ``details`` with
the ``rule`` that failed and the offending ``value`` (shortened), so a
register developer reads which field, which rule and what was wrong without
guessing.  Desktop and kiosk seeds define no error shape, so they share it.

What an error quotes back (the value, the order id of a path, a header) goes through the
one masker (common/redact.py) first: a card number a register put in the wrong field
would otherwise travel back whole into the register's logs, a proxy's, a console.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from common.redact import redact
from supervisor_agent.api import error_codes
from supervisor_agent.api.wire_json import dumps, json_response

VALUE_PREVIEW_CHARS = 80  # longest value quoted back in an error


class ApiError(Exception):
    """An answer other than 2xx; raised anywhere below a handler, rendered by the middleware."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        path: str | None = None,
        rule: str | None = None,
        value: Any = None,
        has_value: bool = False,
        description: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.path = path
        self.rule = rule
        self.value = value
        self.has_value = has_value
        self.description = description
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "description": self.description or error_codes.describe(self.code),
        }
        details: dict[str, Any] = {}
        if self.path is not None:
            details["path"] = self.path
        if self.rule is not None:
            details["rule"] = self.rule
        if self.has_value:
            details["value"] = preview(self.value)
        details.update(self.extra)
        if details:
            error["details"] = details
        return {"error": redact(error)}

    def response(self) -> web.Response:
        response = json_response(self.body(), status=self.status, headers=self.headers)
        if self.headers.get("Connection", "").lower() == "close":
            response.force_close()  # aiohttp would keep the connection for the header alone
        return response


def preview(value: Any) -> Any:
    """The value as the client sent it, cut short: enough to recognise, never a whole body."""
    if isinstance(value, bool | None):
        return value
    if isinstance(value, int | Decimal):
        # a number is quoted back as a number, unless its text is too long to quote
        return value if len(digits := str(value)) <= VALUE_PREVIEW_CHARS else _cut(digits)
    return _cut(value if isinstance(value, str) else dumps(value))


def _cut(text: str) -> str:
    if len(text) > VALUE_PREVIEW_CHARS:
        return text[: VALUE_PREVIEW_CHARS - 3] + "..."
    return text


def invalid(
    path: str, rule: str, message: str, value: Any = None, has_value: bool = True
) -> ApiError:
    """A 400 about one field of the request."""
    return ApiError(
        400,
        error_codes.INVALID_REQUEST,
        f"{path}: {message}",
        path=path,
        rule=rule,
        value=value,
        has_value=has_value,
    )


def location(loc: tuple[int | str, ...]) -> str:
    """pydantic's ``("cart", 0, "name")`` -> ``cart[0].name``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(body)"


def from_validation_error(exc: ValidationError) -> ApiError:
    """The first problem pydantic found, as a 400 naming field, rule and problem.

    Every problem is listed in ``details.errors`` too, so a client fixing a
    body sees them all at once.
    """
    problems = exc.errors(include_url=False, include_context=False)
    # pydantic reports a tagged/union branch per alternative; the user-facing
    # location drops the internal branch names (function-after[...], etc.).
    items = []
    for problem in problems:
        loc = tuple(p for p in problem["loc"] if not _internal(p))
        items.append(
            {
                "path": location(loc),
                "rule": problem["type"],
                "message": problem["msg"],
                "value": preview(problem.get("input")),
            }
        )
    first = items[0]
    return ApiError(
        400,
        error_codes.INVALID_REQUEST,
        f"{first['path']}: {first['message']}",
        path=first["path"],
        rule=first["rule"],
        value=problems[0].get("input"),
        has_value="input" in problems[0],
        extra={"errors": items} if len(items) > 1 else None,
    )


def _internal(part: int | str) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))
