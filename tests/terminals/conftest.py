"""One connector driving many terminals, in the test's loop, with real parts: N Concert V3
simulators on loopback TCP (each with its own ledger), named Concert V2 terminals on the
pty of a simulator the test starts, tp-manager's ControlServer with the drivers (and
keep-alives) the config names, the agent's API on 127.0.0.1, its TerminalClient over
real ZeroMQ, a real SQLite journal, the reconciler, and the HiPay stub over HTTP."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
import zmq.asyncio

from common import messages
from common.config import ConnectorConfig, load_config
from supervisor_agent.api import create_app, start_server
from supervisor_agent.api.app import bound_port
from supervisor_agent.api.wire_json import dumps, loads
from supervisor_agent.client import TerminalClient
from supervisor_agent.events import EventSubscriber
from supervisor_agent.hipay_stub import DEFAULT_LOGIN as STUB_LOGIN
from supervisor_agent.hipay_stub import DEFAULT_PASSWORD as STUB_PASSWORD
from supervisor_agent.hipay_stub import start_stub
from supervisor_agent.journal import Journal
from supervisor_agent.notifier import HipayEndpoint, Notifier
from supervisor_agent.reconciler import Reconciler
from tp_manager.context import ServerContext
from tp_manager.result_store import ResultStore
from tp_manager.server import ControlServer
from tp_manager.simulator.concert_v3 import run_tcp_simulator
from tp_manager.simulator.concert_v3_family import Family, Ledger
from tp_manager.simulator.scenarios import Scenario
from tp_manager.status_recovery import RecoveryTimers, StatusRecovery
from tp_manager.terminal.factory import TargetTerminals, build_keepalives, build_terminal

LOOPBACK = "127.0.0.1"
USER, PASSWORD = "register", "s3cret"
READY_TIMEOUT_S = 5.0
HTTP_TIMEOUT_S = 30.0
FAST_RECOVERY = RecoveryTimers(tries=3, first_delay_s=0.1, spacing_s=0.3, budget_s=5.0)


@dataclass
class Simulated:
    port: int
    ledger: Ledger


@dataclass
class Connector:
    base_url: str
    session: aiohttp.ClientSession
    config: ConnectorConfig
    journal: Journal
    sims: dict[str, Simulated] = field(default_factory=dict)

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        headers = {"Authorization": auth, "Content-Type": "application/json"}
        data = None if body is None else dumps(body).encode()
        async with self.session.request(
            method, self.base_url + path, data=data, headers=headers
        ) as resp:
            text = await resp.text()
            return resp.status, loads(text) if text else None

    async def pay(self, terminal: str | None, order_id: str, amount: str = "9.99") -> Any:
        key = "orderId" if self.config.api_flavour == "kiosk" else "order_id"
        body: dict[str, Any] = {"amount": amount, key: order_id}
        if terminal is not None:
            body["terminal"] = terminal
        return await self.request("POST", "/", body)


async def start_simulator(
    ledger: Ledger, family: Family, pay_seconds: float, slow_seconds: float = 0.5
) -> tuple[int, asyncio.Task[None]]:
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_tcp_simulator(
            LOOPBACK,
            0,
            Scenario.APPROVE,
            slow_seconds,
            lambda _host, port: ready.set_result(port),
            pay_seconds=pay_seconds,
            family=family,
            ledger=ledger,
        )
    )
    async with asyncio.timeout(READY_TIMEOUT_S):
        return await ready, task


def write_config(
    tmp_path: Path,
    default_port: int,
    named: dict[str, int],
    serial: dict[str, dict[str, Any]] | None = None,
    **extra: Any,
) -> Path:
    """``named``: Concert V3 terminals by id and port; ``serial``: Concert V2 ones by id
    and their ``terminals.<id>`` fields (device, serial_profile...)."""
    profile = extra.pop("profile", "default")
    values: dict[str, Any] = {
        "terminal_protocol": "concert-v3",
        "terminal_host": LOOPBACK,
        "terminal_port": default_port,
        "terminal_profile": profile,
        "api_username": USER,
        "api_password": PASSWORD,
        "hipay_login": STUB_LOGIN,
        "hipay_password": STUB_PASSWORD,
        "transaction_timeout": 3,
        "notification_budget": 2,
        "data_dir": str(tmp_path),
        "terminals": {
            **{
                name: {"protocol": "concert-v3", "host": LOOPBACK, "port": port, "profile": profile}
                for name, port in named.items()
            },
            **{
                name: {"protocol": "concert-v2", **fields}
                for name, fields in (serial or {}).items()
            },
        },
        **extra,
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(values))
    return path


@contextlib.asynccontextmanager
async def connector(
    tmp_path: Path,
    names: list[str],
    *,
    family: Family | None = None,
    pay_seconds: float = 0.2,
    serial: dict[str, dict[str, Any]] | None = None,
    allow_default: bool = False,
    **config_extra: Any,
) -> AsyncIterator[Connector]:
    """A default terminal and one named terminal per name, each its own simulator; plus
    the Concert V2 terminals of ``serial`` (id -> fields), on simulators the test runs.
    ``allow_default``: the default simulator's host:port is in ``allowed_terminals`` (a
    POS API order may name it by ``host_information``)."""
    family = family or Family.named()
    tasks: list[asyncio.Task[None]] = []
    sims: dict[str, Simulated] = {}
    stub_runner, stub_url = await start_stub()
    zctx = zmq.asyncio.Context()
    try:
        for name in ["default", *names]:
            ledger = Ledger()
            port, task = await start_simulator(ledger, family, pay_seconds)
            tasks.append(task)
            sims[name] = Simulated(port, ledger)
        if allow_default:
            config_extra["allowed_terminals"] = [f"{LOOPBACK}:{sims['default'].port}"]
        path = write_config(
            tmp_path,
            sims["default"].port,
            {name: sims[name].port for name in names},
            serial,
            hipay_base_url=stub_url + "/",
            control_endpoint=f"ipc://{tmp_path}/control.sock",
            events_endpoint=f"ipc://{tmp_path}/events.sock",
            **config_extra,
        )
        config = load_config(path)
        async with _running(config, zctx, tmp_path, sims) as running:
            yield running
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await stub_runner.cleanup()
        zctx.term()


@contextlib.asynccontextmanager
async def _running(
    config: ConnectorConfig,
    zctx: zmq.asyncio.Context,
    tmp_path: Path,
    sims: dict[str, Simulated],
) -> AsyncIterator[Connector]:
    ctx_box: list[ServerContext] = []
    terminal = build_terminal(config, lambda state, detail: None)
    targets = TargetTerminals(
        config,
        terminal,
        on_late_answer=lambda key, result: ctx_box[0].late_answer(key, result),
        on_link_state=lambda key, state, detail: ctx_box[0].link_state(key, state, detail),
    )
    keepalives = build_keepalives(config, targets)
    ctx = ServerContext(
        terminal=terminal,
        publish=lambda name, data: None,
        results=ResultStore.in_data_dir(tmp_path),
        terminal_factory=targets,
        transaction_timeout_s=config.transaction_timeout,
    )
    ctx.recovery = StatusRecovery(ctx.recovered, FAST_RECOVERY)
    ctx_box.append(ctx)
    server = ControlServer(ctx, config.control_endpoint, config.events_endpoint, zctx)
    journal = Journal.open(tmp_path)
    notifier = Notifier(journal.outbox, HipayEndpoint(config.hipay_url, STUB_LOGIN, STUB_PASSWORD))
    client = TerminalClient(config.control_endpoint, context=zctx)
    reconciler = Reconciler(client, journal, notifier)
    client.on_connected = reconciler.hint
    events = EventSubscriber(
        config.events_endpoint,
        {messages.EVENT_RESULT_PENDING: lambda event: reconciler.hint()},
        context=zctx,
    )
    await server.start()
    for each in targets.all():
        await each.start()
    for keepalive in keepalives:
        keepalive.start()
    await notifier.start()
    await client.start()
    events.start()
    reconciler.start()
    app = create_app(
        config,
        client,
        _no_stop,
        journal=journal,
        notifier=notifier,
        acknowledge=reconciler.acknowledge,
    )
    # Every simulated register here is 127.0.0.1, as a POS backend driving every lane
    # from one address: the config's max_connections_per_address decides (its default
    # fits 50 terminals).
    runner = await start_server(app, LOOPBACK, 0)
    try:
        timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
        connector_limit = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector_limit) as session:
            yield Connector(
                f"http://{LOOPBACK}:{bound_port(runner)}", session, config, journal, sims
            )
    finally:
        await runner.cleanup()
        await reconciler.stop()
        await events.close()
        await client.close()
        await notifier.stop()
        await ctx.recovery.close()
        for keepalive in keepalives:
            await keepalive.close()
        await server.close()
        for each in targets.all():
            await each.close()
        ctx.results.close()
        journal.close()


async def _no_stop() -> bool:
    return False
