"""The Concert V2 keep-alive against the real simulator on a real pty, with tp-manager's
control server and PUB socket on real ZeroMQ, as its process wires them.

* an idle link is probed (ENQ, ACK, EOT), and each probe is counted on both ends;
* payments and probes share the line: every payment is paid correctly, whether it
  arrives while a probe is in flight or between probes;
* a terminal that goes silent while idle (the simulator stopped with SIGSTOP: its end of
  the pty stays open and nothing answers, as a USB link asleep) is reported down by the
  probe -- ``link.down`` on the PUB socket, ``check`` -- before any payment is tried,
  and up again when it answers;
* a simulator killed while idle (the pty's master closed) is reported down at once by
  the port itself (EIO: no probe needed), and the line that comes back is up and probed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from common import messages
from common.commands.check import CheckReply
from common.commands.pay import result_of
from supervisor_agent.client import TerminalClient
from tests.simulator.conftest import Sim, StartSim
from tests.tp_manager.conftest import FAST_V2, endpoints
from tp_manager.concert_v2.terminal import ConcertV2Terminal
from tp_manager.context import ServerContext
from tp_manager.keepalive import KeepAlive
from tp_manager.result_store import DEFAULT_TERMINAL, ResultStore
from tp_manager.server import ControlServer
from tp_manager.terminal.model import LinkState

WAIT_S = 15.0  # bound on any wait below
POLL_S = 0.01
# Each probe ENQ gets the production 1 s (3 tries): a loaded test machine that stalls the
# simulator for a moment must not look like a silent terminal.
PROBE_TIMEOUT_S = 1.0
SUB_TRIES = 100


@dataclass
class Stack:
    driver: ConcertV2Terminal
    keepalive: KeepAlive
    client: TerminalClient
    sub: zmq.asyncio.Socket
    ctx: ServerContext
    links: list[dict[str, Any]] = field(default_factory=list)  # link events, in order

    async def next_link(self, state: str) -> dict[str, Any]:
        """The next ``link.up``/``link.down`` published with this ``link`` state."""
        async with asyncio.timeout(WAIT_S):
            while True:
                event = messages.Event.from_frames(await self.sub.recv_multipart())
                if event.name.startswith("link.") and event.data.get("link") is not None:
                    self.links.append(event.data)
                    if event.data["link"] == state:
                        return event.data

    async def downs(self) -> list[dict[str, Any]]:
        """Every ``link.down`` published so far (reads what is waiting on the socket)."""
        while await self.sub.poll(0):
            event = messages.Event.from_frames(await self.sub.recv_multipart())
            if event.data.get("link") is not None:
                self.links.append(event.data)
        return [e for e in self.links if e["link"] == "down"]

    async def check(self) -> CheckReply:
        return CheckReply.from_wire(await self.client.call("check", timeout=WAIT_S))

    async def pay(self, order_id: str, amount: int) -> int:
        props = {"order_id": order_id, "amount": amount, "currency_numeric": "978"}
        result = result_of(await self.client.call("pay", props, timeout=WAIT_S))
        assert result.accepted, result
        return result.amount


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (state in other tasks and processes), bounded by WAIT_S."""
    for _ in range(int(WAIT_S / POLL_S)):
        if condition():
            return
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"not within {WAIT_S} s: {what}")


@contextlib.asynccontextmanager
async def stack(
    tmp_path: Path,
    zctx: zmq.asyncio.Context,
    device: str,
    interval_s: float,
    retry_s: float = 15.0,
) -> AsyncIterator[Stack]:
    """tp-manager's pieces as main.serve wires them: the driver reports its link through
    the context (published on PUB), the keep-alive above it, the control server."""
    holder: list[ServerContext] = []
    timers = {**FAST_V2, "probe_timeout": PROBE_TIMEOUT_S}
    driver = ConcertV2Terminal(
        device,
        on_link_state=lambda state, detail: holder[0].link_state(DEFAULT_TERMINAL, state, detail),
        **timers,
    )
    ctx = ServerContext(
        terminal=driver, publish=lambda name, data: None, results=ResultStore.in_data_dir(tmp_path)
    )
    holder.append(ctx)
    control, events = endpoints(tmp_path)
    server = ControlServer(ctx, control, events, zctx)
    keepalive = KeepAlive(driver, DEFAULT_TERMINAL, interval_s, retry_s)
    client = TerminalClient(control, context=zctx)
    sub = zctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"link.")
    try:
        await server.start()
        sub.connect(events)
        await _subscribed(ctx, sub)
        await driver.start()
        await client.start()
        keepalive.start()
        running = Stack(driver, keepalive, client, sub, ctx)
        await running.next_link("up")
        yield running
    finally:
        await keepalive.close()
        await client.close()
        sub.close(linger=0)
        await server.close()
        await driver.close()
        ctx.results.close()


async def _subscribed(ctx: ServerContext, sub: zmq.asyncio.Socket) -> None:
    """PUB drops what is sent before the subscription reaches it: wait until one arrives."""
    for _ in range(SUB_TRIES):
        ctx.publish("link.ready", {})
        if await sub.poll(50):
            await sub.recv_multipart()
            while await sub.poll(0):
                await sub.recv_multipart()
            return
    raise AssertionError("the subscription never reached tp-manager's PUB socket")


