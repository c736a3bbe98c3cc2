"""tp-manager's result store refusing a write, with the whole connector in-process: the
real control channel (ZeroMQ), the real journal and result store files, a Concert V3
simulator on loopback TCP (tests/terminals/conftest.py).

The store refuses because another connection holds its write lock (a person with the
``sqlite3`` shell on it, a stuck process): a real SQLite ``database is locked``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from common import paths
from tests.durability.conftest import until_landed
from tests.terminals.conftest import connector


async def test_a_payment_the_result_store_refused_to_start_is_failed_and_may_be_posted_again(
    tmp_path: Path,
) -> None:
    """tp-manager writes the payment down before it wakes the terminal; when it cannot,
    the terminal is never asked: the order is ``failed`` (the register may post it
    again), not ``unknown`` for good."""
    async with connector(tmp_path, []) as running:
        locker = sqlite3.connect(paths.tp_manager_results(tmp_path), isolation_level=None)
        try:
            locker.execute("BEGIN IMMEDIATE")
            status, body = await running.pay(None, "ORD-NO-STORE")
            locker.execute("ROLLBACK")
        finally:
            locker.close()
        assert status == 200, body
        assert not running.sims["default"].ledger.requests  # the terminal was not asked
        assert body["transactionState"] == "failed", body
        assert "do not ask for the payment again" not in body.get("advice", "")

        status, body = await running.pay(None, "ORD-NO-STORE")
        assert status == 200 and body["transactionState"] == "accepted", body
        assert len(running.sims["default"].ledger.requests) == 1


async def test_a_verdict_the_result_store_refused_to_keep_still_reaches_the_journal(
    tmp_path: Path,
) -> None:
    """The terminal answered but tp-manager cannot write the verdict down: the reply
    still carries it, and the journal (the truth) holds it, not ``unknown``."""
    async with connector(tmp_path, [], pay_seconds=2.0) as running:
        ledger = running.sims["default"].ledger
        payment = asyncio.create_task(running.pay(None, "ORD-VERDICT-UNKEPT"))
        # the terminal has the request; its customer takes 2 s
        await until_landed(lambda: bool(ledger.requests), "the request at the terminal")
        locker = sqlite3.connect(paths.tp_manager_results(tmp_path), isolation_level=None)
        try:
            locker.execute("BEGIN IMMEDIATE")
            status, body = await payment
            locker.execute("ROLLBACK")
        finally:
            locker.close()
        assert status == 200, body
        assert body["transactionState"] == "accepted", body
        record = running.journal.get("ORD-VERDICT-UNKEPT")
        assert record is not None and record.state == "accepted"
        assert len(ledger.requests) == 1
