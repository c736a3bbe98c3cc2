"""Orders that name their terminal, on tp-manager's side: the control channel is the last
door before the network, so tp-manager checks ``allowed_terminals`` again, whatever the
API did.  Real config files, a real ControlServer and TerminalClient over ZeroMQ, the
Concert V3 simulator on loopback TCP."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
import yaml
import zmq.asyncio

from common.commands import pay as pay_contract
from common.config import ConnectorConfig, load_config
from common.payment import PaymentRequest, PaymentStatus, TerminalTarget
from supervisor_agent.client import CommandFailed, TerminalClient
from tp_manager.context import ServerContext
from tp_manager.result_store import ResultStore
from tp_manager.server import ControlServer
from tp_manager.simulator.concert_v3_family import Ledger
from tp_manager.simulator.scenarios import Scenario
from tp_manager.terminal.errors import TerminalNotAllowed
from tp_manager.terminal.factory import (
    TargetTerminals,
    build_keepalives,
    build_terminal,
    describe_device,
)
from tp_manager.terminal.model import LinkState

from .conftest import StartSimulator


def v3_config(tmp_path: Path, port: int, **extra: Any) -> ConnectorConfig:
    values = {
        "terminal_protocol": "concert-v3",
        "terminal_host": "127.0.0.1",
        "terminal_port": port,
        "api_username": "register",
        "api_password": "pw",
        "hipay_login": "login",
        "hipay_password": "pw2",
        "transaction_timeout": 3,
        **extra,
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(values))
    return load_config(path)


def test_the_configured_terminal_is_the_default_and_others_must_be_listed(
    tmp_path: Path,
) -> None:
    config = v3_config(tmp_path, 8888, allowed_terminals=["192.0.2.7:8888"])
    default = build_terminal(config, lambda state, detail: None)
    targets = TargetTerminals(config, default)
    assert describe_device(config) == "127.0.0.1:8888"
    assert targets(TerminalTarget("127.0.0.1", 8888, "0301")) is default
    other = targets(TerminalTarget("192.0.2.7", 8888, "0302"))
    assert other is not default
    assert targets(TerminalTarget("192.0.2.7", 8888, "0302")) is other  # kept
    assert targets.all() == [default, other]
    with pytest.raises(TerminalNotAllowed, match=r"192\.0\.2\.7:9999"):
        targets(TerminalTarget("192.0.2.7", 9999, "0301"))
    with pytest.raises(TerminalNotAllowed, match="protocol version"):
        targets(TerminalTarget("192.0.2.7", 8888, "0399"))


def test_configured_concert_v3_terminals_have_their_link_watched(tmp_path: Path) -> None:
    """Each configured terminal gets the idle watch at its interval (``off``: none);
    terminals reached only through an order's address are not configured: none."""
    terminals = {
        "lane1": {"protocol": "concert-v3", "host": "127.0.0.1", "port": 9001},
        "lane2": {
            "protocol": "concert-v3",
            "host": "127.0.0.1",
            "port": 9002,
            "keepalive_interval": "off",
        },
    }
    config = v3_config(
        tmp_path,
        8888,
        keepalive_interval=120,
        terminals=terminals,
        allowed_terminals=["192.0.2.7:8888"],
    )
    targets = TargetTerminals(config, build_terminal(config, lambda state, detail: None))
    targets(TerminalTarget("192.0.2.7", 8888, "0301"))  # built on demand, not configured
    watched = {
        keepalive.key: keepalive.interval_s for keepalive in build_keepalives(config, targets)
    }
    assert watched == {"default": 120.0, "lane1": 120.0}


