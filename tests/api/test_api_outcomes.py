"""Terminal outcomes -> errorCode, one payment at a time (409), and the journal /
notifier seam."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from common.commands.cancel import CancelReply
from common.messages import Reply
from supervisor_agent.api import error_codes
from tests.api.conftest import RecordingTpManager, payment_result, serve_api

BUSY_ANSWER_MAX_S = 1.0


def failing(code: str, message: str = "from tp-manager"):
    async def responder(request):
        return Reply.failure(request.id, code, message)

    return responder


def answering(**overrides: Any):
    async def responder(request):
        return Reply.success(request.id, payment_result(request.properties, **overrides))

    return responder


async def test_terminal_verdicts_map_to_error_codes(tpm: RecordingTpManager) -> None:
    cases = [
        (answering(status="refused", failure_reason="refused"), "REFUSED"),
        (answering(status="refused"), "REFUSED"),
        (answering(status="not_verified"), "NOT_VERIFIED"),
        (answering(status="refused", failure_reason="abandoned"), "ABANDONED"),
        (answering(status="refused", failure_reason="timeout"), "TERMINAL_TIMEOUT"),
        (answering(status="refused", failure_reason="forbidden"), "FORBIDDEN"),
        (answering(status="refused", failure_reason="format_error"), "FORMAT_ERROR"),
        (failing("TRANSACTION_TIMEOUT"), "TRANSACTION_TIMEOUT"),
        (failing("LINK_DOWN"), "LINK_DOWN"),
        (failing("LINK_LOST"), "LINK_LOST"),
        (failing("CANCELLED"), "CANCELLED"),
        (failing("TERMINAL_NOT_RESPONDING"), "TERMINAL_NOT_RESPONDING"),
        (failing("TP_MANAGER_RESTARTED"), "TP_MANAGER_RESTARTED"),
    ]
    async with serve_api(tpm) as desktop, serve_api(tpm, api_flavour="kiosk") as kiosk:
        for number, (responder, code) in enumerate(cases):
            tpm.responders["pay"] = responder
            status, body, _ = await desktop.post("/", {"amount": "1.00"})
            assert status == 200, (code, body)
            assert body["paymentStatus"] == "FAILURE"
            assert body["errorCode"] == code
            assert body["errorDescription"].startswith(error_codes.describe(code))
            status, body, _ = await kiosk.post("/", {"amount": "1.00"})
            assert status == 200
            assert body[0]["status"] == "Failure"
            assert body[0]["error"]["errorCode"] == code
            status, body, _ = await desktop.post(
                "/v1/connector/order",
                {
                    "order": {"order_id": f"O-{number}", "price": {"amount": 100}},
                    "pos_technical_info": {"terminal_transaction_display": {}},
                },
            )
            assert status == 200
            assert body["paymentStatus"] == "Failure"
            assert body["error"]["errorCode"] == code


async def test_tp_manager_down_is_failure_unavailable(tpm: RecordingTpManager) -> None:
    async with serve_api(tpm) as api:
        await tpm.stop()  # the real peer goes away: the client cannot send
        status, body, _ = await api.post("/", {"amount": "1.00"})
        assert status == 200
        assert body["paymentStatus"] == "FAILURE"
        assert body["errorCode"] == "TP_MANAGER_UNAVAILABLE"
        status, body, _ = await api.get("/check")
        assert status == 503
        assert body["error"]["code"] == "TP_MANAGER_UNAVAILABLE"


async def test_second_payment_while_one_in_flight_is_409_at_once(tpm: RecordingTpManager) -> None:
    release = asyncio.Event()

    async def held(request):
        await asyncio.wait_for(release.wait(), 5)
        return Reply.success(request.id, payment_result(request.properties))

    tpm.responders["pay"] = held
    async with serve_api(tpm) as api:
        first = asyncio.create_task(api.post("/", {"amount": "1.00", "order_id": "A"}))
        for _ in range(100):  # until tp-manager holds the first payment
            if tpm.commands():
                break
            await asyncio.sleep(0.01)
        assert tpm.commands() == ["pay"]
        started = time.monotonic()
        for path, body in [
            ("/", {"amount": "2.00", "order_id": "B"}),
            (
                "/v1/connector/order",
                {
                    "order": {"order_id": "C", "price": {"amount": 100}},
                    "pos_technical_info": {"terminal_transaction_display": {}},
                },
            ),
        ]:
            status, answer, _ = await api.post(path, body)
            assert status == 409
            assert answer["error"]["code"] == "TERMINAL_BUSY"
        assert time.monotonic() - started < BUSY_ANSWER_MAX_S
        assert tpm.commands() == ["pay"]  # the refused ones never reached tp-manager
        release.set()
        status, answer, _ = await first
        assert status == 200 and answer["orderId"] == "A"
        status, answer, _ = await api.post("/", {"amount": "3.00"})
        assert status == 200
    assert tpm.commands() == ["pay", "pay"]


async def test_busy_from_tp_manager_is_409(tpm: RecordingTpManager) -> None:
    tpm.responders["pay"] = failing("TERMINAL_BUSY", "a transaction is already in flight")
    async with serve_api(tpm, api_flavour="kiosk") as api:
        status, body, _ = await api.post("/", {"amount": 1})
    assert status == 409
    assert body["error"]["code"] == "TERMINAL_BUSY"


async def test_cancel_aborts_the_payment_in_flight(tpm: RecordingTpManager) -> None:
    cancelled = asyncio.Event()

    async def pay(request):
        await asyncio.wait_for(cancelled.wait(), 5)
        return Reply.failure(request.id, "CANCELLED", "cancelled by the register")

    async def cancel(request):
        cancelled.set()
        reply = CancelReply(cancelled=True, order_id="C-1", terminal_may_still_complete=True)
        return Reply.success(request.id, reply.to_wire())

    tpm.responders.update(pay=pay, cancel=cancel)
    async with serve_api(tpm) as api:
        payment = asyncio.create_task(api.post("/", {"amount": "1.00", "order_id": "C-1"}))
        for _ in range(100):
            if tpm.commands():
                break
            await asyncio.sleep(0.01)
        status, body, _ = await api.get("/cancel")
        assert status == 200
        assert body["cancelled"] is True
        assert body["orderId"] == "C-1"
        assert body["terminalMayStillComplete"] is True
        assert "may still complete" in body["message"]
        status, body, _ = await payment
        assert status == 200
        assert body["paymentStatus"] == "FAILURE"
        assert body["errorCode"] == "CANCELLED"
        assert body["transactionState"] == "unknown"  # the terminal may still complete it
