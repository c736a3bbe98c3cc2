"""Status recovery: ask the terminal what became of a payment whose outcome is unknown.

A Concert V3 payment whose connection dropped after the request, or whose answer never
came within the transaction timeout, is ``unknown``: the customer may have paid.  A
terminal whose profile takes ``CD=T`` (status of a transaction) and carries the order's
reference in ``CF`` can say what happened.  So, after such a failure, tp-manager asks,
a bounded number of times over a bounded time (the terminal may still be finishing
with the customer), and a verdict goes into the result store exactly as a late answer
does: the agent's reconciler collects it and the journal (and HiPay) get the
terminal's verdict (supervisor_agent/reconciler.py).  Without a verdict by the last
try, the order stays ``unknown`` for a person to check, as before.

Each try is one short exchange that takes the terminal's busy flag: it never runs
beside a payment on the same terminal; a try that finds the terminal busy waits for
the next one.  A question waits for its answer only briefly (the driver's own bound,
and never past the budget): it involves no customer, and a payment arriving meanwhile
is turned away busy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

import structlog

from tp_manager.terminal.errors import TerminalError
from tp_manager.terminal.model import PaymentRequest, PaymentResult

log = structlog.get_logger(__name__)

STATUS_TRIES: Final = 4  # questions asked at most, per payment
STATUS_FIRST_DELAY_S: Final = 2.0  # before the first: the terminal may be finishing
STATUS_SPACING_S: Final = 10.0  # between two questions
STATUS_BUDGET_S: Final = 60.0  # after this, no question is asked any more


@runtime_checkable
class StatusTerminal(Protocol):
    """A driver that can ask for a past payment's outcome (Concert V3 with a profile
    that takes ``CD=T``)."""

    @property
    def recovers_status(self) -> bool: ...

    async def transaction_status(
        self, request: PaymentRequest, answer_timeout_s: float | None = None
    ) -> PaymentResult | None: ...


@dataclass(frozen=True, slots=True)
class RecoveryTimers:
    tries: int = STATUS_TRIES
    first_delay_s: float = STATUS_FIRST_DELAY_S
    spacing_s: float = STATUS_SPACING_S
    budget_s: float = STATUS_BUDGET_S


Settle = Callable[[str, str, PaymentRequest, PaymentResult], None]  # key, order, req, verdict


class StatusRecovery:
    """One background task per payment to recover; all cancelled at :meth:`close`."""

    def __init__(self, settle: Settle, timers: RecoveryTimers = RecoveryTimers()) -> None:
        self.settle = settle
        self.timers = timers
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, terminal_key: str, terminal: object, request: PaymentRequest) -> bool:
        """Recover ``request``'s outcome if the terminal can say it; whether it will try."""
        if not isinstance(terminal, StatusTerminal) or not terminal.recovers_status:
            return False
        assert request.order_id is not None
        task = asyncio.create_task(
            self._recover(terminal_key, terminal, request), name=f"status-{request.order_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _recover(
        self, terminal_key: str, terminal: StatusTerminal, request: PaymentRequest
    ) -> None:
        order_id = request.order_id
        assert order_id is not None
        loop = asyncio.get_running_loop()
        t = self.timers
        deadline = loop.time() + t.budget_s
        delay = t.first_delay_s
        for attempt in range(1, t.tries + 1):  # bounded: tries, and the budget below
            if loop.time() + delay > deadline:
                break
            await asyncio.sleep(delay)
            delay = t.spacing_s
            left = deadline - loop.time()
            if left <= 0:
                break
            log.info("tp_manager.status.asking", order_id=order_id, attempt=attempt)
            try:  # the question's own wait is part of the budget
                verdict = await terminal.transaction_status(request, left)
            except TerminalError as exc:  # busy, unreachable: the next try may do better
                log.info("tp_manager.status.try_failed", order_id=order_id, code=exc.code)
                continue
            if verdict is not None:
                log.warning(
                    "tp_manager.status.recovered",
                    order_id=order_id,
                    terminal=terminal_key,
                    status=str(verdict.status),
                    attempt=attempt,
                )
                self.settle(terminal_key, order_id, request, verdict)
                return
        log.error(
            "tp_manager.status.gave_up",
            order_id=order_id,
            terminal=terminal_key,
            tries=t.tries,
            advice="the outcome stays unknown: check the terminal's journal",
        )
