"""HTTP Basic auth on every route but the healthcheck, compared in constant time.

A failure says only "missing" or "wrong" to the client and to the log: the
log never holds the credentials tried.  Repeated wrong credentials from one
address for one username are answered 429 for a while (throttle.py).
"""

from __future__ import annotations

import base64
import hmac

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from supervisor_agent.api import error_codes
from supervisor_agent.api.errors import ApiError
from supervisor_agent.api.throttle import AuthThrottle

log = structlog.get_logger(__name__)

REALM = "ecr-connector"
OPEN_ROUTES = frozenset(
    {("GET", "/v1/connector/healthcheck"), ("HEAD", "/v1/connector/healthcheck")}
)
CHALLENGE = {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}


def is_open(request: web.Request) -> bool:
    return (request.method, request.path) in OPEN_ROUTES


def parse_basic(header: str) -> tuple[str, str] | None:
    """``(user, password)`` of a Basic header, None for anything else.  A token with a
    character outside ASCII (a header is latin-1 on the wire) makes ``b64decode`` raise a
    plain ValueError, not binascii.Error: caught with the rest, so it is a 401, not a 500."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors too
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def credentials_match(given: tuple[str, str], expected: tuple[str, str]) -> bool:
    """Both parts compared in full, whatever the first gave, so timing tells nothing."""
    user_ok = hmac.compare_digest(given[0].encode(), expected[0].encode())
    password_ok = hmac.compare_digest(given[1].encode(), expected[1].encode())
    return bool(user_ok & password_ok) and bool(expected[0]) and bool(expected[1])


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, error_codes.UNAUTHORIZED, message, headers=CHALLENGE)


def _throttled(retry_after_s: int) -> ApiError:
    return ApiError(
        429,
        error_codes.TOO_MANY_ATTEMPTS,
        f"too many wrong credentials from this address; retry in {retry_after_s} s",
        rule="auth_throttle",
        headers={"Retry-After": str(retry_after_s)},
    )


def basic_auth_middleware(
    username: str, password: str, throttle: AuthThrottle | None = None
) -> Middleware:
    expected = (username, password)
    failures = throttle or AuthThrottle()
    if not (username and password):
        log.warning("api.auth.not_configured")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_open(request):
            return await handler(request)
        header = request.headers.get("Authorization")
        if header is None:
            log.info("api.auth.rejected", reason="missing", path=request.path, peer=request.remote)
            raise _unauthorized("HTTP Basic credentials are required")
        given = parse_basic(header)
        key = (request.remote or "", given[0] if given else None)
        retry_after_s = failures.retry_after_s(key)
        if retry_after_s is not None:  # refused before the password is even compared
            raise _throttled(retry_after_s)
        if given is None:
            failures.failed(key)
            log.info(
                "api.auth.rejected", reason="malformed", path=request.path, peer=request.remote
            )
            raise _unauthorized("the Authorization header is not valid HTTP Basic")
        if not credentials_match(given, expected):
            failures.failed(key)
            log.info("api.auth.rejected", reason="wrong", path=request.path, peer=request.remote)
            raise _unauthorized("wrong API credentials")
        failures.succeeded(key)
        return await handler(request)

    return middleware
