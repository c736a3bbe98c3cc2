"""``pay``: one transaction on the terminal, start to finish.

Refuses at once with TERMINAL_BUSY when a payment is already in flight: a
second payment must never queue behind the first (the customer in front of the
terminal is the one of the first payment).
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from common import messages
from tp_manager.commands import CommandError
from tp_manager.context import ServerContext
from tp_manager.terminal.errors import TerminalBusy, TerminalError
from tp_manager.terminal.model import PaymentRequest, TransactionType

log = structlog.get_logger(__name__)


def parse_request(props: dict[str, Any]) -> PaymentRequest:
    """Properties were validated by the API; this re-checks types so a bad peer can't crash us."""
    try:
        amount = props["amount"]
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise CommandError(messages.INVALID_PROPERTIES, "amount must be integer minor units")
        currency = str(props["currency_numeric"])
        if not (len(currency) == 3 and currency.isdigit()):
            raise CommandError(messages.INVALID_PROPERTIES, "currency_numeric must be 3 digits")
        return PaymentRequest(
            amount=amount,
            currency_numeric=currency,
            transaction_type=TransactionType(props.get("transaction_type", "debit")),
            force_authorization=bool(props.get("force_authorization", False)),
            pos_number=int(props.get("pos_number", 1)),
            full_answer=bool(props.get("full_answer", True)),
            private=str(props.get("private") or ""),
            payment_application=props.get("payment_application"),
            order_id=props.get("order_id"),
        )
    except KeyError as exc:
        raise CommandError(messages.INVALID_PROPERTIES, f"missing property {exc}") from None
    except (TypeError, ValueError) as exc:
        raise CommandError(messages.INVALID_PROPERTIES, str(exc)) from None


async def execute(ctx: ServerContext, props: dict[str, Any]) -> dict[str, Any]:
    request = parse_request(props)
    terminal = ctx.terminal
    target = props.get("target")
    if target:
        if ctx.terminal_factory is None:
            raise CommandError(
                messages.INVALID_PROPERTIES, "this connector cannot reach other terminals"
            )
        terminal = ctx.terminal_factory(target)
    if ctx.payment_in_flight.is_set() or terminal.busy:
        raise TerminalBusy("a transaction is already in flight on the terminal")
    if ctx.shutdown_requested.is_set():
        raise CommandError(messages.SHUTTING_DOWN, "tp-manager is stopping; try again shortly")
    ctx.payment_in_flight.set()
    ctx.active_terminal = terminal
    order = {"order_id": request.order_id}
    ctx.publish(messages.EVENT_TERMINAL_BUSY, order)
    ctx.publish(messages.EVENT_TRANSACTION_STARTED, {**order, "amount": request.amount})
    started = time.monotonic()
    outcome: dict[str, Any] = {**order}
    try:
        result = await terminal.pay(request)
        outcome.update(status=str(result.status), amount=result.amount)
        return result.to_dict()
    except TerminalError as exc:
        outcome.update(status="error", error_code=exc.code)
        if exc.money_may_have_moved:
            ctx.unanswered_order_id = request.order_id
        raise
    finally:
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        ctx.publish(messages.EVENT_TRANSACTION_FINISHED, {**outcome, "duration_ms": duration_ms})
        ctx.publish(messages.EVENT_TERMINAL_IDLE, order)
        ctx.payment_in_flight.clear()
        ctx.active_terminal = None
        log.info("tp_manager.transaction.finished", duration_ms=duration_ms, **outcome)
