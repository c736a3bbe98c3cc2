"""Outbox rows, the ``ecr-connector outbox`` command and the metrics rendering."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.config.loader import DATA_DIR_ENV
from supervisor_agent import outbox_cli
from supervisor_agent.journal import BeginKind, Journal, ReconcileKind, TxError, TxState
from supervisor_agent.metrics import Metrics
from supervisor_agent.outbox import NotificationState

from .conftest import (
    CONTEXT,
    accepted_result,
    cancel_while_queued,
    canonical_request,
    finish_order,
    until_landed,
)


def _ids(journal: Journal, *order_ids: str) -> list[int]:
    ids = []
    for order_id in order_ids:
        note = journal.outbox.get_by_order(order_id)
        assert note is not None
        ids.append(note.id)
    return ids


@pytest.fixture
def clocked(tmp_path: Path) -> Iterator[tuple[Journal, list[float]]]:
    """A journal whose clock the test sets (``now[0]``), starting at 1000."""
    now = [1_000.0]
    journal = Journal.open(tmp_path, context=CONTEXT, clock=lambda: now[0])
    try:
        yield journal, now
    finally:
        journal.close()


async def _three_orders(journal: Journal) -> list[int]:
    for i in range(3):
        await finish_order(journal, f"O{i}")
    return _ids(journal, "O0", "O1", "O2")


async def _later(journal: Journal, notification_id: int, when: float) -> None:
    await journal.outbox.record_attempt(
        notification_id,
        state=NotificationState.PENDING,
        status=503,
        error="later",
        possibly_received=False,
        next_attempt_at=when,
    )


async def test_due_orders_by_schedule_and_leaves_out_rows_in_flight(
    clocked: tuple[Journal, list[float]],
) -> None:
    journal = clocked[0]
    a, b, c = await _three_orders(journal)
    await _later(journal, a, 1_050.0)
    assert [n.id for n in journal.outbox.due()] == [b, c]
    assert [n.id for n in journal.outbox.due(exclude={b})] == [c]
    assert [n.id for n in journal.outbox.due(limit=1)] == [b]
    assert [n.id for n in journal.outbox.due(now=1_100.0)] == [b, c, a]
    await journal.outbox.record_attempt(
        b, state=NotificationState.DELIVERED, status=200, error=None, possibly_received=True
    )
    await journal.outbox.record_attempt(
        c, state=NotificationState.DEAD, status=400, error="no", possibly_received=False
    )
    assert [n.id for n in journal.outbox.due(now=1_100.0)] == [a]


async def test_next_attempt_at_is_the_earliest_pending_row_not_in_flight(
    clocked: tuple[Journal, list[float]],
) -> None:
    """What the notifier sleeps until; delivered and dead rows never wake it."""
    journal = clocked[0]
    assert journal.outbox.next_attempt_at() is None  # empty outbox: sleep until kicked
    a, b, c = await _three_orders(journal)
    await _later(journal, a, 1_030.0)
    await _later(journal, b, 1_020.0)
    await _later(journal, c, 1_010.0)
    assert journal.outbox.next_attempt_at() == 1_010.0
    assert journal.outbox.next_attempt_at(exclude={c}) == 1_020.0
    await journal.outbox.record_attempt(
        b, state=NotificationState.DEAD, status=400, error="no", possibly_received=False
    )
    assert journal.outbox.next_attempt_at(exclude={c}) == 1_030.0
    assert journal.outbox.next_attempt_at(exclude={a, c}) is None


async def test_expedite_makes_every_pending_row_due_now(
    clocked: tuple[Journal, list[float]],
) -> None:
    """HiPay is back: the backlog is due at once, whatever each row's backoff said."""
    journal, now = clocked
    a, b, c = await _three_orders(journal)
    await _later(journal, a, 1_060.0)
    await _later(journal, b, 1_005.0)
    await journal.outbox.record_attempt(
        c, state=NotificationState.DELIVERED, status=200, error=None, possibly_received=True
    )
    now[0] = 1_002.0
    assert [n.id for n in journal.outbox.due()] == []
    assert journal.outbox.expedite() == 2  # the pending rows, c is delivered
    assert [n.id for n in journal.outbox.due()] == [a, b]
    assert {n.next_attempt_at for n in journal.outbox.due()} == {1_002.0}
    delivered = journal.outbox.get(c)
    assert delivered is not None and delivered.state is NotificationState.DELIVERED


