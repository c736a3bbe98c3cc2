"""The API wired as the agent wires it: the real SQLite journal, the real notifier
sending to the real HiPay stub over loopback, a real ZeroMQ peer in tp-manager's place
that records every command it receives (so "the terminal was asked once" is a fact)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from common.messages import Reply, Request
from supervisor_agent.api.examples import pos_example_request
from supervisor_agent.journal import JOURNAL_FILENAME, Journal, TxState
from supervisor_agent.metrics import Metrics
from supervisor_agent.notifier import Notifier
from tests.api.conftest import Api, RecordingTpManager, payment_result, serve_api
from tests.durability.conftest import CONTEXT, FAST, Stub
from tests.durability.test_notifier import delivered, eventually

BUDGET_S = 2.0


@asynccontextmanager
async def wired(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[Api, Journal, Metrics]]:
    metrics = Metrics()
    journal = Journal.open(
        tmp_path, context=CONTEXT, on_finished=lambda s: metrics.transaction_finished(str(s))
    )
    notifier = Notifier(journal.outbox, stub.endpoint(), policy=FAST, metrics=metrics)
    await notifier.start()
    try:
        async with serve_api(
            tpm,
            journal=journal,
            notifier=notifier,
            metrics=metrics,
            notification_budget_s=BUDGET_S,
            **overrides,
        ) as api:
            yield api, journal, metrics
    finally:
        await notifier.stop()
        journal.close()


async def test_an_order_id_posted_twice_is_paid_once_and_notified_once(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    async with wired(tpm, stub, tmp_path) as (api, journal, _):
        status, first, _ = await api.post("/", {"amount": "8.99", "order_id": "ONCE-1"})
        assert status == 200, first
        assert first["paymentStatus"] == "SUCCESS"
        assert first["notificationHipaySent"] is True
        assert first["numberOfNotificationSent"] == 1
        status, again, _ = await api.post("/", {"amount": "8.99", "order_id": "ONCE-1"})
        assert status == 200
        assert again["paymentStatus"] == "SUCCESS"
        assert again["notificationHipaySent"] is True
        record = journal.get("ONCE-1")
        assert record is not None and record.state is TxState.ACCEPTED
    assert tpm.commands() == ["pay"]
    delivered = [n for n in await stub.received() if n["order_id"] == "ONCE-1"]
    assert len(delivered) == 1
    assert delivered[0]["body"]["order"]["price"]["amount"] == 899


async def test_a_concurrent_post_of_the_same_order_is_refused_at_once(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    release, at_terminal = asyncio.Event(), asyncio.Event()

    async def slow_pay(request: Request) -> Reply:
        at_terminal.set()
        await release.wait()
        return Reply.success(request.id, payment_result(request.properties))

    tpm.responders["pay"] = slow_pay
    async with wired(tpm, stub, tmp_path) as (api, _, _):
        first = asyncio.create_task(api.post("/", {"amount": "1.00", "order_id": "DUP"}))
        await asyncio.wait_for(at_terminal.wait(), 5)
        status, body, _ = await api.post("/", {"amount": "1.00", "order_id": "DUP"})
        assert status == 409
        assert body["error"]["code"] in ("TERMINAL_BUSY", "IN_PROGRESS")
        status, body, _ = await api.get("/transactions/DUP")
        assert status == 409 and body["error"]["code"] == "IN_PROGRESS"
        release.set()
        status, body, _ = await first
        assert status == 200 and body["paymentStatus"] == "SUCCESS"
    assert tpm.commands() == ["pay"]


async def test_lookup_answers_in_the_shape_the_order_was_paid_in(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    async with wired(tpm, stub, tmp_path / "desktop") as (api, _, _):
        _, paid, _ = await api.post("/", {"amount": "10,23", "order_id": "D-1", "cart": {}})
        status, looked_up, _ = await api.get("/transactions/D-1")
        assert status == 200
        assert looked_up["transactionState"] == "accepted"
        assert "advice" not in looked_up
        for key in ("paymentStatus", "amount", "currency", "orderId", "transationType", "cart"):
            assert looked_up[key] == paid[key], key
        assert looked_up["notificationHipaySent"] is True
        status, missing, _ = await api.get("/transactions/NOPE")
        assert status == 404
        assert missing["error"]["code"] == "ORDER_NOT_FOUND"
        assert missing["error"]["details"]["path"] == "order_id"

    async with wired(tpm, stub, tmp_path / "kiosk", api_flavour="kiosk") as (api, _, _):
        _, paid, _ = await api.post("/", {"amount": 100, "orderId": "K-1"})
        status, looked_up, _ = await api.get("/transactions/K-1")
        assert status == 200
        assert isinstance(looked_up, list) and len(looked_up) == 1
        assert looked_up[0]["status"] == "Success"
        assert looked_up[0]["amount"] == 100
        assert looked_up[0]["receipt"]["amount"] == paid[0]["receipt"]["amount"]
        assert looked_up[0]["transactionState"] == "accepted"


async def test_an_unknown_outcome_is_journaled_notified_and_explained(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    async def times_out(request: Request) -> Reply:
        return Reply.failure(request.id, "TRANSACTION_TIMEOUT", "no result within 120 s")

    tpm.responders["pay"] = times_out
    async with wired(tpm, stub, tmp_path) as (api, journal, _):
        status, body, _ = await api.post("/", {"amount": "3.00", "order_id": "U-1"})
        assert status == 200
        assert body["paymentStatus"] == "FAILURE"
        assert body["errorCode"] == "TRANSACTION_TIMEOUT"
        assert body["notificationHipaySent"] is True
        assert body["transactionState"] == "unknown"  # said plainly in the answer itself
        assert "do not ask for the payment again" in body["advice"]
        status, looked_up, _ = await api.get("/transactions/U-1")
        assert looked_up["transactionState"] == "unknown"
        assert "check the terminal's journal" in looked_up["advice"]
        record = journal.get("U-1")
        assert record is not None and record.state is TxState.UNKNOWN
    sent = [n for n in await stub.received() if n["order_id"] == "U-1"]
    assert sent[0]["body"]["terminal_result"]["state"] == "unknown"


async def test_a_payment_that_never_reached_the_terminal_may_be_posted_again(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    async def link_down(request: Request) -> Reply:
        return Reply.failure(request.id, "LINK_DOWN", "serial link is down")

    tpm.responders["pay"] = link_down
    async with wired(tpm, stub, tmp_path) as (api, journal, _):
        status, body, _ = await api.post("/", {"amount": "4.00", "order_id": "R-1"})
        assert status == 200 and body["errorCode"] == "LINK_DOWN"
        assert (
            body["notificationHipaySent"] is False
        )  # nothing happened: HiPay has nothing to learn
        record = journal.get("R-1")
        assert record is not None and record.state is TxState.FAILED
        del tpm.responders["pay"]
        status, body, _ = await api.post("/", {"amount": "4.00", "order_id": "R-1"})
        assert status == 200 and body["paymentStatus"] == "SUCCESS"
    assert tpm.commands() == ["pay", "pay"]
    assert [n["order_id"] for n in await stub.received()] == ["R-1"]


async def test_notifications_and_metrics_routes(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    await stub.control(fail_next=100, status=503)
    async with wired(tpm, stub, tmp_path) as (api, _, _):
        status, body, _ = await api.post("/", {"amount": "2.00", "order_id": "N-1"})
        assert body["notificationHipaySent"] is False
        status, listing, _ = await api.get("/notifications")
        assert status == 200
        assert [n["order_id"] for n in listing["notifications"]] == ["N-1"]
        assert listing["notifications"][0]["state"] == "pending"
        assert listing["counts"]["pending"] == 1
        status, bad, _ = await api.get("/notifications?state=lost")
        assert status == 400 and bad["error"]["details"]["path"] == "state"

        async with api.session.get(
            api.base_url + "/metrics",
            headers={"Authorization": "Basic " + base64.b64encode(b"x:y").decode()},
        ) as resp:
            assert resp.status == 401  # metrics need the API credentials
        status, text, headers = await api.get("/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain")
        assert 'ecr_transactions_total{outcome="accepted"} 1.0' in text
        assert 'ecr_notifications{state="pending"} 1.0' in text

        await stub.control(fail_next=0)
        for _ in range(200):
            status, listing, _ = await api.get("/notifications?state=delivered")
            if listing["notifications"]:
                break
            await asyncio.sleep(0.05)
        assert [n["order_id"] for n in listing["notifications"]] == ["N-1"]


async def test_rejected_requests_never_reach_the_journal_or_the_terminal(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    bad: list[dict[str, Any]] = [
        {"amount": "abc", "order_id": "X-1"},
        {"amount": "1.001", "order_id": "X-2"},
        {"amount": "1.00", "order_id": "X-3", "currency": "string"},
        {"amount": "1.00", "order_id": "X-4", "custom_data": {"nested": {"no": 1}}},
        {"amount": "1.00", "order_id": "X 5"},
    ]
    async with wired(tpm, stub, tmp_path) as (api, journal, _):
        for body in bad:
            status, answer, _ = await api.post("/", body)
            assert status == 400, body
            assert answer["error"]["details"]["path"], answer
            assert journal.get(str(body["order_id"])) is None
        assert journal.outbox.counts() == {"pending": 0, "delivered": 0, "dead": 0}
    assert tpm.received == []
    assert await stub.received() == []


def _state_on_file(path: Path, order_id: str) -> str | None:
    """The row's state as another process reads the file: committed, not in memory."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT state FROM transactions WHERE order_id = ?", (order_id,)
        ).fetchone()
        return None if row is None else str(row[0])
    finally:
        conn.close()


