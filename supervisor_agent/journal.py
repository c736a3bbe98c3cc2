"""The transaction journal: one SQLite row per order, so no payment is ever done twice or lost.

Why SQLite and these settings:

* **WAL** lets the notifier, the HTTP API and the ``ecr-connector outbox`` command
  read while a payment is being written, and a crash never leaves a torn page.
* **synchronous=FULL**: in WAL mode, NORMAL may lose the last commits on a power
  cut (not corrupt the file, but lose them).  A lost commit here could be a
  payment the customer made and nobody tells HiPay about; a shop's till is not
  on a UPS.  So a payment costs two fsyncs: ``begin`` (the claim, already marked
  at the terminal) and ``finish`` (the outcome and its notification).  Only the
  notifier's bookkeeping (``Outbox.record_attempt``) commits with NORMAL: losing it
  costs a second send with the same idempotency key, never a notification.
  docs/durability.md lists every fsync and what it protects.
* Every write is ``BEGIN IMMEDIATE``: the write lock is taken at once, so two
  concurrent ``begin`` calls on one order id (threads or processes) serialise,
  and only one of them can see ``NEW``.

Writes run on the journal's one writer thread (:class:`Database`), which commits the
jobs that queue up meanwhile together (group commit: many terminals finishing at once
share an fsync).  The payment path's writes (``begin``, ``finish``, the notifier's
``Outbox.record_attempt``) are coroutines: the event loop awaits the writer without a
hop through the default thread pool.  The rest (recovery at start, ``reconcile``,
``purge``, the operator's outbox commands) block their caller, a thread.  Reads run
in the caller's thread.

States::

    begin --> at_terminal --finish--> accepted | refused | failed | unknown
    unknown (or failed) --reconcile--> accepted | refused   (the terminal's verdict came late)
    at_terminal --recover_interrupted (at start)--> unknown / INTERRUPTED
    received --recover_interrupted (at start)--> failed / NOT_SENT_TO_TERMINAL

    ``received`` is written by no code of this version.  Earlier versions claimed an
    order in ``received`` and moved it to ``at_terminal`` in a second commit; a journal
    they left after a crash may still hold such a row when a self-update starts this
    version on it.  So the schema keeps the state, and recovery still reads it.

The journal is the truth about a payment: every answer the API gives (the first
one, a replay, a lookup) is rendered from the row, and the row keeps the terminal's
full result and when its answer arrived (``answered_at``).  It is also the one
owner, on the agent's side, of "a payment is in flight on this terminal": a row
still ``at_terminal`` for a terminal makes ``begin`` answer BUSY for any other
order on it (crash recovery closes such rows at start, before anything is served, so
they never outlive the process that opened them).

A row must be ``at_terminal`` on disk *before* the payment command can leave for
tp-manager: ``begin`` writes the claim so, in one fsynced commit.  That makes
crash recovery safe: a row in ``at_terminal`` may have been paid (-> ``unknown``,
``INTERRUPTED``); a ``received`` row (an earlier version's) never reached the
terminal (-> ``failed``, ``NOT_SENT_TO_TERMINAL``).
"""

from __future__ import annotations

import asyncio
import enum
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import structlog

from common import terminals
from common.commands import errors as codes
from common.commands import pay as pay_contract
from common.payment import PaymentResult
from common.redact import mask_pans_in_texts, redact
from supervisor_agent import hipay_payload, outbox
from supervisor_agent.hipay_payload import PosContext
from supervisor_agent.observers import Observers
from supervisor_agent.outbox import Notification, Outbox

log = structlog.get_logger(__name__)

JOURNAL_FILENAME = "journal.sqlite3"
BUSY_TIMEOUT_MS = 5000  # another process (CLI, a second reader) holding the write lock
# Jobs committed together at most (group commit): 50 terminals finishing at once take
# one or two fsyncs, and one batch never holds the connection for long.
MAX_GROUP_COMMIT = 64
# WAL checkpoints (copying the WAL into the main file: two fsyncs) run when the writer
# has had no job for a while, not inside a payment's commit: CHECKPOINT_IDLE_S once
# CHECKPOINT_MIN_COMMITS commits (about 20 payments, some 400 pages) wait in the WAL,
# CHECKPOINT_QUIET_S for fewer.  Not after every payment: a payment's wait for the
# terminal is such a pause, and a register paying back to back on Concert V3 (its
# ~150 ms settle) then paid two fsyncs and a page copy per payment for nothing the WAL
# does not already keep.  SQLite's own automatic checkpoint stays as a backstop for a
# writer that is never idle, at a WAL of CHECKPOINT_BACKSTOP_PAGES pages (4 KiB each;
# a payment adds about 20).
CHECKPOINT_IDLE_S = 0.1
CHECKPOINT_MIN_COMMITS = 64
CHECKPOINT_QUIET_S = 30.0
CHECKPOINT_BACKSTOP_PAGES = 10_000
DEFAULT_RETENTION = timedelta(days=396)  # 13 months
NOT_SENT_TO_TERMINAL = codes.NOT_SENT_TO_TERMINAL
INTERRUPTED = codes.INTERRUPTED

