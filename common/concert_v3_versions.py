"""The Concert V3 protocol versions (the ``CZ`` tag) and the POS API names for them.

The config loader, the POS API route and tp-manager's driver all name versions;
this is the one list they share.  ``0310`` and ``0320`` are seen on the wire (the
protocol notes) but have no POS API name: a terminal that speaks one is configured by its
CZ code, and notifications then carry no ``protocol``.
"""

from __future__ import annotations

from typing import Final

VERSIONS: Final = ("0300", "0301", "0302", "0310", "0320")
DEFAULT_VERSION: Final = "0301"
# POS API ``protocol`` names and the CZ value each one means.
PROTOCOL_NAMES: Final = {
    "ConcertV3.0": "0300",
    "ConcertV3.1": "0301",
    "ConcertV3.2": "0302",
}


def protocol_version(name: str) -> str:
    """``"ConcertV3.1"`` or ``"0301"`` -> ``"0301"``; ``ValueError`` for anything else."""
    version = PROTOCOL_NAMES.get(name, name)
    if version not in VERSIONS:
        known = ", ".join([*PROTOCOL_NAMES, *VERSIONS])
        raise ValueError(f"unknown Concert V3 protocol version {name!r} (known: {known})")
    return version


def protocol_name(version: str) -> str | None:
    """``"0302"`` -> ``"ConcertV3.2"`` (the POS API's spelling); None for a version the
    POS API has no name for (``0310``, ``0320``)."""
    return {v: name for name, v in PROTOCOL_NAMES.items()}.get(version)
