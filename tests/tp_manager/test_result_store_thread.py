"""The result store's writer thread on a real SQLite file: a future resolves once its write
is in the file, writes that come together share one fsync, a stop writes what is queued,
and a tp-manager killed right after a write keeps it (a real process, SIGKILL)."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from common import paths
from tp_manager.result_records import RecordState, ResultRecords
from tp_manager.result_store import DEFAULT_TERMINAL, ResultStore
from tp_manager.terminal.model import (
    PaymentRequest,
    PaymentResult,
    PaymentStatus,
    TransactionType,
)

REPO = Path(__file__).resolve().parents[2]
TOGETHER = 50
CHILD_TIMEOUT_S = 20.0


def request(order_id: str) -> PaymentRequest:
    return PaymentRequest(amount=999, currency_numeric="978", order_id=order_id)


def verdict() -> PaymentResult:
    return PaymentResult(
        status=PaymentStatus.ACCEPTED,
        amount=999,
        currency_numeric="978",
        transaction_type=TransactionType.DEBIT,
        protocol="concert-v3",
    )


def states_in_file(data_dir: Path) -> dict[str, str]:
    """What another connection (another process) reads in the file now."""
    with sqlite3.connect(paths.tp_manager_results(data_dir)) as conn:
        rows = conn.execute("SELECT order_id, state FROM payments").fetchall()
    return {str(order_id): str(state) for order_id, state in rows}


async def test_a_write_is_in_the_file_when_its_future_resolves(tmp_path: Path) -> None:
    store = ResultStore.in_data_dir(tmp_path)
    try:
        record = await store.begin("A", DEFAULT_TERMINAL, request("A"))
        assert states_in_file(tmp_path) == {"A": RecordState.STARTED}
        await store.finish_result(record, verdict())
        assert states_in_file(tmp_path) == {"A": RecordState.VERDICT}
        [pending] = await store.pending()
        assert pending.order_id == "A" and pending.result == verdict()
        assert await store.ack(["A"]) == 1
        assert await store.state_of("A") is None
    finally:
        store.close()


async def test_writes_that_come_together_share_an_fsync(tmp_path: Path) -> None:
    store = ResultStore.in_data_dir(tmp_path)
    try:
        ids = await asyncio.gather(
            *(store.begin(f"T{n}", f"t{n}", request(f"T{n}")) for n in range(TOGETHER))
        )
        assert len(set(ids)) == TOGETHER
        await store.synced()
        assert store.writes == TOGETHER
        assert 1 <= store.syncs < TOGETHER  # group commit: not one fsync per write
    finally:
        store.close()


async def test_a_stop_writes_what_is_queued(tmp_path: Path) -> None:
    store = ResultStore.in_data_dir(tmp_path)
    for n in range(10):  # queued, never awaited
        store.begin(f"Q{n}", DEFAULT_TERMINAL, request(f"Q{n}"))
    store.close()
    assert len(states_in_file(tmp_path)) == 10
    records = ResultRecords.in_data_dir(tmp_path)  # a new tp-manager: all interrupted
    try:
        assert {records.state_of(f"Q{n}") for n in range(10)} == {RecordState.AWAITING}
    finally:
        records.close()


CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from tp_manager.result_store import DEFAULT_TERMINAL, ResultStore
    from tp_manager.terminal.model import PaymentRequest

    async def main() -> None:
        store = ResultStore.in_data_dir(Path(sys.argv[1]))
        await store.begin("K", DEFAULT_TERMINAL, PaymentRequest(999, "978", order_id="K"))
        print("WRITTEN", flush=True)  # as pay wakes the terminal now
        time.sleep(60)  # holds the loop and the thread's next fsync: killed before both

    asyncio.run(main())
    """
)


def test_a_tp_manager_killed_right_after_a_write_keeps_it(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], CHILD_TIMEOUT_S)
        assert ready and proc.stdout.readline().strip() == b"WRITTEN"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=CHILD_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=CHILD_TIMEOUT_S)
        if proc.stdout is not None:
            proc.stdout.close()
    records = ResultRecords.in_data_dir(tmp_path)  # the restarted tp-manager
    try:
        assert records.state_of("K") is RecordState.AWAITING  # interrupted, awaiting
    finally:
        records.close()
