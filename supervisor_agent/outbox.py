"""The outbox: HiPay notifications that must survive anything.

A notification row is written by the journal in the *same* SQLite transaction
that records a payment's outcome (see :meth:`Journal.finish`), so an outcome can
never exist without its notification, whatever crashes afterwards.  The
notifier then works the rows until HiPay acknowledges them.

The table lives in the journal's database file; its DDL is here, beside the code
that reads it, and the journal's migrations apply it.  This module never opens
the database itself: it is handed a :class:`Store` (the journal's connection
and its one writer thread), which keeps a single writer per process.

Claiming is in-process: one notifier per data directory (the notifier holds a
file lock), so :meth:`Outbox.due` only has to leave out the rows that worker
already has in flight.
"""

from __future__ import annotations

import enum
import json
import sqlite3
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from supervisor_agent.observers import Observers

# Applied by the journal's migration 1 (statements run one by one, not as a script,
# so they stay inside the migration's transaction).
OUTBOX_SCHEMA_V1: tuple[str, ...] = (
    """
    CREATE TABLE outbox (
        id                INTEGER PRIMARY KEY AUTOINCREMENT,
        order_id          TEXT    NOT NULL REFERENCES transactions(order_id),
        idempotency_key   TEXT    NOT NULL UNIQUE,
        payload_json      TEXT    NOT NULL,
        state             TEXT    NOT NULL DEFAULT 'pending'
                                  CHECK (state IN ('pending', 'delivered', 'dead')),
        attempts          INTEGER NOT NULL DEFAULT 0,
        attempts_received INTEGER NOT NULL DEFAULT 0,
        next_attempt_at   REAL    NOT NULL,
        last_error        TEXT,
        last_status       INTEGER,
        created_at        REAL    NOT NULL,
        updated_at        REAL    NOT NULL,
        delivered_at      REAL
    )
    """,
    "CREATE INDEX outbox_due ON outbox (state, next_attempt_at)",
    "CREATE INDEX outbox_order ON outbox (order_id)",
)

T = TypeVar("T")

LAST_ERROR_MAX_CHARS = 500  # what we keep of an error text or of HiPay's answer


class NotificationState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class OutboxSummary:
    counts: dict[str, int]  # rows per state, every state present
    oldest_pending_at: float | None  # when the oldest pending row was queued; None: none


