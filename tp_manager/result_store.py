"""tp-manager's result store: the records of tp_manager/result_records.py, written by a
thread of their own and synced by another, never on the event loop.

Each call queues its job and returns a future the event loop awaits.  The writer
thread runs the jobs in order, each committed to the operating system
(``synchronous=NORMAL``) and its future settled at once.  The sync thread fsyncs the
WAL whenever commits are waiting for it (:meth:`ResultRecords.sync`): one fsync covers
every commit made before it started, so under 50 concurrent payments a handful of
fsyncs serve them all (group commit), and no commit ever waits for an fsync.  The
sync thread also checkpoints the WAL every :data:`CHECKPOINT_EVERY_WRITES` writes
(SQLite's own automatic checkpoint would fsync inside a commit).

Why a payment waits for the commit and not for the fsync:

* ``begin`` is committed before the terminal is woken, and ``finish_*`` before the
  reply leaves (a Concert V2 verdict and late answer before the terminal's ACK, then
  also awaiting :meth:`ResultStore.synced`: the terminal forgets an ACKed answer, so
  there the fsync comes first; tp_manager/commands/pay.py says why): a tp-manager
  killed at any point after that keeps the record (the kernel has it), so a restart
  still finds the interrupted payment or the verdict.
* Only a power cut (or a kernel crash) can lose a committed record, and only
  before the fsync that follows it, a few milliseconds later.  For ``finish_*``
  that costs nothing an fsync-first order would keep: while the verdict's fsync has
  not ended, that order would not have replied yet either, so the same cut would
  lose the verdict the same way; the agent journals the reply with its own fsync
  before the register is answered (the journal is the truth).  For ``begin``, a cut
  in those milliseconds after the terminal was woken leaves no record for a late
  answer to match: the agent's journal, synced before the pay left, still says the
  order is at the terminal, so it ends ``unknown`` -- never wrong -- as any payment
  cut off by a power loss does.
* A recovered status is queued the moment it arrives and synced with the next fsync
  (the terminal can be asked again).
* ``ack`` (the agent journaled the verdicts) is synced like the rest but need not be:
  a lost ack only means the verdict is collected again, which the journal takes as known.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import structlog

from common import paths
from common.commands.results import PendingResult
from common.payment import PaymentRequest, PaymentResult
from tp_manager.result_records import (
    AWAITING_HORIZON_S,
    DEFAULT_TERMINAL,
    RecordState,
    ResultRecords,
)

__all__ = ["AWAITING_HORIZON_S", "DEFAULT_TERMINAL", "RecordState", "ResultStore"]

log = structlog.get_logger(__name__)

T = TypeVar("T")
WRITE_THREAD: Final = "result-store-write"
SYNC_THREAD: Final = "result-store-sync"
# SQLite's automatic checkpoint runs every 1000 WAL pages; a payment writes a few pages
CHECKPOINT_EVERY_WRITES: Final = 300


@dataclass(slots=True)  # not frozen: a frozen __init__ sets each field through object.__setattr__
class _Job:
    call: Callable[[ResultRecords], Any]
    writes: bool
    synced: bool  # settled once the fsync that follows it has ended, not at its commit
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    context: contextvars.Context  # the caller's log context (order id, command)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled: the job ran anyway
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _answer(job: _Job, result: Any = None, error: BaseException | None = None) -> None:
    with contextlib.suppress(RuntimeError):  # the caller's loop is gone
        job.loop.call_soon_threadsafe(_settle, job.future, result, error)


class _Syncer:
    """The sync thread: fsyncs the WAL while commits wait for it; checkpoints now and then.

    The writer thread tells it of each commit, and of each job to settle after the next
    fsync, through a queue the thread alone reads, so its counters and waiting jobs are
    its own and need no lock: a ``queue.SimpleQueue`` hand-over is a C call each side,
    where a ``threading.Condition`` ran a few dozen lines of Python per commit on both
    threads (a lock made per wait), three commits a payment.
    """

    def __init__(self, records: ResultRecords) -> None:
        self._records = records
        self._inbox: queue.SimpleQueue[int | _Job | None] = queue.SimpleQueue()
        self._committed = 0  # writes committed so far (as the inbox has told)
        self._synced = 0  # ... of which an fsync has covered
        self._checkpointed = 0
        self._waiting: list[tuple[int, _Job]] = []  # synced() jobs and the write they follow
        self.syncs = 0
        self._thread = threading.Thread(target=self._run, name=SYNC_THREAD, daemon=True)
        self._thread.start()

    def committed(self, writes: int) -> None:
        self._inbox.put(writes)

    def after_sync(self, job: _Job) -> None:
        self._inbox.put(job)

    def stop(self) -> None:
        """After the last fsync that the commits so far need."""
        self._inbox.put(None)
        self._thread.join()

    def _take(self, item: int | _Job | None) -> bool:
        """One message of the inbox; False for the stop."""
        if item is None:
            return False
        if isinstance(item, int):
            self._committed += item
        elif self._synced >= self._committed:
            _answer(item)
        else:
            self._waiting.append((self._committed, item))
        return True

    def _run(self) -> None:
        inbox = self._inbox
        stopping = False
        while True:
            if not stopping:
                stopping = not self._take(inbox.get())
            while not inbox.empty():  # all that came meanwhile: one fsync covers them
                stopping = not self._take(inbox.get()) or stopping
            if self._synced >= self._committed:
                if stopping:
                    return
                continue
            target = self._committed
            self._sync()
            self._synced = target
            waiting = self._waiting
            if waiting:
                ready = [job for upto, job in waiting if upto <= target]
                self._waiting = [(upto, job) for upto, job in waiting if upto > target]
                for job in ready:
                    _answer(job)
            if target - self._checkpointed >= CHECKPOINT_EVERY_WRITES:
                self._checkpointed = target
                self._checkpoint()

    def _sync(self) -> None:
        try:
            self._records.sync()
        except OSError as exc:  # a failing disk: the commits stay with the OS, unsynced
            log.error("tp_manager.results.sync_failed", error=str(exc))
            return
        self.syncs += 1

    def _checkpoint(self) -> None:
        try:
            self._records.checkpoint()
        except sqlite3.Error as exc:  # the WAL grows until the next one succeeds
            log.warning("tp_manager.results.checkpoint_failed", error=str(exc))


class ResultStore:
    """The result store as the event loop sees it: every call a future, one writer thread."""

    def __init__(self, records: ResultRecords) -> None:
        self._records = records
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self.writes = 0
        self._syncer = _Syncer(records)
        self._thread = threading.Thread(target=self._run, name=WRITE_THREAD, daemon=True)
        self._thread.start()

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> ResultStore:
        """Open (and recover, see result_records.py) ``<data_dir>``'s store; start its threads."""
        return cls(ResultRecords(paths.tp_manager_results(data_dir), auto_checkpoint=False))

    @property
    def path(self) -> Path:
        return self._records.path

    @property
    def syncs(self) -> int:
        """fsyncs so far: fewer than the writes when writes come together."""
        return self._syncer.syncs

    def close(self) -> None:
        """Run what is queued, fsync it, close the file; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._thread.join()
        self._syncer.stop()
        self._records.close()

    # --- a payment's life (see ResultRecords for each) ------------------------------

    def begin(self, order_id: str, terminal: str, request: PaymentRequest) -> asyncio.Future[int]:
        return self._submit(lambda r: r.begin(order_id, terminal, request), writes=True)

    def finish_result(self, record: int, result: PaymentResult) -> asyncio.Future[None]:
        return self._submit(lambda r: r.finish_result(record, result), writes=True)

    def finish_error(
        self, record: int, code: str, money_may_have_moved: bool
    ) -> asyncio.Future[None]:
        return self._submit(
            lambda r: r.finish_error(record, code, money_may_have_moved), writes=True
        )

    def late_answer(self, terminal: str, result: PaymentResult) -> asyncio.Future[str | None]:
        return self._submit(lambda r: r.late_answer(terminal, result), writes=True)

    def recovered(
        self, order_id: str, terminal: str, request: PaymentRequest, result: PaymentResult
    ) -> asyncio.Future[bool]:
        return self._submit(lambda r: r.recovered(order_id, terminal, request, result), writes=True)

    # --- what the agent sees ---------------------------------------------------------

    def pending(self) -> asyncio.Future[list[PendingResult]]:
        return self._submit(lambda r: r.pending(), writes=False)

    def ack(self, order_ids: Iterable[str]) -> asyncio.Future[int]:
        ids = list(order_ids)
        return self._submit(lambda r: r.ack(ids), writes=True)

    def awaiting(self) -> asyncio.Future[list[tuple[str, str, dict[str, Any]]]]:
        return self._submit(lambda r: r.awaiting(), writes=False)

    def state_of(self, order_id: str) -> asyncio.Future[RecordState | None]:
        return self._submit(lambda r: r.state_of(order_id), writes=False)

    def synced(self) -> asyncio.Future[None]:
        """Resolves once every write queued before it has been fsynced."""
        return self._submit(lambda r: None, writes=False, synced=True)

    # --- the writer thread -------------------------------------------------------------

    def _submit(
        self, call: Callable[[ResultRecords], T], *, writes: bool, synced: bool = False
    ) -> asyncio.Future[T]:
        if self._closed:
            raise RuntimeError("the result store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(call, writes, synced, loop, future, contextvars.copy_context()))
        return future

    def _run(self) -> None:
        """Jobs in order, each committed and answered at once; the syncer hears of them."""
        while True:
            job = self._jobs.get()
            if job is None:
                return
            result: Any = None
            error: BaseException | None = None
            try:
                result = job.context.run(job.call, self._records)
            except Exception as exc:  # the caller gets it (a full disk: pay fails)
                error = exc
            if job.writes and error is None:
                self.writes += 1
                self._syncer.committed(1)
            if job.synced:
                self._syncer.after_sync(job)
            else:
                _answer(job, result, error)
