"""The whole connector as a user runs it: ``ecr-connector run --config FILE``.

Real supervisord, the real tp-manager and supervisor agent processes, the real
ZeroMQ channel between them, the simulator on a real pty, a real HiPay stand-in
process over loopback HTTP, a real SQLite journal.  Processes are killed with
SIGKILL the way a crash or the OOM killer would, and every pid is killed at the
end whatever happened (tests/stack.py).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common import paths
from supervisor_agent.api.examples import (
    desktop_example_request,
    kiosk_seed_request,
    pos_example_request,
)
from tests.stack import HipayStub, Stack, free_port, running_stack, wait_for

PROGRAMS = ["tp-manager", "supervisor-agent", "simulator"]
RESTART_TIMEOUT_S = 30.0
DELIVERY_TIMEOUT_S = 60.0
SLOW_CUSTOMER = "1000.03"  # simulator scenario customer-slow (5 s)
NEVER_ANSWERS = "1000.04"  # simulator scenario never-answer


def start(tmp_path: Path, hipay: HipayStub, **overrides: Any) -> Any:
    return running_stack(
        tmp_path,
        hipay_base_url=hipay.url + "/",
        hipay_login=hipay.login,
        hipay_password=hipay.password,
        **overrides,
    )


def link_up(stack: Stack) -> bool:
    status, body = stack.request("GET", "/check", timeout_s=10)
    return status == 200 and body.get("link") == "up"


def restarted(stack: Stack, name: str, old_pid: int) -> int:
    def new_pid() -> int:
        info = stack.process_info()[name]
        return int(info["pid"]) if info["statename"] == "RUNNING" and info["pid"] != old_pid else 0

    return int(wait_for(new_pid, RESTART_TIMEOUT_S, f"supervisord to restart {name}"))


def wait_logged(stack: Stack, program: str, text: str) -> None:
    wait_for(lambda: text in stack.logs(program), RESTART_TIMEOUT_S, f"{text!r} in {program}.log")


@contextlib.contextmanager
def paying(
    stack: Stack, amount: str, order_id: str, until: tuple[str, str]
) -> Iterator[concurrent.futures.Future[tuple[int, Any]]]:
    """A payment posted in the background; yields once ``until`` (program, text) is logged,
    so the test acts while the payment is at the terminal."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        payment = pool.submit(stack.request, "POST", "/", {"amount": amount, "order_id": order_id})
        wait_logged(stack, *until)
        yield payment


PAY_STARTED = ("simulator", '"simulator.concert_v2.request"')  # the terminal has it
NEVER_ANSWERED = ("simulator", '"simulator.concert_v2.never_answer"')


def test_kill_9_of_tp_manager_is_restarted_and_the_next_payment_works(
    tmp_path: Path, hipay: HipayStub
) -> None:
    with start(tmp_path, hipay) as stack:
        stack.wait_running(PROGRAMS)
        wait_for(lambda: link_up(stack), RESTART_TIMEOUT_S, "the terminal link")
        status, body = stack.request("GET", "/config")
        assert (status, body) == (200, {"deviceId": "SN-TEST-0001"})
        run_dir = paths.run_dir(stack.data_dir)  # the control channel: this user only
        assert run_dir.stat().st_mode & 0o777 == 0o700
        for socket_name in ("control.sock", "events.sock"):
            assert (run_dir / socket_name).stat().st_mode & 0o777 == 0o600

        status, body = stack.request("POST", "/", {"amount": "9.99", "order_id": "E2E-1"})
        assert status == 200, body
        assert body["paymentStatus"] == "SUCCESS"
        assert body["notificationHipaySent"] is True
        assert body["numberOfNotificationSent"] == 1
        assert len(hipay.acknowledged("E2E-1")) == 1
        for program in ("tp-manager", "supervisor-agent"):  # each writes its own log file
            own = [json.loads(line) for line in paths.program_log(stack.data_dir, program).open()]
            assert {record["process"] for record in own} == {program}
            assert "E2E-1" in {record.get("order_id") for record in own}
            assert paths.program_err_log(stack.data_dir, program).read_text() == ""
        # the data directory and everything the connector wrote: this user only
        for folder in (stack.data_dir, paths.log_dir(stack.data_dir)):
            assert folder.stat().st_mode & 0o777 == 0o700, folder
        written = [
            *stack.data_dir.glob("journal.sqlite3*"),
            *stack.data_dir.glob("tp-manager-results.sqlite3*"),
            *paths.log_dir(stack.data_dir).glob("*.log"),
        ]
        assert len(written) >= 5
        assert {p.name: p.stat().st_mode & 0o777 for p in written} == dict.fromkeys(
            (p.name for p in written), 0o600
        )

        old = stack.pid_of("tp-manager")
        os.kill(old, signal.SIGKILL)
        new = restarted(stack, "tp-manager", old)
        assert new != old
        wait_for(lambda: link_up(stack), RESTART_TIMEOUT_S, "the link after the restart")

        status, body = stack.request("POST", "/", {"amount": "5.00", "order_id": "E2E-2"})
        assert status == 200, body
        assert body["paymentStatus"] == "SUCCESS"
        assert '"tp_manager.started"' in stack.logs("tp-manager")