T = TypeVar("T")


class TxState(enum.StrEnum):
    RECEIVED = "received"  # written only by earlier versions: recovery closes it (see above)
    AT_TERMINAL = "at_terminal"
    ACCEPTED = "accepted"
    REFUSED = "refused"
    FAILED = "failed"
    UNKNOWN = "unknown"


FINAL_STATES = frozenset({TxState.ACCEPTED, TxState.REFUSED, TxState.FAILED, TxState.UNKNOWN})


class BeginKind(enum.StrEnum):
    NEW = "new"  # row written ``at_terminal``: go ahead with the payment
    IN_PROGRESS = "in_progress"  # same order id is being paid right now
    DONE = "done"  # same order id already finished: answer with the stored record
    BUSY = "busy"  # another order is in flight on the same terminal: nothing written


class ReconcileKind(enum.StrEnum):
    RECONCILED = "reconciled"  # unknown (or failed) -> the terminal's verdict, notified
    ALREADY = "already"  # the row already holds this verdict
    IN_FLIGHT = "in_flight"  # the payment is still open: its own path will journal it
    CONFLICT = "conflict"  # the row holds another verdict: kept, logged for a person
    NO_ORDER = "no_order"  # no such order (purged, or another journal)


class JournalError(Exception):
    """The journal cannot do what was asked (bad state change, newer schema...)."""


class JournalStateError(JournalError):
    """A state change the lifecycle does not allow (finish twice, unknown order...)."""


class StorageUnavailable(JournalError):
    """The journal's file cannot be written: disk full, I/O error, read-only, locked.

    A product state, not a bug: before the terminal is woken the payment is refused
    (503 STORAGE_UNAVAILABLE); after it answered, the verdict is held and journaled
    as soon as the disk allows (api/payment.py).
    """


# SQLite primary result codes that mean "the storage refuses", not "the program is wrong".
_STORAGE_CODES = frozenset(
    {
        5,  # SQLITE_BUSY: another process holds the lock past busy_timeout
        8,  # SQLITE_READONLY
        10,  # SQLITE_IOERR
        11,  # SQLITE_CORRUPT
        13,  # SQLITE_FULL
        14,  # SQLITE_CANTOPEN
        26,  # SQLITE_NOTADB
    }
)


def _storage_error(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _STORAGE_CODES


@dataclass(frozen=True, slots=True)
class TxError:
    code: str
    message: str = ""


DEFAULT_TERMINAL = terminals.DEFAULT_TERMINAL  # the configured one; keys: common/terminals.py


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    order_id: str
    flavour: str
    request: dict[str, Any]
    state: TxState
    result: dict[str, Any] | None
    error_code: str | None
    error_message: str | None
    created_at: float  # epoch seconds
    updated_at: float
    finished_at: float | None
    terminal: str = DEFAULT_TERMINAL
    answered_at: float | None = None  # when the terminal's answer arrived
    reconciled_at: float | None = None  # when a late verdict replaced ``reconciled_from``
    reconciled_from: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def retryable(self) -> bool:
        """Failed before reaching the terminal: the order id may be posted again."""
        return self.state is TxState.FAILED

    def to_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "flavour": self.flavour,
            "request": self.request,
            "state": str(self.state),
            "result": self.result,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "finished_at": self.finished_at,
            "terminal": self.terminal,
            "answered_at": self.answered_at,
            "reconciled_at": self.reconciled_at,
            "reconciled_from": self.reconciled_from,
        }


@dataclass(frozen=True, slots=True)
class Begin:
    kind: BeginKind
    record: TransactionRecord  # BUSY: the order in flight on the terminal


@dataclass(frozen=True, slots=True)
class Finished:
    """A final row, and the HiPay notification queued in the same commit."""

    record: TransactionRecord
    notification: Notification | None  # None for ``failed``: HiPay has nothing to learn


