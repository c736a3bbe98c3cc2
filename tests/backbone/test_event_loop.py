"""The processes' event loop: uvloop where it is installed, asyncio's own elsewhere
(common/event_loop.py), each run in a fresh interpreter as the programs start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.stack import REPO

PROBE = """
import asyncio, sys
{block}
from common import event_loop

async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__

print(event_loop.run(loop_module()))
"""
PROBE_TIMEOUT_S = 60


def loop_module_of(block: str = "") -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(block=block)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
        check=True,
    )
    return done.stdout.strip()


def test_the_processes_run_on_uvloop_where_it_is_installed() -> None:
    pytest.importorskip("uvloop", reason="pyproject.toml leaves it off this machine")
    assert loop_module_of().startswith("uvloop")


def test_without_uvloop_they_run_on_asyncios_own_loop() -> None:
    # a machine pyproject.toml's marker leaves uvloop off (no wheel for it)
    assert loop_module_of("sys.modules['uvloop'] = None").startswith("asyncio")