def test_a_stop_waits_for_the_payment_in_flight(tmp_path: Path, hipay: HipayStub) -> None:
    with start(tmp_path, hipay) as stack:
        stack.wait_running(PROGRAMS)
        wait_for(lambda: link_up(stack), RESTART_TIMEOUT_S, "the terminal link")
        with (
            paying(stack, SLOW_CUSTOMER, "E2E-SLOW", PAY_STARTED) as payment,
            concurrent.futures.ThreadPoolExecutor(1) as pool,
        ):
            asked = time.monotonic()
            stop = pool.submit(stack.request, "GET", "/stop", timeout_s=60)
            status, body = payment.result(timeout=60)
            paid_after = time.monotonic() - asked
            stop_status, stop_body = stop.result(timeout=60)
        assert status == 200, body
        assert body["paymentStatus"] == "SUCCESS", body  # the payment was not cut off
        assert paid_after > 2.0  # the slow customer took seconds after the stop was asked
        assert stop_status == 200, stop_body
        assert stop_body["stopped"] is True
        assert stack.process_info()["tp-manager"]["statename"] == "STOPPED"
        assert '"tp_manager.stopping.waiting_for_payment"' in stack.logs("tp-manager")


def test_stopping_the_whole_connector_lets_the_payment_finish(
    tmp_path: Path, hipay: HipayStub
) -> None:
    """Ctrl-C or systemctl stop (SIGTERM to supervisord) mid-payment: the agent is stopped
    first and waits, the customer's payment is answered and journaled, then all exit."""
    with start(tmp_path, hipay) as stack:
        stack.wait_running(PROGRAMS)
        wait_for(lambda: link_up(stack), RESTART_TIMEOUT_S, "the terminal link")
        with paying(stack, SLOW_CUSTOMER, "E2E-BYE", PAY_STARTED) as payment:
            stack.process_info()  # remember every pid before the stop
            stack.proc.send_signal(signal.SIGTERM)
            status, body = payment.result(timeout=60)
        assert status == 200, body
        assert body["paymentStatus"] == "SUCCESS", body
        assert stack.proc.wait(timeout=60) == 0
        assert '"agent.stopped"' in stack.logs("supervisor-agent")
        assert len(hipay.acknowledged("E2E-BYE")) == 1  # HiPay heard of it before the exit


def test_seed_bodies_verbatim_through_the_processes(tmp_path: Path, hipay: HipayStub) -> None:
    with start(tmp_path / "desktop", hipay) as stack:
        stack.wait_running(PROGRAMS)
        status, body = stack.request("POST", "/", desktop_example_request())
        assert status == 200, body
        assert body["paymentStatus"] == "SUCCESS"
        assert body["orderId"] == "Order_12345"
        assert body["amount"] == "10,23"
        assert body["notificationHipaySent"] is True
        assert hipay.acknowledged("Order_12345")[0]["body"]["order"]["price"]["amount"] == 1023

    with start(tmp_path / "kiosk", hipay, api_flavour="kiosk") as stack:
        stack.wait_running(PROGRAMS)
        request = kiosk_seed_request()
        request["orderId"] = "Order_kiosk"
        status, body = stack.request("POST", "/", request)
        assert status == 200, body
        item = body[0]
        assert item["status"] == "Success", item
        assert item["amount"] == 100
        assert item["receipt"]["amount"] == "00010000"
        assert item["notificationHipaySent"] is True


