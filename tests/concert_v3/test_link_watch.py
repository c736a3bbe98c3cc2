"""The idle link watch on Concert V3 (tp_manager/keepalive.py), against the simulator on
real loopback TCP.

Concert V3 keeps no connection open between payments, so without the watch a terminal
switched off while idle shows only when the next customer's payment cannot connect:

* an idle terminal is probed with a TCP connect after the interval, and answers;
* stopped while idle, it is reported down by the next probe (``link.down``, before any
  payment is tried), probed every ``retry_s`` meanwhile, and up again once it listens;
* a probe is a *look*: a payment arriving while it runs waits for it, never refused
  busy, and the probe never opens a connection while a payment has one;
* a check arriving during a probe waits for it, then looks itself: a terminal that died
  meanwhile is reported down, not up as the probe found it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.concert_v3.conftest import LOOPBACK, StartSimulator, terminal
from tests.tp_manager.test_keepalive import WAIT_S, until
from tp_manager.concert_v3 import ConcertV3Terminal
from tp_manager.keepalive import KeepAlive
from tp_manager.simulator.concert_v3 import run_tcp_simulator
from tp_manager.simulator.scenarios import Scenario
from tp_manager.terminal.model import LinkState, PaymentRequest, PaymentStatus, Probed

INTERVAL_S = 0.2  # idle seconds before a probe (production: 180)


def request(order_id: str) -> PaymentRequest:
    return PaymentRequest(amount=999, currency_numeric="978", order_id=order_id)


@pytest.fixture
async def watched() -> AsyncIterator[Callable[[ConcertV3Terminal], Awaitable[KeepAlive]]]:
    watches: list[KeepAlive] = []

    async def watch(driver: ConcertV3Terminal) -> KeepAlive:
        keepalive = KeepAlive(driver, "lane", interval_s=INTERVAL_S, retry_s=INTERVAL_S)
        keepalive.start()
        watches.append(keepalive)
        return keepalive

    yield watch
    for keepalive in watches:
        await keepalive.close()


async def serve_simulator(port: int) -> tuple[asyncio.Task[None], int]:
    """The simulator on ``port`` (0: a free one), ready; cancel the task to stop it."""
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_tcp_simulator(LOOPBACK, port, Scenario.APPROVE, 0.3, lambda _h, p: ready.set_result(p))
    )
    async with asyncio.timeout(WAIT_S):
        return task, await ready


async def probing(port: int) -> tuple[ConcertV3Terminal, asyncio.Task[Probed | None]]:
    """A started driver for the terminal on ``port``, and its idle probe, under way."""
    driver = terminal(port)
    await driver.start()
    probe = asyncio.create_task(driver.keepalive_probe())
    await asyncio.sleep(0)  # the probe has started: it is connecting
    return driver, probe


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_an_idle_terminal_switched_off_is_reported_down_then_up_again(
    watched: Callable[[ConcertV3Terminal], Awaitable[KeepAlive]],
) -> None:
    first, port = await serve_simulator(0)
    states: list[LinkState] = []
    try:
        driver = terminal(port, on_link_state=lambda state, _detail: states.append(state))
        await driver.start()
        assert driver.link_state is LinkState.UP
        watch = await watched(driver)
        await until(lambda: watch.counts.answered >= 1, "an idle terminal is probed")
        assert driver.link_state is LinkState.UP and not driver.silent

        await stop(first)  # switched off while idle: no payment is tried
        await until(lambda: watch.counts.silent == 1, "the probe finds it silent")
        assert driver.link_state is LinkState.DOWN and states[-1] is LinkState.DOWN
        assert driver.silent
        answered = watch.counts.answered

        again, _ = await serve_simulator(port)  # switched on again
        try:
            await until(lambda: driver.link_state is LinkState.UP, "a probe finds it back")
            assert watch.counts.answered > answered and watch.counts.silent == 1
            assert states[-2:] == [LinkState.DOWN, LinkState.UP]
            result = await driver.pay(request("WATCH-1"))
            assert result.status is PaymentStatus.ACCEPTED
        finally:
            await stop(again)
    finally:
        await stop(first)


async def test_a_payment_arriving_during_a_probe_waits_for_it(
    start_simulator: StartSimulator,
) -> None:
    driver, probe = await probing(await start_simulator())
    assert driver.idle_for() is None  # a look is under way ...
    assert not driver.busy  # ... and an order is not turned away for it
    result = await driver.pay(request("DURING-PROBE"))
    assert probe.done()  # the payment waited for the probe to end
    verdict = await probe
    assert verdict is not None and verdict.responding
    assert result.status is PaymentStatus.ACCEPTED


async def test_no_probe_while_a_payment_runs(start_simulator: StartSimulator) -> None:
    port = await start_simulator(pay_seconds=0.5)
    driver = terminal(port)
    await driver.start()
    paying = asyncio.create_task(driver.pay(request("PAYING")))
    await until(lambda: driver.idle_for() is None, "the payment holds the terminal")
    assert await driver.keepalive_probe() is None  # no verdict: the terminal is in use
    assert (await paying).status is PaymentStatus.ACCEPTED
    assert driver.idle_for() is not None


async def test_a_check_arriving_during_a_probe_waits_and_looks_itself(
    start_simulator: StartSimulator,
) -> None:
    """The operator's check is of now: not the state the look under way started from."""
    driver, probe = await probing(await start_simulator())
    status = await driver.check()
    assert probe.done()  # it waited for the probe ...
    assert not status.busy and status.responding  # ... and answered from its own look
    assert status.link is LinkState.UP


async def test_a_check_during_a_probe_finds_a_terminal_that_died_meanwhile() -> None:
    task, port = await serve_simulator(0)
    try:
        driver, probe = await probing(port)
        await stop(task)  # the terminal is switched off while the probe runs
        status = await driver.check()
        assert probe.done()
        assert status.link is LinkState.DOWN and status.responding is False, status
        assert not status.busy
    finally:
        await stop(task)
