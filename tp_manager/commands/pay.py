"""``pay``: one transaction on the terminal, start to finish.

Refuses at once with TERMINAL_BUSY when that terminal is busy: a second payment
must never queue behind the first (the customer in front of the terminal is the
one of the first payment).  Other terminals (an order's own target) may pay at
the same time.

The result store hears of the payment before the terminal is woken and of its
outcome before the reply leaves, so a verdict the reply cannot carry is kept
(tp_manager/result_store.py).  A Concert V2 verdict is written (and fsynced) before
the terminal gets the ACK of its answer, after which it forgets it (:class:`Verdict`).
A failure that leaves the outcome unknown starts status recovery where the terminal
can tell (tp_manager/status_recovery.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable
from typing import Any

import structlog

from common import messages
from common.commands import InvalidProperties
from common.commands import errors as codes
from common.commands import pay as pay_contract
from tp_manager.commands import CommandError
from tp_manager.context import ServerContext
from tp_manager.terminal.errors import TerminalBusy, TerminalError
from tp_manager.terminal.model import PaymentRequest, PaymentResult

log = structlog.get_logger(__name__)


def parse_request(props: dict[str, Any]) -> PaymentRequest:
    """The API validated the order; the contract is re-checked so a bad peer can't crash us."""
    try:
        return pay_contract.from_properties(props)
    except InvalidProperties as exc:
        raise CommandError(codes.INVALID_PROPERTIES, str(exc)) from None


async def _kept(write: Awaitable[None], order_id: str) -> None:
    """The outcome's write to the result store; a store that refuses it (disk full, locked)
    does not change the reply: the terminal has spoken, and the agent journals what the
    reply says (an error of the store's own would read ``unknown``, a verdict lost)."""
    try:
        await write
    except (sqlite3.Error, OSError) as exc:
        log.error("tp_manager.results.finish_failed", order_id=order_id, error=str(exc))


class Verdict:
    """The terminal's verdict on one payment, written to the result store once.

    :meth:`keep` is what a driver awaits before acknowledging the answer to the terminal
    (Concert V2's ACK): committed and fsynced, for once ACKed the terminal forgets its
    answer and would not send it to a restarted tp-manager, and not even a power cut may
    lose it then.  :meth:`write` is awaited before the reply leaves: the same commit,
    made now if the driver did not ask (Concert V3, whose terminal can be asked again).
    """

    def __init__(self, ctx: ServerContext, record: int, order_id: str) -> None:
        self._ctx = ctx
        self._record = record
        self._order_id = order_id
        self._written: asyncio.Future[None] | None = None

    def write(self, result: PaymentResult) -> asyncio.Future[None]:
        """Committed (a killed process keeps it), once whoever asks first."""
        if self._written is None:
            write = self._ctx.results.finish_result(self._record, result)
            self._written = asyncio.ensure_future(_kept(write, self._order_id))
        return self._written

    async def keep(self, result: PaymentResult) -> None:
        """Committed and fsynced: the terminal may be told its answer arrived."""
        await asyncio.shield(self.write(result))
        await self._ctx.results.synced()


async def execute(ctx: ServerContext, props: dict[str, Any]) -> dict[str, Any]:
    request = parse_request(props)
    order_id = request.order_id
    assert order_id is not None  # from_properties requires it
    terminal_key, terminal = ctx.terminal_for(request.target, request.terminal)
    if terminal.busy:
        raise TerminalBusy(terminal.busy_reason())
    if ctx.shutdown_requested.is_set():
        raise CommandError(codes.SHUTTING_DOWN, "tp-manager is stopping; try again shortly")
    try:
        record = await ctx.results.begin(order_id, terminal_key, request)
    except (sqlite3.Error, OSError) as exc:
        # the terminal is not woken without the record a late answer needs: nothing was
        # asked, so the order is failed (and may be posted again), never unknown
        log.error("tp_manager.results.begin_failed", order_id=order_id, error=str(exc))
        raise CommandError(
            codes.RESULTS_UNAVAILABLE, f"cannot write the result store: {exc}"
        ) from exc
    if terminal.busy:  # another order took this terminal while the record was written
        await _kept(ctx.results.finish_error(record, codes.TERMINAL_BUSY, False), order_id)
        raise TerminalBusy(terminal.busy_reason())
    # which terminal: with several, an idle one must not read as the busy one's end
    order = {"order_id": order_id, "terminal": terminal_key}
    ctx.publish(messages.EVENT_TERMINAL_BUSY, order)
    ctx.publish(messages.EVENT_TRANSACTION_STARTED, {**order, "amount": request.amount})
    started = time.monotonic()
    outcome: dict[str, Any] = {**order}
    logged = {  # the request, as the driver's start line (debug) said it
        "currency": request.currency_numeric,
        "transaction_type": str(request.transaction_type),
    }
    verdict: dict[str, Any] = {}  # what the terminal said, beyond the status
    kept = Verdict(ctx, record, order_id)
    try:
        result = await terminal.pay(request, kept.keep)
    except TerminalError as exc:
        await _kept(ctx.results.finish_error(record, exc.code, exc.money_may_have_moved), order_id)
        outcome.update(status="error", error_code=exc.code)
        if exc.money_may_have_moved and ctx.recovery is not None:
            outcome.update(status_recovery=ctx.recovery.start(terminal_key, terminal, request))
        raise
    else:
        await kept.write(result)
        outcome.update(status=str(result.status), amount=result.amount)
        verdict = {
            "failure_reason": result.failure_reason and str(result.failure_reason),
            "payment_application": result.payment_application,
            "masked_pan": result.masked_pan,
            "terminal_ms": round(result.timings.total_ms, 1),
        }
        return result.to_dict()
    finally:
        duration_ms = round((time.monotonic() - started) * 1000, 1)

        def tell() -> None:
            ctx.publish(messages.EVENT_TERMINAL_IDLE, order)
            # tp-manager's one line per payment: the driver's own lines are at debug
            log.info(
                "tp_manager.transaction.finished",
                duration_ms=duration_ms,
                **outcome,
                **logged,
                **verdict,
            )

        # after the reply: it leaves in this same step of the task (the server sends it as
        # soon as this returns), and the agent journals it while this event and the line
        # are made here, on the other core (the outcome's event is the journal's)
        asyncio.get_running_loop().call_soon(tell)
