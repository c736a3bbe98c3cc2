"""What the two long-running programs keep out of their memory.

structlog imports ``rich`` whenever it can (``structlog.dev``, ``structlog.tracebacks``)
to pretty-print tracebacks on a console.  tp-manager and the agent write JSON lines and
never use it, yet rich, pygments and attrs would hold about 4 MB in each of them all
day.  A ``None`` in ``sys.modules`` makes an import fail (the import system's documented
opt-out), so structlog takes its plain path.  Called first thing by ``python -m
tp_manager`` and ``python -m supervisor_agent``; the command-line tools (``ecr-connector
status``, ``pay``) use rich and are not affected.
"""

from __future__ import annotations

import sys

CONSOLE_ONLY = ("rich",)


def leave_out_console_libraries() -> None:
    """Before anything imports structlog; a library already imported stays."""
    for name in CONSOLE_ONLY:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
