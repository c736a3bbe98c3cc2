"""The terminals one connector drives: the configured one, and those named in the config.

A shop with several lanes (or a fleet of networked terminals) names each terminal in the
config (``terminals.<id>.*``, docs/configuration.md); the seeds' single-terminal keys
still describe the *default* terminal.  An order picks its terminal by id (``terminal``
on the desktop and kiosk routes) or by address (POS API ``host_information``).  Both
processes resolve that to the same *key*, under which the agent's journal and
tp-manager's drivers keep each terminal's busy state: the terminal's id, ``default``
for the configured one, and ``host:port`` for a Concert V3 terminal only an order names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from common.concert_v2_line import DEFAULT_LINE, SerialLine
from common.concert_v3_profiles import DEFAULT_PROFILE

DEFAULT_TERMINAL: Final = "default"  # the key of the terminal the seeds' keys describe
TERMINAL_ID_RULE: Final = (
    "must be 1 to 32 of a-z, 0-9, '-' and '_', starting with a letter or digit"
)
_TERMINAL_ID: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def terminal_id(value: str) -> str:
    """A terminal id as the config and the API take it (any case; kept in lower case)."""
    text = value.strip().lower()
    if not _TERMINAL_ID.fullmatch(text):
        raise ValueError(TERMINAL_ID_RULE)
    if text == DEFAULT_TERMINAL:
        raise ValueError(f"'{DEFAULT_TERMINAL}' is the configured terminal's own name")
    return text


@dataclass(frozen=True, slots=True)
class TerminalSpec:
    """One terminal named in the config."""

    id: str
    protocol: str  # "concert-v2" | "concert-v3"
    host: str | None = None  # Concert V3
    port: int = 8888
    version: str = "0301"  # Concert V3 CZ
    profile: str = DEFAULT_PROFILE  # Concert V3 profile (common/concert_v3_profiles.py)
    device: str | None = None  # Concert V2 serial device
    line: SerialLine = DEFAULT_LINE  # Concert V2: how its port is opened
    keepalive_interval: float | None = None  # idle seconds between link probes; None: off

    @property
    def address(self) -> str:
        """``host:port`` (IPv6 in brackets) for Concert V3, the device for Concert V2."""
        if self.host is None:
            return self.device or ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def spec_for_address(specs: Iterable[TerminalSpec], address: str) -> TerminalSpec | None:
    """The named Concert V3 terminal at ``host:port``, if one is configured there."""
    return next((s for s in specs if s.host is not None and s.address == address), None)


def key_for_address(
    specs: Iterable[TerminalSpec], address: str, configured_address: str | None
) -> str:
    """The key of the Concert V3 terminal at ``host:port`` an order names: a named one's
    id, ``default`` for the configured terminal's own address (``configured_address``:
    its ``host:port``, None when it is not a Concert V3 one), else the address itself.
    Both processes key an order so, so its journal row and its driver are one terminal's."""
    spec = spec_for_address(specs, address)
    if spec is not None:
        return spec.id
    if configured_address is not None and address == configured_address:
        return DEFAULT_TERMINAL
    return address


def spec_by_id(specs: Iterable[TerminalSpec], wanted: str) -> TerminalSpec | None:
    key = wanted.strip().lower()
    return next((s for s in specs if s.id == key), None)
