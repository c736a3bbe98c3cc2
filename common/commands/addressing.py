"""Which terminal a maintenance command (``check``, ``reset``, ``telecollect``) is for.

One connector may drive several terminals (common/terminals.py); a command without a
``terminal`` goes to the configured one, as it always did.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.commands.wire import WireModel


@dataclass(frozen=True, slots=True)
class TerminalRequest(WireModel):
    terminal: str | None = None  # an id of the config's terminals; None or "default": the
    # configured one
