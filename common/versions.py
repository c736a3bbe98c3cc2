"""The installed versions of the connector and the links that say which one runs.

``<data_dir>/versions/`` holds:

* ``base`` -> the environment ``ecr-connector run`` itself runs from (the ``.venv`` of
  ``deploy/quickstart.sh`` or of ``pip install -e``); it is never pruned and every
  installed version reuses its dependencies (``install.py``);
* ``<version>/`` -> a virtual environment the self-update installed one release into;
* ``current`` -> ``base`` or a ``<version>``: supervisord starts tp-manager and the agent
  as ``versions/current/bin/python``, so a restart picks up whatever ``current`` names;
* ``previous`` -> what ``current`` named before the last switch, kept for rollback.

Links are replaced atomically (a new link renamed over the old), so a crash leaves
either the old or the new target, never none.  This module is in ``common/`` because
``ecr-connector run`` prepares the links before supervisord starts anything.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Literal

from packaging.version import InvalidVersion, Version

from common import __version__, paths

LinkName = Literal["base", "current", "previous"]
BASE: LinkName = "base"
CURRENT: LinkName = "current"
PREVIOUS: LinkName = "previous"
LINKS: tuple[LinkName, ...] = (BASE, CURRENT, PREVIOUS)
INSTALLED_MARKER = ".ecr-connector-installed"  # written once pip check passed


def link(data_dir: Path, name: LinkName) -> Path:
    return paths.versions_dir(data_dir) / name


def python_of(prefix: Path) -> Path:
    return prefix / "bin" / "python"


def current_python(data_dir: Path) -> Path:
    """The interpreter supervisord's programs run: through the ``current`` link."""
    return python_of(link(data_dir, CURRENT))


def pending_switch(data_dir: Path) -> Path:
    """Written by the agent before a switch, removed by the switcher once it is settled."""
    return paths.update_dir(data_dir) / "switch.json"


def switched_from(data_dir: Path) -> str:
    """The version the pending switch moves away from, known to work (``base`` if the
    marker cannot be read): what undoing the switch points ``current`` back to."""
    try:
        return str(json.loads(pending_switch(data_dir).read_text())["from"])
    except (OSError, ValueError, KeyError, TypeError):
        return BASE


def point(data_dir: Path, name: LinkName, target: str) -> None:
    """Make link ``name`` name ``target`` (a version, ``base``, or an absolute path), atomically."""
    where = link(data_dir, name)
    where.parent.mkdir(parents=True, exist_ok=True)
    tmp = where.with_name(f".{name}.new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, where)


def target_of(data_dir: Path, name: LinkName) -> str | None:
    """What link ``name`` names (``base``, a version), or None when there is no such link."""
    where = link(data_dir, name)
    return os.readlink(where) if where.is_symlink() else None


def is_installed(data_dir: Path, version: str) -> bool:
    """A version's environment is complete (its install ran to the end and pip check passed)."""
    return (paths.versions_dir(data_dir) / version / INSTALLED_MARKER).exists()


def _usable(data_dir: Path, target: str | None) -> bool:
    if target is None:
        return False
    if target == BASE:
        return True
    return (
        is_installed(data_dir, target) and python_of(paths.versions_dir(data_dir) / target).exists()
    )


def _newer_than_base(target: str, base_version: str) -> bool:
    try:
        return Version(target) > Version(base_version)
    except InvalidVersion:
        return False


def in_virtualenv() -> bool:
    return sys.prefix != sys.base_prefix


def prepare(
    data_dir: Path, base_prefix: Path | None = None, base_version: str = __version__
) -> str:
    """Set the links up for ``ecr-connector run``; return the programs' interpreter.

    Outside a virtual environment there is nothing to switch between: the programs run
    on this interpreter and the self-update stays off (the agent says so).  A switch
    the connector was stopped in the middle of is undone (``current`` back to what it
    was): an unchecked version must not become the running one by a reboot.  A base
    environment at least as new as the installed ``current`` wins, so upgrading the
    install by hand (``git pull``, ``pip install``) is never shadowed by an older update.
    """
    if base_prefix is None:
        if not in_virtualenv():
            return sys.executable
        base_prefix = Path(sys.prefix)
    point(data_dir, BASE, str(base_prefix.absolute()))
    marker = pending_switch(data_dir)
    if marker.exists():
        point(data_dir, CURRENT, switched_from(data_dir))
        marker.unlink()
    target = target_of(data_dir, CURRENT)
    if not _usable(data_dir, target) or not (
        target == BASE or _newer_than_base(str(target), base_version)
    ):
        point(data_dir, CURRENT, BASE)
    return str(current_python(data_dir))


def base_site_packages(data_dir: Path) -> list[Path]:
    """The base environment's site-packages, named through the ``base`` link.

    Through the link, not its target: if the base environment is reinstalled somewhere
    else, ``run`` repoints ``base`` and every installed version follows.
    """
    base = str(link(data_dir, BASE))
    names = {
        sysconfig.get_path(key, vars={"base": base, "platbase": base})
        for key in ("purelib", "platlib")
    }
    return [Path(name) for name in sorted(names)]


def prune(data_dir: Path) -> list[str]:
    """Remove every version that no link names (and any install left half done); keep the rest."""
    versions = paths.versions_dir(data_dir)
    if not versions.is_dir():
        return []
    kept = {
        os.path.realpath(link(data_dir, name)) for name in LINKS if link(data_dir, name).exists()
    }
    removed = []
    for entry in versions.iterdir():
        if entry.is_symlink() or not entry.is_dir() or entry.name.startswith("."):
            continue
        if os.path.realpath(entry) in kept:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry.name)
    return sorted(removed)
