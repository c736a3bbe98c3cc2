"""The HiPay stub itself, in-process and as a command, and the payload it is sent."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from supervisor_agent import hipay_payload
from supervisor_agent.hipay_payload import TERMINAL_RESULT_KEY, build_root_order

from .conftest import CONTEXT, Stub, accepted_result, canonical_request

REPO = Path(__file__).resolve().parents[2]


def _basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


AUTH = _basic("stub-login", "stub-password")


async def _post(stub: Stub, auth: dict[str, str] | None, body: object) -> int:
    async with stub.session.post(
        f"{stub.url}/v1/connector/order",
        json=body,
        headers={"Idempotency-Key": "k-1", **(auth or {})},
    ) as resp:
        return resp.status


async def test_auth_recording_and_clearing(stub: Stub) -> None:
    assert await _post(stub, None, {"order": {"order_id": "A"}}) == 401
    assert await _post(stub, _basic("stub-login", "bad"), {}) == 401
    assert await _post(stub, AUTH, {"order": {"order_id": "A"}}) == 200
    received = await stub.received()
    assert [r["outcome"] for r in received] == ["unauthorized", "unauthorized", "acknowledged"]
    assert received[2]["idempotency_key"] == "k-1"
    assert received[2]["order_id"] == "A"
    assert received[2]["body"] == {"order": {"order_id": "A"}}
    await stub.clear()
    assert await stub.received() == []


async def test_control_fail_reject_delay_drop(stub: Stub) -> None:
    state = await stub.control(fail_next=2, status=500, retry_after=7, reject_next=1)
    assert (state["fail_next"], state["reject_next"]) == (2, 1)
    async with stub.session.post(f"{stub.url}/v1/connector/order", json={}, headers=AUTH) as resp:
        assert resp.status == 400  # reject before fail
    for _ in range(2):
        async with stub.session.post(
            f"{stub.url}/v1/connector/order", json={}, headers=AUTH
        ) as resp:
            assert resp.status == 500
            assert resp.headers["Retry-After"] == "7"
            assert (await resp.json())["error"]["code"] == "500"
    assert await _post(stub, AUTH, {}) == 200

    await stub.control(delay_s=0.3)
    started = time.monotonic()
    assert await _post(stub, AUTH, {}) == 200
    assert time.monotonic() - started >= 0.3

    await stub.control(drop_next=1)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await _post(stub, AUTH, {})
    outcomes = [r["outcome"] for r in await stub.received()]
    assert outcomes == ["rejected", "failed", "failed", "acknowledged", "acknowledged", "dropped"]
    assert (await stub.control())["drop_next"] == 0


async def test_bad_control_is_refused(stub: Stub) -> None:
    async with stub.session.post(f"{stub.url}/control", json={"fail_next": "many"}) as resp:
        assert resp.status == 400


def test_command_prints_ready_and_stops_on_sigterm(tmp_path: Path) -> None:
    """``ecr-connector hipay-stub --port 0``, through its configure()/main() pair."""
    code = (
        "import argparse, sys\n"
        "from supervisor_agent import hipay_stub\n"
        "p = argparse.ArgumentParser(); hipay_stub.configure(p)\n"
        "sys.exit(hipay_stub.main(p.parse_args(sys.argv[1:])))\n"
    )
    log = tmp_path / "stub.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "--port", "0", "--login", "L", "--password", "P"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    try:
        deadline = time.monotonic() + 10
        match = None
        while match is None and time.monotonic() < deadline and proc.poll() is None:
            match = re.search(rb"READY http=127\.0\.0\.1:(\d+)", log.read_bytes())
            time.sleep(0.05)
        assert match is not None, log.read_text()
        port = int(match.group(1))
        assert port > 0
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_payload_is_a_pos_api_root_order_with_the_terminal_result() -> None:
    request = canonical_request("ORDER_1")
    request["force_authorization"] = True
    result = accepted_result().to_dict()
    result["report"] = "RECEIPT-TEXT"
    body = build_root_order(
        request,
        state="accepted",
        result=result,
        error_code=None,
        error_message=None,
        context=CONTEXT,
        finished_at="2026-01-01T00:00:00.000Z",
    )
    order = body["order"]
    assert order["order_id"] == "ORDER_1"
    assert order["transaction_type"] == "Debit"
    assert order["initialize_payment_terminal"] is False
    assert order["price"]["amount"] == 899 and order["price"]["currency"] == "EUR"
    assert order["price"]["basket"][0]["total_amount"] == 899
    assert order["custom_data"] == {"shop": "Opera", "event": 42}
    assert body["customer"] == {
        "customer_id": "283749291",
        "first_name": "John",
        "last_name": "Doe",
        "email": "j@d.eu",
    }
    tech = body["pos_technical_info"]
    assert tech["push_to"] == "ECR"
    assert tech["protocol"] == "ConcertV3.1"
    assert tech["device_information"] == {"serial_number": "SN-TEST-0001"}
    assert tech["terminal_transaction_display"]["contract_array"] == [
        {"merchant_contract": "1234567", "rank": "001", "payment_application": "001"}
    ]
    assert tech["force_authorization"] is True
    terminal = body[TERMINAL_RESULT_KEY]
    assert terminal["status"] == "accepted"
    assert terminal["authorization_number"] == "136967"
    assert terminal["masked_pan"] == "497010######1234"
    assert terminal["payment_application"] == "00B"
    assert terminal["receipt"] == "RECEIPT-TEXT"
    assert terminal["error"] is None
    assert "raw" not in terminal and "card_expiry" not in terminal


def test_idempotency_key_is_stable_and_tracks_the_terminal_data() -> None:
    result = accepted_result().to_dict()
    key = hipay_payload.idempotency_key("ORDER 1/é", "accepted", result)
    assert key == hipay_payload.idempotency_key("ORDER 1/é", "accepted", dict(result))
    assert key.isascii() and " " not in key and key.startswith("ecr-ORDER%201%2F%C3%A9-")
    other = dict(result, authorization_number="000001")
    assert key != hipay_payload.idempotency_key("ORDER 1/é", "accepted", other)
    assert key != hipay_payload.idempotency_key("ORDER 1/é", "unknown", None)
    long_key = hipay_payload.idempotency_key("X" * 500, "accepted", result)
    assert len(long_key) < 64
