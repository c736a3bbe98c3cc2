"""The Concert V3 protocol versions (the ``CZ`` tag) and the POS API names for them.

The config loader, the POS API route and tp-manager's driver all name versions;
this is the one list they share.
"""

from __future__ import annotations

from typing import Final

VERSIONS: Final = ("0300", "0301", "0302")
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


def protocol_name(version: str) -> str:
    """``"0302"`` -> ``"ConcertV3.2"`` (the POS API's spelling)."""
    return {v: name for name, v in PROTOCOL_NAMES.items()}[version]
