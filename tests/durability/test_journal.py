"""The journal on real SQLite files: lifecycle, atomicity, recovery, retention."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from supervisor_agent import hipay_payload
from supervisor_agent.journal import (
    INTERRUPTED,
    JOURNAL_FILENAME,
    MIGRATIONS,
    NOT_SENT_TO_TERMINAL,
    SCHEMA_VERSION,
    BeginKind,
    Journal,
    JournalError,
    JournalStateError,
    TxError,
    TxState,
)
from supervisor_agent.outbox import NotificationState

from .conftest import CONTEXT, accepted_result, canonical_request, finish_order

FULL_PAN = "4111111111111111"  # the classic Luhn-valid test number


def test_fresh_file_is_migrated_from_zero_in_wal_mode(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path, context=CONTEXT)
    try:
        with journal._db.read() as conn:
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
            assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        journal.close()
    conn = sqlite3.connect(tmp_path / JOURNAL_FILENAME)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
        assert versions == list(range(1, SCHEMA_VERSION + 1))
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"transactions", "outbox", "schema_version"} <= tables
    finally:
        conn.close()


def test_reopening_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    first = Journal.open(tmp_path, context=CONTEXT)
    finish_order(first, "ORDER_1")
    first.close()
    second = Journal.open(tmp_path, context=CONTEXT)
    try:
        record = second.get("ORDER_1")
        assert record is not None and record.state is TxState.ACCEPTED
        with second._db.read() as conn:
            migrations = conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0]
            assert migrations == len(MIGRATIONS)
    finally:
        second.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    Journal.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / JOURNAL_FILENAME)
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="newer"):
        Journal.open(tmp_path)


def test_begin_twice_gives_in_progress_then_done_with_the_stored_record(journal: Journal) -> None:
    first = journal.begin("ORDER_1", canonical_request("ORDER_1"), flavour="pos-api")
    assert first.kind is BeginKind.NEW
    assert first.record.state is TxState.RECEIVED
    assert first.record.request["amount"] == 899

    again = journal.begin("ORDER_1", canonical_request("ORDER_1", amount=1), flavour="pos-api")
    assert again.kind is BeginKind.IN_PROGRESS
    assert again.record.request["amount"] == 899  # the first request, not the replay's

    journal.mark_at_terminal("ORDER_1")
    assert journal.begin("ORDER_1", canonical_request("ORDER_1"), flavour="x").kind is (
        BeginKind.IN_PROGRESS
    )
    journal.finish("ORDER_1", TxState.ACCEPTED, accepted_result())

    done = journal.begin("ORDER_1", canonical_request("ORDER_1"), flavour="pos-api")
    assert done.kind is BeginKind.DONE
    assert done.record.state is TxState.ACCEPTED
    assert done.record.result is not None
    assert done.record.result["authorization_number"] == "136967"
    assert done.record.finished_at is not None


def test_concurrent_begins_of_one_order_have_a_single_winner(tmp_path: Path) -> None:
    """Eight threads, four connections to the same file, one order id: exactly one NEW."""
    journals = [Journal.open(tmp_path, context=CONTEXT) for _ in range(4)]
    barrier = threading.Barrier(8)
    kinds: list[BeginKind] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        barrier.wait(timeout=10)
        outcome = journals[i % 4].begin("RACE", canonical_request("RACE"), flavour="pos-api")
        with lock:
            kinds.append(outcome.kind)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        assert sorted(kinds) == sorted([BeginKind.NEW] + [BeginKind.IN_PROGRESS] * 7)
    finally:
        for j in journals:
            j.close()


def test_finish_queues_the_notification_in_the_same_transaction(journal: Journal) -> None:
    record = finish_order(journal, "ORDER_1")
    assert record.state is TxState.ACCEPTED
    note = journal.outbox.get_by_order("ORDER_1")
    assert note is not None
    assert note.state is NotificationState.PENDING
    assert note.attempts == 0 and note.attempts_received == 0
    body = note.payload
    assert body["order"]["order_id"] == "ORDER_1"
    assert body["order"]["price"] == {
        "amount": 899,
        "currency": "EUR",
        "basket": canonical_request("ORDER_1")["basket"],
    }
    assert body["terminal_result"]["state"] == "accepted"
    assert body["terminal_result"]["authorization_number"] == "136967"
    assert note.idempotency_key == hipay_payload.idempotency_key(
        "ORDER_1", "accepted", record.result
    )


def test_finish_rolls_back_entirely_when_the_outbox_write_fails(journal: Journal) -> None:
    """A trigger makes the outbox insert fail: the outcome must not be half-written."""
    journal.begin("ORDER_1", canonical_request("ORDER_1"), flavour="pos-api")
    journal.mark_at_terminal("ORDER_1")
    with journal._db.write() as conn:
        conn.execute(
            "CREATE TRIGGER no_outbox BEFORE INSERT ON outbox"
            " BEGIN SELECT RAISE(ABORT, 'outbox refused'); END"
        )
    with pytest.raises(sqlite3.IntegrityError, match="outbox refused"):
        journal.finish("ORDER_1", TxState.ACCEPTED, accepted_result())
    record = journal.get("ORDER_1")
    assert record is not None and record.state is TxState.AT_TERMINAL
    assert record.result is None
    assert journal.outbox.get_by_order("ORDER_1") is None


def test_lifecycle_refuses_impossible_changes(journal: Journal) -> None:
    with pytest.raises(JournalStateError):
        journal.mark_at_terminal("NOPE")
    with pytest.raises(JournalStateError):
        journal.finish("NOPE", TxState.FAILED)
    finish_order(journal, "ORDER_1")
    with pytest.raises(JournalStateError, match="already finished"):
        journal.finish("ORDER_1", TxState.REFUSED)
    with pytest.raises(JournalStateError):
        journal.mark_at_terminal("ORDER_1")
    journal.begin("ORDER_2", canonical_request("ORDER_2"), flavour="pos-api")
    with pytest.raises(JournalStateError, match="not a final state"):
        journal.finish("ORDER_2", TxState.AT_TERMINAL)
    # finishing straight from received (tp-manager unreachable) is allowed
    failed = journal.finish("ORDER_2", TxState.FAILED, None, TxError("TP_MANAGER_UNAVAILABLE"))
    assert failed.error_code == "TP_MANAGER_UNAVAILABLE"


def test_invalid_requests_are_refused_before_anything_is_written(journal: Journal) -> None:
    bad = canonical_request("ORDER_1")
    bad["amount"] = 8.99  # a float: never money
    with pytest.raises(hipay_payload.PayloadError, match="minor units"):
        journal.begin("ORDER_1", bad, flavour="pos-api")
    other = canonical_request("ORDER_X")
    with pytest.raises(hipay_payload.PayloadError, match="differs"):
        journal.begin("ORDER_1", other, flavour="pos-api")
    assert journal.get("ORDER_1") is None


def test_no_full_pan_and_no_password_reach_the_file(journal: Journal, tmp_path: Path) -> None:
    request = canonical_request("ORDER_1")
    request["custom_data"] = {"password": "hunter2-secret", "shop": "Opera"}
    journal.begin("ORDER_1", request, flavour="pos-api")
    journal.mark_at_terminal("ORDER_1")
    result = accepted_result().to_dict()
    result["masked_pan"] = FULL_PAN
    result["report"] = f"report with {FULL_PAN} inside"
    record = journal.finish("ORDER_1", TxState.ACCEPTED, result)
    assert record.result is not None
    assert record.result["masked_pan"] == "411111######1111"
    assert record.request["custom_data"]["password"] == "[redacted]"
    journal.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob(JOURNAL_FILENAME + "*"))
    assert FULL_PAN.encode() not in raw
    assert b"hunter2-secret" not in raw
    assert b"4711892728946" in raw  # an EAN is not a PAN: left alone


def test_recover_interrupted_closes_open_rows_and_queues_them(journal: Journal) -> None:
    journal.begin("NEVER_SENT", canonical_request("NEVER_SENT"), flavour="pos-api")
    journal.begin(
        "AT_TERM", canonical_request("AT_TERM"), flavour="pos-api", terminal="192.0.2.7:8888"
    )
    journal.mark_at_terminal("AT_TERM")
    finish_order(journal, "DONE", terminal="192.0.2.8:8888")

    recovered = {r.order_id: r for r in journal.recover_interrupted()}
    assert set(recovered) == {"NEVER_SENT", "AT_TERM"}
    assert recovered["NEVER_SENT"].state is TxState.FAILED
    assert recovered["NEVER_SENT"].error_code == NOT_SENT_TO_TERMINAL
    assert recovered["AT_TERM"].state is TxState.UNKNOWN
    assert recovered["AT_TERM"].error_code == INTERRUPTED
    # nothing reached the terminal: HiPay has nothing to learn of NEVER_SENT
    assert journal.outbox.get_by_order("NEVER_SENT") is None
    note = journal.outbox.get_by_order("AT_TERM")
    assert note is not None and note.state is NotificationState.PENDING
    assert note.payload["terminal_result"]["state"] == "unknown"
    assert note.payload["terminal_result"]["error"]["code"] == INTERRUPTED
    done = journal.get("DONE")
    assert done is not None and done.state is TxState.ACCEPTED
    assert journal.recover_interrupted() == []
    assert len(journal.outbox.list()) == 2


def test_purge_deletes_only_old_delivered_transactions(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    journal = Journal.open(tmp_path, context=CONTEXT, clock=lambda: now[0])
    try:
        for order_id in ("OLD_DELIVERED", "OLD_PENDING", "OLD_DEAD"):
            finish_order(journal, order_id)
        journal.begin(
            "OLD_OPEN", canonical_request("OLD_OPEN"), flavour="pos-api", terminal="192.0.2.7:8888"
        )
        for order_id, state in (
            ("OLD_DELIVERED", NotificationState.DELIVERED),
            ("OLD_DEAD", NotificationState.DEAD),
        ):
            note = journal.outbox.get_by_order(order_id)
            assert note is not None
            journal.outbox.record_attempt(
                note.id, state=state, status=200, error=None, possibly_received=True
            )
        now[0] += timedelta(days=400).total_seconds()
        finish_order(journal, "RECENT_DELIVERED")
        recent = journal.outbox.get_by_order("RECENT_DELIVERED")
        assert recent is not None
        journal.outbox.record_attempt(
            recent.id,
            state=NotificationState.DELIVERED,
            status=200,
            error=None,
            possibly_received=True,
        )

        assert journal.purge() == 1  # default retention: 13 months
        assert journal.get("OLD_DELIVERED") is None
        assert journal.outbox.get_by_order("OLD_DELIVERED") is None
        for kept in ("OLD_PENDING", "OLD_DEAD", "OLD_OPEN", "RECENT_DELIVERED"):
            assert journal.get(kept) is not None, kept
        now[0] += 1
        assert journal.purge(older_than=timedelta(days=0)) == 1  # now the recent one
        assert journal.get("OLD_PENDING") is not None
    finally:
        journal.close()


def test_payload_json_is_exactly_what_was_queued(journal: Journal) -> None:
    finish_order(journal, "ORDER_1")
    note = journal.outbox.get_by_order("ORDER_1")
    assert note is not None
    assert json.loads(note.payload_json) == note.payload
    assert "raw" not in note.payload["terminal_result"]
    assert "card_expiry" not in note.payload["terminal_result"]
