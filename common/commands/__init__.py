"""The control channel's commands: each one's request, reply and errors, defined once.

tp-manager executes them (``tp_manager/commands/<name>.py``), the supervisor agent
calls them (``supervisor_agent/client.py``); both import the shapes from here, so a
change to a command is a change to one module.  Every reply model has
``to_wire()`` (the JSON-ready ``result`` of the envelope in :mod:`common.messages`)
and ``from_wire()``, which raises :class:`InvalidProperties` / ``ValueError`` for
anything that is not one.
"""

from __future__ import annotations

from typing import Final

# Every command tp-manager serves, one module each here and in tp_manager/commands/.
COMMANDS: Final = (
    "pay",
    "cancel",
    "check",
    "info",
    "reset",
    "telecollect",
    "shutdown",
    "results",
    "ack",
)


class InvalidProperties(ValueError):
    """A command's properties break its contract; the reply's code is INVALID_PROPERTIES."""
