"""The interface every terminal driver offers to tp-manager.

One operation per terminal action.  Drivers own their link (open, reconnect
with backoff) and report its state through ``on_link_state``; they serialise
transactions themselves and raise :class:`TerminalBusy` rather than queueing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from common.commands.cancel import CancelReply
from common.commands.telecollect import TelecollectReply
from tp_manager.terminal.model import (
    LinkState,
    PaymentRequest,
    PaymentResult,
    TerminalStatus,
)

LinkStateCallback = Callable[[LinkState, str], None]
# Writes a payment's verdict down (tp_manager/commands/pay.py): a driver whose protocol
# acknowledges the answer (Concert V2's ACK) awaits it first, for the terminal forgets
# an acknowledged answer; the others leave it to the caller, after ``pay`` returns.
KeepAnswer = Callable[[PaymentResult], Awaitable[None]]


class Terminal(Protocol):
    protocol: str  # "concert-v2" | "concert-v3"

    @property
    def link_state(self) -> LinkState: ...

    @property
    def busy(self) -> bool:
        """A transaction runs on this terminal: the one owner of "busy" in tp-manager."""

    def busy_reason(self) -> str:
        """What TERMINAL_BUSY says while ``busy``."""

    async def start(self) -> None:
        """Open the link (and keep it open, reconnecting with backoff)."""

    async def close(self) -> None:
        """Release the port or socket; idempotent."""

    async def pay(self, request: PaymentRequest, keep: KeepAnswer | None = None) -> PaymentResult:
        """Run one transaction to its end; raise a TerminalError subclass otherwise.
        ``keep``: see :data:`KeepAnswer`."""

    async def cancel(self) -> CancelReply:
        """Stop waiting for the transaction in flight, and say whether the terminal may
        still complete it (neither Concert V2 nor V3 has an abort message)."""

    async def check(self) -> TerminalStatus:
        """Report link state, and probe the terminal when idle."""

    async def reset(self) -> bool:
        """Restart the terminal, where its protocol (profile) has a message for it; raise
        NotSupported otherwise.  Whether the terminal took it."""

    async def telecollect(self) -> TelecollectReply:
        """Remote collection, where the protocol (profile) has it; NotSupported otherwise."""
