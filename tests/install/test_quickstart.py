"""``deploy/quickstart.sh`` on a restart without network: no install, the connector runs.

pip is cut off from every index (no config file, no index, an unreachable index
URL), as on an offline kiosk.  ``--print-pidfile`` makes ``run`` answer and exit
at once, so the script's whole path runs without starting the connector.  The
install stamp in .venv is put back as it was.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from common import paths
from tests.stack import REPO

STAMP = REPO / ".venv" / ".ecr-connector-installed"
SCRIPT_TIMEOUT_S = 120.0
OFFLINE = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_NO_INDEX": "1",
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "PIP_FIND_LINKS": "",
}

pytestmark = pytest.mark.skipif(
    not (REPO / ".venv" / "bin" / "ecr-connector").exists(),
    reason="quickstart runs the checkout's .venv, which this suite does not use",
)


@pytest.fixture
def stamp() -> Iterator[Path]:
    before = STAMP.read_bytes() if STAMP.exists() else None
    try:
        yield STAMP
    finally:
        if before is None:
            STAMP.unlink(missing_ok=True)
        else:
            STAMP.write_bytes(before)


def quickstart(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **OFFLINE, "ECR_CONNECTOR_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run(
        [str(REPO / "deploy" / "quickstart.sh"), "--print-pidfile"],
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        cwd=tmp_path,
    )


def test_an_unchanged_checkout_is_not_reinstalled_and_runs_offline(
    tmp_path: Path, stamp: Path
) -> None:
    stamp.write_text(hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest() + "\n")
    result = quickstart(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "installing" not in result.stderr
    assert result.stdout.strip() == str(paths.supervisord_pidfile(tmp_path / "data"))


def test_a_changed_checkout_offline_runs_the_installed_connector_and_says_so(
    tmp_path: Path, stamp: Path
) -> None:
    stamp.write_text("an older pyproject.toml\n")
    result = quickstart(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "quickstart: installing the connector into .venv" in result.stderr
    assert "the install failed (no network?); running the connector already installed" in (
        result.stderr
    )
    assert result.stdout.strip() == str(paths.supervisord_pidfile(tmp_path / "data"))
    assert stamp.read_text() == "an older pyproject.toml\n"  # tried again next time


def test_the_code_is_compiled_before_the_connector_runs(tmp_path: Path, stamp: Path) -> None:
    """Every start of the programs then reads bytecode, even where they cannot write it."""
    stamp.write_text(hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest() + "\n")
    source = REPO / "supervisor_agent" / "main.py"
    cached = Path(importlib.util.cache_from_source(str(source)))
    cached.unlink(missing_ok=True)
    result = quickstart(tmp_path)
    assert result.returncode == 0, result.stderr
    assert cached.exists()
    assert "could not write the bytecode cache" not in result.stderr
