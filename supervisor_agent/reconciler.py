"""Bringing every terminal verdict home: tp-manager's pending results into the journal.

tp-manager keeps each verdict on disk until the agent acknowledges it
(common/commands/results.py).  Most are acknowledged once the payment path
journaled them, in one ``ack`` per :data:`ACK_LINGER_S` rather than one per
payment.  The others are the ones this module exists for: an answer that came
after the transaction timeout or a cancel, a verdict replied to an agent that
had died, one cut off by a tp-manager restart.  Their orders are
``unknown`` in the journal; ``Journal.reconcile`` gives them the terminal's
verdict and queues the corrected HiPay notification.

Collection runs when tp-manager publishes ``transaction.result_pending`` (a
hint: PUB drops what nobody reads), when the channel (re)connects, and on a slow
poll, so no verdict depends on one message arriving.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from common.commands import ack as ack_contract
from common.commands import errors as codes
from common.commands import results as results_contract
from supervisor_agent.client import CommandFailed, TerminalClient
from supervisor_agent.journal import Journal, ReconcileKind
from supervisor_agent.notifier import Notifier

log = structlog.get_logger(__name__)

RESULTS_POLL_S = 30.0  # the slow poll: the backstop for a lost hint
RESULTS_TIMEOUT_S = 5.0
# How long a payment's acknowledgement waits for others to share its ``ack`` call: one
# control round trip (and one fsynced result-store write in tp-manager) per batch, not per
# payment.  A verdict acknowledged late is only kept longer; a lost ack costs nothing.
# A second, not less: one register paying back to back on a Concert V3 terminal (about
# 170 ms a payment, its settle timers) shared a 0.25 s batch with barely one other payment.
ACK_LINGER_S = 1.0


class Reconciler:
    def __init__(
        self,
        client: TerminalClient,
        journal: Journal,
        notifier: Notifier | None = None,
        poll_s: float = RESULTS_POLL_S,
    ) -> None:
        self.client = client
        self.journal = journal
        self.notifier = notifier
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self._to_ack: set[str] = set()
        self._collect_wanted = True  # collect once at start: verdicts held while we were down
        self._task: asyncio.Task[None] | None = None
        self._ack_timer: asyncio.TimerHandle | None = None
        self._unsupported_logged = False

    def start(self) -> None:
        self._wake.set()
        self._task = asyncio.create_task(self._run(), name="reconciler")

    async def stop(self) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def hint(self) -> None:
        """Something may be pending (an event, a reconnect): collect soon."""
        self._collect_wanted = True
        self._wake.set()

    def acknowledge(self, order_id: str) -> None:
        """The payment path journaled this verdict: tp-manager may forget it, in one
        ``ack`` with the others journaled within :data:`ACK_LINGER_S`."""
        self._to_ack.add(order_id)
        if self._ack_timer is None:
            self._ack_timer = asyncio.get_running_loop().call_later(ACK_LINGER_S, self._acks_due)

    def _acks_due(self) -> None:
        self._ack_timer = None
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow the
                # cancel of stop() when the event fires at the same moment
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
            except TimeoutError:
                self._collect_wanted = True  # the slow poll
            self._wake.clear()
            try:
                await self._send_acks()  # a payment's own ack costs no ``results`` call
                if self._collect_wanted:
                    self._collect_wanted = False
                    try:
                        await self.collect()
                    except Exception:
                        self._collect_wanted = True  # try again on the next wake or poll
                        raise
            except CommandFailed as exc:  # tp-manager away: the next hint or poll tries again
                log.info("agent.reconcile.unavailable", code=exc.code)
            except Exception:  # never die of it: the verdicts wait in tp-manager's store
                log.exception("agent.reconcile.crashed")

    async def flush(self) -> None:
        """Send the acknowledgements still queued (at stop); what fails is collected later."""
        with contextlib.suppress(CommandFailed):
            await self._send_acks()

    async def _send_acks(self) -> None:
        if not self._to_ack:
            return
        order_ids = sorted(self._to_ack)
        await self.client.call(
            ack_contract.NAME,
            ack_contract.AckRequest(order_ids).to_wire(),
            timeout=RESULTS_TIMEOUT_S,
        )
        self._to_ack.difference_update(order_ids)

    async def collect(self) -> int:
        """Journal every verdict tp-manager holds; the number reconciled."""
        try:
            raw = await self.client.call(results_contract.NAME, {}, timeout=RESULTS_TIMEOUT_S)
        except CommandFailed as exc:
            if exc.code == codes.UNKNOWN_COMMAND:
                if not self._unsupported_logged:
                    log.warning("agent.reconcile.unsupported", detail=exc.message)
                    self._unsupported_logged = True
                return 0
            raise
        pending = results_contract.ResultsReply.from_wire(raw).results
        done: list[str] = []
        reconciled = 0
        for each in pending:
            kind, record = await asyncio.to_thread(
                self.journal.reconcile, each.order_id, each.result, each.answered_at
            )
            if kind is ReconcileKind.IN_FLIGHT:
                continue  # the payment path is journaling it right now
            done.append(each.order_id)
            if kind is ReconcileKind.RECONCILED:
                reconciled += 1
                assert record is not None
                log.warning(
                    "agent.transaction.reconciled",
                    order_id=each.order_id,
                    state=str(record.state),
                    reconciled_from=record.reconciled_from,
                    late=each.late,
                )
            elif kind is ReconcileKind.CONFLICT:
                assert record is not None
                log.error(
                    "agent.transaction.reconcile_conflict",
                    order_id=each.order_id,
                    journal_state=str(record.state),
                    terminal_status=str(each.result.status),
                    advice="the journal keeps its verdict; check the terminal's journal",
                )
            elif kind is ReconcileKind.NO_ORDER:
                log.error(
                    "agent.transaction.reconcile_no_order",
                    order_id=each.order_id,
                    terminal_status=str(each.result.status),
                    amount=each.result.amount,
                )
        if done:
            await self.client.call(
                ack_contract.NAME,
                ack_contract.AckRequest(done).to_wire(),
                timeout=RESULTS_TIMEOUT_S,
            )
        if reconciled and self.notifier is not None:
            self.notifier.kick()
        return reconciled
