"""The transaction journal: one SQLite row per order, so no payment is ever done twice or lost.

Why SQLite and these settings:

* **WAL** lets the notifier, the HTTP API and the ``ecr-connector outbox`` command
  read while a payment is being written, and a crash never leaves a torn page.
* **synchronous=FULL**: in WAL mode, NORMAL may lose the last commits on a power
  cut (not corrupt the file, but lose them).  A lost commit here could be a
  payment the customer made and nobody tells HiPay about; a shop's till is not
  on a UPS, and we write a few rows per payment, so the fsync per commit is cheap.
* Every write is ``BEGIN IMMEDIATE``: the write lock is taken at once, so two
  concurrent ``begin`` calls on one order id (threads or processes) serialise,
  and only one of them can see ``NEW``.

The API is synchronous: each call is a few SQLite statements and one fsync
(about a millisecond on an SD card to a few ms).  The agent may call them
directly or through ``asyncio.to_thread``; the connection is shared under a
lock, so both are safe.  The notifier uses ``to_thread``.

States::

    received --mark_at_terminal--> at_terminal --finish--> accepted | refused | failed | unknown
    received --finish--> failed (e.g. tp-manager unreachable)

Callers must call :meth:`Journal.mark_at_terminal` *before* the payment command
can leave for tp-manager.  That makes crash recovery exact: a row still in
``received`` never reached the terminal (-> ``failed``, ``NOT_SENT_TO_TERMINAL``),
a row in ``at_terminal`` may have been paid (-> ``unknown``, ``INTERRUPTED``).
"""

from __future__ import annotations

import enum
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from common.commands import errors as codes
from common.payment import PaymentResult
from common.redact import REDACTED, SECRET_KEY, mask_pans
from supervisor_agent import hipay_payload, outbox
from supervisor_agent.hipay_payload import PosContext
from supervisor_agent.outbox import Outbox

log = structlog.get_logger(__name__)

JOURNAL_FILENAME = "journal.sqlite3"
BUSY_TIMEOUT_MS = 5000  # another process (CLI, a second reader) holding the write lock
DEFAULT_RETENTION = timedelta(days=396)  # 13 months
NOT_SENT_TO_TERMINAL = codes.NOT_SENT_TO_TERMINAL
INTERRUPTED = codes.INTERRUPTED

_RESULT_TEXT_FIELDS = ("masked_pan", "report", "raw")


class TxState(enum.StrEnum):
    RECEIVED = "received"
    AT_TERMINAL = "at_terminal"
    ACCEPTED = "accepted"
    REFUSED = "refused"
    FAILED = "failed"
    UNKNOWN = "unknown"


FINAL_STATES = frozenset({TxState.ACCEPTED, TxState.REFUSED, TxState.FAILED, TxState.UNKNOWN})


class BeginKind(enum.StrEnum):
    NEW = "new"  # row inserted in ``received``: go ahead with the payment
    IN_PROGRESS = "in_progress"  # same order id is being paid right now
    DONE = "done"  # same order id already finished: answer with the stored record


class JournalError(Exception):
    """The journal cannot do what was asked (bad state change, newer schema...)."""


class JournalStateError(JournalError):
    """A state change the lifecycle does not allow (finish twice, unknown order...)."""


@dataclass(frozen=True, slots=True)
class TxError:
    code: str
    message: str = ""


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

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def retryable(self) -> bool:
        """Failed before reaching the terminal (see :meth:`Journal.finish_not_sent`)."""
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
        }


@dataclass(frozen=True, slots=True)
class Begin:
    kind: BeginKind
    record: TransactionRecord


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

# (version, statements).  Append only; never edit a released migration.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, _TRANSACTIONS_V1 + outbox.OUTBOX_SCHEMA_V1),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _redact_secrets(value: Any) -> Any:
    """Replace the values of password-like keys; requests should never carry any."""
    if isinstance(value, Mapping):
        return {
            k: REDACTED if SECRET_KEY.search(str(k)) else _redact_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_secrets(v) for v in value]
    return value


