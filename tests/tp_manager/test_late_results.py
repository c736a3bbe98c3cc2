"""Every late result comes home: through a real ControlServer, the agent's TerminalClient,
the Concert V2 driver and the simulator on a pty.

The simulator's customer-slow amount (1000.03 EUR) answers after ``--slow-seconds``;
the driver's transaction timeout is set below or above it per test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.asyncio

from common import messages
from common.commands.ack import AckReply, AckRequest
from common.commands.cancel import CancelReply
from common.commands.results import PendingResult, ResultsReply
from supervisor_agent.client import CommandFailed, TerminalClient
from tests.simulator.conftest import Sim, StartSim
from tests.tp_manager.conftest import agent, endpoints, tp_manager

SLOW_AMOUNT = 100_003  # 1000.03 EUR: the customer-slow scenario, accepted
SLOW_S = "2.0"  # the simulator's customer time for it
WAIT_S = 15.0  # bound on any wait below
POLL_S = 0.05


def pay_props(order_id: str, amount: int = SLOW_AMOUNT) -> dict[str, Any]:
    return {"order_id": order_id, "amount": amount, "currency_numeric": "978"}


@contextlib.asynccontextmanager
async def hints(tmp_path: Path, zctx: zmq.asyncio.Context) -> AsyncIterator[zmq.asyncio.Socket]:
    sub = zctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, messages.EVENT_RESULT_PENDING.encode())
    sub.connect(endpoints(tmp_path)[1])
    try:
        yield sub
    finally:
        sub.close()


async def next_hint(sub: zmq.asyncio.Socket) -> str:
    async with asyncio.timeout(WAIT_S):
        event = messages.Event.from_frames(await sub.recv_multipart())
    return str(event.data["order_id"])


async def terminal_has_it(sim: Sim) -> bool:
    """The simulator logged the request: the exchange is past the register's turn."""
    return await asyncio.to_thread(sim.logged, "simulator.concert_v2.request", WAIT_S)


async def results(client: TerminalClient) -> list[PendingResult]:
    return ResultsReply.from_wire(await client.call("results")).results


async def wait_for_results(client: TerminalClient) -> list[PendingResult]:
    for _ in range(int(WAIT_S / POLL_S)):
        found = await results(client)
        if found:
            return found
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"no pending result within {WAIT_S} s")


async def ack(client: TerminalClient, *order_ids: str) -> int:
    reply = await client.call("ack", AckRequest(order_ids=list(order_ids)).to_wire())
    return AckReply.from_wire(reply).forgotten


@contextlib.asynccontextmanager
async def stack(
    tmp_path: Path, zctx: zmq.asyncio.Context, start_sim: StartSim, transaction_timeout: float
) -> AsyncIterator[tuple[Sim, TerminalClient, zmq.asyncio.Socket]]:
    """Simulator, tp-manager, the agent's client and a subscriber to the hints."""
    sim = start_sim("--slow-seconds", SLOW_S)
    async with (
        tp_manager(tmp_path, sim.pty_path, zctx, transaction_timeout),
        agent(tmp_path, zctx) as client,
        hints(tmp_path, zctx) as sub,
    ):
        yield sim, client, sub


async def test_an_answer_after_the_timeout_is_kept_until_acked(
    tmp_path: Path, zctx: zmq.asyncio.Context, start_sim: StartSim
) -> None:
    async with stack(tmp_path, zctx, start_sim, transaction_timeout=0.5) as (_, client, sub):
        with pytest.raises(CommandFailed) as failed:
            await client.call("pay", pay_props("LATE-A"), timeout=WAIT_S)
        assert failed.value.code == "TRANSACTION_TIMEOUT"
        assert failed.value.money_may_have_moved
        assert await results(client) == []  # nothing known yet: the order is unknown

        assert await next_hint(sub) == "LATE-A"
        [pending] = await results(client)
        assert pending.order_id == "LATE-A" and pending.late
        assert pending.result.accepted and pending.result.amount == SLOW_AMOUNT

        assert await ack(client, "LATE-A") == 1
        assert await results(client) == []


async def test_cancel_on_concert_v2_is_honest(
    tmp_path: Path, zctx: zmq.asyncio.Context, start_sim: StartSim
) -> None:
    async with stack(tmp_path, zctx, start_sim, transaction_timeout=10.0) as (sim, client, sub):
        paying = asyncio.create_task(client.call("pay", pay_props("CXL-1"), timeout=WAIT_S))
        assert await terminal_has_it(sim)
        reply = CancelReply.from_wire(await client.call("cancel"))
        assert reply == CancelReply(
            cancelled=True, order_id="CXL-1", terminal_may_still_complete=True
        )
        with pytest.raises(CommandFailed) as failed:
            await paying
        assert failed.value.code == "CANCELLED" and failed.value.money_may_have_moved

        # the terminal is still in its transaction: the next payment is refused, not sent
        with pytest.raises(CommandFailed) as busy:
            await client.call("pay", pay_props("CXL-2", 999))
        assert busy.value.code == "TERMINAL_BUSY"
        assert "may still be completing order CXL-1" in busy.value.message
        assert not busy.value.money_may_have_moved
        check = await client.call("check")
        assert check["busy"] is True

        assert await next_hint(sub) == "CXL-1"
        [pending] = await results(client)
        assert pending.order_id == "CXL-1" and pending.late and pending.result.accepted
        assert await ack(client, "CXL-1") == 1

        # and the terminal is free again, once it has closed its session (the answer is
        # written down, and hinted, before the terminal gets its ACK and sends EOT)
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while (await client.call("check"))["busy"]:
            assert asyncio.get_running_loop().time() < deadline, "the terminal stays busy"
            await asyncio.sleep(0.02)
        paid = await client.call("pay", pay_props("CXL-3", 999), timeout=WAIT_S)
        assert paid["status"] == "accepted"
        [normal] = await results(client)  # a verdict the reply carried is kept until acked
        assert normal.order_id == "CXL-3" and not normal.late
        assert await ack(client, "CXL-3") == 1


async def test_a_restart_mid_payment_keeps_the_order_of_the_answer(
    tmp_path: Path, zctx: zmq.asyncio.Context, start_sim: StartSim
) -> None:
    sim = start_sim("--slow-seconds", SLOW_S)
    async with agent(tmp_path, zctx) as client:
        async with tp_manager(tmp_path, sim.pty_path, zctx, transaction_timeout=10.0):
            paying = asyncio.create_task(client.call("pay", pay_props("RST-1"), timeout=WAIT_S))
            assert await terminal_has_it(sim)
        # tp-manager is gone mid-payment; the agent's call fails, the order is unknown
        with pytest.raises(CommandFailed) as failed:
            await paying
        assert failed.value.money_may_have_moved
        # a new tp-manager on the same data dir, while the terminal still works
        async with tp_manager(tmp_path, sim.pty_path, zctx, transaction_timeout=10.0):
            [pending] = await wait_for_results(client)
            assert pending.order_id == "RST-1" and pending.late
            assert pending.result.accepted and pending.result.amount == SLOW_AMOUNT
            assert await ack(client, "RST-1") == 1
