"""Every terminal verdict comes home, through the real processes under supervisord.

The simulator's customer-slow scenario (1000.03) accepts after 5 s: long enough to
kill the agent mid-payment, to outlast a 2 s transaction timeout, or to cancel.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.test_supervised_stack import (
    DELIVERY_TIMEOUT_S,
    PAY_STARTED,
    PROGRAMS,
    RESTART_TIMEOUT_S,
    SLOW_CUSTOMER,
    link_up,
    paying,
    restarted,
    start,
)
from tests.stack import HipayStub, Stack, wait_for


def reconciled(stack: Stack, order_id: str) -> dict | None:
    status, body = stack.request("GET", f"/transactions/{order_id}")
    if status == 200 and body["transactionState"] == "accepted":
        return body
    return None


def terminal_requests(stack: Stack) -> int:
    return stack.logs("simulator").count('"simulator.concert_v2.request"')


def test_kill_9_of_the_agent_mid_payment_ends_accepted_without_a_second_charge(
    tmp_path: Path, hipay: HipayStub
) -> None:
    with start(tmp_path, hipay) as stack:
        stack.wait_running(PROGRAMS)
        wait_for(lambda: link_up(stack), RESTART_TIMEOUT_S, "the terminal link")
        with paying(stack, SLOW_CUSTOMER, "E2E-KILLED", PAY_STARTED) as payment:
            old = stack.pid_of("supervisor-agent")
            os.kill(old, signal.SIGKILL)
            with pytest.raises(OSError):  # the register's connection died with the agent
                payment.result(timeout=30)
        restarted(stack, "supervisor-agent", old)
        body = wait_for(
            lambda: reconciled(stack, "E2E-KILLED"), DELIVERY_TIMEOUT_S, "the reconciliation"
        )
        assert body["reconciled"]["from"] == "unknown"
        assert body["amount"] == SLOW_CUSTOMER and body["paymentStatus"] == "SUCCESS"
        states = wait_for(
            lambda: (s := hipay.states_told("E2E-KILLED")) and "accepted" in s and s,
            DELIVERY_TIMEOUT_S,
            "HiPay's corrected notification",
        )
        assert states[-1] == "accepted"
        # the same order again: the journaled answer, the terminal is not asked twice
        status, again = stack.request(
            "POST", "/", {"amount": SLOW_CUSTOMER, "order_id": "E2E-KILLED"}
        )
        assert status == 200 and again["transactionState"] == "accepted"
        assert terminal_requests(stack) == 1


def test_an_answer_after_the_transaction_timeout_is_unknown_then_accepted(
    tmp_path: Path, hipay: HipayStub
) -> None:
    with start(tmp_path, hipay, transaction_timeout=2) as stack:
        stack.wait_running(PROGRAMS)
        wait_for(lambda: link_up(stack), RESTART_TIMEOUT_S, "the terminal link")
        status, body = stack.request(
            "POST", "/", {"amount": SLOW_CUSTOMER, "order_id": "E2E-LATE"}, timeout_s=30
        )
        assert status == 200, body
        assert body["transactionState"] == "unknown"
        assert body["errorCode"] == "TRANSACTION_TIMEOUT"
        assert "do not ask for the payment again" in body["advice"]
        looked_up = wait_for(
            lambda: reconciled(stack, "E2E-LATE"), DELIVERY_TIMEOUT_S, "the late verdict"
        )
        assert looked_up["reconciled"]["from"] == "unknown"
        states = wait_for(
            lambda: (s := hipay.states_told("E2E-LATE")) and "accepted" in s and s,
            DELIVERY_TIMEOUT_S,
            "HiPay's corrected notification",
        )
        assert states == ["unknown", "accepted"]
        assert terminal_requests(stack) == 1
        status, metrics = stack.request("GET", "/metrics")
        assert 'ecr_transactions_reconciled_total{outcome="accepted"} 1.0' in metrics


def test_cancel_on_concert_v2_stops_waiting_keeps_the_terminal_busy_and_reconciles(
    tmp_path: Path, hipay: HipayStub
) -> None:
    with start(tmp_path, hipay) as stack:
        stack.wait_running(PROGRAMS)
        wait_for(lambda: link_up(stack), RESTART_TIMEOUT_S, "the terminal link")
        with paying(stack, SLOW_CUSTOMER, "E2E-CXL", PAY_STARTED) as payment:
            time.sleep(0.5)  # the terminal has taken the request
            status, cancelled = stack.request("GET", "/cancel")
            assert status == 200, cancelled
            assert cancelled["cancelled"] is True and cancelled["orderId"] == "E2E-CXL"
            assert cancelled["terminalMayStillComplete"] is True
            status, body = payment.result(timeout=30)
        assert status == 200 and body["transactionState"] == "unknown"
        assert body["errorCode"] == "CANCELLED"
        # the terminal is still in the customer's transaction: refused at once, not woken
        # (that would fail TERMINAL_NOT_RESPONDING after the ENQ retries)
        status, busy = stack.request("POST", "/", {"amount": "1.00", "order_id": "E2E-NEXT"})
        assert status == 409 and busy["error"]["code"] == "TERMINAL_BUSY", busy
        wait_for(lambda: reconciled(stack, "E2E-CXL"), DELIVERY_TIMEOUT_S, "the late verdict")
        status, body = stack.request("POST", "/", {"amount": "1.00", "order_id": "E2E-NEXT"})
        assert status == 200 and body["transactionState"] == "accepted", body
