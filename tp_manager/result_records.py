"""The result store's table: every payment's outcome on disk until the agent has it.

The agent journals a payment from the ``pay`` reply.  When that reply cannot carry
the terminal's verdict -- the answer came after the transaction timeout or a
``cancel``, the agent was gone when the reply left, tp-manager was killed while
the terminal was working -- the verdict would otherwise live only in a log line.
So ``pay`` writes here before it wakes the terminal and again before it replies
(a Concert V2 verdict before its ACK), and a late answer is written against the order
it belongs to, before its ACK.  The agent collects
pending verdicts with ``results`` and forgets them with ``ack``
(:mod:`common.commands.results`, :mod:`common.commands.ack`).

A record is in one :class:`RecordState`:

* ``started``: the payment is with the terminal.  Found at start-up, it means
  tp-manager died mid-payment: it becomes ``awaiting`` (a Concert V2 terminal
  re-sends an answer nobody ACKed; the new driver's Listener reads it).
* ``awaiting``: the payment failed in a way that may have moved money (timeout,
  cancel, link lost): a late answer from that terminal belongs to it.  It ends when
  the answer comes (it becomes a ``verdict``, ``late``), when a later payment on the
  same terminal reaches the terminal (no answer can come any more), or after
  :data:`AWAITING_HORIZON_S`.
* ``verdict``: the terminal's result, kept until the agent acks the order.

Failures that moved no money are not kept: the agent's reply says so and nothing
can arrive later.

Durability is in two steps (WAL, ``synchronous=NORMAL``): a method returns once its
transaction is committed to the operating system, which a killed process does not
lose; :meth:`ResultRecords.sync` then makes everything committed so far survive a
power cut (one fsync of the WAL, as ``synchronous=FULL`` does after each commit).
tp-manager drives both from one thread (tp_manager/result_store.py), which says
why a reply need not wait for the fsync.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Final

import orjson
import structlog

from common import paths, terminals
from common.commands import errors as codes
from common.commands import pay as pay_contract
from common.commands.results import PendingResult
from common.payment import PaymentRequest, PaymentResult, TransactionType
from common.redact import mask_pans_in_texts

log = structlog.get_logger(__name__)

# A late answer is matched to a payment given up at most this long ago; Concert V2
# terminals re-send for minutes at most, so a day only bounds the table.
AWAITING_HORIZON_S: Final = 24 * 3600.0
# How often a payment's begin also drops the waits past the horizon: a sweep per payment
# would be work on every payment's path for what changes once a day.
EXPIRE_EVERY_S: Final = 3600.0
# The terminal key of the configured terminal (common/terminals.py says each key).
DEFAULT_TERMINAL: Final = terminals.DEFAULT_TERMINAL
BUSY_TIMEOUT_MS: Final = 5000

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS payments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL,
    terminal TEXT NOT NULL,
    request TEXT NOT NULL,
    started_at REAL NOT NULL,
    state TEXT NOT NULL,
    error_code TEXT,
    result TEXT,
    answered_at REAL,
    late INTEGER NOT NULL DEFAULT 0
)
"""


def _to_json(data: dict[str, Any]) -> str:
    """A record's request or result as JSON text: orjson (the control channel's encoder,
    several times faster than ``json.dumps``, twice a payment on the writer thread); the
    standard library for what orjson refuses (an integer beyond 64 bits from a bad peer,
    which the terminal refuses later).  Read back with ``json.loads`` either way."""
    try:
        return orjson.dumps(data).decode()
    except TypeError:
        return json.dumps(data)


class RecordState(enum.StrEnum):
    STARTED = "started"
    AWAITING = "awaiting"
    VERDICT = "verdict"