def test_kill_9_of_tp_manager_mid_payment_is_unknown_journaled_and_notified(
    tmp_path: Path, hipay: HipayStub
) -> None:
    with start(tmp_path, hipay) as stack:
        stack.wait_running(PROGRAMS)
        wait_for(lambda: link_up(stack), RESTART_TIMEOUT_S, "the terminal link")
        with paying(stack, NEVER_ANSWERS, "E2E-CUT", NEVER_ANSWERED) as payment:
            os.kill(stack.pid_of("tp-manager"), signal.SIGKILL)
            status, body = payment.result(timeout=30)
        assert status == 200, body
        assert body["paymentStatus"] == "FAILURE"
        assert body["errorCode"] == "TP_MANAGER_RESTARTED"

        status, looked_up = stack.request("GET", "/transactions/E2E-CUT")
        assert status == 200, looked_up
        assert looked_up["transactionState"] == "unknown"
        assert "check the terminal's journal" in looked_up["advice"]
        assert looked_up["errorCode"] == "TP_MANAGER_RESTARTED"

        notes = wait_for(lambda: hipay.acknowledged("E2E-CUT"), DELIVERY_TIMEOUT_S, "HiPay")
        result = notes[0]["body"]["terminal_result"]
        assert result["state"] == "unknown"
        assert result["error"]["code"] == "TP_MANAGER_RESTARTED"


def test_kill_9_of_the_agent_with_pending_notifications_delivers_them_after_restart(
    tmp_path: Path, hipay: HipayStub
) -> None:
    with start(tmp_path, hipay) as stack:
        stack.wait_running(PROGRAMS)
        hipay.control(fail_next=1000, status=503)  # HiPay is down
        for order_id, amount in (("E2E-P1", "9.99"), ("E2E-P2", "5.00")):
            status, body = stack.request("POST", "/", {"amount": amount, "order_id": order_id})
            assert status == 200, body
            assert body["paymentStatus"] == "SUCCESS"
            assert body["notificationHipaySent"] is False  # past the 3 s budget, still pending
        status, listing = stack.request("GET", "/notifications")
        assert status == 200
        assert sorted(n["order_id"] for n in listing["notifications"]) == ["E2E-P1", "E2E-P2"]
        assert {n["state"] for n in listing["notifications"]} == {"pending"}

        old = stack.pid_of("supervisor-agent")
        os.kill(old, signal.SIGKILL)
        hipay.control(fail_next=0)  # HiPay is back
        restarted(stack, "supervisor-agent", old)
        for order_id in ("E2E-P1", "E2E-P2"):
            notes = wait_for(
                lambda oid=order_id: hipay.acknowledged(oid), DELIVERY_TIMEOUT_S, order_id
            )
            assert len(notes) == 1
        status, looked_up = stack.request("GET", "/transactions/E2E-P1")
        assert status == 200
        assert looked_up["notificationHipaySent"] is True
        assert looked_up["transactionState"] == "accepted"