async def test_record_attempt_counts_and_truncates(journal: Journal) -> None:
    await finish_order(journal, "O1")
    (nid,) = _ids(journal, "O1")
    await journal.outbox.record_attempt(
        nid,
        state=NotificationState.PENDING,
        status=None,
        error="x" * 5000,
        possibly_received=True,
        next_attempt_at=123.0,
    )
    note = await journal.outbox.record_attempt(
        nid, state=NotificationState.DELIVERED, status=201, error=None, possibly_received=True
    )
    assert (note.attempts, note.attempts_received, note.last_status) == (2, 2, 201)
    assert note.next_attempt_at == 123.0
    assert note.sent and note.delivered_at is not None
    first = journal.outbox.list()[0]
    assert first.last_error is None
    await journal.outbox.record_attempt(
        nid, state=NotificationState.DELIVERED, status=200, error="y" * 5000,
        possibly_received=False,
    )  # fmt: skip
    stored = journal.outbox.get(nid)
    assert stored is not None and stored.last_error is not None
    assert len(stored.last_error) == 500


async def test_an_attempt_whose_recorder_is_cancelled_still_lands(journal: Journal) -> None:
    """The notifier stopping cancels the task writing an attempt down: the attempt
    happened, so its row must say so (else it is sent again and counted short)."""
    await finish_order(journal, "O1")
    (nid,) = _ids(journal, "O1")
    await cancel_while_queued(
        journal,
        lambda: journal.outbox.record_attempt(
            nid,
            state=NotificationState.DELIVERED,
            status=200,
            error=None,
            possibly_received=True,
        ),
    )
    await until_landed(lambda: (n := journal.outbox.get(nid)) is not None and n.sent, "attempt")
    note = journal.outbox.get(nid)
    assert note is not None and (note.attempts, note.attempts_received) == (1, 1)


async def test_retry_dead_only_moves_dead_rows(journal: Journal) -> None:
    await finish_order(journal, "O1")
    await finish_order(journal, "O2")
    dead, pending = _ids(journal, "O1", "O2")
    await journal.outbox.record_attempt(
        dead, state=NotificationState.DEAD, status=400, error="bad", possibly_received=False
    )
    assert journal.outbox.counts() == {"pending": 1, "delivered": 0, "dead": 1}
    assert not journal.outbox.retry_dead(pending)
    assert not journal.outbox.retry_dead(9999)
    assert journal.outbox.retry_dead(dead)
    assert not journal.outbox.retry_dead(dead)
    assert journal.outbox.counts() == {"pending": 2, "delivered": 0, "dead": 0}


async def test_one_notification_per_finished_transaction(journal: Journal) -> None:
    await finish_order(journal, "O1")
    for order_id, state in (("O2", TxState.FAILED), ("O3", TxState.REFUSED)):
        request = {"order_id": order_id, "amount": 100, "currency": "EUR"}
        await journal.begin(order_id, request, flavour="kiosk")
        await journal.finish(order_id, state)  # O2 failed: nothing to notify
    assert [n.order_id for n in journal.outbox.list()] == ["O1", "O3"]
    keys = {n.idempotency_key for n in journal.outbox.list()}
    assert len(keys) == 2 and all(re.fullmatch(r"[ -~]+", k) for k in keys)


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ecr-connector outbox")
    outbox_cli.configure(parser)
    return parser.parse_args(argv)


