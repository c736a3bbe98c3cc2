"""Wheels built once per test session (see releases.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.update.releases import build_release, next_version


@pytest.fixture(scope="session")
def good_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    version = next_version()
    return version, build_release(tmp_path_factory.mktemp("release"), version)


@pytest.fixture(scope="session")
def broken_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    version = next_version()
    return version, build_release(tmp_path_factory.mktemp("broken"), version, broken=True)


@pytest.fixture(scope="session")
def late_crashing_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    version = next_version(step=2)
    return version, build_release(tmp_path_factory.mktemp("late"), version, late_crash=True)
