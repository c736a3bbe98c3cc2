"""Install a verified wheel into its own environment, ``<data_dir>/versions/<version>/``.

The new environment is a virtual environment (no pip of its own: the base's is used)
whose site-packages has one ``.pth`` line naming the base environment's site-packages
through the ``versions/base`` link.  pip then finds the dependencies the base already
has and installs only what the release needs on top (a newer dependency goes into the
new environment, ahead of the base's on ``sys.path``), so an update whose requirements
did not move installs in seconds and without the network.  ``pip check`` must pass and
the new interpreter must import the release at the version it claims; only then is the
environment marked complete, and only a complete one can be switched to.

The base environment is never pruned (``common.versions``), so no installed version
loses the packages it borrows.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import structlog

from common import paths, versions

log = structlog.get_logger(__name__)

PTH_NAME = "_ecr_connector_base.pth"
STEP_TIMEOUT_S = 600.0  # a pip install that resolves a new dependency over a slow link
OUTPUT_TAIL = 1500


class InstallFailed(Exception):
    pass


def _run(step: str, args: list[str]) -> str:
    """One step, from ``/``: no folder of the caller's can shadow the release's packages."""
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, check=False, cwd="/"
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallFailed(f"{step}: {exc}") from None
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-OUTPUT_TAIL:]
        raise InstallFailed(f"{step} failed (exit {done.returncode}): {output}")
    return done.stdout


def _site_packages(prefix: Path) -> Path:
    out = _run(
        "locate site-packages",
        [
            str(versions.python_of(prefix)),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
    )
    return Path(out.strip())


def install(data_dir: Path, version: str, wheel: Path) -> Path:
    """Return the complete environment of ``version`` (reused if already complete)."""
    prefix = paths.versions_dir(data_dir) / version
    if versions.is_installed(data_dir, version):
        return prefix
    shutil.rmtree(prefix, ignore_errors=True)  # a half install from an earlier try
    python = str(versions.python_of(prefix))
    _run("create the environment", [sys.executable, "-m", "venv", "--without-pip", str(prefix)])
    site = _site_packages(prefix)
    base_sites = versions.base_site_packages(data_dir)
    (site / PTH_NAME).write_text("".join(f"{path}\n" for path in base_sites))
    pip = [python, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run("pip install", [*pip, "install", "--quiet", str(wheel)])
    _run("pip check", [*pip, "check"])
    claimed = _run(
        "import the release", [python, "-c", "import common; print(common.__version__)"]
    ).strip()
    if claimed != version:
        raise InstallFailed(f"the installed release says it is {claimed!r}, not {version!r}")
    (prefix / versions.INSTALLED_MARKER).write_text(f"{version}\n")
    log.info("update.installed", version=version, path=str(prefix))
    return prefix
