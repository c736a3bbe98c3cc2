"""``shutdown``: tp-manager stops once the payment in flight, if any, has its answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from common.commands.wire import WireModel

NAME: Final = "shutdown"


@dataclass(frozen=True, slots=True)
class ShutdownReply(WireModel):
    stopping: bool
    payment_in_flight: bool
