"""``telecollect``: send the terminal's day of transactions to the bank (remote collection).

Concert V2 and the mandatory part of Concert V3 have no message for it: the reply
is then the NOT_SUPPORTED error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from common.commands.wire import WireModel

NAME: Final = "telecollect"


@dataclass(frozen=True, slots=True)
class CollectedApp(WireModel):
    name: str
    status: str


@dataclass(frozen=True, slots=True)
class TelecollectReply(WireModel):
    done: bool
    detail: str = ""
    apps: list[CollectedApp] = field(default_factory=list)
