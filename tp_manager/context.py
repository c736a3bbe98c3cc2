"""What every command handler can reach: the terminal, the event publisher, settings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tp_manager.terminal.base import Terminal
from tp_manager.terminal.model import TerminalTarget


@dataclass
class ServerContext:
    terminal: Terminal
    publish: Callable[[str, dict[str, Any]], None]
    serial_number: str = ""
    device: str = ""  # serial port path or host:port, for `info`
    transaction_timeout_s: float = 120.0
    # Terminals reachable by orders that name their own (Concert V3 host:port).
    terminal_factory: Callable[[TerminalTarget], Terminal] | None = None
    shutdown_requested: asyncio.Event = field(default_factory=asyncio.Event)
    # Set while a pay runs, so SIGTERM can wait for it.
    payment_in_flight: asyncio.Event = field(default_factory=asyncio.Event)
    # The terminal of the payment in flight (an order may name its own): what cancel stops.
    active_terminal: Terminal | None = None
    # The last payment given up with its outcome unknown: a late answer belongs to it.
    unanswered_order_id: str | None = None
