"""``check``: the link's state and, when idle, whether the terminal answers a probe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from common.commands.wire import WireModel

NAME: Final = "check"


@dataclass(frozen=True, slots=True)
class CheckReply(WireModel):
    protocol: str
    link: str  # LinkState value: disconnected, connecting, up, down
    busy: bool
    responding: bool | None = None  # None: not probed (busy or link not up)
    detail: str = ""
