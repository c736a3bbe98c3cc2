"""A Concert V2 terminal's serial line: its settings, the named profiles, the keep-alive.

Concert V2 runs on two kinds of line (docs: /work/shared/protocol-notes.md): a USB-CDC
link, 8 data bits, no parity, 1 stop bit; and a native RS-232 port, often 7 data bits,
even parity, 1 stop bit.  Both at 9600 baud.  A *serial profile* names each, so a
config says ``serial_profile: rs232-7e1`` instead of four numbers that must agree.
RTS/CTS hardware flow control is off in both: no public source says which terminals
need it, so it is a per-terminal switch (``rtscts``), not guessed into a profile.

The config loader (names, rules), tp-manager's factory (what the port is opened with)
and the docs (docs/configuration.md) share this one table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

Parity = Literal["none", "even", "odd"]


@dataclass(frozen=True, slots=True)
class SerialLine:
    """How the port is opened: what the seeds call baudRate, dataBits, parity, stopBits,
    plus RTS/CTS flow control."""

    baud_rate: int = 9600
    data_bits: int = 8
    parity: Parity = "none"
    stop_bits: int = 1
    rtscts: bool = False

    @property
    def frame(self) -> str:
        """``8N1``, ``7E1``...: the character frame, as terminal menus write it."""
        return f"{self.data_bits}{self.parity[0].upper()}{self.stop_bits}"


USB_8N1: Final = "usb-8n1"
RS232_7E1: Final = "rs232-7e1"

SERIAL_PROFILES: Final[Mapping[str, SerialLine]] = MappingProxyType(
    {
        USB_8N1: SerialLine(9600, 8, "none", 1),
        RS232_7E1: SerialLine(9600, 7, "even", 1),
    }
)
# Without a profile the line is the seeds' defaults, which are the USB profile's.
DEFAULT_LINE: Final = SERIAL_PROFILES[USB_8N1]

# The fields a profile's name promises (7E1, 8N1): an explicit key may not contradict
# them (a seed config always carries ``dataBits: 8``, which would silently undo
# ``serial_profile: rs232-7e1``); baud rate and RTS/CTS may be set over a profile.
FRAME_FIELDS: Final = ("data_bits", "parity", "stop_bits")

# Keep-alive probe (ENQ -> ACK -> EOT) after this many idle seconds: a few minutes,
# well inside the idle time after which public reports saw USB links go to sleep
# overnight (OCA pos #701), and rare enough to cost nothing (3 bytes a probe).
DEFAULT_KEEPALIVE_INTERVAL_S: Final = 180.0
MIN_KEEPALIVE_INTERVAL_S: Final = 1.0
MAX_KEEPALIVE_INTERVAL_S: Final = 3600.0


def serial_profile_named(name: str) -> SerialLine:
    """The profile called ``name`` (any case); ``ValueError`` with the rule otherwise."""
    line = SERIAL_PROFILES.get(name.strip().lower())
    if line is None:
        raise ValueError("must be one of " + ", ".join(SERIAL_PROFILES))
    return line
