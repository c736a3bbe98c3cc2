"""A journal that cannot be written is a product state: clear before, never lost after.

The fault is injected at the journal's own SQLite connection (``query_only``: every
write then fails as SQLite fails on a read-only or full disk, with a real
SQLITE_READONLY), so the code paths are the ones a full disk takes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from common.messages import Reply, Request
from supervisor_agent.journal import Journal, TxState
from tests.api.conftest import RecordingTpManager, payment_result
from tests.durability.conftest import Stub
from tests.durability.test_api_journal import wired


def storage_fails(journal: Journal, failing: bool) -> None:
    with journal._db.read() as conn:
        conn.execute(f"PRAGMA query_only = {int(failing)}")


def integrity_ok(path: Path) -> bool:
    conn = sqlite3.connect(str(path))
    try:
        return bool(conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
    finally:
        conn.close()


async def test_a_journal_that_cannot_be_written_refuses_the_payment_before_the_terminal(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    async with wired(tpm, stub, tmp_path) as (api, journal, _):
        storage_fails(journal, True)
        status, body, _ = await api.post("/", {"amount": "5.00", "order_id": "FULL-1"})
        assert status == 503, body
        assert body["error"]["code"] == "STORAGE_UNAVAILABLE"
        assert "nothing was sent" in body["error"]["message"]
        assert tpm.commands() == []
        assert journal.get("FULL-1") is None
        storage_fails(journal, False)
        status, body, _ = await api.post("/", {"amount": "5.00", "order_id": "FULL-1"})
        assert status == 200 and body["transactionState"] == "accepted"
        path = journal.path
    assert integrity_ok(path)


async def test_a_verdict_the_disk_refused_is_answered_held_and_journaled_later(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    at_terminal, release = asyncio.Event(), asyncio.Event()
    journal_box: list[Journal] = []

    async def pay_while_the_disk_fills(request: Request) -> Reply:
        at_terminal.set()
        await asyncio.wait_for(release.wait(), 10)
        storage_fails(journal_box[0], True)  # the disk fills while the customer pays
        return Reply.success(request.id, payment_result(request.properties))

    tpm.responders["pay"] = pay_while_the_disk_fills
    async with wired(tpm, stub, tmp_path) as (api, journal, _):
        journal_box.append(journal)
        payment = asyncio.create_task(api.post("/", {"amount": "7.00", "order_id": "HELD-1"}))
        await asyncio.wait_for(at_terminal.wait(), 5)
        release.set()
        status, body, _ = await payment
        assert status == 200, body
        assert body["transactionState"] == "accepted"  # the register gets the verdict
        assert body["notificationHipaySent"] is False
        _, looked_up, _ = await api.get("/transactions/HELD-1")
        assert looked_up["transactionState"] == "accepted"  # not 409 IN_PROGRESS
        row = journal.get("HELD-1")
        assert row is not None and row.state is TxState.AT_TERMINAL
        status, body, _ = await api.post("/", {"amount": "1.00", "order_id": "NEXT"})
        assert status in (409, 503), body  # nothing else is paid meanwhile
        storage_fails(journal, False)  # space is freed
        for _ in range(100):
            row = journal.get("HELD-1")
            if row is not None and row.state is TxState.ACCEPTED:
                break
            await asyncio.sleep(0.1)
        assert row is not None and row.state is TxState.ACCEPTED
        assert row.result is not None and row.result["amount"] == 700
        for _ in range(100):
            sent = [n for n in await stub.received() if n["order_id"] == "HELD-1"]
            if sent:
                break
            await asyncio.sleep(0.05)
        assert sent and sent[0]["body"]["terminal_result"]["state"] == "accepted"
        path = journal.path
    assert integrity_ok(path)
    assert [r.properties["order_id"] for r in tpm.received if r.command == "pay"] == ["HELD-1"]
