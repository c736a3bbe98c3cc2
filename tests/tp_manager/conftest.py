"""tp-manager as its process runs it, in the test's loop: result store, Concert V2 driver
on the simulator's pty, control server on a real ZeroMQ socket."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import zmq.asyncio

from supervisor_agent.client import TerminalClient
from tests.simulator.conftest import start_sim  # noqa: F401  (the fixture, shared)
from tp_manager.concert_v2.terminal import ConcertV2Terminal
from tp_manager.context import ServerContext
from tp_manager.result_store import DEFAULT_TERMINAL, ResultStore
from tp_manager.server import ControlServer

FAST_V2: dict[str, Any] = {
    "control_byte_timeout": 1.0,
    "end_of_frame_timeout": 1.0,
    "probe_timeout": 1.0,
    "reconnect_initial_delay": 0.05,
    "reconnect_max_delay": 0.5,
}


def endpoints(tmp_path: Path) -> tuple[str, str]:
    return f"ipc://{tmp_path}/control.sock", f"ipc://{tmp_path}/events.sock"


@contextlib.asynccontextmanager
async def tp_manager(
    data_dir: Path, pty_path: str, zctx: zmq.asyncio.Context, transaction_timeout: float
) -> AsyncIterator[ServerContext]:
    """One tp-manager life on ``data_dir``; leaving it is a stop (or, mid-payment, a kill)."""
    terminal = ConcertV2Terminal(
        pty_path,
        transaction_timeout=transaction_timeout,
        on_late_answer=lambda result: ctx.late_answer(DEFAULT_TERMINAL, result),
        **FAST_V2,
    )
    ctx = ServerContext(
        terminal=terminal,
        publish=lambda name, data: None,
        results=ResultStore.in_data_dir(data_dir),
    )
    control, events = endpoints(data_dir)
    server = ControlServer(ctx, control, events, zctx)
    try:
        await server.start()
        await terminal.start()
        yield ctx
    finally:
        await server.close()
        await terminal.close()
        ctx.results.close()


@pytest.fixture
async def zctx() -> AsyncIterator[zmq.asyncio.Context]:
    context = zmq.asyncio.Context()
    yield context
    context.term()


@contextlib.asynccontextmanager
async def agent(tmp_path: Path, zctx: zmq.asyncio.Context) -> AsyncIterator[TerminalClient]:
    """The agent's side of the control channel, on tp-manager's socket under ``tmp_path``."""
    client = TerminalClient(endpoints(tmp_path)[0], context=zctx)
    await client.start()
    try:
        yield client
    finally:
        await client.close()
