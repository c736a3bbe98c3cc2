"""The benchmarks' lean HiPay (benchmarks/hipay_standin.py) on loopback, against the
connector's own notifier: benchmarks/many_terminals.py's figures and its "notified exactly
once" check rest on it."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest

from benchmarks import hipay_standin
from supervisor_agent.journal import Journal
from supervisor_agent.notifier import HipayEndpoint, Notifier

from .conftest import FAST, finish_order

LOGIN, PASSWORD = "hipay-login", "hipay-pass"
NOTIFICATION = b'{"order": {"order_id": "RAW-1"}}'


@pytest.fixture
async def standin() -> AsyncIterator[tuple[hipay_standin.HipayStandIn, int]]:
    served, server, port = await hipay_standin.start(LOGIN, PASSWORD)
    try:
        yield served, port
    finally:
        server.close()
        await server.wait_closed()


async def test_the_notifier_delivers_each_order_once_on_one_connection(
    journal: Journal, standin: tuple[hipay_standin.HipayStandIn, int]
) -> None:
    served, port = standin
    orders = [f"ORDER_{n}" for n in range(3)]
    for order_id in orders:
        await finish_order(journal, order_id, terminal=order_id)
    endpoint = HipayEndpoint(f"http://127.0.0.1:{port}", LOGIN, PASSWORD)
    notifier = Notifier(journal.outbox, endpoint, policy=FAST)
    try:
        statuses = [await notifier.deliver_now(o, budget_s=5) for o in orders]
    finally:
        await notifier.stop()
    assert [(s.sent, s.count, s.state) for s in statuses] == [(True, 1, "delivered")] * 3
    assert served.acknowledged == dict.fromkeys(orders, 1)


async def test_wrong_credentials_are_refused_and_not_counted(
    journal: Journal, standin: tuple[hipay_standin.HipayStandIn, int]
) -> None:
    served, port = standin
    await finish_order(journal, "ORDER_1")
    endpoint = HipayEndpoint(f"http://127.0.0.1:{port}", LOGIN, "not-the-password")
    notifier = Notifier(journal.outbox, endpoint, policy=FAST)
    try:
        status = await notifier.deliver_now("ORDER_1", budget_s=5)
    finally:
        await notifier.stop()
    assert not status.sent
    note = journal.outbox.get_by_order("ORDER_1")
    assert note is not None and note.last_status == 401
    assert served.acknowledged == {}


def _request(method: str, path: str, body: bytes = b"", password: str = PASSWORD) -> bytes:
    token = base64.b64encode(f"{LOGIN}:{password}".encode()).decode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {token}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _answers(reader: asyncio.StreamReader, count: int) -> list[int]:
    """The statuses of ``count`` answers, each read by its Content-Length."""
    statuses = []
    for _ in range(count):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length")
        )
        await asyncio.wait_for(reader.readexactly(length), 5)
        statuses.append(int(lines[0].split()[1]))
    return statuses


async def test_requests_split_over_reads_or_sharing_one_are_each_answered(
    standin: tuple[hipay_standin.HipayStandIn, int],
) -> None:
    served, port = standin
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        one = _request("POST", hipay_standin.NOTIFY_PATH, NOTIFICATION)
        for cut in (10, 60, len(one) - 5):  # one request in four pieces
            writer.write(one[:cut])
            await writer.drain()
            await asyncio.sleep(0.01)
            one = one[cut:]
        writer.write(one)
        assert await _answers(reader, 1) == [200]
        writer.write(  # four in one write: health, unknown path, not a notification, wrong auth
            _request("GET", hipay_standin.HEALTH_PATH)
            + _request("POST", "/elsewhere", NOTIFICATION)
            + _request("POST", hipay_standin.NOTIFY_PATH, b'{"order": 5}')
            + _request("POST", hipay_standin.NOTIFY_PATH, NOTIFICATION, password="wrong")
        )
        assert await _answers(reader, 4) == [200, 404, 400, 401]
    finally:
        writer.close()
        await writer.wait_closed()
    assert served.acknowledged == {"RAW-1": 1}