# ``received`` stays allowed: this version never writes it, but rows an earlier version
# left may still be on disk for recovery to close (module docstring).
_TRANSACTIONS_V1: tuple[str, ...] = (
    """
    CREATE TABLE transactions (
        order_id      TEXT PRIMARY KEY,
        flavour       TEXT NOT NULL,
        request_json  TEXT NOT NULL,
        state         TEXT NOT NULL CHECK (state IN
                          ('received', 'at_terminal', 'accepted', 'refused', 'failed', 'unknown')),
        result_json   TEXT,
        error_code    TEXT,
        error_message TEXT,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL,
        finished_at   REAL
    )
    """,
    "CREATE INDEX transactions_state ON transactions (state)",
    "CREATE INDEX transactions_finished ON transactions (finished_at)",
)

# The terminal a row is paid on, when the answer came, and reconciliations.
_TRANSACTIONS_V2: tuple[str, ...] = (
    f"ALTER TABLE transactions ADD COLUMN terminal TEXT NOT NULL DEFAULT '{DEFAULT_TERMINAL}'",
    "ALTER TABLE transactions ADD COLUMN answered_at REAL",
    "ALTER TABLE transactions ADD COLUMN reconciled_at REAL",
    "ALTER TABLE transactions ADD COLUMN reconciled_from TEXT",
    "CREATE INDEX transactions_open ON transactions (terminal, state)",
)

# (version, statements).  Append only; never edit a released migration.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, _TRANSACTIONS_V1 + outbox.OUTBOX_SCHEMA_V1),
    (2, _TRANSACTIONS_V2),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clean_result(
    order_id: str, result: PaymentResult | Mapping[str, Any] | None
) -> dict[str, Any] | None:
    if result is None:
        return None
    data = result.to_dict() if isinstance(result, PaymentResult) else dict(result)
    for key in mask_pans_in_texts(data):  # what is here goes to HiPay and the register too
        log.warning("journal.result_pan_masked", order_id=order_id, field=key)
    return data


@dataclass(slots=True)
class CommitCounts:
    """What the database committed since it was opened (tests and benchmarks read it)."""

    durable: int = 0  # commits with synchronous=FULL: one fsync of the WAL each
    bookkeeping: int = 0  # commits with synchronous=NORMAL: no fsync
    jobs: int = 0  # writer jobs committed or refused: ``jobs`` > commits = group commit
    checkpoints: int = 0  # WAL checkpoints the writer ran while idle


def _settle(waiter: asyncio.Future[Any] | Future[Any], ok: bool, value: Any) -> None:
    """Hand a job's outcome over, unless it was already (or its caller gave up); an
    event loop's future is settled on its own loop."""
    if waiter.done():
        return
    if ok:
        waiter.set_result(value)
    else:
        waiter.set_exception(value)


@dataclass(slots=True)
class _Job:
    """One unit of work for the writer thread, and where its outcome goes.

    A thread waits on a ``concurrent.futures.Future``; an event loop on a future of its
    own (``waiter``), settled through ``call_soon_threadsafe``.  A payment's three
    commits each cross threads this way: ``asyncio.wrap_future`` around a
    ``concurrent.futures.Future`` would add a chained pair of futures and a condition
    variable, about twice the CPU of the hand-over itself.
    """

    work: Callable[[sqlite3.Connection], Any]
    durable: bool
    future: Future[Any] | None = None  # a thread waits (submit, transact)
    waiter: asyncio.Future[Any] | None = None  # an event loop waits (transact_async)

    def claim(self) -> bool:
        """The writer starts the job; False if its caller gave up first (it is dropped).

        A waiter is read from the writer's thread: a cancel landing just after this
        runs the job anyway, and its outcome is dropped (as a Future already running).
        """
        if self.future is not None:
            return self.future.set_running_or_notify_cancel()
        return self.waiter is None or not self.waiter.cancelled()

    def settle(self, ok: bool, value: Any) -> None:
        """Hand the outcome to whoever waits; nothing if it was handed over already."""
        if self.future is not None:
            _settle(self.future, ok, value)
        elif self.waiter is not None:
            with suppress(RuntimeError):  # its loop is closed: nobody waits any more
                self.waiter.get_loop().call_soon_threadsafe(_settle, self.waiter, ok, value)


