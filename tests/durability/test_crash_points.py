"""Payments cut off by a crash, through the real programs under supervisord.

Real supervisord (tests/stack.py), processes killed by pid with SIGKILL, the real
simulator, the real HiPay stub, the journal and tp-manager's result store as real
SQLite files.  Each test kills a program at one step of a payment and then checks
what the register, the journal and HiPay end up with.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from tests.e2e.test_supervised_stack import (
    DELIVERY_TIMEOUT_S,
    PROGRAMS,
    RESTART_TIMEOUT_S,
    SLOW_CUSTOMER,
    link_up,
    paying,
    restarted,
    start,
)
from tests.stack import HipayStub, Stack, free_port, wait_for

V3_PAY_STARTED = ("simulator", '"simulator.concert_v3.request.received"')


def looked_up(stack: Stack, order_id: str) -> dict[str, Any]:
    status, body = stack.request("GET", f"/transactions/{order_id}")
    assert status == 200, body
    return dict(body)


def test_a_concert_v3_payment_cut_off_by_a_tp_manager_kill_gets_the_terminals_verdict(
    tmp_path: Path, hipay: HipayStub
) -> None:
    """The terminal finished the payment while tp-manager was dead: the restarted
    tp-manager asks it (CD=T) and the order is reconciled, not left unknown for good."""
    with start(
        tmp_path,
        hipay,
        serial_port=None,
        terminal_protocol="concert-v3",
        terminal_host="simulator",
        terminal_port=free_port(),
        terminal_profile="castles",
    ) as stack:
        stack.wait_running(PROGRAMS)
        wait_for(lambda: link_up(stack), RESTART_TIMEOUT_S, "the Concert V3 terminal")
        with paying(stack, SLOW_CUSTOMER, "V3-CUT", V3_PAY_STARTED) as payment:
            old = stack.pid_of("tp-manager")
            os.kill(old, signal.SIGKILL)
            status, body = payment.result(timeout=30)
        assert status == 200, body
        assert body["transactionState"] == "unknown"
        assert body["errorCode"] == "TP_MANAGER_RESTARTED"
        restarted(stack, "tp-manager", old)
        settled_accepted(stack, hipay, "V3-CUT", '"simulator.concert_v3.request.received"', 30)


EOT_HELD = "1000.13"  # simulator scenario eot-held: EOT held back once the answer is ACKed
V2_ANSWER_ACKED = ("simulator", '"simulator.concert_v2.answer_acked"')


def test_a_concert_v2_answer_the_terminal_saw_acked_survives_a_tp_manager_kill(
    tmp_path: Path, hipay: HipayStub
) -> None:
    """The terminal forgets an answer once it has the ACK, and will not send it again.
    tp-manager is killed the moment the terminal has that ACK (it holds its EOT, so the
    driver has not ended the exchange): the verdict must already be in the result store,
    and the restarted tp-manager hands it to the agent.  It used to be written only
    after the terminal's EOT: the order stayed unknown though the terminal said paid."""
    with start(tmp_path, hipay) as stack:
        stack.wait_running(PROGRAMS)
        wait_for(lambda: link_up(stack), RESTART_TIMEOUT_S, "the terminal link")
        with paying(stack, EOT_HELD, "V2-ACKED", V2_ANSWER_ACKED) as payment:
            old = stack.pid_of("tp-manager")
            os.kill(old, signal.SIGKILL)
            status, body = payment.result(timeout=30)
        assert status == 200, body
        assert body["errorCode"] == "TP_MANAGER_RESTARTED"
        restarted(stack, "tp-manager", old)
        settled_accepted(stack, hipay, "V2-ACKED", '"simulator.concert_v2.request"')


def settled_accepted(
    stack: Stack, hipay: HipayStub, order_id: str, request_line: str, extra_s: float = 0
) -> None:
    """The order cut off by the kill ends ``accepted``, reconciled from ``unknown``, the
    terminal asked once (``request_line`` in the simulator's log), and HiPay told
    ``unknown`` then ``accepted``."""
    reconciled = wait_for(
        lambda: (b := looked_up(stack, order_id))["transactionState"] == "accepted" and b,
        DELIVERY_TIMEOUT_S + extra_s,
        f"the terminal's verdict on {order_id}",
    )
    assert reconciled["reconciled"]["from"] == "unknown"
    assert stack.logs("simulator").count(request_line) == 1
    states = wait_for(
        lambda: (s := hipay.states_told(order_id)) and "accepted" in s and s,
        DELIVERY_TIMEOUT_S,
        "HiPay's corrected notification",
    )
    assert states == ["unknown", "accepted"]
