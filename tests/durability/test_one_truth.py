"""One truth per payment: every answer is the journal row, and late verdicts come home.

The API wired as the agent wires it (real SQLite journal, real notifier, the real
HiPay stub over loopback) with a real ZeroMQ ROUTER in tp-manager's place that
records every command, so "the terminal was asked once" is a fact.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from common.commands.ack import AckReply, AckRequest
from common.commands.results import PendingResult, ResultsReply
from common.messages import Reply, Request
from common.payment import PaymentResult
from supervisor_agent.api.examples import pos_example_request
from supervisor_agent.client import TerminalClient
from supervisor_agent.journal import TxState
from supervisor_agent.reconciler import Reconciler
from tests.api.conftest import RecordingTpManager, payment_result
from tests.durability.conftest import Stub
from tests.durability.test_api_journal import wired


def pays(tpm: RecordingTpManager) -> list[Request]:
    return [r for r in tpm.received if r.command == "pay"]


async def test_an_order_id_reposted_with_another_payment_is_refused_and_changes_nothing(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    async with wired(tpm, stub, tmp_path) as (api, journal, _):
        status, first, _ = await api.post("/", {"amount": "9.99", "order_id": "SAME-1"})
        assert status == 200 and first["transactionState"] == "accepted"
        status, body, _ = await api.post("/", {"amount": "50.00", "order_id": "SAME-1"})
        assert status == 409, body
        assert body["error"]["code"] == "ORDER_ID_REUSED"
        assert body["error"]["details"]["fields"] == ["amount"]
        assert body["error"]["details"]["journaled"] == {"amount": 999}
        # the exact same payment again: the first answer, from the journal
        status, again, _ = await api.post("/", {"amount": "9.99", "order_id": "SAME-1"})
        assert status == 200
        assert {k: v for k, v in again.items() if k != "notificationHipaySent"} == {
            k: v for k, v in first.items() if k != "notificationHipaySent"
        }
        status, looked_up, _ = await api.get("/transactions/SAME-1")
        assert looked_up["amount"] == "9.99" and looked_up["transactionState"] == "accepted"
        record = journal.get("SAME-1")
        assert record is not None and record.request["amount"] == 999
    assert [p.properties["amount"] for p in pays(tpm)] == [999]


async def test_the_pos_route_refuses_a_reused_order_id_naming_every_field(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    async with wired(tpm, stub, tmp_path) as (api, _, _):
        first = pos_example_request()
        status, body, _ = await api.post("/v1/connector/order", first)
        assert status == 200 and body["paymentStatus"] == "Success"
        other = pos_example_request()
        other["order"]["price"].update(amount=7777, currency="USD", basket=[])
        other["order"]["transaction_type"] = "Credit"
        status, body, _ = await api.post("/v1/connector/order", other)
        assert status == 409
        assert body["error"]["code"] == "ORDER_ID_REUSED"
        assert body["error"]["details"]["fields"] == ["amount", "currency", "transaction_type"]
    assert len(pays(tpm)) == 1
    sent = await stub.received()
    assert [n["body"]["order"]["price"]["amount"] for n in sent] == [899]


async def test_an_order_id_reposted_in_another_api_shape_is_refused_not_answered_in_the_first(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    """The same payment (1.00 EUR debit on the configured terminal) posted first through the
    desktop route, then through the POS API route, and the other way round: an answer is
    rendered from the journaled echo, which is in the first route's shape, so the second
    route cannot answer in its own; it refuses, naming the shape, and nothing is sent.
    (It was a 500 INTERNAL_ERROR on the desktop route, and a desktop body on the POS one.)"""
    pos_order = pos_example_request()
    pos_order["order"]["price"] = {"amount": 100}
    async with wired(tpm, stub, tmp_path) as (api, _, _):
        for first, second in (("/", "/v1/connector/order"), ("/v1/connector/order", "/")):
            order_id = f"SHAPE-{len(pays(tpm))}"
            pos_order["order"]["order_id"] = order_id
            bodies = {
                "/": {"amount": "1.00", "order_id": order_id},
                "/v1/connector/order": pos_order,
            }
            status, body, _ = await api.post(first, bodies[first])
            assert status == 200 and body["transactionState"] == "accepted", body
            status, body, _ = await api.post(second, bodies[second])
            assert status == 409, body
            assert body["error"]["code"] == "ORDER_ID_REUSED"
            assert body["error"]["details"]["fields"] == ["flavour"]
            journaled = "desktop" if first == "/" else "pos"
            assert body["error"]["details"]["journaled"] == {"flavour": journaled}
            status, body, _ = await api.post(first, bodies[first])  # its own route: a replay
            assert status == 200 and body["transactionState"] == "accepted", body
    assert len(pays(tpm)) == 2


async def test_a_repost_while_at_the_terminal_is_in_progress_and_another_order_is_busy(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    release, at_terminal = asyncio.Event(), asyncio.Event()

    async def slow_pay(request: Request) -> Reply:
        at_terminal.set()
        await asyncio.wait_for(release.wait(), 10)
        return Reply.success(request.id, payment_result(request.properties))

    tpm.responders["pay"] = slow_pay
    async with wired(tpm, stub, tmp_path) as (api, journal, _):
        first = asyncio.create_task(api.post("/", {"amount": "1.00", "order_id": "HELD"}))
        await asyncio.wait_for(at_terminal.wait(), 5)
        status, body, _ = await api.post("/", {"amount": "1.00", "order_id": "HELD"})
        assert (status, body["error"]["code"]) == (409, "IN_PROGRESS")
        status, body, _ = await api.post("/", {"amount": "2.00", "order_id": "OTHER"})
        assert (status, body["error"]["code"]) == (409, "TERMINAL_BUSY")
        assert journal.get("OTHER") is None  # refused before anything was written
        release.set()
        status, body, _ = await first
        assert status == 200 and body["transactionState"] == "accepted"
    assert [p.properties["order_id"] for p in pays(tpm)] == ["HELD"]


async def test_a_kiosk_receipt_is_the_same_at_every_read(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    async with wired(tpm, stub, tmp_path, api_flavour="kiosk") as (api, _, _):
        status, first, _ = await api.post("/", {"amount": 12.5, "orderId": "K-RECEIPT"})
        assert status == 200 and first[0]["status"] == "Success"
        await asyncio.sleep(1.1)  # the clock has moved past the receipt's second
        _, looked_up, _ = await api.get("/transactions/K-RECEIPT")
        _, replayed, _ = await api.post("/", {"amount": 12.5, "orderId": "K-RECEIPT"})
    for later in (looked_up[0], replayed[0]):
        assert later["receipt"] == first[0]["receipt"]
        assert later["ticket"] == first[0]["ticket"]


async def test_every_finished_payment_is_counted_failed_ones_too(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    async def link_down(request: Request) -> Reply:
        return Reply.failure(request.id, "LINK_DOWN", "serial port lost")

    tpm.responders["pay"] = link_down
    async with wired(tpm, stub, tmp_path) as (api, _, _):
        status, body, _ = await api.post("/", {"amount": "1.00", "order_id": "F-1"})
        assert status == 200 and body["transactionState"] == "failed"
        _, text, _ = await api.get("/metrics")
    assert 'ecr_transactions_total{outcome="failed"} 1.0' in text


async def test_an_unknown_outcome_is_said_plainly_in_every_flavour(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    async def times_out(request: Request) -> Reply:
        return Reply.failure(request.id, "TRANSACTION_TIMEOUT", "no result within 120 s")

    tpm.responders["pay"] = times_out
    async with wired(tpm, stub, tmp_path, api_flavour="kiosk") as (api, _, _):
        _, kiosk, _ = await api.post("/", {"amount": 3, "orderId": "U-K"})
        _, pos, _ = await api.post("/v1/connector/order", pos_example_request())
    for body in (kiosk[0], pos):
        assert body["transactionState"] == "unknown"
        assert "do not ask for the payment again" in body["advice"]


async def test_a_basket_price_in_fractional_minor_units_is_never_truncated(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    request = pos_example_request()
    request["order"]["price"]["basket"][0]["unit_price"] = 8.99  # totals still add up
    async with wired(tpm, stub, tmp_path) as (api, journal, _):
        status, body, _ = await api.post("/v1/connector/order", request)
        assert status == 200, body
        assert body["order"]["price"]["basket"] == []
        assert "order.price.basket[0].unit_price" in body["warnings"][0]
        record = journal.get(request["order"]["order_id"])
        assert record is not None and record.request["basket"] == []
    sent = await stub.received()
    assert "basket" not in sent[0]["body"]["order"]["price"]


async def test_a_late_verdict_reconciles_the_journal_and_hipay(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    """tp-manager gave up (timeout), then the terminal accepted: the verdict comes home."""
    held: list[PendingResult] = []
    acked: list[str] = []

    async def times_out(request: Request) -> Reply:
        props = request.properties
        verdict = PaymentResult.from_dict(payment_result(props))
        held.append(PendingResult(props["order_id"], verdict, time.time(), late=True))
        return Reply.failure(request.id, "TRANSACTION_TIMEOUT", "no result within 120 s")

    async def results(request: Request) -> Reply:
        return Reply.success(request.id, ResultsReply(list(held)).to_wire())

    async def ack(request: Request) -> Reply:
        ids = AckRequest.from_wire(request.properties).order_ids
        acked.extend(ids)
        held[:] = [h for h in held if h.order_id not in ids]
        return Reply.success(request.id, AckReply(len(ids)).to_wire())

    tpm.responders.update(pay=times_out, results=results, ack=ack)
    async with wired(tpm, stub, tmp_path) as (api, journal, metrics):
        status, body, _ = await api.post("/", {"amount": "4.20", "order_id": "LATE-1"})
        assert status == 200 and body["transactionState"] == "unknown"
        client = TerminalClient(tpm.endpoint)
        await client.start()
        try:
            reconciler = Reconciler(client, journal, poll_s=60)
            assert await reconciler.collect() == 1
            assert await reconciler.collect() == 0  # acknowledged: nothing left
        finally:
            await client.close()
        assert acked == ["LATE-1"]
        record = journal.get("LATE-1")
        assert record is not None and record.state is TxState.ACCEPTED
        assert record.reconciled_from == "unknown" and record.reconciled_at is not None
        status, looked_up, _ = await api.get("/transactions/LATE-1")
        assert looked_up["transactionState"] == "accepted"
        assert looked_up["paymentStatus"] == "SUCCESS"
        assert looked_up["reconciled"]["from"] == "unknown"
        assert "advice" not in looked_up
        for _ in range(100):  # the corrected notification goes out through the outbox
            sent = [n for n in await stub.received() if n["order_id"] == "LATE-1"]
            if len(sent) == 2:
                break
            await asyncio.sleep(0.05)
        for _ in range(100):  # and is written down as delivered
            status, looked_up, _ = await api.get("/transactions/LATE-1")
            if looked_up["notificationHipaySent"]:
                break
            await asyncio.sleep(0.05)
        # HiPay got two notifications of this payment, the second one "to ensure the
        # financial reconciliation" (the seed's reason for a 2): the answer says so
        assert looked_up["notificationHipaySent"] is True
        assert looked_up["numberOfNotificationSent"] == 2
    states = [n["body"]["terminal_result"]["state"] for n in sent]
    assert states == ["unknown", "accepted"]
    assert sent[1]["body"]["terminal_result"]["reconciled_from"] == "unknown"
    assert len({n["idempotency_key"] for n in sent}) == 2
    assert len(pays(tpm)) == 1
    assert metrics.snapshot()["transactions"]["unknown"] == 1
