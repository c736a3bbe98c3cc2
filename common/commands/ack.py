"""``ack``: the agent has journaled these orders' verdicts; tp-manager may forget them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from common.commands.wire import WireModel

NAME: Final = "ack"


@dataclass(frozen=True, slots=True)
class AckRequest(WireModel):
    order_ids: list[str]


@dataclass(frozen=True, slots=True)
class AckReply(WireModel):
    forgotten: int