async def test_tp_manager_refuses_a_target_not_allowed_and_pays_an_allowed_one(
    tmp_path: Path, start_simulator: StartSimulator
) -> None:
    port = await start_simulator()
    config = v3_config(tmp_path, port)
    terminal = build_terminal(config, lambda state, detail: None)
    targets = TargetTerminals(config, terminal)
    ctx = ServerContext(
        terminal=terminal,
        publish=lambda name, data: None,
        results=ResultStore.in_data_dir(tmp_path),
        terminal_factory=targets,
    )
    zctx = zmq.asyncio.Context()
    control = f"ipc://{tmp_path}/control.sock"
    server = ControlServer(ctx, control, f"ipc://{tmp_path}/events.sock", zctx)
    client = TerminalClient(control, context=zctx)
    pay = {"amount": 999, "currency_numeric": "978", "order_id": "T-1"}
    try:
        await server.start()
        await client.start()
        with pytest.raises(CommandFailed) as refused:
            await client.call(
                "pay", {**pay, "target": {"host": "192.0.2.7", "port": 8888, "version": "0301"}}
            )
        assert refused.value.code == "TERMINAL_NOT_ALLOWED"
        with pytest.raises(CommandFailed) as malformed:  # the pay contract checks types
            await client.call(
                "pay", {**pay, "target": {"host": "192.0.2.7", "port": "x", "version": "0301"}}
            )
        assert malformed.value.code == "INVALID_PROPERTIES"
        assert "target.port" in malformed.value.message
        target = {"host": "127.0.0.1", "port": port, "version": "0301"}
        result = await client.call("pay", {**pay, "target": target}, timeout=10)
        assert result["status"] == "accepted"
        assert result["amount"] == 999
    finally:
        await client.close()
        await server.close()
        for each in targets.all():
            await each.close()
        ctx.results.close()
        zctx.term()


async def test_one_address_has_one_driver_whatever_version_an_order_names(
    tmp_path: Path, start_simulator: StartSimulator
) -> None:
    """A second driver for one terminal would be a second busy flag: two payments at once
    on it.  The configured terminal's address is always its driver, and another address
    has one driver, busy for an order in any version; each payment goes in its order's
    own version, as before."""
    ledger = Ledger()
    other = await start_simulator(Scenario.CUSTOMER_SLOW, slow_seconds=1.0, ledger=ledger)
    config = v3_config(
        tmp_path,
        8888,
        protocol_version="0302",
        allowed_terminals=["127.0.0.1:8888", f"127.0.0.1:{other}"],
    )
    default = build_terminal(config, lambda state, detail: None)
    targets = TargetTerminals(config, default)
    assert targets.keyed(TerminalTarget("127.0.0.1", 8888, "0301")) == ("default", default)
    address = f"127.0.0.1:{other}"
    assert targets.keyed(TerminalTarget("127.0.0.1", other, "0301"))[0] == address

    def order(order_id: str, version: str) -> PaymentRequest:
        target = {"host": "127.0.0.1", "port": other, "version": version}
        return pay_contract.from_properties(
            {"amount": 999, "currency_numeric": "978", "order_id": order_id, "target": target}
        )

    first = targets(TerminalTarget("127.0.0.1", other, "0301"))
    paying = asyncio.create_task(first.pay(order("T-SLOW", "0301")))
    try:
        for _ in range(300):  # bounded: until the driver holds the terminal
            if first.busy:
                break
            await asyncio.sleep(0.01)
        assert first.busy
        assert targets.keyed(TerminalTarget("127.0.0.1", other, "0302")) == (address, first)
        assert (await paying).status is PaymentStatus.ACCEPTED
        again = targets(TerminalTarget("127.0.0.1", other, "0302"))
        assert again is first and targets.all() == [default, first]
        assert (await again.pay(order("T-0302", "0302"))).status is PaymentStatus.ACCEPTED
        assert [r["CZ"] for r in ledger.requests] == ["0301", "0302"]
    finally:
        paying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await paying
        for each in targets.all():
            await each.close()


async def test_a_terminal_only_an_order_names_reports_its_link_under_its_address(
    tmp_path: Path, start_simulator: StartSimulator
) -> None:
    """Its link changes reach the agent (``link.up`` / ``link.down`` on /events) under its
    key, ``host:port``, as a configured terminal's do under theirs."""
    other = await start_simulator()
    config = v3_config(tmp_path, 8888, allowed_terminals=[f"127.0.0.1:{other}"])
    told: list[tuple[str, LinkState]] = []
    targets = TargetTerminals(
        config,
        build_terminal(config, lambda state, detail: None),
        on_link_state=lambda key, state, detail: told.append((key, state)),
    )
    driver = targets(TerminalTarget("127.0.0.1", other, "0301"))
    try:
        request = pay_contract.from_properties(
            {"amount": 999, "currency_numeric": "978", "order_id": "T-LINK"}
        )
        assert (await driver.pay(request)).status is PaymentStatus.ACCEPTED
    finally:
        for each in targets.all():
            await each.close()
    address = f"127.0.0.1:{other}"
    assert told == [(address, LinkState.UP), (address, LinkState.DISCONNECTED)]
