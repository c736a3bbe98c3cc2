"""What tp-manager and the agent import at start: nothing a payment never needs.

Checked on the real entry points, run as supervisord runs them (``python -m tp_manager``,
``python -m supervisor_agent``, their ``__main__`` modules; ``--help`` ends them once
every module-level import has run), in a fresh interpreter that then lists the modules
it holds.  A new module-level import of the self-update stack, supervisor's XML-RPC
client or a console library on the payment path fails here, not in a memory benchmark
months later.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from common.lean import NOT_AT_START

ROOT = Path(__file__).resolve().parents[2]


PROBE = """
import contextlib, io, json, runpy, sys
sys.argv = [sys.argv[0], "--help"]
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    runpy.run_module(sys.argv_package, run_name="__main__", alter_sys=True)
held = {name.split(".")[0] for name, module in sys.modules.items() if module is not None}
print(json.dumps(sorted(held)))
"""


def imported_at_start(package: str) -> set[str]:
    """Top-level names of the modules ``python -m package --help`` holds at its end."""
    probe = PROBE.replace("sys.argv_package", repr(package))
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("package", ["tp_manager", "supervisor_agent"])
def test_a_program_starts_without_what_a_payment_never_needs(package: str) -> None:
    loaded = imported_at_start(package)
    assert {"structlog", package, "aiohttp" if package == "supervisor_agent" else "zmq"} <= loaded
    assert sorted(loaded & set(NOT_AT_START)) == []
