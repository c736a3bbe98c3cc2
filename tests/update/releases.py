"""Wheels of this project's own source at a higher version, built for the update tests.

The source tree is copied, its version (``common/__init__.py``, the one place the
version lives) raised, and the copy built with ``pip wheel --no-deps
--no-build-isolation``: no network, about two seconds.  A *broken* release is the same
source with an agent that exits at once, as a bad release would; a *late-crashing* one
has an agent that starts, serves, and dies a few seconds later (a crash in its first
minutes of service, after supervisord counts it started and its API has answered).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from packaging.version import Version

from common import __version__
from tests.stack import REPO

COPIED = ("common", "tp_manager", "supervisor_agent", "deploy", "pyproject.toml", "README.md")
BROKEN_AGENT = 'raise SystemExit("broken release: the supervisor agent exits at start")\n'
# Dies LATE_CRASH_AFTER_S after its start (by then past supervisord's startsecs of 4 s),
# and never before its API has answered once: a release that looks healthy, then is not.
LATE_CRASH_AFTER_S = 10.0
LATE_CRASHING_AGENT = f"""import os, socket, sys, threading, time

from common.config import load_config_arg
from supervisor_agent.main import main

def _die_after_serving() -> None:
    started = time.monotonic()
    port = load_config_arg(sys.argv[sys.argv.index("--config") + 1]).local_port
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    time.sleep(max(0.0, {LATE_CRASH_AFTER_S} - (time.monotonic() - started)))
    os._exit(3)

threading.Thread(target=_die_after_serving, daemon=True).start()
sys.exit(main())
"""
BUILD_TIMEOUT_S = 180


def next_version(version: str = __version__, step: int = 1) -> str:
    major, minor, micro = [*Version(version).release, 0, 0][:3]
    return f"{major}.{minor}.{micro + step}"


def build_release(
    workdir: Path, version: str, *, broken: bool = False, late_crash: bool = False
) -> Path:
    src = workdir / f"src-{version}{'-broken' if broken else ''}{'-late' if late_crash else ''}"
    src.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in COPIED:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, src / name)
    init = src / "common" / "__init__.py"
    text, count = re.subn(r'__version__ = "[^"]*"', f'__version__ = "{version}"', init.read_text())
    assert count == 1, "common/__init__.py no longer holds the version"
    init.write_text(text)
    if broken:
        (src / "supervisor_agent" / "__main__.py").write_text(BROKEN_AGENT)
    if late_crash:
        (src / "supervisor_agent" / "__main__.py").write_text(LATE_CRASHING_AGENT)
    out = workdir / f"wheels-{src.name}"
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet"]
    subprocess.run(
        [*pip, "-w", str(out), str(src)], check=True, timeout=BUILD_TIMEOUT_S, capture_output=True
    )
    (wheel,) = out.glob("ecr_connector-*.whl")
    return wheel
