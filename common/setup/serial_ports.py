"""The serial ports pyserial finds, the likely payment terminal first.

A terminal on USB shows up as ``/dev/ttyACM*`` or ``/dev/ttyUSB*``; its USB
vendor id says whose it is.  The payment-terminal makers' ids below come from
the USB ID registry (usb.ids) and terminal vendors' driver notes; an RS-232
terminal on a USB-serial cable shows the cable maker's id instead, so those
are marked as "a serial adapter" (possibly the terminal's cable).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# USB vendor id -> payment terminal maker (docs/installation.md lists them)
TERMINAL_VENDORS: dict[int, str] = {
    0x0B00: "Ingenico",
    0x079B: "Ingenico (Sagem Monetel)",
    0x11CA: "Verifone",
    0x2FB8: "PAX",
}
# USB vendor id -> USB-serial adapter chip maker
ADAPTER_VENDORS: dict[int, str] = {
    0x0403: "FTDI",
    0x067B: "Prolific",
    0x10C4: "Silicon Labs CP210x",
    0x1A86: "QinHeng CH340",
}


class Likelihood(StrEnum):
    TERMINAL = "payment terminal"
    ADAPTER = "serial adapter"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class SerialPort:
    device: str
    description: str
    vid: int | None
    likelihood: Likelihood

    def label(self) -> str:
        vendor = f"USB {self.vid:04x}" if self.vid is not None else "not USB"
        vid = self.vid or 0
        mark = {
            Likelihood.TERMINAL: f"  <- likely the terminal ({TERMINAL_VENDORS.get(vid)})",
            Likelihood.ADAPTER: f"  <- a USB-serial adapter ({ADAPTER_VENDORS.get(vid)})",
            Likelihood.OTHER: "",
        }[self.likelihood]
        return f"{self.device}  {self.description} ({vendor}){mark}"


def likelihood(vid: int | None) -> Likelihood:
    if vid in TERMINAL_VENDORS:
        return Likelihood.TERMINAL
    if vid in ADAPTER_VENDORS:
        return Likelihood.ADAPTER
    return Likelihood.OTHER


def detected_ports() -> list[SerialPort]:
    """What pyserial sees now, terminals first, then adapters, then the rest (by device)."""
    from serial.tools import list_ports

    found = [
        SerialPort(p.device, p.description or "", p.vid, likelihood(p.vid))
        for p in list_ports.comports()
    ]
    order = list(Likelihood)
    return sorted(found, key=lambda p: (order.index(p.likelihood), p.device))


def suggested(ports: list[SerialPort]) -> str | None:
    """The one port to offer as the default: the only likely terminal (or adapter)."""
    for wanted in (Likelihood.TERMINAL, Likelihood.ADAPTER):
        matching = [p for p in ports if p.likelihood is wanted]
        if len(matching) == 1:
            return matching[0].device
    return None
