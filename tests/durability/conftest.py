"""Shared parts for the durability tests: a real journal file and the real HiPay stub."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from supervisor_agent.hipay_payload import Contract, PosContext
from supervisor_agent.hipay_stub import DEFAULT_LOGIN, DEFAULT_PASSWORD, start_stub
from supervisor_agent.journal import DEFAULT_TERMINAL, Journal, TransactionRecord, TxState
from supervisor_agent.notifier import HipayEndpoint
from supervisor_agent.retry_policy import RetryPolicy
from tp_manager.terminal.model import PaymentResult, PaymentStatus, TransactionType

CONTEXT = PosContext(
    serial_number="SN-TEST-0001",
    protocol="ConcertV3.1",
    contracts=(Contract(merchant_contract="1234567", rank="001", payment_application="001"),),
)

# Short timers: every test that waits for a retry waits tens of milliseconds.
FAST = RetryPolicy(
    request_timeout_s=1.0,
    connect_timeout_s=0.5,
    backoff_initial_s=0.05,
    backoff_max_s=0.2,
    backoff_jitter_s=0.02,
    retry_after_max_s=2.0,
    probe_interval_s=0.1,
    rescan_interval_s=0.5,
    read_retry_s=0.1,
    max_concurrent=4,
)


def canonical_request(order_id: str, amount: int = 899) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "transaction_type": "debit",
        "amount": amount,
        "currency": "EUR",
        "basket": [
            {
                "product_reference": "NF-a1690",
                "type": "good",
                "quantity": 1,
                "name": "My first product",
                "unit_price": amount,
                "tax_rate": 0,
                "total_amount": amount,
                "european_article_numbering": "4711892728946",
            }
        ],
        "customer": {"id": 283749291, "firstname": "John", "lastname": "Doe", "email": "j@d.eu"},
        "custom_data": {"shop": "Opera", "event": 42},
    }


def accepted_result(amount: int = 899) -> PaymentResult:
    return PaymentResult(
        status=PaymentStatus.ACCEPTED,
        amount=amount,
        currency_numeric="978",
        transaction_type=TransactionType.DEBIT,
        protocol="concert-v3",
        masked_pan="497010######1234",
        authorization_number="136967",
        payment_application="00B",
        reading_mode="2",
        aid="A0000000041010",
        card_expiry="2612",
        terminal_data="TX-000001",
        raw="CZ0040300AE00210",
    )


async def finish_order(
    journal: Journal, order_id: str, amount: int = 899, terminal: str = DEFAULT_TERMINAL
) -> TransactionRecord:
    """A payment as the agent runs it: claimed at the terminal in one commit, accepted."""
    await journal.begin(
        order_id,
        canonical_request(order_id, amount),
        flavour="pos-api",
        terminal=terminal,
    )
    finished = await journal.finish(order_id, TxState.ACCEPTED, accepted_result(amount))
    return finished.record


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path, context=CONTEXT)
    try:
        yield j
    finally:
        j.close()


@dataclass
class Stub:
    """The real stub over loopback, driven through its HTTP control routes."""

    url: str
    session: aiohttp.ClientSession

    def endpoint(self, password: str = DEFAULT_PASSWORD) -> HipayEndpoint:
        return HipayEndpoint(self.url, DEFAULT_LOGIN, password)

    async def control(self, **settings: Any) -> dict[str, Any]:
        async with self.session.post(f"{self.url}/control", json=settings) as resp:
            assert resp.status == 200, await resp.text()
            data: dict[str, Any] = await resp.json()
            return data

    async def received(self) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.url}/received") as resp:
            data = await resp.json()
            notes: list[dict[str, Any]] = data["notifications"]
            return notes

    async def clear(self) -> None:
        async with self.session.delete(f"{self.url}/received") as resp:
            assert resp.status == 200


@pytest.fixture
async def stub() -> AsyncIterator[Stub]:
    runner, url = await start_stub("127.0.0.1", 0)
    session = aiohttp.ClientSession()
    try:
        yield Stub(url, session)
    finally:
        await session.close()
        await runner.cleanup()


QUEUE_WAIT_S = 10.0  # bounds each wait on the writer thread; a healthy one takes ms
POLL_S = 0.005


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + QUEUE_WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {QUEUE_WAIT_S:g} s"
        await asyncio.sleep(POLL_S)


async def cancel_while_queued(journal: Journal, write: Callable[[], Awaitable[Any]]) -> None:
    """Start ``write`` while the journal's writer is held, cancel its caller once the job
    is queued (not started), then let the writer go: what a stop cancelling a handler
    does to a write in flight.  The caller then checks that the write landed anyway."""
    with journal._db.read():  # the writer takes a first job and waits for the connection
        first = journal._db.submit(lambda conn: None)
        await _until(lambda: not journal._db._jobs.qsize(), "the writer took the first job")
        task = asyncio.ensure_future(write())
        await _until(lambda: bool(journal._db._jobs.qsize()), "the write was queued")
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("the write's caller was not cancelled")
    first.result(timeout=QUEUE_WAIT_S)


async def until_landed(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) for a write that outlived its cancelled caller."""
    await _until(condition, f"{what} never landed")