class Database:
    """One SQLite connection, and the one thread that writes through it.

    Every write of the payment path is a *job* (a function of the connection) run
    by the writer thread, which owns the connection's write side: writes are
    serial, and they cost their callers no hop through the default thread pool.
    Jobs queued while a commit is in progress are committed together (group
    commit): each runs inside its own savepoint, so each gets exactly the outcome
    it would have had alone, and the batch costs one fsync.  A job's result is
    handed back only after the COMMIT returned, so it is on disk when its caller
    learns it (docs/durability.md).

    A job is ``durable`` (the default: ``synchronous=FULL``, the WAL is fsynced at
    commit) or bookkeeping (``synchronous=NORMAL``: committed, visible, survives the
    process being killed, but may be lost on a power cut).  A batch is durable if
    any of its jobs is; a durable commit fsyncs the whole WAL, so it makes every
    earlier bookkeeping commit durable too.

    Reads run in the caller's thread under the connection's lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise JournalError(f"cannot put {path} in WAL mode (got {mode})")
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_BACKSTOP_PAGES}")
        self._since_checkpoint = 0  # commits since the writer's last checkpoint
        self._durable = True  # the connection's synchronous setting: FULL
        self.commits = CommitCounts()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._writer = threading.Thread(
            target=self._write_loop, name=f"journal-writer:{path.name}", daemon=True
        )
        self._writer.start()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One durable write transaction in the caller's thread; a storage failure (even
        at COMMIT) rolls back and raises :class:`StorageUnavailable`, leaving the file
        as it was.  The payment path uses :meth:`transact` instead."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                    self._conn.execute("COMMIT")
                    self._count_commit()
                except BaseException:
                    if self._conn.in_transaction:
                        with suppress(sqlite3.Error):
                            self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise _mapped(self.path, exc) from exc

    # -- the writer thread -----------------------------------------------------

    def submit(self, work: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> Future[T]:
        """Queue ``work`` for the writer; the future holds its result once committed."""
        if self._closed:
            raise JournalError(f"{self.path} is closed")
        future: Future[T] = Future()
        self._jobs.put(_Job(work, durable, future=future))
        return future

    def transact(self, work: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> T:
        """Run ``work`` in a write transaction on the writer thread and wait for it."""
        if threading.current_thread() is self._writer:  # a job's own callback: no queue
            ok, value = self._run_alone(_Job(work, durable))
            if not ok:
                raise value
            return cast(T, value)
        return self.submit(work, durable=durable).result()

    async def transact_async(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        durable: bool = True,
        even_if_cancelled: bool = False,
    ) -> T:
        """:meth:`transact` for the event loop: it waits without blocking the loop.

        Cancelling the caller drops a job the writer has not started, unless
        ``even_if_cancelled``: then the job commits whatever becomes of its caller.
        """
        if self._closed:
            raise JournalError(f"{self.path} is closed")
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put(_Job(work, durable, waiter=waiter))
        return await (asyncio.shield(waiter) if even_if_cancelled else waiter)

    def _write_loop(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self._checkpoint_after())
            except queue.Empty:
                self._checkpoint()
                continue
            if job is None:
                return
            batch, stop = [job], False
            while len(batch) < MAX_GROUP_COMMIT:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            try:
                self._commit(batch)
            except BaseException as exc:  # never let the writer die: fail the batch
                log.exception("journal.writer_failed")
                for each in batch:
                    each.settle(False, exc)
            if stop:
                return

    def _commit(self, batch: list[_Job]) -> None:
        """Commit what ``batch`` still holds; its bookkeeping first, in a commit of its own.

        A bookkeeping job (a HiPay attempt written down, which a register's answer waits
        for) grouped with durable ones would wait for their fsync, which it does not
        need.  Its own commit costs no fsync, so it goes ahead.  Reordering a batch is
        safe: each caller waits for its job before it queues another, so the jobs of
        one batch were all in flight at once, in no order anyone relies on.
        """
        live = [job for job in batch if job.claim()]
        bookkeeping = [job for job in live if not job.durable]
        if bookkeeping and len(bookkeeping) < len(live):
            self._commit_group(bookkeeping)
            self._commit_group([job for job in live if job.durable])
        elif live:
            self._commit_group(live)

    def _commit_group(self, live: list[_Job]) -> None:
        with self._lock:
            outcomes = self._run_grouped(live) if len(live) > 1 else None
            if outcomes is None:
                # alone, or a SQLite error inside the group (disk full, a constraint): the
                # group was rolled back, so each job runs again alone for its own outcome
                outcomes = [self._run_alone(job) for job in live]
            self.commits.jobs += len(live)
        for job, (ok, value) in zip(live, outcomes, strict=True):
            job.settle(ok, value)

    def _run_alone(self, job: _Job) -> tuple[bool, Any]:
        self._synchronous(job.durable)
        try:
            with self.write() as conn:
                return True, job.work(conn)
        except Exception as exc:
            return False, exc
        finally:
            self._synchronous(True)

    def _run_grouped(self, jobs: list[_Job]) -> list[tuple[bool, Any]] | None:
        """All ``jobs`` in one transaction, one savepoint each; None if SQLite failed."""
        conn = self._conn
        self._synchronous(any(job.durable for job in jobs))
        results: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:  # nothing ran: every job gets the error
            self._synchronous(True)
            error = _mapped(self.path, exc)
            return [(False, error) for _ in jobs]
        try:
            for job in jobs:
                conn.execute("SAVEPOINT job")
                try:
                    value = job.work(conn)
                except sqlite3.Error:
                    raise
                except Exception as exc:  # the job refused (state, payload): undo it alone
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    results.append((False, exc))
                else:
                    conn.execute("RELEASE job")
                    results.append((True, value))
            conn.execute("COMMIT")
            self._count_commit()
        except sqlite3.Error:
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            return None
        finally:
            self._synchronous(True)
        return results

    def _checkpoint_after(self) -> float | None:
        """How long the writer waits for a job before it checkpoints (None: nothing to)."""
        if not self._since_checkpoint:
            return None
        if self._since_checkpoint >= CHECKPOINT_MIN_COMMITS:
            return CHECKPOINT_IDLE_S
        return CHECKPOINT_QUIET_S

    def _checkpoint(self) -> None:
        """Copy the WAL into the main file now that nothing waits (PASSIVE: readers go on)."""
        with self._lock:
            self._since_checkpoint = 0
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as exc:  # the backstop checkpoints later; nothing is lost
                log.warning("journal.checkpoint_failed", path=str(self.path), error=str(exc))
                return
            self.commits.checkpoints += 1

    def _count_commit(self) -> None:
        self._since_checkpoint += 1
        if self._durable:
            self.commits.durable += 1
        else:
            self.commits.bookkeeping += 1

    def _synchronous(self, durable: bool) -> None:
        """FULL (fsync at commit) or NORMAL; the connection is FULL between jobs."""
        if durable is not self._durable:
            self._conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            self._durable = durable

    def migrate(self) -> int:
        """Bring the schema from whatever version (0 = empty file) to :data:`SCHEMA_VERSION`."""
        with self.write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        current = int(row[0] or 0)
        if current > SCHEMA_VERSION:
            raise JournalError(
                f"{self.path} has schema version {current}, newer than this program's "
                f"{SCHEMA_VERSION}: refusing to touch it"
            )
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            with self.write() as conn:
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            log.info("journal.migrated", path=str(self.path), version=version)
            current = version
        return current

    def close(self) -> None:
        """Commit what is queued, stop the writer, close the connection."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
            if threading.current_thread() is not self._writer:
                self._writer.join()
        with self._lock:
            self._conn.close()


