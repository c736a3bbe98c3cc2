"""The terminal's link and status, as every driver reports them.

The payment's own shapes (request, result) are shared with the supervisor agent
and live in :mod:`common.payment`; they are re-exported here for the drivers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from common.payment import (
    FailureReason,
    PaymentRequest,
    PaymentResult,
    PaymentStatus,
    TerminalTarget,
    Timings,
    TransactionType,
)

__all__ = [
    "FailureReason",
    "LinkState",
    "PaymentRequest",
    "PaymentResult",
    "PaymentStatus",
    "Probed",
    "TerminalStatus",
    "TerminalTarget",
    "Timings",
    "TransactionType",
]


class LinkState(enum.StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"  # lost, reconnecting with backoff


@dataclass(frozen=True, slots=True)
class TerminalStatus:
    """What ``check`` reports: link and whether a transaction is in flight."""

    protocol: str
    link: LinkState
    busy: bool
    responding: bool | None = None  # did the terminal answer a probe just now
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Probed:
    """A keep-alive probe's verdict (tp_manager/keepalive.py): a Concert V2 ENQ/ACK, a
    Concert V3 TCP connect.  ``cut_short``: it stopped before its tries were used (a
    payment took the line, the port went away), so no answer does not prove a silent
    terminal: the payment's own exchange, or the next probe, tells."""

    responding: bool
    tries: int = 1  # ENQs sent (Concert V2), connects tried (Concert V3)
    cut_short: bool = False
