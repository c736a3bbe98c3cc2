"""``run`` restarts a hung program, and leaves a busy one alone.

Real supervisord, real programs; a hang is a real one: the program's pid is sent
SIGSTOP, so its event loop (and its heartbeat, common/heartbeat.py) stands still while
supervisord still sees it RUNNING.  A payment held at the terminal for longer than the
hang timeout is not a hang: the loop awaits the terminal and goes on beating.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from tests.stack import Stack, running_stack, wait_for

HANG_TIMEOUT_S = 6  # a beat a second (a sixth of it)
PROGRAMS = ["tp-manager", "supervisor-agent", "simulator"]
NEVER_ANSWERS = "1000.04"  # simulator scenario never-answer: in flight until cancelled
RESTART_TIMEOUT_S = 90.0


def pay(stack: Stack, order_id: str) -> dict:
    status, body = stack.request("POST", "/", {"amount": "9.99", "order_id": order_id})
    assert status == 200, body
    return dict(body)


@pytest.mark.parametrize("program", ["supervisor-agent", "tp-manager"])
def test_a_hung_program_is_killed_and_restarted(tmp_path: Path, program: str) -> None:
    with running_stack(tmp_path, hang_timeout=HANG_TIMEOUT_S) as stack:
        stack.wait_running(PROGRAMS)
        hung = stack.pid_of(program)
        os.kill(hung, signal.SIGSTOP)
        try:
            restarted = wait_for(
                lambda: (
                    stack.process_info()[program]["statename"] == "RUNNING"
                    and stack.pid_of(program) != hung
                ),
                RESTART_TIMEOUT_S,
                f"{program} restarted after its hang",
            )
            assert restarted
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(hung, signal.SIGCONT)
        run_out = (tmp_path / "run.out").read_text()
        assert f"{program} (pid {hung}) is hung: no heartbeat for" in run_out
        assert "giving up" not in run_out  # a restart after a hang is not a failed start
        # RUNNING is not yet listening: the agent's /check asks tp-manager for its link
        wait_for(
            lambda: stack.request("GET", "/check", timeout_s=5)[1].get("link") == "up",
            RESTART_TIMEOUT_S,
            "the API and tp-manager's link again",
        )
        assert pay(stack, f"AFTER-HANG-{program}")["paymentStatus"] == "SUCCESS"


def test_a_payment_held_longer_than_the_hang_timeout_is_not_a_hang(tmp_path: Path) -> None:
    with running_stack(tmp_path, hang_timeout=HANG_TIMEOUT_S) as stack:
        stack.wait_running(PROGRAMS)
        pids = {name: stack.pid_of(name) for name in ("tp-manager", "supervisor-agent")}
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            held = pool.submit(
                stack.request, "POST", "/", {"amount": NEVER_ANSWERS, "order_id": "HELD-LONG"}
            )
            wait_for(
                lambda: "HELD-LONG" in stack.logged("supervisor-agent", "order_id"),
                RESTART_TIMEOUT_S,
                "the held payment at the terminal",
            )
            time.sleep(HANG_TIMEOUT_S * 3)  # three hang timeouts with the payment in flight
            assert not held.done()
            assert {name: stack.pid_of(name) for name in pids} == pids
            stack.request("GET", "/cancel")
            status, body = held.result(timeout=RESTART_TIMEOUT_S)
        assert status == 200, body
        assert "is hung" not in (tmp_path / "run.out").read_text()