def _mapped(path: Path, exc: sqlite3.Error) -> Exception:
    """A storage failure as :class:`StorageUnavailable`; any other SQLite error as is."""
    if _storage_error(exc):
        error = StorageUnavailable(f"{path}: {exc}")
        error.__cause__ = exc
        return error
    return exc


_TX_COLUMNS = (
    "order_id, flavour, request_json, state, result_json, error_code, error_message,"
    " created_at, updated_at, finished_at, terminal, answered_at, reconciled_at, reconciled_from"
)


def _record(row: tuple[Any, ...]) -> TransactionRecord:
    return TransactionRecord(
        order_id=row[0],
        flavour=row[1],
        request=json.loads(row[2]),
        state=TxState(row[3]),
        result=json.loads(row[4]) if row[4] is not None else None,
        error_code=row[5],
        error_message=row[6],
        created_at=row[7],
        updated_at=row[8],
        finished_at=row[9],
        terminal=row[10],
        answered_at=row[11],
        reconciled_at=row[12],
        reconciled_from=row[13],
    )


def _select(conn: sqlite3.Connection, order_id: str) -> TransactionRecord | None:
    row = conn.execute(
        f"SELECT {_TX_COLUMNS} FROM transactions WHERE order_id = ?",  # noqa: S608
        (order_id,),
    ).fetchone()
    return _record(row) if row else None


