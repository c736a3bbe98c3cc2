"""``create_app``: the supervisor agent's local HTTP API, wired.

Middlewares, outermost first: the head clock (server.py: a request exists, so
the connection's header-read deadline stops), CORS (answers preflights, refuses unknown
origins), errors (every failure becomes the JSON error shape, every request is
logged once), Basic auth.  Payment routes speak the configured flavour
(``api_flavour``: desktop or kiosk); the POS API route and the maintenance
routes are always there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from supervisor_agent.api import error_codes
from supervisor_agent.api.auth import basic_auth_middleware
from supervisor_agent.api.bodies import MAX_BODY_BYTES, read_json_object
from supervisor_agent.api.cors import cors_middleware
from supervisor_agent.api.errors import ApiError
from supervisor_agent.api.flavours import desktop, kiosk, pos
from supervisor_agent.api.maintenance import Maintenance, StopTpManager
from supervisor_agent.api.openapi import build_openapi
from supervisor_agent.api.operator import OperatorView
from supervisor_agent.api.payment import PaymentService
from supervisor_agent.api.records import Records
from supervisor_agent.api.server import ApiSite, ServerLimits, head_received_middleware
from supervisor_agent.api.settings import FLAVOURS, ApiSettings, api_settings
from supervisor_agent.api.wire_json import json_response
from supervisor_agent.client import TerminalClient
from supervisor_agent.journal import Journal
from supervisor_agent.metrics import Metrics
from supervisor_agent.notifier import Notifier

log = structlog.get_logger(__name__)

SETTINGS_KEY = web.AppKey("settings", ApiSettings)
SERVICE_KEY = web.AppKey("payment_service", PaymentService)

_HTTP_CODES = {
    404: error_codes.NOT_FOUND,
    405: error_codes.METHOD_NOT_ALLOWED,
    413: error_codes.BODY_TOO_LARGE,
    415: error_codes.UNSUPPORTED_MEDIA_TYPE,
}
_KEPT_HEADERS = frozenset({"allow"})  # from aiohttp's own 405


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.monotonic()
    try:
        response = await handler(request)
    except ApiError as exc:
        response = exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, error_codes.INVALID_REQUEST)
        kept = {k: v for k, v in exc.headers.items() if k.lower() in _KEPT_HEADERS}
        response = ApiError(exc.status, code, exc.reason, headers=kept).response()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("api.request.crashed", method=request.method, path=request.path)
        response = ApiError(500, error_codes.INTERNAL_ERROR, "internal error").response()
    log.info(
        "api.request",
        method=request.method,
        path=request.path,
        status=response.status,
        duration_ms=round((time.monotonic() - started) * 1000, 1),
    )
    return response


class PaymentRoutes:
    def __init__(
        self, settings: ApiSettings, service: PaymentService, notify_url_supported: bool
    ) -> None:
        self.settings = settings
        self.service = service
        self.notify_url_supported = notify_url_supported

    async def payment(self, request: web.Request) -> web.Response:
        body = await read_json_object(request)
        if self.settings.api_flavour == "desktop":
            answer = await self.service.pay(desktop.parse(body, self.settings))
            return json_response(desktop.render(answer))
        answer = await self.service.pay(kiosk.parse(body, self.settings))
        return json_response(kiosk.render(answer))

    async def pos_order(self, request: web.Request) -> web.Response:
        body = await read_json_object(request, "application")
        order = pos.parse(body, self.settings, self.notify_url_supported)
        return json_response(pos.render(await self.service.pay(order)))


async def healthcheck(request: web.Request) -> web.Response:
    """The API process is up and serving; nothing about the terminal or the config."""
    return json_response({"status": "OK"})


async def openapi_document(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    flavour = request.query.get("flavour", settings.api_flavour)
    if flavour not in FLAVOURS:
        raise ApiError(
            400,
            error_codes.INVALID_REQUEST,
            f"flavour: must be one of {', '.join(FLAVOURS)}",
            path="flavour",
            rule="enum",
            value=flavour,
            has_value=True,
        )
    return json_response(build_openapi(flavour))


def create_app(
    config: Any,
    client: TerminalClient,
    stop_tp_manager: StopTpManager,
    *,
    journal: Journal,
    notifier: Notifier,
    metrics: Metrics | None = None,
    notify_url_supported: bool = False,
    acknowledge: Callable[[str], None] | None = None,
    operator: OperatorView | None = None,
) -> web.Application:
    """Build the API; ``config`` is a ConnectorConfig or anything with its API fields.

    Every payment goes through ``journal`` (idempotency, crash recovery, the outbox)
    and ``notifier`` (HiPay); ``notify_url_supported`` turns on the POS API's
    per-order ``notify_url`` once the notifier honours it; ``acknowledge`` tells
    tp-manager a verdict is journaled (the reconciler's ``ack``); ``operator`` serves
    ``/events`` and ``/status`` from the agent's live event log (api/operator.py).
    """
    settings = api_settings(config)
    service = PaymentService(client, settings, journal, notifier, acknowledge)
    app = web.Application(
        middlewares=[
            head_received_middleware,
            cors_middleware(settings.cors_origins),
            error_middleware,
            basic_auth_middleware(settings.api_username, settings.api_password),
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS_KEY] = settings
    app[SERVICE_KEY] = service
    payments = PaymentRoutes(settings, service, notify_url_supported)
    maintenance = Maintenance(settings, client, stop_tp_manager)
    app.add_routes(
        [
            web.post("/", payments.payment),
            web.post("/payment", payments.payment),
            web.post("/v1/connector/order", payments.pos_order),
            web.get("/v1/connector/healthcheck", healthcheck),
            web.get("/openapi.json", openapi_document, allow_head=False),
            *maintenance.routes(),
            *Records(service, metrics).routes(),
        ]
    )
    (operator or OperatorView.for_app(settings, client, journal)).install(app)
    log.info(
        "api.app.created",
        flavour=settings.api_flavour,
        cors_origins=len(settings.cors_origins),
        authorization_threshold=str(settings.authorization_threshold),
    )
    return app


async def start_server(
    app: web.Application,
    host: str,
    port: int,
    shutdown_timeout_s: float = 60.0,
    limits: ServerLimits | None = None,
) -> web.AppRunner:
    """Serve ``app`` on host:port (port 0: any free one); the caller cleans the runner up.

    ``runner.cleanup()`` waits up to ``shutdown_timeout_s`` for requests in flight: a
    payment's answer must get out when the agent is stopped mid-payment.  The
    connections obey ``limits`` (server.py: head deadline, per-address cap); by default
    the cap is the settings' ``max_connections_per_address``.
    """
    if limits is None:
        cap = app[SETTINGS_KEY].max_connections_per_address
        limits = ServerLimits(max_connections_per_address=cap)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout_s)
    await runner.setup()
    site = ApiSite(runner, host, port, limits)
    await site.start()
    log.info("api.listening", host=host, port=bound_port(runner))
    return runner


def bound_port(runner: web.AppRunner) -> int:
    addresses = runner.addresses
    return int(addresses[0][1]) if addresses else 0
