"""The interface every terminal driver offers to tp-manager.

One operation per terminal action.  Drivers own their link (open, reconnect
with backoff) and report its state through ``on_link_state``; they serialise
transactions themselves and raise :class:`TerminalBusy` rather than queueing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from tp_manager.terminal.model import (
    LinkState,
    PaymentRequest,
    PaymentResult,
    TerminalStatus,
)

LinkStateCallback = Callable[[LinkState, str], None]


class Terminal(Protocol):
    protocol: str  # "concert-v2" | "concert-v3"

    @property
    def link_state(self) -> LinkState: ...

    @property
    def busy(self) -> bool: ...

    async def start(self) -> None:
        """Open the link (and keep it open, reconnecting with backoff)."""

    async def close(self) -> None:
        """Release the port or socket; idempotent."""

    async def pay(self, request: PaymentRequest) -> PaymentResult:
        """Run one transaction to its end; raise a TerminalError subclass otherwise."""

    async def cancel(self) -> bool:
        """Abort the transaction in flight; True if one was in flight and is now stopped."""

    async def check(self) -> TerminalStatus:
        """Report link state, and probe the terminal when idle."""
