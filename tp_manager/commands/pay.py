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
from common.commands import InvalidProperties
from common.commands import errors as codes
from common.commands import pay as pay_contract
from tp_manager.commands import CommandError
from tp_manager.context import ServerContext
from tp_manager.terminal.errors import TerminalBusy, TerminalError
from tp_manager.terminal.model import PaymentRequest

log = structlog.get_logger(__name__)


def parse_request(props: dict[str, Any]) -> PaymentRequest:
    """The API validated the order; the contract is re-checked so a bad peer can't crash us."""
    try:
        return pay_contract.from_properties(props)
    except InvalidProperties as exc:
        raise CommandError(codes.INVALID_PROPERTIES, str(exc)) from None


async def execute(ctx: ServerContext, props: dict[str, Any]) -> dict[str, Any]:
    request = parse_request(props)
    terminal = ctx.terminal
    target = request.target
    if target:
        if ctx.terminal_factory is None:
            raise CommandError(
                codes.INVALID_PROPERTIES, "this connector cannot reach other terminals"
            )
        terminal = ctx.terminal_factory(target)
    if ctx.payment_in_flight.is_set() or terminal.busy:
        raise TerminalBusy("a transaction is already in flight on the terminal")
    if ctx.shutdown_requested.is_set():
        raise CommandError(codes.SHUTTING_DOWN, "tp-manager is stopping; try again shortly")
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