async def test_cli_lists_pending_and_dead_and_requeues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = Journal.open(tmp_path, context=CONTEXT)
    try:
        for order_id in ("PENDING_1", "DEAD_1", "DELIVERED_1"):
            await finish_order(journal, order_id)
        _, dead, done = _ids(journal, "PENDING_1", "DEAD_1", "DELIVERED_1")
        await journal.outbox.record_attempt(
            dead, state=NotificationState.DEAD, status=400, error="bad basket",
            possibly_received=False,
        )  # fmt: skip
        await journal.outbox.record_attempt(
            done, state=NotificationState.DELIVERED, status=200, error=None,
            possibly_received=True,
        )  # fmt: skip
    finally:
        journal.close()

    assert outbox_cli.main(_parse("--data-dir", str(tmp_path))) == 0
    text = capsys.readouterr().out
    assert "PENDING_1" in text and "DEAD_1" in text and "bad basket" in text
    assert "DELIVERED_1" not in text

    assert outbox_cli.main(_parse("--data-dir", str(tmp_path), "--json")) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {(r["order_id"], r["state"]) for r in rows} == {
        ("PENDING_1", "pending"),
        ("DEAD_1", "dead"),
    }

    assert outbox_cli.main(_parse("retry", str(dead), "--data-dir", str(tmp_path))) == 0
    assert f"notification {dead} requeued" in capsys.readouterr().out
    assert outbox_cli.main(_parse("--data-dir", str(tmp_path), "retry", str(done))) == 1
    assert "delivered, not dead" in capsys.readouterr().err
    assert outbox_cli.main(_parse("--data-dir", str(tmp_path), "retry", "--all")) == 0
    assert "no dead notifications" in capsys.readouterr().out

    journal = Journal.open(tmp_path)
    try:
        note = journal.outbox.get(dead)
        assert note is not None and note.state is NotificationState.PENDING
    finally:
        journal.close()


def test_cli_refuses_a_directory_without_a_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert outbox_cli.main(_parse("--data-dir", str(tmp_path / "typo"))) == 2
    assert "no journal" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()
    # neither --config nor --data-dir: the demo's data directory, as run and doctor take it
    demo = tmp_path / "demo-data"
    monkeypatch.setenv(DATA_DIR_ENV, str(demo))
    assert outbox_cli.main(_parse()) == 2
    err = capsys.readouterr().err
    assert "no journal" in err and str(demo) in err
    assert not demo.exists()


def test_metrics_render_prometheus_text() -> None:
    metrics = Metrics(buckets=(0.5, 1.0, 5.0))
    for outcome in ("accepted", "accepted", "unknown"):
        metrics.transaction_finished(outcome)
    metrics.notification_attempt("uncertain")
    metrics.set_notification_states({"pending": 2, "dead": 1})
    for seconds in (0.2, 0.7, 3.0, 10.0):
        metrics.delivery_latency(seconds)
    text = metrics.render()
    lines = set(text.splitlines())
    assert 'ecr_transactions_total{outcome="accepted"} 2.0' in lines
    assert 'ecr_transactions_total{outcome="refused"} 0.0' in lines
    assert 'ecr_notifications{state="pending"} 2.0' in lines
    assert 'ecr_notifications{state="delivered"} 0.0' in lines
    assert 'ecr_notification_attempts_total{result="uncertain"} 1.0' in lines
    assert 'ecr_notification_delivery_seconds_bucket{le="0.5"} 1.0' in lines
    assert 'ecr_notification_delivery_seconds_bucket{le="1.0"} 2.0' in lines
    assert 'ecr_notification_delivery_seconds_bucket{le="5.0"} 3.0' in lines
    assert 'ecr_notification_delivery_seconds_bucket{le="+Inf"} 4.0' in lines
    assert "ecr_notification_delivery_seconds_count 4.0" in lines
    assert "ecr_notification_delivery_seconds_sum 13.9" in lines
    assert text.endswith("\n")
    for line in text.splitlines():
        assert line.startswith("#") or re.fullmatch(r"[a-z_]+(\{[a-z]+=\"[^\"]+\"\})? \S+", line)
    snap = metrics.snapshot()
    assert snap["transactions"]["accepted"] == 2 and snap["notifications"]["dead"] == 1