def _clean_result(
    order_id: str, result: PaymentResult | Mapping[str, Any] | None
) -> dict[str, Any] | None:
    if result is None:
        return None
    data = result.to_dict() if isinstance(result, PaymentResult) else dict(result)
    for key in _RESULT_TEXT_FIELDS:
        if isinstance(data.get(key), str):
            data[key], found = mask_pans(data[key], luhn=True)
            if found:
                log.warning("journal.result_pan_masked", order_id=order_id, field=key)
    return data


class Database:
    """One SQLite connection shared under a lock; :class:`Journal` and :class:`Outbox` use it."""

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

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

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
        with self._lock:
            self._conn.close()


_TX_COLUMNS = (
    "order_id, flavour, request_json, state, result_json, error_code, error_message,"
    " created_at, updated_at, finished_at"
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
    ) -> None:
        self._db = Database(Path(path))
        self._context = context or PosContext()
        self._clock = clock
        self._on_finished = on_finished
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

    def begin(self, order_id: str, request: Mapping[str, Any], *, flavour: str) -> Begin:
        """Claim an order id: NEW for the first caller, IN_PROGRESS/DONE for any later one."""
        body = dict(_redact_secrets(request))
        body.setdefault("order_id", order_id)
        if body["order_id"] != order_id:
            raise hipay_payload.PayloadError("request order_id differs from the journal key")
        hipay_payload.validate_request(body)
        request_json = json.dumps(body, sort_keys=True, allow_nan=False)
        now = self._clock()
        with self._db.write() as conn:
            existing = _select(conn, order_id)
            if existing is not None and existing.state is TxState.FAILED and existing.retryable:
                # it never reached the terminal: this order may be tried again
                conn.execute(
                    "UPDATE transactions SET flavour = ?, request_json = ?, state = 'received',"
                    " result_json = NULL, error_code = NULL, error_message = NULL,"
                    " updated_at = ?, finished_at = NULL WHERE order_id = ?",
                    (flavour, request_json, now, order_id),
                )
                record = _select(conn, order_id)
                assert record is not None
                return Begin(BeginKind.NEW, record)
            if existing is not None:
                kind = BeginKind.DONE if existing.finished else BeginKind.IN_PROGRESS
                return Begin(kind, existing)
            conn.execute(
                "INSERT INTO transactions (order_id, flavour, request_json, state,"
                " created_at, updated_at) VALUES (?, ?, ?, 'received', ?, ?)",
                (order_id, flavour, request_json, now, now),
            )
            record = _select(conn, order_id)
        assert record is not None
        return Begin(BeginKind.NEW, record)

    def mark_at_terminal(self, order_id: str) -> TransactionRecord:
        """Record that the payment may now reach the terminal (call before sending it)."""
        with self._db.write() as conn:
            record = _select(conn, order_id)
            if record is None:
                raise JournalStateError(f"no transaction {order_id!r}")
            if record.state is TxState.AT_TERMINAL:
                return record
            if record.state is not TxState.RECEIVED:
                raise JournalStateError(f"transaction {order_id!r} is already {record.state}")
            conn.execute(
                "UPDATE transactions SET state = 'at_terminal', updated_at = ? WHERE order_id = ?",
                (self._clock(), order_id),
            )
            updated = _select(conn, order_id)
        assert updated is not None
        return updated

    def finish(
        self,
        order_id: str,
        state: TxState | str,
        result: PaymentResult | Mapping[str, Any] | None = None,
        error: TxError | None = None,
    ) -> TransactionRecord:
        """Write the outcome and queue its HiPay notification, in one SQLite transaction."""
        final = TxState(state)
        if final not in FINAL_STATES:
            raise JournalStateError(f"{final} is not a final state")
        with self._db.write() as conn:
            record = _select(conn, order_id)
            if record is None:
                raise JournalStateError(f"no transaction {order_id!r}")
            if record.finished:
                raise JournalStateError(
                    f"transaction {order_id!r} already finished ({record.state})"
                )
            updated = self._finish_in(conn, record, final, result, error)
        if self._on_finished is not None:
            self._on_finished(final)
        return updated

    def finish_not_sent(self, order_id: str, error: TxError) -> TransactionRecord:
        """Close a payment that never reached the terminal: ``failed``, no notification.

        Nothing happened on the terminal, so HiPay has nothing to learn, and the
        register may post the same order id again (``begin`` reopens it).
        """
        now = self._clock()
        with self._db.write() as conn:
            record = _select(conn, order_id)
            if record is None or record.finished:
                raise JournalStateError(f"no open transaction {order_id!r}")
            conn.execute(
                "UPDATE transactions SET state = 'failed', error_code = ?, error_message = ?,"
                " updated_at = ?, finished_at = ? WHERE order_id = ?",
                (error.code, error.message, now, now, order_id),
            )
            updated = _select(conn, order_id)
        assert updated is not None
        log.info("journal.not_sent", order_id=order_id, code=error.code)
        return updated

    def _finish_in(
        self,
        conn: sqlite3.Connection,
        record: TransactionRecord,
        final: TxState,
        result: PaymentResult | Mapping[str, Any] | None,
        error: TxError | None,
    ) -> TransactionRecord:
        now = self._clock()
        data = _clean_result(record.order_id, result)
        conn.execute(
            "UPDATE transactions SET state = ?, result_json = ?, error_code = ?, error_message = ?,"
            " updated_at = ?, finished_at = ? WHERE order_id = ?",
            (
                str(final),
                json.dumps(data, sort_keys=True) if data is not None else None,
                error.code if error else None,
                error.message if error else None,
                now,
                now,
                record.order_id,
            ),
        )
        try:
            payload = hipay_payload.build_root_order(
                record.request,
                state=str(final),
                result=data,
                error_code=error.code if error else None,
                error_message=error.message if error else None,
                context=self._context,
                finished_at=_iso(now),
            )
        except Exception as exc:  # never lose an outcome over its notification's shape
            log.error("journal.payload_build_failed", order_id=record.order_id, error=repr(exc))
            payload = hipay_payload.build_fallback(record.order_id, str(final), data, repr(exc))
        outbox.insert(
            conn,
            order_id=record.order_id,
            idempotency_key=hipay_payload.idempotency_key(record.order_id, str(final), data),
            payload_json=json.dumps(payload, sort_keys=True, allow_nan=False),
            now=now,
        )
        updated = _select(conn, record.order_id)
        assert updated is not None
        return updated

    def get(self, order_id: str) -> TransactionRecord | None:
        with self._db.read() as conn:
            return _select(conn, order_id)

    def recover_interrupted(self) -> list[TransactionRecord]:
        """Close every transaction a crash left open and queue its notification.

        ``received`` -> ``failed`` / NOT_SENT_TO_TERMINAL (it never left for the
        terminal), ``at_terminal`` -> ``unknown`` / INTERRUPTED (the customer may
        have paid).  Call once at start, before serving; log the returned records
        at error level: each needs a human to check the terminal's journal.
        """
        recovered: list[TransactionRecord] = []
        with self._db.write() as conn:
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
                recovered.append(self._finish_in(conn, record, final, None, error))
        if self._on_finished is not None:
            for rec in recovered:
                self._on_finished(rec.state)
        return recovered

    def purge(self, older_than: timedelta = DEFAULT_RETENTION) -> int:
        """Delete finished transactions past retention whose notifications were all delivered.

        A transaction with a pending or dead notification is kept however old it
        is: deleting it would lose the only copy of something HiPay never got.
        """
        cutoff = self._clock() - older_than.total_seconds()
        with self._db.write() as conn:
            doomed = [
                r[0]
                for r in conn.execute(
                    "SELECT t.order_id FROM transactions t WHERE t.finished_at IS NOT NULL"
                    " AND t.finished_at < ? AND NOT EXISTS (SELECT 1 FROM outbox o"
                    " WHERE o.order_id = t.order_id AND o.state != 'delivered')",
                    (cutoff,),
                ).fetchall()
            ]
            for order_id in doomed:
                conn.execute("DELETE FROM outbox WHERE order_id = ?", (order_id,))
                conn.execute("DELETE FROM transactions WHERE order_id = ?", (order_id,))
        if doomed:
            log.info("journal.purged", count=len(doomed), older_than_days=older_than.days)
        return len(doomed)
