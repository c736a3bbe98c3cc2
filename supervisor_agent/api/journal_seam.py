"""The API's payment seam, backed by the SQLite journal and the HiPay notifier.

The API hands over each order in its own flavour's shape; the journal keeps
one canonical request (hipay_payload.py) so every notification has one shape.
This module is the only place that translates between the two, and the only
place that decides which journal state a terminal outcome becomes:

* an accepted result -> ``accepted``; a refused or not-verified one -> ``refused``;
* an error after which the terminal did nothing (messages.NOTHING_SENT_CODES)
  -> ``failed``, no notification, and the order id may be posted again;
* any other error -> ``unknown``: the customer may have paid, HiPay is told so
  and a person checks the terminal's journal.

SQLite calls take milliseconds but are blocking, so they run in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import structlog

from common.commands import pay as pay_contract
from common.money import CurrencyInfo, MoneyError, currency, to_minor
from supervisor_agent.api import wire_json
from supervisor_agent.api.payment import JournalEntry, JournalState, TerminalOutcome
from supervisor_agent.journal import BeginKind, Journal, TransactionRecord, TxError, TxState
from supervisor_agent.notifier import Notifier

log = structlog.get_logger(__name__)

_BASKET_MONEY = ("unit_price", "total_amount", "discount")
ECHO_KEY = "echo_json"  # the request as the register sent it, for replays and lookups


def plain(value: Any) -> Any:
    """JSON-safe copy of echoed, non-money data: Decimals become ints or floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _basket_minor(raw: Any, cur: CurrencyInfo, unit: str) -> list[dict[str, Any]]:
    """Basket items with money fields as int minor units; an unusable basket is empty."""
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, Mapping) and raw else []
    out: list[dict[str, Any]] = []
    try:
        for item in items:
            converted = dict(plain({k: v for k, v in item.items() if k not in _BASKET_MONEY}))
            for key in _BASKET_MONEY:
                if item.get(key) is None:
                    continue
                value = item[key]
                negative = isinstance(value, int | Decimal) and value < 0
                magnitude = -value if negative else value
                minor = to_minor(magnitude, cur) if unit == "major" else int(Decimal(magnitude))
                converted[key] = -minor if negative else minor
            out.append(converted)
    except (MoneyError, ArithmeticError, TypeError, ValueError, AttributeError):
        return []
    return out


def canonical_request(order_id: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """The API's journal_request (flavour + echo) -> the journal's canonical shape."""
    flavour = request["flavour"]
    cur = currency(str(request.get("currency") or "EUR"))
    canonical: dict[str, Any] = {
        "order_id": order_id,
        "amount": int(request["amount_minor"]),
        "currency": cur.alpha,
        ECHO_KEY: wire_json.dumps(request),
    }
    if flavour == "pos":
        order = request.get("order") or {}
        price = order.get("price") or {}
        canonical.update(
            transaction_type=str(order.get("transaction_type") or "Debit").lower(),
            force_authorization=bool(
                (request.get("pos_technical_info") or {}).get("force_authorization", False)
            ),
            basket=_basket_minor(price.get("basket") or [], cur, "minor"),
            custom_data=plain(order.get("custom_data") or {}),
            customer=plain(request.get("customer") or {}),
        )
        for key in ("description", "long_description", "soft_descriptor"):
            if order.get(key):
                canonical[key] = str(order[key])
        for key in ("tax_fees", "shipping_fees"):
            if price.get(key) is not None:
                canonical[key] = int(Decimal(price[key]))
        if request.get("shipping"):
            canonical["shipping"] = plain(request["shipping"])
    else:
        basket_key, custom_key = ("cart", "customData")
        if flavour == "kiosk":
            basket_key = "basket"
        canonical.update(
            transaction_type=str(request.get("transationType") or "Debit").lower(),
            force_authorization=bool(request.get("forceAuthorization", False)),
            basket=_basket_minor(request.get(basket_key), cur, "major"),
            custom_data=plain(request.get(custom_key) or {}),
            customer=plain(request.get("customer") or {}),
        )
    return canonical


def outcome_of(record: TransactionRecord) -> TerminalOutcome:
    return TerminalOutcome(record.result, record.error_code, record.error_message)


def state_for(outcome: TerminalOutcome) -> TxState:
    result = pay_contract.result_of(outcome.result) if outcome.result is not None else None
    return TxState(pay_contract.transaction_state(result, outcome.money_may_have_moved))


class JournalSeam:
    """``PaymentJournal`` for the API: begin / at_terminal / finish on the SQLite journal."""

    def __init__(self, journal: Journal, notifier: Notifier | None = None) -> None:
        self.journal = journal
        self.notifier = notifier

    async def begin(self, order_id: str, request: dict[str, Any]) -> JournalEntry:
        body = canonical_request(order_id, request)
        begun = await asyncio.to_thread(
            self.journal.begin, order_id, body, flavour=str(request["flavour"])
        )
        if begun.kind is BeginKind.NEW:
            return JournalEntry(JournalState.NEW)
        if begun.kind is BeginKind.IN_PROGRESS:
            return JournalEntry(JournalState.IN_PROGRESS)
        return JournalEntry(JournalState.DONE, outcome_of(begun.record))

    async def at_terminal(self, order_id: str) -> None:
        await asyncio.to_thread(self.journal.mark_at_terminal, order_id)

    async def finish(self, order_id: str, outcome: TerminalOutcome) -> None:
        state = state_for(outcome)
        error = (
            TxError(outcome.error_code, outcome.error_message or "") if outcome.error_code else None
        )
        if state is TxState.FAILED and error is not None:
            await asyncio.to_thread(self.journal.finish_not_sent, order_id, error)
            return
        await asyncio.to_thread(self.journal.finish, order_id, state, outcome.result, error)
        if state is TxState.UNKNOWN:
            log.error(
                "agent.payment.outcome_unknown",
                order_id=order_id,
                error_code=outcome.error_code,
                advice="check the terminal's journal: the customer may have paid",
            )
        if self.notifier is not None:
            self.notifier.kick()
