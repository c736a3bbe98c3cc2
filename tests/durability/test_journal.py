"""The journal on real SQLite files: lifecycle, atomicity, recovery, retention."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from supervisor_agent import hipay_payload
from supervisor_agent import journal as journal_module
from supervisor_agent.journal import (
    CHECKPOINT_BACKSTOP_PAGES,
    CHECKPOINT_IDLE_S,
    CHECKPOINT_MIN_COMMITS,
    INTERRUPTED,
    JOURNAL_FILENAME,
    MIGRATIONS,
    NOT_SENT_TO_TERMINAL,
    SCHEMA_VERSION,
    Begin,
    BeginKind,
    Journal,
    JournalError,
    JournalStateError,
    ReconcileKind,
    StorageUnavailable,
    TxError,
    TxState,
)
from supervisor_agent.outbox import Notification, NotificationState

from .conftest import (
    CONTEXT,
    accepted_result,
    cancel_while_queued,
    canonical_request,
    finish_order,
    until_landed,
)

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


async def _queued_notification(journal: Journal, order_id: str) -> Notification:
    """A payment accepted and journaled; its notification, as queued in the outbox."""
    await finish_order(journal, order_id)
    note = journal.outbox.get_by_order(order_id)
    assert note is not None
    return note


async def _acknowledged(journal: Journal, note: Notification) -> Notification:
    """HiPay acknowledged ``note`` at the first attempt: the notifier's bookkeeping."""
    return await journal.outbox.record_attempt(
        note.id, state=NotificationState.DELIVERED, status=200, error=None, possibly_received=True
    )


async def test_reopening_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    first = Journal.open(tmp_path, context=CONTEXT)
    await finish_order(first, "ORDER_1")
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


async def _begin(journal: Journal, order_id: str, amount: int = 899, **kwargs: Any) -> Begin:
    """The payment path's claim: the row written ``at_terminal`` in one commit."""
    request = canonical_request(order_id, amount)
    return await journal.begin(order_id, request, flavour="pos-api", **kwargs)


async def test_begin_twice_gives_in_progress_then_done_with_the_stored_record(
    journal: Journal,
) -> None:
    first = await _begin(journal, "ORDER_1")
    assert first.kind is BeginKind.NEW
    assert first.record.state is TxState.AT_TERMINAL
    assert first.record.request["amount"] == 899

    again = await _begin(journal, "ORDER_1", amount=1)
    assert again.kind is BeginKind.IN_PROGRESS
    assert again.record.request["amount"] == 899  # the first request, not the replay's
    assert again.record.state is TxState.AT_TERMINAL

    await journal.finish("ORDER_1", TxState.ACCEPTED, accepted_result())

    done = await _begin(journal, "ORDER_1")
    assert done.kind is BeginKind.DONE
    assert done.record.state is TxState.ACCEPTED
    assert done.record.result is not None
    assert done.record.result["authorization_number"] == "136967"
    assert done.record.finished_at is not None


async def test_concurrent_begins_of_one_order_have_a_single_winner(tmp_path: Path) -> None:
    """Eight claims, four connections to the same file (four writer threads racing for
    its write lock), one order id: exactly one NEW."""
    journals = [Journal.open(tmp_path, context=CONTEXT) for _ in range(4)]
    try:
        outcomes = await asyncio.gather(*(_begin(journals[i % 4], "RACE") for i in range(8)))
        kinds = [outcome.kind for outcome in outcomes]
        assert sorted(kinds) == sorted([BeginKind.NEW] + [BeginKind.IN_PROGRESS] * 7)
    finally:
        for j in journals:
            j.close()


async def test_finish_queues_the_notification_in_the_same_transaction(journal: Journal) -> None:
    record = await finish_order(journal, "ORDER_1")
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


