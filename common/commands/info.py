"""``info``: which terminal tp-manager drives (serial number, protocol, device)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from common.commands.wire import WireModel

NAME: Final = "info"


@dataclass(frozen=True, slots=True)
class InfoReply(WireModel):
    serial_number: str
    protocol: str
    link: str
    device: str  # serial port path, or host:port
