"""The seeds' own bodies through the real chain: HTTP server -> TerminalClient ->
tp-manager's ControlServer (ZeroMQ) -> ConcertV2Terminal driver -> pseudo-terminal ->
the Concert V2 simulator, run as its own process (``python -m common simulate``).

tp-manager's server and driver run in the test's event loop here, so every answer
field can be checked against the simulator's; tests/e2e runs the same bodies through
the supervised processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import zmq.asyncio

from supervisor_agent.api import create_app, start_server
from supervisor_agent.api.app import bound_port
from supervisor_agent.api.examples import (
    desktop_example_request,
    desktop_seed_request,
    kiosk_seed_request,
)
from supervisor_agent.api.models_kiosk import RECEIPT_FIELDS
from supervisor_agent.client import TerminalClient
from tests.api.conftest import Api, own_journal, settings
from tests.api.test_api_payment import DESKTOP_FIELDS, KIOSK_FIELDS
from tp_manager.concert_v2.terminal import ConcertV2Terminal
from tp_manager.context import ServerContext
from tp_manager.result_store import ResultStore
from tp_manager.server import ControlServer

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 10.0
LINK_UP_TIMEOUT_S = 5.0
LINK_POLL_S = 0.05
FAST_V2 = {
    "control_byte_timeout": 1.0,
    "end_of_frame_timeout": 1.0,
    "transaction_timeout": 10.0,
    "probe_timeout": 1.0,
    "reconnect_initial_delay": 0.05,
    "reconnect_max_delay": 0.5,
}


@contextlib.asynccontextmanager
async def simulator_process() -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "common",
        "simulate",
        "--protocol",
        "concert-v2",
        "--pty",
        "--log-level",
        "WARNING",
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(READY_TIMEOUT_S):
            line = (await proc.stdout.readline()).decode().strip()
        assert line.startswith("READY pty="), line
        yield line.removeprefix("READY pty=")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()


@contextlib.asynccontextmanager
async def simulated_stack(tmp_path: Path) -> AsyncIterator[tuple[Api, Api]]:
    """(desktop api, kiosk api) on one real tp-manager control server and simulator."""
    async with simulator_process() as pty_path:
        terminal = ConcertV2Terminal(pty_path, **FAST_V2)  # type: ignore[arg-type]
        ctx = ServerContext(
            terminal=terminal,
            publish=lambda name, data: None,
            results=ResultStore.in_data_dir(tmp_path),
        )
        zctx = zmq.asyncio.Context()
        control = f"ipc://{tmp_path}/control.sock"
        server = ControlServer(ctx, control, f"ipc://{tmp_path}/events.sock", zctx)
        client = TerminalClient(control, context=zctx)
        runners = []
        try:
            await server.start()
            await terminal.start()
            await client.start()
            for _ in range(int(LINK_UP_TIMEOUT_S / LINK_POLL_S)):
                if str(terminal.link_state) == "up":
                    break
                await asyncio.sleep(LINK_POLL_S)
            assert str(terminal.link_state) == "up", "the simulator's pty never came up"

            async def never() -> bool:
                return False

            apis = []
            async with (
                contextlib.AsyncExitStack() as journals,
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            ):
                for flavour in ("desktop", "kiosk"):
                    journal, notifier = await journals.enter_async_context(own_journal())
                    app = create_app(
                        settings(api_flavour=flavour, payment_timeout_s=20.0),
                        client,
                        never,
                        journal=journal,
                        notifier=notifier,
                    )
                    runner = await start_server(app, "127.0.0.1", 0)
                    runners.append(runner)
                    apis.append(
                        Api(f"http://127.0.0.1:{bound_port(runner)}", session, None)  # type: ignore[arg-type]
                    )
                yield apis[0], apis[1]
        finally:
            for runner in runners:
                await runner.cleanup()
            await client.close()
            await server.close()
            await terminal.close()
            ctx.results.close()
            zctx.term()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[Api, Api]]:
    async with simulated_stack(tmp_path) as apis:
        yield apis


async def test_seed_bodies_through_the_real_chain(stack: tuple[Api, Api]) -> None:
    desktop, kiosk = stack

    # the desktop seed verbatim: its "currency": "string" is refused, naming the field
    status, body, _ = await desktop.post("/", desktop_seed_request())
    assert status == 400
    assert body["error"]["details"]["path"] == "currency"

    # the same body with only the currency fixed: paid on the simulator
    request = desktop_example_request()
    status, body, _ = await desktop.post("/", request)
    assert status == 200, body
    assert set(body) == DESKTOP_FIELDS
    assert body["paymentStatus"] == "SUCCESS", body
    assert body["errorCode"] is None and body["errorDescription"] is None
    assert body["notificationHipaySent"] is False and body["numberOfNotificationSent"] == 0
    assert body["amount"] == "10,23"
    assert body["currency"] == "EUR"
    assert body["orderId"] == "Order_12345"
    assert body["transationType"] == "Debit"
    assert body["forceAuthorization"] is False
    assert body["cart"] == {} and body["warnings"]
    assert body["customer"] == request["customer"]
    assert body["customData"] == request["custom_data"]

    # the kiosk seed verbatim
    request = kiosk_seed_request()
    status, body, _ = await kiosk.post("/", request)
    assert status == 200, body
    item = body[0]
    assert set(item) == KIOSK_FIELDS
    assert item["status"] == "Success", item
    assert item["error"] is None
    assert item["amount"] == 100
    assert item["currency"] == "EUR"
    assert item["orderId"] == "Order_12345"
    assert item["basket"] == request["basket"] and item["warnings"]  # echoed, not kept
    assert item["customer"] == request["customer"]
    assert item["customData"] == request["customData"]
    assert item["notificationHipaySent"] is False
    assert list(item["receipt"]) == list(RECEIPT_FIELDS)
    assert item["receipt"]["amount"] == "00010000"  # the terminal's echo of 100.00 EUR
    assert item["receipt"]["currencyAlphaCode"] == "EUR"
    assert "MONTANT:100,00 EUR" in item["ticket"]

    # maintenance through the same chain
    status, body, _ = await kiosk.get("/check")
    assert status == 200 and body[0]["link"] == "up" and body[0]["protocol"] == "concert-v2"
    status, body, _ = await desktop.get("/reset")
    assert status == 501 and body["error"]["code"] == "NOT_SUPPORTED"


async def test_refusal_from_the_simulator(stack: tuple[Api, Api]) -> None:
    desktop, _ = stack
    # magic amount 1000.01 EUR: the simulator refuses (tp_manager/simulator/scenarios.py)
    status, body, _ = await desktop.post("/", {"amount": "1000,01"})
    assert status == 200
    assert body["paymentStatus"] == "FAILURE"
    assert body["errorCode"] == "REFUSED"
    assert body["forceAuthorization"] is True  # above the threshold of 100