async def test_finish_rolls_back_entirely_when_the_outbox_write_fails(journal: Journal) -> None:
    """A trigger makes the outbox insert fail: the outcome must not be half-written."""
    await _begin(journal, "ORDER_1")
    with journal._db.write() as conn:
        conn.execute(
            "CREATE TRIGGER no_outbox BEFORE INSERT ON outbox"
            " BEGIN SELECT RAISE(ABORT, 'outbox refused'); END"
        )
    with pytest.raises(sqlite3.IntegrityError, match="outbox refused"):
        await journal.finish("ORDER_1", TxState.ACCEPTED, accepted_result())
    record = journal.get("ORDER_1")
    assert record is not None and record.state is TxState.AT_TERMINAL
    assert record.result is None
    assert journal.outbox.get_by_order("ORDER_1") is None


async def test_lifecycle_refuses_impossible_changes(journal: Journal) -> None:
    with pytest.raises(JournalStateError, match="no transaction"):
        await journal.finish("NOPE", TxState.FAILED)
    await finish_order(journal, "ORDER_1")
    with pytest.raises(JournalStateError, match="already finished"):
        await journal.finish("ORDER_1", TxState.REFUSED)
    await _begin(journal, "ORDER_2")
    with pytest.raises(JournalStateError, match="not a final state"):
        await journal.finish("ORDER_2", TxState.AT_TERMINAL)
    # the pay command never left (tp-manager unreachable): failed, and the id may come again
    failed = await journal.finish(
        "ORDER_2", TxState.FAILED, None, TxError("TP_MANAGER_UNAVAILABLE")
    )
    assert failed.record.error_code == "TP_MANAGER_UNAVAILABLE"
    assert failed.notification is None
    again = await _begin(journal, "ORDER_2")
    assert again.kind is BeginKind.NEW and again.record.error_code is None


async def test_invalid_requests_are_refused_before_anything_is_written(journal: Journal) -> None:
    bad = canonical_request("ORDER_1")
    bad["amount"] = 8.99  # a float: never money
    with pytest.raises(hipay_payload.PayloadError, match="minor units"):
        await journal.begin("ORDER_1", bad, flavour="pos-api")
    other = canonical_request("ORDER_X")
    with pytest.raises(hipay_payload.PayloadError, match="differs"):
        await journal.begin("ORDER_1", other, flavour="pos-api")
    assert journal.get("ORDER_1") is None


def _journal_bytes(data_dir: Path) -> bytes:
    """Every byte of the journal's files (main file, WAL, shared memory)."""
    return b"".join(p.read_bytes() for p in data_dir.glob(JOURNAL_FILENAME + "*"))


async def test_no_full_pan_and_no_password_reach_the_file(journal: Journal, tmp_path: Path) -> None:
    request = canonical_request("ORDER_1")
    request["custom_data"] = {"password": "hunter2-secret", "shop": "Opera"}
    await journal.begin("ORDER_1", request, flavour="pos-api")
    result = accepted_result().to_dict()
    result["masked_pan"] = FULL_PAN
    result["report"] = f"report with {FULL_PAN} inside"
    record = (await journal.finish("ORDER_1", TxState.ACCEPTED, result)).record
    assert record.result is not None
    assert record.result["masked_pan"] == "411111######1111"
    assert record.request["custom_data"]["password"] == "[redacted]"
    journal.close()
    raw = _journal_bytes(tmp_path)
    assert FULL_PAN.encode() not in raw
    assert b"hunter2-secret" not in raw
    assert b"4711892728946" in raw  # an EAN is not a PAN: left alone


async def test_recover_interrupted_closes_open_rows_and_queues_them(journal: Journal) -> None:
    await _begin(journal, "AT_TERM", terminal="192.0.2.7:8888")
    await finish_order(journal, "DONE", terminal="192.0.2.8:8888")

    (recovered,) = journal.recover_interrupted()
    assert recovered.order_id == "AT_TERM"
    assert (recovered.state, recovered.error_code) == (TxState.UNKNOWN, INTERRUPTED)
    note = journal.outbox.get_by_order("AT_TERM")
    assert note is not None and note.state is NotificationState.PENDING
    assert note.payload["terminal_result"]["state"] == "unknown"
    assert note.payload["terminal_result"]["error"]["code"] == INTERRUPTED
    done = journal.get("DONE")
    assert done is not None and done.state is TxState.ACCEPTED
    assert journal.recover_interrupted() == []
    assert len(journal.outbox.list()) == 2