def logged_count(sim: Sim, event: str) -> int:
    return sim.log().count(f'"{event}"')


# --------------------------------------------------------------------------- idle probes


async def test_an_idle_link_is_probed_and_each_probe_counted(
    tmp_path: Path, zctx: zmq.asyncio.Context, start_sim: StartSim
) -> None:
    sim = start_sim()
    async with stack(tmp_path, zctx, sim.pty_path, interval_s=0.2) as s:
        await until(lambda: s.keepalive.counts.answered >= 3, "three probes answered")
        counts = s.keepalive.counts
        assert (counts.silent, counts.cut_short) == (0, 0)
        await until(lambda: logged_count(sim, "simulator.concert_v2.probe") >= 3, "sim saw 3")
        assert logged_count(sim, "simulator.concert_v2.request") == 0  # probes, no payment
        reply = await s.check()
        assert (reply.link, reply.busy) == ("up", False)
        assert await s.downs() == [] and s.driver.link_state is LinkState.UP  # never down
        assert await s.pay("IDLE-1", 1234) == 1234  # and the line still pays


# --------------------------------------------------------------------------- collisions


async def test_payments_arriving_during_probes_are_paid_correctly(
    tmp_path: Path, zctx: zmq.asyncio.Context, start_sim: StartSim
) -> None:
    """Bounded: 24 payments; every other one is sent while a probe holds the line (the
    keep-alive probes after 20 ms of idle line, so it is never long to wait for)."""
    sim = start_sim()
    payments = 24
    async with stack(tmp_path, zctx, sim.pty_path, interval_s=0.02) as s:

        def probing() -> bool:  # a probe holds the line (the port is open, no payment)
            return s.driver.idle_for() is None and not s.driver.busy

        collided = 0
        for n in range(payments):
            if n % 2 == 0:
                await until(probing, "a probe in flight")
                collided += 1
            amount = 100 + n
            assert await s.pay(f"MIX-{n}", amount) == amount
        counts = s.keepalive.counts
        assert counts.silent == 0
        assert counts.answered + counts.cut_short >= collided  # each collision had its probe
        await until(
            lambda: logged_count(sim, "simulator.concert_v2.answer") == payments, "all answered"
        )
        assert logged_count(sim, "simulator.concert_v2.request") == payments
        assert await s.downs() == []  # never reported down
        assert (await s.check()).link == "up"


# --------------------------------------------------------------------------- a silent line


async def test_a_terminal_silent_while_idle_is_reported_down_before_any_payment(
    tmp_path: Path, zctx: zmq.asyncio.Context, start_sim: StartSim
) -> None:
    sim = start_sim()
    async with stack(tmp_path, zctx, sim.pty_path, interval_s=0.2, retry_s=0.2) as s:
        await until(lambda: s.keepalive.counts.answered >= 1, "a first probe answered")
        os.kill(sim.proc.pid, signal.SIGSTOP)  # the port stays open; nothing answers
        try:
            down = await s.next_link("down")
            assert down["terminal"] == "default" and "keep-alive" in down["detail"]
            assert s.keepalive.counts.silent >= 1
            reply = await s.check()  # what /check, the status page and the gauge read
            assert reply.link == "down" and "keep-alive" in reply.detail
        finally:
            os.kill(sim.proc.pid, signal.SIGCONT)
        assert logged_count(sim, "simulator.concert_v2.request") == 0  # no payment was tried
        up = await s.next_link("up")  # its next probe is answered
        assert "answers again" in up["detail"]
        assert (await s.check()).link == "up"
        assert await s.pay("BACK-1", 4321) == 4321
        assert s.keepalive.counts.answered >= 2


async def test_a_simulator_killed_while_idle_is_down_at_once_and_up_when_the_line_returns(
    tmp_path: Path, zctx: zmq.asyncio.Context, start_sim: StartSim
) -> None:
    """Killing the simulator closes the pty's master: the driver's reads fail (EIO) and
    the port reports the link down itself, without waiting for a probe.  The device path
    is a symlink (as udev names a USB terminal), so a new simulator brings the line back."""
    link = tmp_path / "ttyCONCERT"
    first = start_sim()
    link.symlink_to(first.pty_path)
    async with stack(tmp_path, zctx, str(link), interval_s=0.2) as s:
        await until(lambda: s.keepalive.counts.answered >= 1, "a first probe answered")
        first.stop(signal.SIGKILL)
        down = await s.next_link("down")
        assert "lost" in down["detail"] or "does not exist" in down["detail"]
        assert (await s.check()).link == "down"
        answered = s.keepalive.counts.answered
        second = start_sim()
        tmp = tmp_path / "ttyCONCERT.new"
        tmp.symlink_to(second.pty_path)
        tmp.replace(link)
        await s.next_link("up")
        await until(lambda: s.keepalive.counts.answered > answered, "probed on the new line")
        assert s.keepalive.counts.silent == 0
        # the simulator logs a probe at its EOT, which follows the ACK the count is made on
        await until(
            lambda: logged_count(second, "simulator.concert_v2.probe") >= 1,
            "the new simulator saw the probe",
        )
        assert await s.pay("NEW-1", 555) == 555
