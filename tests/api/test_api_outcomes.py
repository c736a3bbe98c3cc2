"""Terminal outcomes -> errorCode, one payment at a time (409), and the journal /
notifier seam."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from common.messages import Reply
from supervisor_agent.api import error_codes
from supervisor_agent.api.payment import JournalEntry, JournalState, TerminalOutcome
from supervisor_agent.notifier import DeliveryStatus
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
        for responder, code in cases:
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
                    "order": {"order_id": "O-1", "price": {"amount": 100}},
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
        return Reply.success(request.id, {"cancelled": True})

    tpm.responders.update(pay=pay, cancel=cancel)
    async with serve_api(tpm) as api:
        payment = asyncio.create_task(api.post("/", {"amount": "1.00"}))
        for _ in range(100):
            if tpm.commands():
                break
            await asyncio.sleep(0.01)
        status, body, _ = await api.get("/cancel")
        assert status == 200
        assert body == {"message": "transaction cancelled", "cancelled": True}
        status, body, _ = await payment
        assert status == 200
        assert body["paymentStatus"] == "FAILURE"
        assert body["errorCode"] == "CANCELLED"


class MemoryJournal:
    """An in-memory PaymentJournal, to exercise the seam the real journal plugs into."""

    def __init__(self) -> None:
        self.entries: dict[str, JournalEntry] = {}
        self.begun: list[tuple[str, dict]] = []
        self.at_terminal_calls: list[str] = []

    async def begin(self, order_id: str, request: dict) -> JournalEntry:
        self.begun.append((order_id, request))
        entry = self.entries.get(order_id, JournalEntry(JournalState.NEW))
        if entry.state is JournalState.NEW:
            self.entries[order_id] = JournalEntry(JournalState.IN_PROGRESS)
        return entry

    async def at_terminal(self, order_id: str) -> None:
        self.at_terminal_calls.append(order_id)

    async def finish(self, order_id: str, outcome: TerminalOutcome) -> None:
        self.entries[order_id] = JournalEntry(JournalState.DONE, outcome)


class CountingNotifier:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    async def deliver_now(self, order_id: str, budget_s: float) -> DeliveryStatus:
        self.calls.append((order_id, budget_s))
        return DeliveryStatus(sent=True, count=2)


async def test_journal_and_notifier_seam(tpm: RecordingTpManager) -> None:
    journal, notifier = MemoryJournal(), CountingNotifier()
    async with serve_api(tpm, journal=journal, notifier=notifier) as api:
        status, body, _ = await api.post("/", {"amount": "1.00", "order_id": "J-1"})
        assert status == 200
        assert body["notificationHipaySent"] is True
        assert body["numberOfNotificationSent"] == 2
        assert journal.begun[0][0] == "J-1"
        assert journal.begun[0][1]["amount_minor"] == 100
        assert journal.entries["J-1"].state is JournalState.DONE
        # the same order again: the stored outcome, the terminal is not asked twice
        status, again, _ = await api.post("/", {"amount": "1.00", "order_id": "J-1"})
        assert status == 200
        assert again["paymentStatus"] == "SUCCESS"
        assert tpm.commands() == ["pay"]
        # an order the journal says is in progress: 409 IN_PROGRESS, nothing sent
        journal.entries["J-2"] = JournalEntry(JournalState.IN_PROGRESS)
        status, body, _ = await api.post("/", {"amount": "1.00", "order_id": "J-2"})
        assert status == 409
        assert body["error"]["code"] == "IN_PROGRESS"
        assert body["error"]["details"]["path"] == "order_id"
    assert tpm.commands() == ["pay"]
    assert [c[0] for c in notifier.calls] == ["J-1", "J-1"]
    assert notifier.calls[0][1] > 0


async def test_rejected_requests_never_reach_the_journal(tpm: RecordingTpManager) -> None:
    journal = MemoryJournal()
    async with serve_api(tpm, journal=journal) as api:
        status, _, _ = await api.post("/", {"amount": "abc", "order_id": "X"})
        assert status == 400
    assert journal.begun == []
    assert tpm.received == []
