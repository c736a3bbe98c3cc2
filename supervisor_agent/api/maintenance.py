"""``GET /version /config /stop /cancel /reset /tlc /check``, in the seeds' shapes.

Desktop answers the object, kiosk an array of one element (the seeds).
``/cancel``, ``/check``, ``/reset`` and ``/tlc`` take ``?terminal=<id>`` (an addition:
a terminal named in the config; without it, the configured terminal, or for
``/cancel`` every payment in flight).
Commands tp-manager refuses come back as the JSON error shape with the
status of docs/error-codes.md (NOT_SUPPORTED: 501, tp-manager down: 503...).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from common.commands import cancel, check, reset, telecollect
from common.commands.cancel import CancelReply
from common.commands.check import CheckReply
from common.commands.reset import ResetReply
from common.commands.telecollect import TelecollectReply
from common.terminals import DEFAULT_TERMINAL
from supervisor_agent.api import error_codes
from supervisor_agent.api.errors import ApiError
from supervisor_agent.api.settings import ApiSettings
from supervisor_agent.api.terminals import named_terminal
from supervisor_agent.api.wire_json import json_response
from supervisor_agent.client import CommandFailed, TerminalClient

log = structlog.get_logger(__name__)

StopTpManager = Callable[[], Awaitable[bool]]
BAD_GATEWAY = 502


class Maintenance:
    def __init__(
        self, settings: ApiSettings, client: TerminalClient, stop_tp_manager: StopTpManager
    ) -> None:
        self.settings = settings
        self.client = client
        self.stop_tp_manager = stop_tp_manager

    def _answer(self, data: dict[str, Any]) -> web.Response:
        return json_response(data if self.settings.api_flavour == "desktop" else [data])

    def _terminal(self, request: web.Request) -> dict[str, Any]:
        """``?terminal=<id>`` as the command's properties ({} when it names none).

        ``default`` is sent as such: for ``cancel``, no terminal means every payment in
        flight, and ``?terminal=default`` must not stop another lane's customer."""
        value = request.query.get("terminal")
        spec = named_terminal(self.settings, value, "terminal")
        if spec is not None:
            return {"terminal": spec.id}
        return {} if value is None else {"terminal": DEFAULT_TERMINAL}

    async def _call(
        self, command: str, props: dict[str, Any] | None = None, *, terminal_act: bool = False
    ) -> dict[str, Any]:
        """``terminal_act``: the terminal does something that takes its time (a remote
        collection dials the bank, a reboot): tp-manager bounds it by the transaction
        timeout, and the call waits that long (the payment's budget), not the short
        maintenance timeout a check or a cancel fits in."""
        timeout = (
            self.settings.payment_timeout_s if terminal_act else self.settings.maintenance_timeout_s
        )
        try:
            return await self.client.call(command, props or {}, timeout=timeout)
        except CommandFailed as exc:
            status = error_codes.lookup(exc.code).http_status
            log.info("api.maintenance.failed", command=command, code=exc.code)
            # the code's own description speaks of a payment ("the customer may have paid");
            # only /cancel is about one
            description = None if command == cancel.NAME else f"{command}: no payment involved"
            raise ApiError(
                status if status >= 400 else BAD_GATEWAY,
                exc.code,
                exc.message,
                description=description,
            ) from None

    def _version(self) -> dict[str, str]:
        s = self.settings
        return {"version": s.version_string, "type": s.type_name, "os": s.version_os}

    async def version(self, request: web.Request) -> web.Response:
        data = self._version()
        if self.settings.api_flavour == "desktop":
            return self._answer({"version": data["version"]})
        return self._answer(data)

    async def config(self, request: web.Request) -> web.Response:
        data: dict[str, Any] = {"deviceId": self.settings.serial_number}
        if self.settings.api_flavour == "kiosk":
            # The kiosk seed's example for /config repeats /version's; both are answered.
            data = {**self._version(), **data}
        return self._answer(data)

    async def stop(self, request: web.Request) -> web.Response:
        log.warning("api.maintenance.stop_requested", peer=request.remote)
        try:
            stopped = bool(await self.stop_tp_manager())
            message = "TP-Manager stopped" if stopped else "TP-Manager was not stopped"
        except Exception as exc:  # supervisord unreachable: say so, do not 500
            log.warning("api.maintenance.stop_failed", error=str(exc))
            stopped, message = False, f"TP-Manager was not stopped: {exc}"
        return self._answer({"message": message, "stopped": stopped})

    async def cancel(self, request: web.Request) -> web.Response:
        reply = CancelReply.from_wire(await self._call(cancel.NAME, self._terminal(request)))
        if not reply.cancelled and reply.terminal_may_still_complete:
            # cancelled before: the connector no longer waits, but the customer may be
            # paying still (Concert V2 cannot abort), and the terminal refuses orders
            message = (
                f"already cancelled; the terminal may still complete order {reply.order_id}: "
                f"its answer is reconciled in the journal (GET /transactions/{reply.order_id})"
            )
        elif not reply.cancelled:
            message = "no transaction in flight"
        elif reply.terminal_may_still_complete:
            message = (
                "stopped waiting; the terminal may still complete the payment: its answer is "
                f"reconciled in the journal (GET /transactions/{reply.order_id})"
            )
        else:
            message = "transaction cancelled"
        log.info(
            "api.maintenance.cancel",
            cancelled=reply.cancelled,
            order_id=reply.order_id,
            terminal_may_still_complete=reply.terminal_may_still_complete,
        )
        return self._answer(
            {
                "message": message,
                "cancelled": reply.cancelled,
                "orderId": reply.order_id,
                "terminalMayStillComplete": reply.terminal_may_still_complete,
            }
        )

    async def reset(self, request: web.Request) -> web.Response:
        reply = ResetReply.from_wire(
            await self._call(reset.NAME, self._terminal(request), terminal_act=True)
        )
        return self._answer({"done": reply.done, "detail": reply.detail})

    async def tlc(self, request: web.Request) -> web.Response:
        reply = TelecollectReply.from_wire(
            await self._call(telecollect.NAME, self._terminal(request), terminal_act=True)
        )
        apps = [{"Name": app.name, "Status": app.status} for app in reply.apps]
        return self._answer(
            {"NbApp": str(len(apps)), "App": apps, "done": reply.done, "detail": reply.detail}
        )

    async def check(self, request: web.Request) -> web.Response:
        reply = CheckReply.from_wire(await self._call(check.NAME, self._terminal(request)))
        link_up = reply.link == "up"
        return self._answer(
            {
                "cr": "0" if link_up and reply.responding is not False else "1",
                "card": None,
                "call": None,
                "periph": "0" if link_up else "1",
                "protocol": reply.protocol,
                "link": reply.link,
                "busy": reply.busy,
                "responding": reply.responding,
                "detail": reply.detail,
            }
        )

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/version", self.version, allow_head=False),
            web.get("/config", self.config, allow_head=False),
            web.get("/stop", self.stop, allow_head=False),
            web.get("/cancel", self.cancel, allow_head=False),
            web.get("/reset", self.reset, allow_head=False),
            web.get("/tlc", self.tlc, allow_head=False),
            web.get("/check", self.check, allow_head=False),
        ]