def test_kill_9_of_the_agent_mid_payment_is_recovered_as_unknown(
    tmp_path: Path, hipay: HipayStub
) -> None:
    # a short transaction timeout: tp-manager gives the never-answered payment up soon,
    # so the stop at the end of the test does not wait long for it
    with start(tmp_path, hipay, transaction_timeout=5) as stack:
        stack.wait_running(PROGRAMS)
        wait_for(lambda: link_up(stack), RESTART_TIMEOUT_S, "the terminal link")
        with paying(stack, NEVER_ANSWERS, "E2E-AGENT", NEVER_ANSWERED) as payment:
            old = stack.pid_of("supervisor-agent")
            os.kill(old, signal.SIGKILL)
            with pytest.raises(OSError):  # the register's connection died with the agent
                payment.result(timeout=30)
        restarted(stack, "supervisor-agent", old)
        wait_logged(stack, "supervisor-agent", '"agent.journal.recovered_unknown"')
        status, looked_up = wait_for(
            lambda: stack.request("GET", "/transactions/E2E-AGENT"), RESTART_TIMEOUT_S, "the API"
        )
        assert status == 200, looked_up
        assert looked_up["transactionState"] == "unknown"
        assert looked_up["errorCode"] == "INTERRUPTED"
        notes = wait_for(lambda: hipay.acknowledged("E2E-AGENT"), DELIVERY_TIMEOUT_S, "HiPay")
        assert notes[0]["body"]["terminal_result"]["state"] == "unknown"


def test_the_same_order_id_posted_twice_charges_once(tmp_path: Path, hipay: HipayStub) -> None:
    with start(tmp_path, hipay) as stack:
        stack.wait_running(PROGRAMS)
        first = stack.request("POST", "/", {"amount": "12.34", "order_id": "E2E-ONCE"})
        second = stack.request("POST", "/", {"amount": "12.34", "order_id": "E2E-ONCE"})
        assert first[0] == second[0] == 200
        assert first[1]["paymentStatus"] == second[1]["paymentStatus"] == "SUCCESS"
        requests = stack.logs("simulator").count('"simulator.concert_v2.request"')
        assert requests == 1  # the terminal saw one payment
        assert len(hipay.acknowledged("E2E-ONCE")) == 1  # HiPay heard of one


def test_concert_v3_terminal_through_the_api(tmp_path: Path, hipay: HipayStub) -> None:
    """terminal_protocol: concert-v3 with the simulator on loopback TCP, every route's path."""
    port = free_port()
    with start(
        tmp_path,
        hipay,
        serial_port=None,
        terminal_protocol="concert-v3",
        terminal_host="simulator",
        terminal_port=port,
        contract={"nfc": {"payment_application": "00B", "merchant_id": "1234568", "rank": "001"}},
    ) as stack:
        stack.wait_running(PROGRAMS)
        wait_for(lambda: link_up(stack), RESTART_TIMEOUT_S, "the Concert V3 terminal")
        status, body = stack.request("GET", "/check")
        assert body["protocol"] == "concert-v3"
        status, version = stack.request("GET", "/version")
        assert version["version"].split("-")[1] == "concertv3"

        status, body = stack.request("POST", "/", {"amount": "9.99", "order_id": "V3-1"})
        assert status == 200, body
        assert body["paymentStatus"] == "SUCCESS"
        assert body["notificationHipaySent"] is True
        sent = hipay.acknowledged("V3-1")[0]["body"]
        assert sent["pos_technical_info"]["protocol"] == "ConcertV3.1"
        assert sent["terminal_result"]["protocol"] == "concert-v3"

        status, body = stack.request("POST", "/", {"amount": "1000.01", "order_id": "V3-2"})
        assert status == 200
        assert (body["paymentStatus"], body["errorCode"]) == ("FAILURE", "REFUSED")

        order = pos_example_request()
        order["order"]["order_id"] = "V3-POS"
        tech = order["pos_technical_info"]
        tech["protocol"] = "ConcertV3.2"
        tech["host_information"] = {"host": "127.0.0.1", "port": port}
        status, body = stack.request("POST", "/v1/connector/order", order)
        assert status == 200, body
        assert body["paymentStatus"] == "Success"
        assert "0302" in stack.logged("simulator", "version")  # ConcertV3.2 for this order

        tech["host_information"] = {"host": "192.0.2.10", "port": 8888}
        order["order"]["order_id"] = "V3-ELSEWHERE"
        status, body = stack.request("POST", "/v1/connector/order", order)
        assert status == 403
        assert body["error"]["code"] == "TERMINAL_NOT_ALLOWED"
        status, _ = stack.request("GET", "/transactions/V3-ELSEWHERE")
        assert status == 404  # refused before the journal: nothing was written