class ResultRecords:
    """``<data_dir>/tp-manager-results.sqlite3``; each call is short and synchronous.

    One thread at a time: tp-manager's writer thread (tp_manager/result_store.py).
    """

    def __init__(
        self,
        path: Path,
        *,
        horizon_s: float = AWAITING_HORIZON_S,
        clock: Callable[[], float] = time.time,
        auto_checkpoint: bool = True,
    ) -> None:
        """``auto_checkpoint=False``: SQLite never checkpoints (with its fsyncs) inside a
        commit; the owner calls :meth:`checkpoint` from another thread instead."""
        self.path = path
        self._wal = f"{path}-wal"
        self._horizon_s = horizon_s
        self._clock = clock
        self._expired_at = float("-inf")  # the last sweep of begin (see EXPIRE_EVERY_S)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            str(path),
            isolation_level=None,
            timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,  # opened by the caller, then used by the writer thread
        )
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")  # the fsync is sync()'s
        if not auto_checkpoint:
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._conn.execute(_SCHEMA)
        self._recover()

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> ResultRecords:
        return cls(paths.tp_manager_results(data_dir))

    def close(self) -> None:
        self._conn.close()

    def sync(self) -> None:
        """Make every transaction committed so far survive a power cut: fsync the WAL.
        Safe from any thread (it opens the file, not the connection).

        With ``synchronous=NORMAL`` a commit reaches the WAL file through the operating
        system, and SQLite syncs the WAL only before a checkpoint; one fsync of the WAL
        after commits is what ``synchronous=FULL`` does after each, here shared by all
        the commits since the last one.  No WAL file: every commit is checkpointed into
        the database, which the checkpoint synced.
        """
        try:
            fd = os.open(self._wal, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def checkpoint(self) -> None:
        """Copy the WAL's frames into the database (SQLite syncs both), so the WAL is
        reused instead of growing; from a connection of its own, so the writer's commits
        go on meanwhile.  Like :meth:`sync`, safe from any thread."""
        conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    # --- a payment's life ------------------------------------------------------

    def begin(self, order_id: str, terminal: str, request: PaymentRequest) -> int:
        """Before the terminal is woken; the record's id, for ``finish_*``.

        An order id is not unique here: a peer that pays an order again gets a
        second record, and ``results`` shows every verdict it has not acked.  Waits
        past the horizon are dropped here too, once an hour at most: a late answer or a
        restart may not come for months, and the table would keep every payment given
        up until then.
        """
        with self._transaction():
            now = self._clock()
            if now - self._expired_at >= EXPIRE_EVERY_S:
                self._expired_at = now
                self._expire()
            cursor = self._conn.execute(
                "INSERT INTO payments (order_id, terminal, request, started_at, state)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    order_id,
                    terminal,
                    _to_json(pay_contract.to_properties(request)),
                    self._clock(),
                    RecordState.STARTED,
                ),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def finish_result(self, record: int, result: PaymentResult) -> None:
        """The terminal answered in time: a verdict, until the agent acks it."""
        with self._transaction():
            self._set_verdict(record, result, late=False)
            self._close_earlier(record)

    def finish_error(self, record: int, code: str, money_may_have_moved: bool) -> None:
        """Kept as ``awaiting`` if money may have moved; forgotten otherwise."""
        with self._transaction():
            if not money_may_have_moved:
                self._conn.execute("DELETE FROM payments WHERE id = ?", (record,))
                return
            self._conn.execute(
                "UPDATE payments SET state = ?, error_code = ? WHERE id = ?",
                (RecordState.AWAITING, code, record),
            )
            self._close_earlier(record)

    def late_answer(self, terminal: str, result: PaymentResult) -> str | None:
        """The terminal's answer to a payment given up: the order it settles, if any.

        It belongs to the newest ``awaiting`` payment of that terminal, if that
        payment asked for the amount and currency the answer echoes, and is kept as that
        payment's transaction type (a Concert V2 answer does not carry it).
        """
        with self._transaction():
            self._expire()
            row = self._conn.execute(
                "SELECT id, order_id, request FROM payments WHERE terminal = ? AND state = ?"
                " ORDER BY started_at DESC, id DESC LIMIT 1",
                (terminal, RecordState.AWAITING),
            ).fetchone()
            if row is None:
                return None
            record, order_id, request = int(row[0]), str(row[1]), json.loads(row[2])
            if (request["amount"], request["currency_numeric"]) != (
                result.amount,
                result.currency_numeric,
            ):
                log.warning(
                    "tp_manager.results.late_answer_mismatch",
                    order_id=order_id,
                    asked=request["amount"],
                    answered=result.amount,
                )
                return None
            # A Concert V2 answer does not say debit or refund: a driver restarted since
            # the request left reads it as a debit; the payment it settles knows.
            kind = TransactionType(request.get("transaction_type", result.transaction_type))
            if kind is not result.transaction_type:
                result = dataclasses.replace(result, transaction_type=kind)
            self._set_verdict(record, result, late=True)
        return order_id

    def recovered(
        self, order_id: str, terminal: str, request: PaymentRequest, result: PaymentResult
    ) -> bool:
        """A verdict the terminal gave when asked for the order's status (status recovery):
        kept like a late answer, for the agent to reconcile; False if one is kept already.

        The order's ``awaiting`` record takes it; if a later payment on the terminal has
        closed that record meanwhile, a new one is written: the verdict names its order."""
        with self._transaction():
            if self._conn.execute(
                "SELECT 1 FROM payments WHERE order_id = ? AND state = ?",
                (order_id, RecordState.VERDICT),
            ).fetchone():
                return False
            row = self._conn.execute(
                "SELECT id FROM payments WHERE order_id = ? AND state = ? ORDER BY id DESC LIMIT 1",
                (order_id, RecordState.AWAITING),
            ).fetchone()
            if row is None:
                record = self.begin(order_id, terminal, request)
            else:
                record = int(row[0])
            self._set_verdict(record, result, late=True)
        return True

    # --- what the agent sees -----------------------------------------------------

    def pending(self) -> list[PendingResult]:
        rows = self._conn.execute(
            "SELECT order_id, result, answered_at, late FROM payments WHERE state = ?"
            " ORDER BY answered_at, id",
            (RecordState.VERDICT,),
        ).fetchall()
        return [
            PendingResult(
                order_id=str(order_id),
                result=PaymentResult.from_dict(json.loads(result)),
                answered_at=float(answered_at),
                late=bool(late),
            )
            for order_id, result, answered_at, late in rows
        ]

    def ack(self, order_ids: Iterable[str]) -> int:
        """Forget these orders' verdicts; how many there were."""
        ids = list(order_ids)
        with self._transaction():
            cursor = self._conn.executemany(
                "DELETE FROM payments WHERE order_id = ? AND state = ?",
                [(order_id, RecordState.VERDICT) for order_id in ids],
            )
        return cursor.rowcount

    def awaiting(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every payment still owed an answer: (order id, terminal key, request properties).

        At start-up these are the payments a restart cut off, or whose status recovery
        it cut short: tp-manager asks their terminals again (tp_manager/main.py)."""
        rows = self._conn.execute(
            "SELECT order_id, terminal, request FROM payments WHERE state = ? ORDER BY id",
            (RecordState.AWAITING,),
        ).fetchall()
        return [(str(order_id), str(key), json.loads(request)) for order_id, key, request in rows]

    def state_of(self, order_id: str) -> RecordState | None:
        """The state of the order's newest record (None: nothing kept)."""
        row = self._conn.execute(
            "SELECT state FROM payments WHERE order_id = ? ORDER BY id DESC LIMIT 1", (order_id,)
        ).fetchone()
        return None if row is None else RecordState(row[0])

    # --- inside ------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction, one commit (the connection is in autocommit mode, where
        ``with connection`` would commit each statement on its own); nested: the outer."""
        if self._conn.in_transaction:
            yield
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _set_verdict(self, record: int, result: PaymentResult, *, late: bool) -> None:
        data = result.to_dict()
        masked = mask_pans_in_texts(data)  # a card number is never kept, here either
        if masked:
            log.warning("tp_manager.results.pan_masked", record=record, fields=masked)
        self._conn.execute(
            "UPDATE payments SET state = ?, result = ?, answered_at = ?, late = ? WHERE id = ?",
            (RecordState.VERDICT, _to_json(data), self._clock(), late, record),
        )

    def _close_earlier(self, record: int) -> None:
        """This payment reached its terminal: that terminal owes no earlier one an answer."""
        closed = self._conn.execute(
            "DELETE FROM payments WHERE state = ? AND id < ?"
            " AND terminal = (SELECT terminal FROM payments WHERE id = ?)"
            " RETURNING order_id",
            (RecordState.AWAITING, record, record),
        ).fetchall()
        if closed:
            log.info("tp_manager.results.awaiting_closed", orders=[r[0] for r in closed])

    def _expire(self) -> None:
        expired = self._conn.execute(
            "DELETE FROM payments WHERE state = ? AND started_at < ? RETURNING order_id",
            (RecordState.AWAITING, self._clock() - self._horizon_s),
        ).fetchall()
        if expired:
            log.warning("tp_manager.results.awaiting_expired", orders=[r[0] for r in expired])

    def _recover(self) -> None:
        with self._transaction():
            interrupted = self._conn.execute(
                "UPDATE payments SET state = ?, error_code = ? WHERE state = ? RETURNING order_id",
                (RecordState.AWAITING, codes.INTERRUPTED, RecordState.STARTED),
            ).fetchall()
            self._expire()
        if interrupted:
            log.warning(
                "tp_manager.results.interrupted_payments", orders=[r[0] for r in interrupted]
            )
