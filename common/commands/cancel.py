"""``cancel``: stop waiting for the payment in flight.

Request: optionally the terminal (``terminal``, an id of the config, or an order's own
``target``); without either, every payment in flight is cancelled and the reply names
the first one cancelled.
Reply: whether a payment was in flight, its order id, and whether the terminal
may still complete it.  Concert V2 has no abort message: the terminal finishes
the customer's transaction on its own, so the connector only stops waiting, keeps
the terminal busy until its answer comes, and reconciles that late answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from common.commands.wire import WireModel
from common.payment import TerminalTarget

NAME: Final = "cancel"


@dataclass(frozen=True, slots=True)
class CancelRequest(WireModel):
    """Neither: every payment in flight (each terminal that is busy) is cancelled."""

    target: TerminalTarget | None = None
    terminal: str | None = None  # a terminal named in the config, or "default"; wins over target


@dataclass(frozen=True, slots=True)
class CancelReply(WireModel):
    cancelled: bool  # a payment was in flight and is no longer waited for
    order_id: str | None = None
    terminal_may_still_complete: bool = False
