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

# What the two programs hold only where it is used, never at their start: the self-update
# at its first run (tuf and its crypto), supervisord's client for GET /stop, the
# command-line tools' console and prompts, the ISO 4217 table at the first currency
# look-up.  tests/backbone/test_lean_imports.py holds the programs to it and
# benchmarks/import_cost.py reports it.
NOT_AT_START = (
    "tuf",
    "securesystemslib",
    "cryptography",
    "urllib3",
    "supervisor",
    "xmlrpc",
    "rich",
    "pygments",
    "questionary",
    "prompt_toolkit",
    "iso4217",
)


def leave_out_console_libraries() -> None:
    """Before anything imports structlog; a library already imported stays."""
    for name in CONSOLE_ONLY:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
