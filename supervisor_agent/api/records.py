"""What the journal knows, over the API: one order's outcome, the outbox, the metrics.

``GET /transactions/{order_id}`` is how a register that lost its connection
mid-payment learns what happened: the stored outcome in the shape the order
was paid in (desktop or kiosk object, POS API ``OrderResponse``), plus
``transactionState`` and, when the outcome is unknown, the advice to check the
terminal's own journal.  It never touches the terminal.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from common.money import currency
from supervisor_agent.api import error_codes
from supervisor_agent.api.errors import ApiError
from supervisor_agent.api.journal_seam import ECHO_KEY
from supervisor_agent.api.orders import PreparedPayment
from supervisor_agent.api.payment import PaymentOrder, PaymentOutcome, TerminalOutcome
from supervisor_agent.api.responses import desktop_body, kiosk_body, pos_body
from supervisor_agent.api.wire_json import json_response, loads
from supervisor_agent.journal import Journal, TransactionRecord, TxState
from supervisor_agent.metrics import Metrics
from supervisor_agent.outbox import NotificationState

UNKNOWN_ADVICE = (
    "The customer may have paid: check the terminal's own journal (or the HiPay console) "
    "before asking for the payment again."
)
PROMETHEUS_CONTENT_TYPE = "text/plain"
_LISTABLE = {"pending", "dead", "delivered", "undelivered", "all"}


def _flavoured(record: TransactionRecord, sent: bool, count: int) -> Any:
    stored = loads(record.request[ECHO_KEY])
    flavour = stored.pop("flavour")
    amount_minor = int(stored.pop("amount_minor"))
    stored.pop("target", None)
    stored.pop("notify_url", None)
    if flavour == "pos":
        stored.pop("currency", None)
    order = PaymentOrder(
        order_id=record.order_id,
        amount_minor=amount_minor,
        currency=currency(str(record.request.get("currency") or "EUR")),
        transaction_type=str(record.request.get("transaction_type") or "debit"),
        force_authorization=bool(record.request.get("force_authorization", False)),
    )
    outcome = PaymentOutcome(
        order,
        TerminalOutcome(record.result, record.error_code, record.error_message),
        notification_sent=sent,
        notification_count=count,
        replayed=True,
    )
    prepared = PreparedPayment(order, stored)
    extra: dict[str, Any] = {"transactionState": str(record.state)}
    if record.state is TxState.UNKNOWN:
        extra["advice"] = UNKNOWN_ADVICE
    if flavour == "desktop":
        return {**desktop_body(prepared, outcome), **extra}
    if flavour == "kiosk":
        return [{**item, **extra} for item in kiosk_body(prepared, outcome)]
    return {**pos_body(prepared, outcome), **extra}


class Records:
    def __init__(self, journal: Journal, metrics: Metrics | None) -> None:
        self.journal = journal
        self.metrics = metrics

    async def transaction(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        record = await asyncio.to_thread(self.journal.get, order_id)
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
        note = await asyncio.to_thread(self.journal.outbox.get_by_order, order_id)
        sent = note is not None and note.sent
        count = note.attempts_received if note is not None else 0
        return json_response(_flavoured(record, sent, count))

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
        metrics.set_notification_states(await asyncio.to_thread(self.journal.outbox.counts))
        return web.Response(text=metrics.render(), content_type=PROMETHEUS_CONTENT_TYPE)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/transactions/{order_id}", self.transaction, allow_head=False),
            web.get("/notifications", self.notifications, allow_head=False),
            web.get("/metrics", self.metrics_text, allow_head=False),
        ]
