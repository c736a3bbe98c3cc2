"""``reset``: restart the terminal's application, where the protocol has a message for it.

Concert V2 and the mandatory part of Concert V3 have none: the reply is then the
NOT_SUPPORTED error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from common.commands.wire import WireModel

NAME: Final = "reset"


@dataclass(frozen=True, slots=True)
class ResetReply(WireModel):
    done: bool
    detail: str = ""
