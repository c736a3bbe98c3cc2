"""What every command handler can reach: the terminals, the result store, the publisher.

Whether a payment is in flight is each driver's own ``busy`` (one owner): a
payment on an order's own terminal does not block the configured one, and
``shutdown`` / ``cancel`` ask every driver.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from common import messages
from common.commands import InvalidProperties
from common.commands import errors as codes
from common.commands import pay as pay_contract
from common.commands.addressing import TerminalRequest
from tp_manager.commands import CommandError
from tp_manager.result_store import DEFAULT_TERMINAL, ResultStore
from tp_manager.status_recovery import StatusRecovery
from tp_manager.terminal.base import Terminal
from tp_manager.terminal.factory import TargetTerminals
from tp_manager.terminal.model import LinkState, PaymentRequest, PaymentResult, TerminalTarget

log = structlog.get_logger(__name__)

T = TypeVar("T")


@dataclass
class ServerContext:
    terminal: Terminal
    publish: Callable[[str, dict[str, Any]], None]
    results: ResultStore
    serial_number: str = ""
    device: str = ""  # serial port path or host:port, for `info`
    transaction_timeout_s: float = 120.0
    # Terminals reachable by orders that name their own (Concert V3 host:port).
    terminal_factory: TargetTerminals | None = None
    shutdown_requested: asyncio.Event = field(default_factory=asyncio.Event)
    # Asks a terminal for an unknown payment's outcome (None: never; main.py sets it).
    recovery: StatusRecovery | None = None

    def terminal_for(
        self, target: TerminalTarget | None, terminal_id: str | None = None
    ) -> tuple[str, Terminal]:
        """The driver an order (or a command) runs on and its key in the result store:
        a terminal named in the config by id, an order's own target, or the configured one
        (neither, or the id ``default``)."""
        if (target is None and terminal_id is None) or terminal_id == DEFAULT_TERMINAL:
            return DEFAULT_TERMINAL, self.terminal
        if self.terminal_factory is None:
            raise CommandError(
                codes.INVALID_PROPERTIES, "this connector cannot reach other terminals"
            )
        if terminal_id is not None:
            return self.terminal_factory.by_id(terminal_id)
        assert target is not None
        return self.terminal_factory.keyed(target)

    def addressed(self, props: dict[str, Any]) -> tuple[str, Terminal]:
        """The terminal a maintenance command names (``terminal``), or the configured one."""
        try:
            request = TerminalRequest.from_wire(props)
        except ValueError as exc:
            raise CommandError(codes.INVALID_PROPERTIES, str(exc)) from None
        return self.terminal_for(None, request.terminal)

    def terminals(self) -> list[Terminal]:
        if self.terminal_factory is None:
            return [self.terminal]
        return self.terminal_factory.all()

    def busy_terminals(self) -> list[Terminal]:
        return [t for t in self.terminals() if t.busy]

    def recovered(
        self, terminal_key: str, order_id: str, request: PaymentRequest, result: PaymentResult
    ) -> None:
        """The terminal's verdict for an unknown payment, asked for (status recovery):
        kept and hinted to the agent exactly as a late answer."""
        kept = self.results.recovered(order_id, terminal_key, request, result)
        kept.add_done_callback(lambda done: self._hint(order_id, written(done) is True))

    async def resume_status_recovery(self) -> list[str]:
        """At start-up: ask the terminals again for the payments still owed an answer.

        A payment a kill cut off (its record found ``started``, now ``awaiting``), or
        whose status recovery a stop cancelled, would otherwise stay ``unknown`` for
        good though its terminal can say how it ended; the orders asked about."""
        if self.recovery is None:
            return []
        resumed: list[str] = []
        for order_id, key, props in await self.results.awaiting():
            try:
                request = pay_contract.from_properties(props)
                now_key, terminal = self.terminal_for(request.target, request.terminal)
            except (InvalidProperties, CommandError) as exc:  # no longer configured
                log.warning("tp_manager.status.not_resumed", order_id=order_id, reason=str(exc))
                continue
            if now_key == key and self.recovery.start(key, terminal, request):
                resumed.append(order_id)
        if resumed:
            log.warning("tp_manager.status.resumed", orders=resumed)
        return resumed

    def link_state(self, terminal_key: str, state: LinkState, detail: str) -> None:
        """A terminal's link changed state: logged, and published to the agent (``link.up``,
        ``link.down``) with the terminal's key, so a named terminal's link is told apart."""
        event = messages.EVENT_LINK_UP if state is LinkState.UP else messages.EVENT_LINK_DOWN
        log.info("tp_manager.link.state", terminal=terminal_key, link=str(state), detail=detail)
        self.publish(event, {"terminal": terminal_key, "link": str(state), "detail": detail})

    async def late_answer(self, terminal_key: str, result: PaymentResult) -> None:
        """A terminal's answer to a payment already given up: store it under its order.

        Awaited by the driver before it acknowledges the answer (Concert V2's ACK, after
        which the terminal forgets it): written and fsynced, then logged and hinted.  A
        store that refuses it is logged (``tp_manager.results.write_failed``); the
        answer is acknowledged all the same, its log line the last trace."""
        matched = self.results.late_answer(terminal_key, result)
        matched.add_done_callback(lambda done: self._late_answer_kept(terminal_key, result, done))
        with contextlib.suppress(Exception):  # written() logs it, from the callback
            await asyncio.shield(matched)
        await self.results.synced()

    def _late_answer_kept(
        self, terminal_key: str, result: PaymentResult, done: asyncio.Future[str | None]
    ) -> None:
        order_id = written(done)
        log.error(
            "tp_manager.transaction.late_answer",
            order_id=order_id,
            terminal=terminal_key,
            status=str(result.status),
            amount=result.amount,
            masked_pan=result.masked_pan,
            advice=(
                "kept for the agent, which reconciles the order"
                if order_id
                else "no payment awaits it: reconcile by hand (amount, time)"
            ),
        )
        if order_id is not None:
            self._hint(order_id, True)

    def _hint(self, order_id: str, kept: bool) -> None:
        if kept:
            self.publish(messages.EVENT_RESULT_PENDING, {"order_id": order_id})


def written(done: asyncio.Future[T]) -> T | None:
    """A store future's result; None (and the failure logged) if the write failed."""
    if done.cancelled():
        return None
    error = done.exception()
    if error is not None:
        log.error("tp_manager.results.write_failed", error=repr(error))
        return None
    return done.result()