def _received_by_an_earlier_version(path: Path, order_id: str, terminal: str) -> None:
    """A row as connectors before the one-commit claim left it on disk: claimed
    (``received``), the pay command not yet sent, then the process gone.  Written with
    plain sqlite3 the way that version's ``begin`` wrote it; after a self-update the new
    agent finds it at start."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(
                "INSERT INTO transactions (order_id, flavour, request_json, state,"
                " created_at, updated_at, terminal) VALUES (?, ?, ?, 'received', ?, ?, ?)",
                (
                    order_id,
                    "pos-api",
                    json.dumps(canonical_request(order_id), sort_keys=True),
                    time.time(),
                    time.time(),
                    terminal,
                ),
            )
    finally:
        conn.close()


async def test_a_received_row_left_by_an_earlier_version_is_recovered_as_not_sent(
    tmp_path: Path,
) -> None:
    Journal.open(tmp_path, context=CONTEXT).close()  # the file, at this schema
    _received_by_an_earlier_version(tmp_path / JOURNAL_FILENAME, "NEVER_SENT", "192.0.2.6:8888")
    journal = Journal.open(tmp_path, context=CONTEXT)
    try:
        (recovered,) = journal.recover_interrupted()
        assert recovered.order_id == "NEVER_SENT"
        assert (recovered.state, recovered.error_code) == (TxState.FAILED, NOT_SENT_TO_TERMINAL)
        # nothing reached the terminal: HiPay has nothing to learn of it
        assert journal.outbox.get_by_order("NEVER_SENT") is None
        assert journal.recover_interrupted() == []
        # the register, which got no answer, may post it again: a new payment
        again = await _begin(journal, "NEVER_SENT", terminal="192.0.2.6:8888")
        assert again.kind is BeginKind.NEW and again.record.state is TxState.AT_TERMINAL
    finally:
        journal.close()


async def test_purge_deletes_only_old_delivered_transactions(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    journal = Journal.open(tmp_path, context=CONTEXT, clock=lambda: now[0])
    try:
        for order_id in ("OLD_DELIVERED", "OLD_PENDING", "OLD_DEAD"):
            await finish_order(journal, order_id)
        await _begin(journal, "OLD_OPEN", terminal="192.0.2.7:8888")
        for order_id, state in (
            ("OLD_DELIVERED", NotificationState.DELIVERED),
            ("OLD_DEAD", NotificationState.DEAD),
        ):
            note = journal.outbox.get_by_order(order_id)
            assert note is not None
            await journal.outbox.record_attempt(
                note.id, state=state, status=200, error=None, possibly_received=True
            )
        now[0] += timedelta(days=400).total_seconds()
        await finish_order(journal, "RECENT_DELIVERED")
        recent = journal.outbox.get_by_order("RECENT_DELIVERED")
        assert recent is not None
        await _acknowledged(journal, recent)

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


async def test_purge_keeps_an_unknown_payment_however_old(tmp_path: Path) -> None:
    """An ``unknown`` row is a payment nobody knows the outcome of: the customer may have
    paid.  Its notification (HiPay told ``unknown``) being delivered does not settle it;
    only the terminal's verdict (``reconcile``) does, so it outlives any retention."""
    now = [1_700_000_000.0]
    journal = Journal.open(tmp_path, context=CONTEXT, clock=lambda: now[0])
    try:
        await _begin(journal, "OLD_UNKNOWN")
        await journal.finish(
            "OLD_UNKNOWN", TxState.UNKNOWN, None, TxError(INTERRUPTED, "outcome unknown")
        )
        note = journal.outbox.get_by_order("OLD_UNKNOWN")
        assert note is not None
        await _acknowledged(journal, note)
        now[0] += timedelta(days=4000).total_seconds()

        assert journal.purge() == 0
        kept = journal.get("OLD_UNKNOWN")
        assert kept is not None and kept.state is TxState.UNKNOWN

        # the terminal's verdict comes (tp-manager kept it): settled, and once HiPay has
        # the corrected notification too, the row goes with the other old ones
        kind, _ = journal.reconcile("OLD_UNKNOWN", accepted_result(), answered_at=now[0])
        assert kind is ReconcileKind.RECONCILED
        corrected = journal.outbox.get_by_order("OLD_UNKNOWN")
        assert corrected is not None and corrected.id != note.id
        assert journal.purge() == 0  # the corrected notification is still pending
        await _acknowledged(journal, corrected)
        assert journal.purge() == 1
        assert journal.get("OLD_UNKNOWN") is None
    finally:
        journal.close()


