"""What the journal knows, over the API: one order's outcome, the outbox, the metrics.

``GET /transactions/{order_id}`` is how a register that lost its connection
mid-payment learns what happened: the journal row rendered exactly as the
payment's own answer was (desktop or kiosk object, POS API ``OrderResponse``),
with ``transactionState`` (reconciled when the terminal's late answer came) and,
while the outcome is unknown, the advice.  It never touches the terminal.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from supervisor_agent.api import error_codes
from supervisor_agent.api.errors import ApiError
from supervisor_agent.api.flavours import render
from supervisor_agent.api.flavours.parts import answered_at
from supervisor_agent.api.payment import PaymentAnswer, PaymentService
from supervisor_agent.api.receipt import build_ticket, terminal_ticket
from supervisor_agent.api.wire_json import json_response
from supervisor_agent.journal import TransactionRecord
from supervisor_agent.metrics import Metrics
from supervisor_agent.outbox import NotificationState
from supervisor_agent.status_facts import refresh_journal_gauges

PROMETHEUS_CONTENT_TYPE = "text/plain"
_LISTABLE = {"pending", "dead", "delivered", "undelivered", "all"}


class Records:
    def __init__(self, service: PaymentService, metrics: Metrics | None) -> None:
        self.service = service
        self.journal = service.journal
        self.metrics = metrics

    async def _finished(self, order_id: str) -> TransactionRecord:
        record = self.service.held(order_id) or await asyncio.to_thread(self.journal.get, order_id)
        if record is None:
            raise ApiError(
                404,
                error_codes.ORDER_NOT_FOUND,
                f"no transaction with order id {order_id!r} in the journal",
                path="order_id",
                rule="exists",
                value=order_id,
                has_value=True,
            )
        if not record.finished:
            raise ApiError(
                409,
                error_codes.IN_PROGRESS,
                f"order {order_id!r} is at the terminal right now; ask again once it is answered",
            )
        return record

    async def transaction(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        record = await self._finished(order_id)
        delivery = await self.service.delivery(record)
        return json_response(render(PaymentAnswer(record, delivery)))

    async def ticket(self, request: web.Request) -> web.Response:
        """Reprint: the terminal's own tickets when it sent them (journaled with the
        verdict), else the one the connector composes from the verdict."""
        order_id = request.match_info["order_id"]
        record = await self._finished(order_id)
        result = record.result
        if result is None:
            raise ApiError(
                404,
                error_codes.TICKET_NOT_FOUND,
                f"order {order_id!r} has no verdict from the terminal ({record.state}): "
                "there is no ticket to reprint",
                path="order_id",
                rule="has_verdict",
                value=order_id,
                has_value=True,
            )
        own = terminal_ticket(result)
        text = own if own is not None else build_ticket(result, answered_at(record))
        return json_response(
            {
                "orderId": order_id,
                "source": "terminal" if own is not None else "connector",
                "format": result.get("ticket_format") or "text",
                "customer": result.get("customer_ticket"),
                "merchant": result.get("merchant_ticket"),
                "lines": text.rstrip("|").replace("|", "\n").splitlines(),
            }
        )

    async def notifications(self, request: web.Request) -> web.Response:
        wanted = request.query.get("state", "undelivered")
        if wanted not in _LISTABLE:
            raise ApiError(
                400,
                error_codes.INVALID_REQUEST,
                f"state: must be one of {', '.join(sorted(_LISTABLE))}",
                path="state",
                rule="enum",
                value=wanted,
                has_value=True,
            )
        outbox = self.journal.outbox
        if wanted == "undelivered":
            notes = await asyncio.to_thread(lambda: list(outbox.iter_undelivered()))
        elif wanted == "all":
            notes = await asyncio.to_thread(outbox.list, None)
        else:
            notes = await asyncio.to_thread(outbox.list, NotificationState(wanted))
        counts = await asyncio.to_thread(outbox.counts)
        return json_response(
            {"counts": counts, "notifications": [note.to_dict() for note in notes]}
        )

    async def metrics_text(self, request: web.Request) -> web.Response:
        metrics = self.metrics or Metrics()
        await asyncio.to_thread(refresh_journal_gauges, self.journal, metrics)
        return web.Response(text=metrics.render(), content_type=PROMETHEUS_CONTENT_TYPE)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/transactions/{order_id}", self.transaction, allow_head=False),
            web.get("/transactions/{order_id}/ticket", self.ticket, allow_head=False),
            web.get("/notifications", self.notifications, allow_head=False),
            web.get("/metrics", self.metrics_text, allow_head=False),
        ]
