"""Fixtures for the whole suite.

Every test starts with the logging set-up it found: a CLI run in-process (``outbox``,
``hipay-stub``) or a test of the log pipeline calls ``configure_logging``, which changes
process-wide state (structlog's configuration, the root logger's handlers and levels, the
interpreter's and threading's exception hooks)."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from common.logging import QUIET_LIBRARIES
from tests.api.conftest import RecordingTpManager
from tests.stack import HipayStub, hipay_stub


@pytest.fixture
async def tpm() -> AsyncIterator[RecordingTpManager]:
    """A real ZeroMQ ROUTER in tp-manager's place that records every command it gets."""
    manager = RecordingTpManager()
    await manager.start()
    try:
        yield manager
    finally:
        await manager.close()


@pytest.fixture
def hipay(tmp_path: Path) -> Iterator[HipayStub]:
    """The real HiPay stand-in (``ecr-connector hipay-stub``) on a loopback port."""
    with hipay_stub(tmp_path) as running:
        yield running


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    was_configured = structlog.is_configured()
    hooks = sys.excepthook, threading.excepthook
    yield
    sys.excepthook, threading.excepthook = hooks
    if not was_configured and structlog.is_configured():
        structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, saved in quiet.items():
        logging.getLogger(name).setLevel(saved)