class Journal:
    """Transactions and their outbox, in one SQLite file under the data directory."""

    def __init__(
        self,
        path: Path,
        *,
        context: PosContext | None = None,
        clock: Callable[[], float] = time.time,
        on_finished: Callable[[TxState], None] | None = None,
        on_reconciled: Callable[[TxState], None] | None = None,
    ) -> None:
        self._db = Database(Path(path))
        self._context = context or PosContext()
        self._clock = clock
        self._on_finished = on_finished
        self._on_reconciled = on_reconciled
        # told ("at_terminal" | "finished" | "reconciled", row) after each commit: live events
        self.observers: Observers[TransactionRecord] = Observers()
        version = self._db.migrate()
        self.outbox = Outbox(self._db, clock)
        log.info("journal.opened", path=str(path), schema_version=version)

    @classmethod
    def open(cls, data_dir: Path | str, **kwargs: Any) -> Journal:
        return cls(Path(data_dir) / JOURNAL_FILENAME, **kwargs)

    @property
    def path(self) -> Path:
        return self._db.path

    def close(self) -> None:
        self._db.close()

    # -- lifecycle ---------------------------------------------------------

    async def begin(
        self,
        order_id: str,
        request: Mapping[str, Any],
        *,
        flavour: str,
        terminal: str = DEFAULT_TERMINAL,
    ) -> Begin:
        """Claim an order id on a terminal, atomically, already ``at_terminal``.

        NEW for the first caller; IN_PROGRESS / DONE (with the stored row) for a later
        one with the same id; BUSY (with the order in flight) when another order is open
        on the same terminal.  Only NEW writes anything: the row in ``at_terminal``, in
        one fsynced commit on the writer thread, before the payment command may leave.
        """
        work = self._begin_work(order_id, request, flavour, terminal)
        begun = await self._db.transact_async(work)
        if begun.kind is BeginKind.NEW:
            self.observers.tell("at_terminal", begun.record)
        return begun

    def _begin_work(
        self,
        order_id: str,
        request: Mapping[str, Any],
        flavour: str,
        terminal: str,
    ) -> Callable[[sqlite3.Connection], Begin]:
        body = dict(redact(request))  # the API masked already: a guard for other callers
        body.setdefault("order_id", order_id)
        if body["order_id"] != order_id:
            raise hipay_payload.PayloadError("request order_id differs from the journal key")
        hipay_payload.validate_request(body)
        request_json = json.dumps(body, sort_keys=True, allow_nan=False)
        state = str(TxState.AT_TERMINAL)

        def work(conn: sqlite3.Connection) -> Begin:
            now = self._clock()
            existing = _select(conn, order_id)
            if existing is not None and not existing.retryable:
                kind = BeginKind.DONE if existing.finished else BeginKind.IN_PROGRESS
                return Begin(kind, existing)
            busy = conn.execute(
                f"SELECT {_TX_COLUMNS} FROM transactions WHERE terminal = ?"  # noqa: S608
                " AND state = 'at_terminal' LIMIT 1",
                (terminal,),
            ).fetchone()
            if busy is not None:
                return Begin(BeginKind.BUSY, _record(busy))
            if existing is not None:
                # it failed before reaching the terminal: this order may be tried again
                conn.execute(
                    "UPDATE transactions SET flavour = ?, request_json = ?, state = ?,"
                    " result_json = NULL, error_code = NULL, error_message = NULL,"
                    " updated_at = ?, finished_at = NULL, terminal = ?, answered_at = NULL"
                    " WHERE order_id = ?",
                    (flavour, request_json, state, now, terminal, order_id),
                )
            else:
                conn.execute(
                    "INSERT INTO transactions (order_id, flavour, request_json, state,"
                    " created_at, updated_at, terminal) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (order_id, flavour, request_json, state, now, now, terminal),
                )
            record = _select(conn, order_id)
            assert record is not None
            return Begin(BeginKind.NEW, record)

        return work

    async def finish(
        self,
        order_id: str,
        state: TxState | str,
        result: PaymentResult | Mapping[str, Any] | None = None,
        error: TxError | None = None,
        *,
        answered_at: float | None = None,
    ) -> Finished:
        """Write the outcome and, unless it is ``failed``, queue its HiPay notification.

        One fsynced commit on the writer thread; returns the row with the notification
        it queued.  ``failed`` means the payment never reached the terminal: HiPay has
        nothing to learn, and the register may post the same order id again
        (``begin`` reopens it).  Once called, the outcome is written even if the
        caller is cancelled (a stop that ran out of patience): the terminal has spoken,
        its verdict must land.
        """
        work = self._finish_work(order_id, state, result, error, answered_at)
        return self._finished(await self._db.transact_async(work, even_if_cancelled=True))

    def _finish_work(
        self,
        order_id: str,
        state: TxState | str,
        result: PaymentResult | Mapping[str, Any] | None,
        error: TxError | None,
        answered_at: float | None,
    ) -> Callable[[sqlite3.Connection], Finished]:
        final = TxState(state)
        if final not in FINAL_STATES:
            raise JournalStateError(f"{final} is not a final state")

        def work(conn: sqlite3.Connection) -> Finished:
            record = _select(conn, order_id)
            if record is None:
                raise JournalStateError(f"no transaction {order_id!r}")
            if record.finished:
                raise JournalStateError(
                    f"transaction {order_id!r} already finished ({record.state})"
                )
            return self._finish_in(conn, record, final, result, error, answered_at)

        return work

    def _finished(self, finished: Finished) -> Finished:
        """After the commit: the log line, the metrics and the live events."""
        record = finished.record
        if record.state is TxState.FAILED:
            log.info("journal.not_sent", order_id=record.order_id, code=record.error_code)
        if self._on_finished is not None:
            self._on_finished(record.state)
        self.observers.tell("finished", record)
        return finished

    def reconcile(
        self, order_id: str, result: PaymentResult | Mapping[str, Any], answered_at: float
    ) -> tuple[ReconcileKind, TransactionRecord | None]:
        """Put the terminal's verdict, which came late, in place of ``unknown``.

        The row keeps what it said before (``reconciled_from``) and when it changed;
        HiPay gets the corrected notification through the outbox (a new idempotency
        key: the state differs).  A row that already holds a verdict is never
        overwritten: a different one is a CONFLICT for a person to look at.
        """
        data = _clean_result(order_id, result)
        assert data is not None
        verdict = TxState(pay_contract.transaction_state(PaymentResult.from_dict(data), True))

        def work(conn: sqlite3.Connection) -> tuple[ReconcileKind, TransactionRecord | None]:
            record = _select(conn, order_id)
            if record is None:
                return ReconcileKind.NO_ORDER, None
            if not record.finished:
                return ReconcileKind.IN_FLIGHT, record
            if record.state in (TxState.ACCEPTED, TxState.REFUSED):
                same = record.state is verdict and record.result == data
                return (ReconcileKind.ALREADY if same else ReconcileKind.CONFLICT), record
            now = self._clock()
            conn.execute(
                "UPDATE transactions SET reconciled_from = state, reconciled_at = ?, state = ?,"
                " result_json = ?, answered_at = ?, updated_at = ?, error_code = NULL,"
                " error_message = NULL WHERE order_id = ?",
                (now, str(verdict), json.dumps(data, sort_keys=True), answered_at, now, order_id),
            )
            reconciled = _select(conn, order_id)
            assert reconciled is not None
            self._queue_notification(conn, reconciled, now)
            return ReconcileKind.RECONCILED, reconciled

        kind, reconciled = self._db.transact(work)
        if kind is ReconcileKind.RECONCILED:
            assert reconciled is not None
            if self._on_reconciled is not None:
                self._on_reconciled(verdict)
            self.observers.tell("reconciled", reconciled)
        return kind, reconciled

    def _finish_in(
        self,
        conn: sqlite3.Connection,
        record: TransactionRecord,
        final: TxState,
        result: PaymentResult | Mapping[str, Any] | None,
        error: TxError | None,
        answered_at: float | None = None,
    ) -> Finished:
        now = self._clock()
        data = _clean_result(record.order_id, result)
        if data is not None and answered_at is None:
            answered_at = now
        conn.execute(
            "UPDATE transactions SET state = ?, result_json = ?, error_code = ?, error_message = ?,"
            " updated_at = ?, finished_at = ?, answered_at = ? WHERE order_id = ?",
            (
                str(final),
                json.dumps(data, sort_keys=True) if data is not None else None,
                error.code if error else None,
                error.message if error else None,
                now,
                now,
                answered_at,
                record.order_id,
            ),
        )
        updated = _select(conn, record.order_id)
        assert updated is not None
        note = None
        if final is not TxState.FAILED:
            note = self._queue_notification(conn, updated, now)
        return Finished(updated, note)

    def _queue_notification(
        self, conn: sqlite3.Connection, record: TransactionRecord, now: float
    ) -> Notification:
        """The row's HiPay notification, in the caller's write transaction."""
        state, data = str(record.state), record.result
        try:
            payload = hipay_payload.build_root_order(
                record.request,
                state=state,
                result=data,
                error_code=record.error_code,
                error_message=record.error_message,
                context=self._context,
                finished_at=_iso(record.answered_at or record.finished_at),
                reconciled_from=record.reconciled_from,
            )
        except Exception as exc:  # never lose an outcome over its notification's shape
            log.error("journal.payload_build_failed", order_id=record.order_id, error=repr(exc))
            payload = hipay_payload.build_fallback(record.order_id, state, data, repr(exc))
        return outbox.insert(
            conn,
            order_id=record.order_id,
            idempotency_key=hipay_payload.idempotency_key(record.order_id, state, data),
            payload_json=json.dumps(payload, sort_keys=True, allow_nan=False),
            now=now,
        )

    def get(self, order_id: str) -> TransactionRecord | None:
        with self._db.read() as conn:
            return _select(conn, order_id)

    def recent(self, limit: int = 20) -> list[TransactionRecord]:
        """The newest rows, newest first (the status page's last transactions)."""
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_TX_COLUMNS} FROM transactions"  # noqa: S608
                " ORDER BY created_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_record(r) for r in rows]

    def last_accepted_at(self) -> float | None:
        """When the newest accepted payment was journaled (metrics: no payment for hours)."""
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT MAX(updated_at) FROM transactions WHERE state = 'accepted'"
            ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def in_flight(self) -> list[TransactionRecord]:
        """The orders open on any terminal now (``at_terminal``).

        The self-update asks this before restarting the programs: it waits, never cuts
        a payment off.
        """
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_TX_COLUMNS} FROM transactions"  # noqa: S608
                " WHERE state = 'at_terminal'"
            ).fetchall()
        return [_record(row) for row in rows]

    def recover_interrupted(self) -> list[TransactionRecord]:
        """Close every transaction a crash left open and queue its notification.

        ``at_terminal`` -> ``unknown`` / INTERRUPTED (the customer may have paid);
        ``received``, which only an earlier version can have left on disk ->
        ``failed`` / NOT_SENT_TO_TERMINAL (it never left for the terminal).  Call once
        at start, before serving: ``begin`` and :meth:`in_flight` then only have
        ``at_terminal`` rows to look for.  Log the returned records at error level:
        each needs a human to check the terminal's journal.
        """

        def work(conn: sqlite3.Connection) -> list[TransactionRecord]:
            closed: list[TransactionRecord] = []
            rows = conn.execute(
                f"SELECT {_TX_COLUMNS} FROM transactions"  # noqa: S608
                " WHERE state IN ('received', 'at_terminal') ORDER BY created_at"
            ).fetchall()
            for row in rows:
                record = _record(row)
                if record.state is TxState.RECEIVED:
                    final = TxState.FAILED
                    error = TxError(
                        NOT_SENT_TO_TERMINAL, "interrupted before reaching the terminal"
                    )
                else:
                    final = TxState.UNKNOWN
                    error = TxError(
                        INTERRUPTED, "interrupted while at the terminal: outcome unknown"
                    )
                closed.append(self._finish_in(conn, record, final, None, error).record)
            return closed

        recovered = self._db.transact(work)
        for rec in recovered:
            if self._on_finished is not None:
                self._on_finished(rec.state)
            self.observers.tell("finished", rec)
        return recovered

    def purge(self, older_than: timedelta = DEFAULT_RETENTION) -> int:
        """Delete settled transactions past retention whose notifications were all delivered.

        A transaction with a pending or dead notification is kept however old it
        is: deleting it would lose the only copy of something HiPay never got.  An
        ``unknown`` one is kept too, its notification delivered or not: the customer may
        have paid, and a late verdict from tp-manager (``reconcile``) still needs the row.
        """
        cutoff = self._clock() - older_than.total_seconds()

        def work(conn: sqlite3.Connection) -> list[str]:
            found = [
                r[0]
                for r in conn.execute(
                    "SELECT t.order_id FROM transactions t WHERE t.finished_at IS NOT NULL"
                    " AND t.finished_at < ? AND t.state != ? AND NOT EXISTS (SELECT 1"
                    " FROM outbox o WHERE o.order_id = t.order_id AND o.state != 'delivered')",
                    (cutoff, str(TxState.UNKNOWN)),
                ).fetchall()
            ]
            for order_id in found:
                conn.execute("DELETE FROM outbox WHERE order_id = ?", (order_id,))
                conn.execute("DELETE FROM transactions WHERE order_id = ?", (order_id,))
            return found

        doomed = self._db.transact(work)
        if doomed:
            log.info("journal.purged", count=len(doomed), older_than_days=older_than.days)
        return len(doomed)