async def test_a_payment_costs_two_fsynced_commits_and_is_at_the_terminal_on_file_first(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    """docs/durability.md: the claim (already at the terminal) and the outcome are
    fsynced; the notifier's attempt is bookkeeping.  The row is committed at_terminal
    before tp-manager hears of the payment."""
    seen_by_terminal: list[str | None] = []
    path = tmp_path / JOURNAL_FILENAME

    async def pay_checking_the_file(request: Request) -> Reply:
        seen_by_terminal.append(_state_on_file(path, request.properties["order_id"]))
        return Reply.success(request.id, payment_result(request.properties))

    tpm.responders["pay"] = pay_checking_the_file
    async with wired(tpm, stub, tmp_path) as (api, journal, _):
        before = dataclasses.replace(journal._db.commits)
        status, body, _ = await api.post("/", {"amount": "4.20", "order_id": "FSYNC-1"})
        assert status == 200 and body["notificationHipaySent"] is True, body
        after = journal._db.commits
        assert (after.durable - before.durable, after.bookkeeping - before.bookkeeping) == (2, 1)
    assert seen_by_terminal == ["at_terminal"]
    assert _state_on_file(path, "FSYNC-1") == "accepted"


async def test_the_seeds_customer_and_cart_reach_hipay_in_the_pos_api_shape(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    """The desktop seed names the customer's fields ``id, firstName, lastName, email`` in
    its table (``firstname``/``lastname`` in its example) and sends the article number
    as a JSON number: HiPay's Customer has ``customer_id``/``first_name``/``last_name``
    and its BasketItem's ``european_article_numbering`` is a string."""
    cart = {
        "european_article_numbering": 4711892728946,
        "product_reference": "NF-a1690",
        "type": "good",
        "quantity": 1,
        "name": "My first product",
        "unit_price": 8.99,
        "tax_rate": 0,
        "discount": 0,
        "total_amount": 8.99,
    }
    customer = {"id": 283749291, "firstName": "John", "lastName": "Doe", "email": "j@d.eu"}
    async with wired(tpm, stub, tmp_path) as (api, _, _):
        status, body, _ = await api.post(
            "/", {"amount": 8.99, "order_id": "SEED-1", "cart": cart, "customer": customer}
        )
        assert status == 200 and body["notificationHipaySent"] is True, body
    (sent,) = [n["body"] for n in await stub.received() if n["order_id"] == "SEED-1"]
    assert sent["customer"] == {
        "customer_id": "283749291",
        "first_name": "John",
        "last_name": "Doe",
        "email": "j@d.eu",
    }
    (item,) = sent["order"]["price"]["basket"]
    assert item["european_article_numbering"] == "4711892728946"
    assert (item["unit_price"], item["total_amount"]) == (899, 899)


async def test_a_pos_answer_does_not_wait_for_hipay_and_its_notification_still_goes(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    """The POS API's OrderResponse shows nothing of HiPay's delivery, so its answer comes
    back while HiPay still holds the notification; the desktop answer, which shows it,
    waits for HiPay's acknowledgement (within the budget)."""
    hold_s = 0.9  # under FAST's 1 s request timeout and the 2 s budget
    async with wired(tpm, stub, tmp_path) as (api, journal, _):
        await stub.control(delay_next=1, delay_s=hold_s)
        status, body, _ = await api.post("/v1/connector/order", pos_example_request())
        assert status == 200 and body["transactionState"] == "accepted", body
        assert "notificationHipaySent" not in body
        # answered before HiPay acknowledged: the stub holds the POST hold_s (or has not
        # had it yet)
        assert [n["outcome"] for n in await stub.received()] in ([], ["pending"])
        await eventually(delivered(journal, "ORDER_1537532589263"))
        status, looked_up, _ = await api.get("/transactions/ORDER_1537532589263")
        assert status == 200 and looked_up["paymentStatus"] == "Success", looked_up

        await stub.clear()
        await stub.control(delay_next=1, delay_s=hold_s)
        status, desktop, _ = await api.post("/", {"amount": "8.99", "order_id": "D-HELD"})
        assert status == 200 and desktop["notificationHipaySent"] is True, desktop
        assert [n["outcome"] for n in await stub.received()] == ["acknowledged"]
