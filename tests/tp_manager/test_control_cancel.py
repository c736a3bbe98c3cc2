"""A task that calls tp-manager stops when it is cancelled, even as a reply arrives.

Through the agent's real TerminalClient and tp-manager's real ControlServer (result
store on a real SQLite file, Concert V2 driver on the simulator's pty).  The agent's
loops that call tp-manager (the reconciler's acks, the benchmark's acker) are stopped by
cancelling them.  With ``asyncio.wait_for`` (Python 3.11) a cancel that lands in the loop
iteration where the reply completes the call is swallowed: the call returns its reply,
the loop runs on, and whoever awaits its end (``Reconciler.stop``) waits forever.  That
was the hang of benchmarks/many_terminals.py at teardown with ``notification_budget``
0.01 s (the last acks still in flight when the reconciler was stopped).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import zmq.asyncio

from common.commands import results as results_contract
from supervisor_agent.client import TerminalClient
from tests.simulator.conftest import StartSim
from tests.tp_manager.conftest import agent, tp_manager

CANCELS = 300  # cancels at varying points of a call: many land as a reply arrives
STOP_BOUND_S = 5.0  # a cancelled task ends at once; this only bounds a failure
TRANSACTION_TIMEOUT_S = 5.0
CALIBRATION_CALLS = 5
MAX_TURNS_PER_CALL = 100_000  # bounds the calibration; a call takes tens to thousands


async def stop_for_good(task: asyncio.Task[None]) -> None:
    """A failed test's runaway loop: cancel until it ends (each cancel may be swallowed)."""
    for _ in range(CANCELS):
        task.cancel()
        await asyncio.wait({task}, timeout=0.01)
        if task.done():
            return


async def loop_turns_per_call(client: TerminalClient) -> int:
    """How many turns of the event loop one call takes on this machine now: the cancels
    are spread over two calls' worth, so some land as replies arrive however fast or
    loaded the machine is."""
    turns = []
    for _ in range(CALIBRATION_CALLS):
        call = asyncio.create_task(client.call(results_contract.NAME))
        taken = 0
        while not call.done() and taken < MAX_TURNS_PER_CALL:
            await asyncio.sleep(0)
            taken += 1
        await call
        turns.append(taken)
    return sorted(turns)[len(turns) // 2]


async def test_a_loop_calling_tp_manager_stops_when_cancelled_as_a_reply_arrives(
    tmp_path: Path, zctx: zmq.asyncio.Context, start_sim: StartSim
) -> None:
    sim = start_sim()
    async with (
        tp_manager(tmp_path, sim.pty_path, zctx, TRANSACTION_TIMEOUT_S),
        agent(tmp_path, zctx) as client,
    ):
        replies = 0

        async def calls_until_cancelled() -> None:
            nonlocal replies
            while True:
                await client.call(results_contract.NAME)
                replies += 1

        spread = 2 * await loop_turns_per_call(client) + 1
        for attempt in range(CANCELS):
            task = asyncio.create_task(calls_until_cancelled())
            for _ in range(attempt % spread):  # cancel at a different point of a call
                await asyncio.sleep(0)
            task.cancel()
            try:
                async with asyncio.timeout(STOP_BOUND_S):
                    await task
            except asyncio.CancelledError:
                continue
            except TimeoutError:
                await stop_for_good(task)
                raise AssertionError(
                    f"cancel {attempt} was swallowed: the loop ran on after it"
                ) from None
            raise AssertionError(f"cancel {attempt}: the loop ended without being cancelled")
        assert replies > 0  # the cancels met calls in flight, replies among them