class Store(Protocol):
    """What the outbox needs from the journal's database handle (journal.Database)."""

    def read(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def transact(self, work: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> T: ...

    async def transact_async(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        durable: bool = True,
        even_if_cancelled: bool = False,
    ) -> T: ...


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    order_id: str
    idempotency_key: str
    payload_json: str
    state: NotificationState
    attempts: int  # HTTP attempts made, whatever their outcome
    attempts_received: int  # acknowledged (2xx) + uncertain ones HiPay may have processed
    next_attempt_at: float  # epoch seconds
    last_error: str | None
    last_status: int | None
    created_at: float
    updated_at: float
    delivered_at: float | None

    @property
    def sent(self) -> bool:
        """``notificationHipaySent``: HiPay answered 2xx to one of the attempts."""
        return self.state is NotificationState.DELIVERED

    @property
    def payload(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.payload_json)
        return result

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "order_id": self.order_id,
            "idempotency_key": self.idempotency_key,
            "state": str(self.state),
            "attempts": self.attempts,
            "attempts_received": self.attempts_received,
            "next_attempt_at": self.next_attempt_at,
            "last_error": self.last_error,
            "last_status": self.last_status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "delivered_at": self.delivered_at,
        }


_COLUMNS = (
    "id, order_id, idempotency_key, payload_json, state, attempts, attempts_received, "
    "next_attempt_at, last_error, last_status, created_at, updated_at, delivered_at"
)


def _row(row: tuple[Any, ...]) -> Notification:
    return Notification(
        id=row[0],
        order_id=row[1],
        idempotency_key=row[2],
        payload_json=row[3],
        state=NotificationState(row[4]),
        attempts=row[5],
        attempts_received=row[6],
        next_attempt_at=row[7],
        last_error=row[8],
        last_status=row[9],
        created_at=row[10],
        updated_at=row[11],
        delivered_at=row[12],
    )


def _truncate(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= LAST_ERROR_MAX_CHARS else text[: LAST_ERROR_MAX_CHARS - 1] + "…"


# A row waits while an earlier notification of its order is pending: a late verdict's
# corrected notification must reach HiPay after the ``unknown`` one it corrects, or
# HiPay's last word on the order would be ``unknown`` (that one failed once and waited
# its backoff while the correction, due at once, went ahead).  A dead earlier row does
# not hold it back: HiPay refused that one.
_NO_EARLIER_PENDING = (
    " AND NOT EXISTS (SELECT 1 FROM outbox AS earlier WHERE earlier.order_id = outbox.order_id"
    " AND earlier.state = 'pending' AND earlier.id < outbox.id)"
)


# A dead row is not requeued once a later notification of its order was delivered: it
# would reach HiPay after that one (see Outbox.retry_dead).
_NO_LATER_DELIVERED = (
    " AND NOT EXISTS (SELECT 1 FROM outbox AS later WHERE later.order_id = outbox.order_id"
    " AND later.state = 'delivered' AND later.id > outbox.id)"
)


def _excluding(ids: Collection[int]) -> tuple[str, list[int]]:
    """A ``WHERE`` clause tail leaving out ``ids`` (the rows in flight), and its parameters."""
    excluded = sorted(set(ids))
    if not excluded:
        return "", []
    return f" AND id NOT IN ({','.join('?' * len(excluded))})", excluded


def insert(
    conn: sqlite3.Connection, *, order_id: str, idempotency_key: str, payload_json: str, now: float
) -> Notification:
    """Add a pending notification on a connection already inside a write transaction.

    The journal calls this from within :meth:`Journal.finish` so the outcome and
    its notification commit together.  An existing row with the same key is kept
    (the insert is a no-op) so a repeated call cannot queue a duplicate.  Returns the
    row as it stands, so that the notifier can send it without reading it back.
    """
    cur = conn.execute(
        "INSERT INTO outbox (order_id, idempotency_key, payload_json, state, next_attempt_at,"
        " created_at, updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?)"
        " ON CONFLICT (idempotency_key) DO NOTHING",
        (order_id, idempotency_key, payload_json, now, now, now),
    )
    if cur.rowcount == 1 and cur.lastrowid is not None:
        return Notification(
            id=int(cur.lastrowid),
            order_id=order_id,
            idempotency_key=idempotency_key,
            payload_json=payload_json,
            state=NotificationState.PENDING,
            attempts=0,
            attempts_received=0,
            next_attempt_at=now,
            last_error=None,
            last_status=None,
            created_at=now,
            updated_at=now,
            delivered_at=None,
        )
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM outbox WHERE idempotency_key = ?",  # noqa: S608
        (idempotency_key,),
    ).fetchone()
    return _row(row)


class Outbox:
    """Reads and state changes of the notification rows.

    The notifier's attempts are awaited (:meth:`record_attempt`, on the journal's
    writer thread); reads and the other changes (``expedite``, ``retry_dead``) are short
    blocking calls: the agent runs them in a thread, the ``outbox`` command directly.
    """

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        # told ("attempt", row) after each recorded attempt: live events
        self.observers: Observers[Notification] = Observers()

    def get(self, notification_id: int) -> Notification | None:
        with self._store.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE id = ?",  # noqa: S608 (constant columns)
                (notification_id,),
            ).fetchone()
        return _row(row) if row else None

    def get_by_order(self, order_id: str) -> Notification | None:
        """The newest notification of an order (there is one per finished transaction)."""
        with self._store.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE order_id = ?"  # noqa: S608
                " ORDER BY id DESC LIMIT 1",
                (order_id,),
            ).fetchone()
        return _row(row) if row else None

    def received_of_order(self, order_id: str) -> int:
        """``numberOfNotificationSent`` of an order: the copies HiPay may hold of *every*
        notification of it (``attempts_received`` summed).  A reconciled order counts its
        ``unknown`` notification and the corrected one: 2, the seed's "to ensure the
        financial reconciliation"."""
        with self._store.read() as conn:
            row = conn.execute(
                "SELECT COALESCE(SUM(attempts_received), 0) FROM outbox WHERE order_id = ?",
                (order_id,),
            ).fetchone()
        return int(row[0])

    def due(
        self, now: float | None = None, limit: int = 10, exclude: Collection[int] = ()
    ) -> list[Notification]:
        """Pending rows whose time has come, oldest schedule first, minus those in flight
        and those waiting for an earlier notification of their order."""
        now = self._clock() if now is None else now
        clause, excluded = _excluding(exclude)
        with self._store.read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE state = 'pending'"  # noqa: S608
                f" AND next_attempt_at <= ?{clause}{_NO_EARLIER_PENDING}"
                " ORDER BY next_attempt_at, id LIMIT ?",
                (now, *excluded, limit),
            ).fetchall()
        return [_row(r) for r in rows]

    async def record_attempt(
        self,
        notification_id: int,
        *,
        state: NotificationState,
        status: int | None,
        error: str | None,
        possibly_received: bool,
        next_attempt_at: float | None = None,
    ) -> Notification:
        """Write down one HTTP attempt and where it leaves the row, on the journal's writer.

        ``possibly_received`` is true for a 2xx and for an attempt whose request
        went out without an answer (timeout, reset): both count towards
        ``numberOfNotificationSent``.

        Bookkeeping, committed without an fsync of its own (``durable=False``): a
        power cut may lose the last few, and the row is then sent again with the same
        ``Idempotency-Key``; it never loses the notification (docs/durability.md).
        Once called, the write lands even if the caller is cancelled (the notifier
        stopping): the attempt happened, and a row left without it would be sent again
        and counted short.
        """
        work = self._attempt_work(
            notification_id, state, status, error, possibly_received, next_attempt_at
        )
        note = await self._store.transact_async(work, durable=False, even_if_cancelled=True)
        self.observers.tell("attempt", note)
        return note

    def _attempt_work(
        self,
        notification_id: int,
        state: NotificationState,
        status: int | None,
        error: str | None,
        possibly_received: bool,
        next_attempt_at: float | None,
    ) -> Callable[[sqlite3.Connection], Notification]:
        def work(conn: sqlite3.Connection) -> Notification:
            now = self._clock()
            conn.execute(
                "UPDATE outbox SET state = ?, attempts = attempts + 1,"
                " attempts_received = attempts_received + ?, last_status = ?, last_error = ?,"
                " next_attempt_at = COALESCE(?, next_attempt_at), updated_at = ?,"
                " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END"
                " WHERE id = ?",
                (
                    str(state),
                    1 if possibly_received else 0,
                    status,
                    _truncate(error),
                    next_attempt_at,
                    now,
                    str(state),
                    now,
                    notification_id,
                ),
            )
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE id = ?",  # noqa: S608
                (notification_id,),
            ).fetchone()
            if row is None:
                raise KeyError(notification_id)
            return _row(row)

        return work

    def next_attempt_at(self, exclude: Collection[int] = ()) -> float | None:
        """When the earliest pending row is due (None: nothing pending), minus those in flight
        and those waiting for an earlier notification of their order (as :meth:`due`).

        The notifier sleeps until then instead of polling.
        """
        clause, excluded = _excluding(exclude)
        with self._store.read() as conn:
            row = conn.execute(
                f"SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'{clause}"  # noqa: S608
                f"{_NO_EARLIER_PENDING}",
                excluded,
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def expedite(self) -> int:
        """Make every pending row due now (HiPay is back); returns how many are pending."""

        def work(conn: sqlite3.Connection) -> int:
            now = self._clock()
            conn.execute(
                "UPDATE outbox SET next_attempt_at = ?, updated_at = ?"
                " WHERE state = 'pending' AND next_attempt_at > ?",
                (now, now, now),
            )
            row = conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()
            return int(row[0])

        return self._store.transact(work)

    def list(self, state: NotificationState | None = None) -> list[Notification]:
        with self._store.read() as conn:
            if state is None:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM outbox ORDER BY id"  # noqa: S608
                ).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM outbox WHERE state = ? ORDER BY id",  # noqa: S608
                    (str(state),),
                ).fetchall()
        return [_row(r) for r in rows]

    def iter_undelivered(self) -> Iterator[Notification]:
        for state in (NotificationState.PENDING, NotificationState.DEAD):
            yield from self.list(state)

    def retry_dead(self, notification_id: int) -> bool:
        """Put a dead-lettered row back in the queue, due now; false if it is not dead, or
        if :meth:`superseded_by` a later notification HiPay has: sent now, it would reach
        HiPay after that one and be its last word on the order (a dead ``unknown``
        after the late verdict's correction was delivered: a paid order ``unknown``)."""

        def work(conn: sqlite3.Connection) -> bool:
            now = self._clock()
            cur = conn.execute(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?, updated_at = ?"  # noqa: S608
                f" WHERE id = ? AND state = 'dead'{_NO_LATER_DELIVERED}",
                (now, now, notification_id),
            )
            return cur.rowcount == 1

        return self._store.transact(work)

    def superseded_by(self, notification_id: int) -> Notification | None:
        """The newest delivered notification of the row's order made after it, if any."""
        with self._store.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM outbox AS later WHERE later.state = 'delivered'"  # noqa: S608
                " AND later.order_id = (SELECT order_id FROM outbox WHERE id = ?)"
                " AND later.id > ? ORDER BY later.id DESC LIMIT 1",
                (notification_id, notification_id),
            ).fetchone()
        return _row(row) if row else None

    def counts(self) -> dict[str, int]:
        """Rows per state, every state present (for metrics)."""
        return self.summary().counts

    def summary(self) -> OutboxSummary:
        """The rows per state and when the oldest pending one was queued, in one statement
        (one snapshot): a scrape or the status page never pairs a count with an older or
        newer "oldest pending" than its own."""
        with self._store.read() as conn:
            rows = conn.execute(
                "SELECT state, COUNT(*), MIN(created_at) FROM outbox GROUP BY state"
            ).fetchall()
        counts = {str(s): 0 for s in NotificationState}
        oldest_pending_at = None
        for state, n, first in rows:
            counts[state] = n
            if state == NotificationState.PENDING:
                oldest_pending_at = float(first)
        return OutboxSummary(counts, oldest_pending_at)