async def test_payload_json_is_exactly_what_was_queued(journal: Journal) -> None:
    note = await _queued_notification(journal, "ORDER_1")
    assert json.loads(note.payload_json) == note.payload
    assert "raw" not in note.payload["terminal_result"]
    assert "card_expiry" not in note.payload["terminal_result"]


# -- the writer thread: one commit for what queues up, each job its own outcome --------


async def _queued(
    journal: Journal,
    calls: list[Callable[[], Awaitable[object]]],
    *,
    first_alone: bool = False,
) -> list[object]:
    """Start ``calls`` (the journal's coroutines, in this order) while the test holds the
    connection, so that they queue up behind the writer; then let it commit them.
    ``first_alone``: the others are started only once the writer has claimed the first
    (its batch is then closed: it waits for the connection with that job alone).
    Returns each call's result, or the exception it raised."""
    submitted: list[object] = []
    claimed = threading.Event()

    class Counted(journal_module._Job):  # every job is made, then queued in the same step
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            submitted.append(self)

        def claim(self) -> bool:  # the writer's batch is drained before it claims
            claimed.set()
            return super().claim()

    async def until(done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 10
        while not done() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        assert done(), what

    made = journal_module._Job
    journal_module._Job = Counted  # type: ignore[misc]
    try:
        with journal._db.read():  # the writer takes a job, then waits for the connection
            tasks = []
            if first_alone:
                tasks.append(asyncio.create_task(calls[0]()))
                await until(claimed.is_set, "the writer did not take the first job")
            tasks += [asyncio.create_task(call()) for call in calls[len(tasks) :]]
            await until(lambda: len(submitted) == len(calls), "the calls did not all queue up")
    finally:
        journal_module._Job = made  # type: ignore[misc]
    return list(await asyncio.gather(*tasks, return_exceptions=True))


async def test_jobs_queued_behind_a_commit_share_one_and_keep_their_own_outcomes(
    journal: Journal,
) -> None:
    before = dataclasses.replace(journal._db.commits)
    calls: list[Callable[[], Awaitable[object]]] = [
        functools.partial(_begin, journal, f"ORDER_{i}", terminal=f"T{i}") for i in range(6)
    ]
    calls.append(functools.partial(journal.finish, "NOPE", TxState.FAILED))  # refused
    # the same terminal as ORDER_0, which the group has just claimed
    calls.append(functools.partial(_begin, journal, "ORDER_X", terminal="T0"))
    outcomes = await _queued(journal, calls)
    begun = [o for o in outcomes[:6] if isinstance(o, Begin)]
    assert [b.kind for b in begun] == [BeginKind.NEW] * 6
    assert isinstance(outcomes[6], JournalStateError)
    busy = outcomes[7]
    assert isinstance(busy, Begin) and busy.kind is BeginKind.BUSY
    for i in range(6):
        row = journal.get(f"ORDER_{i}")
        assert row is not None and row.state is TxState.AT_TERMINAL
    assert journal.get("ORDER_X") is None and journal.get("NOPE") is None
    after = journal._db.commits
    assert after.jobs - before.jobs == 8
    assert after.durable - before.durable <= 2  # the first job alone, then the seven


async def test_bookkeeping_queued_with_durable_jobs_commits_first_without_their_fsync(
    journal: Journal,
) -> None:
    note = await _queued_notification(journal, "ORDER_1")
    order: list[str] = []  # the order the callers learned their outcomes in
    journal.observers.add(lambda change, row: order.append(f"{change}:{row.order_id}"))
    journal.outbox.observers.add(lambda change, row: order.append(f"{change}:{row.order_id}"))
    before = dataclasses.replace(journal._db.commits)

    calls: list[Callable[[], Awaitable[object]]] = [
        functools.partial(_begin, journal, "ORDER_2", terminal="T2"),  # the writer holds it
        functools.partial(_begin, journal, "ORDER_3", terminal="T3"),
        # queued after ORDER_3's begin, committed before it
        functools.partial(_acknowledged, journal, note),
    ]
    # ORDER_2 alone in the writer's hands: ORDER_3 and the attempt queue up behind it
    # (had the writer drained ORDER_3 with ORDER_2 first, the attempt came after both)
    outcomes = await _queued(journal, calls, first_alone=True)
    assert not any(isinstance(o, BaseException) for o in outcomes), outcomes
    after = journal._db.commits
    # the attempt in a commit of its own, with no fsync, before ORDER_3's
    assert after.bookkeeping - before.bookkeeping == 1
    assert after.durable - before.durable in (1, 2)
    assert order.index("attempt:ORDER_1") < order.index("at_terminal:ORDER_3"), order
    row = journal.outbox.get_by_order("ORDER_1")
    assert row is not None and row.state is NotificationState.DELIVERED


async def test_a_sqlite_error_in_a_group_fails_its_job_only(journal: Journal) -> None:
    with journal._db.write() as conn:
        conn.execute(
            "CREATE TRIGGER no_bad BEFORE INSERT ON transactions WHEN NEW.order_id = 'BAD'"
            " BEGIN SELECT RAISE(ABORT, 'bad order refused'); END"
        )
    order_ids = ["GOOD_1", "BAD", "GOOD_2"]
    calls: list[Callable[[], Awaitable[object]]] = [
        functools.partial(_begin, journal, o, terminal=o) for o in order_ids
    ]
    outcomes = await _queued(journal, calls)
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    for i in (0, 2):
        outcome = outcomes[i]
        assert isinstance(outcome, Begin) and outcome.kind is BeginKind.NEW
        assert journal.get(order_ids[i]) is not None
    assert journal.get("BAD") is None


async def test_a_group_the_disk_refuses_fails_every_job_and_writes_nothing(
    journal: Journal,
) -> None:
    calls: list[Callable[[], Awaitable[object]]] = [
        functools.partial(_begin, journal, o, terminal=o) for o in ("A", "B", "C")
    ]
    with journal._db.read() as conn:
        conn.execute("PRAGMA query_only = 1")  # every write fails as on a read-only disk
    try:
        outcomes = await _queued(journal, calls)
    finally:
        with journal._db.read() as conn:
            conn.execute("PRAGMA query_only = 0")
    assert all(isinstance(o, StorageUnavailable) for o in outcomes), outcomes
    assert [journal.get(o) for o in ("A", "B", "C")] == [None, None, None]


async def test_begin_at_terminal_is_one_durable_commit(journal: Journal) -> None:
    before = dataclasses.replace(journal._db.commits)
    seen: list[tuple[str, TxState]] = []
    journal.observers.add(lambda change, row: seen.append((change, row.state)))
    begun = await _begin(journal, "ORDER_1")
    assert begun.kind is BeginKind.NEW and begun.record.state is TxState.AT_TERMINAL
    assert (journal._db.commits.durable, journal._db.commits.bookkeeping) == (
        before.durable + 1,
        before.bookkeeping,
    )
    assert seen == [("at_terminal", TxState.AT_TERMINAL)]  # the live event, once
    # in flight: the self-update waits for it
    assert [row.order_id for row in journal.in_flight()] == ["ORDER_1"]
    # a crash now recovers it as unknown: it may have reached the terminal
    (recovered,) = journal.recover_interrupted()
    assert (recovered.state, recovered.error_code) == (TxState.UNKNOWN, INTERRUPTED)
    assert journal.in_flight() == []


async def test_attempt_bookkeeping_commits_without_fsync_and_outcomes_with_it(
    journal: Journal,
) -> None:
    note = await _queued_notification(journal, "ORDER_1")
    before = dataclasses.replace(journal._db.commits)
    await _acknowledged(journal, note)
    after = dataclasses.replace(journal._db.commits)
    assert (after.durable, after.bookkeeping) == (before.durable, before.bookkeeping + 1)
    with journal._db.read() as conn:  # and the connection is back to FULL for the rest
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    await finish_order(journal, "ORDER_2")  # begin at the terminal, finish: two fsyncs
    assert journal._db.commits.durable == after.durable + 2
    reopened = Journal.open(journal.path.parent, context=CONTEXT)
    try:  # committed, so another connection (or a restarted process) reads it
        row = reopened.outbox.get_by_order("ORDER_1")
        assert row is not None and row.state is NotificationState.DELIVERED
    finally:
        reopened.close()


async def _checkpoint_seen(journal: Journal, before: int) -> None:
    deadline = time.monotonic() + 10
    while journal._db.commits.checkpoints == before and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert journal._db.commits.checkpoints == before + 1
    with journal._db.read() as conn:  # everything committed is in the main file now
        busy, wal_pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0 and wal_pages == copied


async def test_the_wal_is_checkpointed_when_the_writer_is_idle_not_inside_a_commit(
    journal: Journal,
) -> None:
    """A few payments' commits wait in the WAL through short pauses (a payment's wait for
    the terminal is one); once CHECKPOINT_MIN_COMMITS wait, the next pause copies them."""
    with journal._db.read() as conn:
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == (
            CHECKPOINT_BACKSTOP_PAGES
        )
    before = journal._db.commits.checkpoints
    await finish_order(journal, "ORDER_1")
    await asyncio.sleep(CHECKPOINT_IDLE_S * 3)  # a short pause, few commits: none yet
    assert journal._db.commits.checkpoints == before
    for _ in range(CHECKPOINT_MIN_COMMITS - journal._db._since_checkpoint):
        await journal._db.transact_async(lambda conn: None)
    await _checkpoint_seen(journal, before)
    await asyncio.sleep(CHECKPOINT_IDLE_S * 3)  # idle with nothing new: no checkpoint again
    assert journal._db.commits.checkpoints == before + 1


async def test_a_quiet_writer_checkpoints_its_few_commits(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fewer than CHECKPOINT_MIN_COMMITS commits are copied once the writer has been quiet
    for CHECKPOINT_QUIET_S (shortened here)."""
    monkeypatch.setattr("supervisor_agent.journal.CHECKPOINT_QUIET_S", CHECKPOINT_IDLE_S * 2)
    before = journal._db.commits.checkpoints
    await finish_order(journal, "ORDER_1")
    await _checkpoint_seen(journal, before)


async def test_a_finish_whose_caller_is_cancelled_still_lands(journal: Journal) -> None:
    """The terminal has answered: a stop cancelling the payment's handler while its
    outcome waits for the writer must not drop the outcome (the row would stay open)."""
    await _begin(journal, "ORDER_1")
    await cancel_while_queued(
        journal, lambda: journal.finish("ORDER_1", TxState.ACCEPTED, accepted_result())
    )
    await until_landed(
        lambda: (done := journal.get("ORDER_1")) is not None and done.finished, "outcome"
    )
    row = journal.get("ORDER_1")
    assert row is not None and row.state is TxState.ACCEPTED
    assert journal.outbox.get_by_order("ORDER_1") is not None


async def test_a_begin_whose_caller_is_cancelled_before_the_writer_took_it_is_dropped(
    journal: Journal,
) -> None:
    """Nothing was sent to the terminal: a claim whose caller gave up while it waited in
    the writer's queue is not written (the register gets no answer, and may post again)."""
    await cancel_while_queued(
        journal,
        lambda: journal.begin("ORDER_1", canonical_request("ORDER_1"), flavour="pos-api"),
    )
    await finish_order(journal, "ORDER_2")  # the writer ran every job queued before it
    assert journal.get("ORDER_1") is None
    assert journal.get("ORDER_2") is not None