async def test_journal_feeds_transaction_metrics_and_the_periodic_line(journal: Journal) -> None:
    metrics = Metrics()
    fed = Journal.open(
        journal.path.parent, context=CONTEXT, on_finished=metrics.transaction_finished
    )
    try:
        await finish_order(fed, "O1")
        for order_id in ("O2", "O3"):
            request = {"order_id": order_id, "amount": 5, "currency": "EUR"}
            begun = await fed.begin(order_id, request, flavour="kiosk")
            assert begun.kind is BeginKind.NEW
            if order_id == "O2":
                await fed.finish("O2", TxState.FAILED)  # tp-manager unreachable, say
        fed.recover_interrupted()  # O3 was at the terminal when the agent stopped
        assert metrics.snapshot()["transactions"] == {
            "accepted": 1,
            "refused": 0,
            "failed": 1,
            "unknown": 1,
        }
        task = asyncio.create_task(metrics.log_periodically(0.01, fed.outbox.counts))
        try:
            for _ in range(100):
                if metrics.snapshot()["notifications"]["pending"] == 2:
                    break
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
        # O1 and O3 (unknown) are notified; O2 never reached the terminal: nothing to tell
        assert metrics.snapshot()["notifications"]["pending"] == 2
    finally:
        fed.close()


async def test_cli_reads_the_data_dir_from_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = Journal.open(tmp_path, context=CONTEXT)
    try:
        await finish_order(journal, "PENDING_1")
    finally:
        journal.close()
    config = tmp_path / "config.yml"
    config.write_text(
        "serial_port: simulator\napi_username: u\napi_password: p\n"
        "hipay_login: l\nhipay_password: q\n"  # data_dir: the config file's directory
    )
    capsys.readouterr()  # the journal's own log lines
    assert outbox_cli.main(_parse("--config", str(config), "--json")) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [n["order_id"] for n in listed] == ["PENDING_1"]

    config.write_text("local_port: 99999\n")
    with pytest.raises(SystemExit, match=r"(?s)outbox: config file .*local_port"):
        outbox_cli.main(_parse("--config", str(config)))


async def test_a_dead_notification_a_delivered_correction_supersedes_is_not_requeued(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ``unknown`` notification of an order died (HiPay refused it); a late verdict
    then reconciled the order and its corrected notification was delivered.  Requeued,
    the dead one would reach HiPay last and make its last word on a paid order
    ``unknown`` again: ``outbox retry`` refuses it and says why."""
    journal = Journal.open(tmp_path, context=CONTEXT)
    try:
        await journal.begin("LATE-1", canonical_request("LATE-1"), flavour="pos-api")
        await journal.finish("LATE-1", TxState.UNKNOWN, None, TxError("TRANSACTION_TIMEOUT", "-"))
        [unknown] = _ids(journal, "LATE-1")
        await journal.outbox.record_attempt(
            unknown, state=NotificationState.DEAD, status=400, error="bad",
            possibly_received=False,
        )  # fmt: skip
        kind, _ = journal.reconcile("LATE-1", accepted_result(), time.time())
        assert kind is ReconcileKind.RECONCILED
        [corrected] = _ids(journal, "LATE-1")
        assert corrected != unknown
        await journal.outbox.record_attempt(
            corrected, state=NotificationState.DELIVERED, status=200, error=None,
            possibly_received=True,
        )  # fmt: skip
        assert not journal.outbox.retry_dead(unknown)
        note = journal.outbox.get(unknown)
        assert note is not None and note.state is NotificationState.DEAD
    finally:
        journal.close()
    assert outbox_cli.main(_parse("--data-dir", str(tmp_path), "retry", str(unknown))) == 1
    assert f"superseded by notification {corrected}" in capsys.readouterr().err
    assert outbox_cli.main(_parse("--data-dir", str(tmp_path), "retry", "--all")) == 1
    journal = Journal.open(tmp_path)
    try:
        note = journal.outbox.get(unknown)
        assert note is not None and note.state is NotificationState.DEAD
    finally:
        journal.close()
