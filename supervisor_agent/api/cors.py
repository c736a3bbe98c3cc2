"""CORS for the origins in ``cors_origins`` only (default: none).

Kiosk front ends are often pages in a local browser.  A preflight from a
listed origin is answered (without credentials: browsers send none on a
preflight); any request that carries an ``Origin`` not listed gets a 403, so a
page on another site cannot even try the register's password against the
terminal.  Requests without ``Origin`` (registers, curl) are not concerned.
"""

from __future__ import annotations

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from supervisor_agent.api import error_codes
from supervisor_agent.api.errors import ApiError

log = structlog.get_logger(__name__)

ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type"
PREFLIGHT_MAX_AGE_S = 600


def _allow_headers(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def cors_middleware(origins: tuple[str, ...]) -> Middleware:
    allowed = frozenset(o.rstrip("/") for o in origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None:
            return await handler(request)
        if origin not in allowed:
            log.info("api.cors.rejected", origin=origin[:100], path=request.path)
            return ApiError(
                403,
                error_codes.ORIGIN_NOT_ALLOWED,
                "this origin is not allowed (cors_origins)",
                path="Origin",
                rule="cors_origins",
                value=origin,
                has_value=True,
            ).response()
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return web.Response(
                status=204,
                headers={
                    **_allow_headers(origin),
                    "Access-Control-Allow-Methods": ALLOWED_METHODS,
                    "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                    "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
                },
            )
        response = await handler(request)
        response.headers.update(_allow_headers(origin))
        return response

    return middleware
