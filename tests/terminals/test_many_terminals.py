"""Many terminals, each one at a time: orders on different terminals run concurrently end
to end (journal, tp-manager's drivers, HiPay), a busy terminal refuses a second order at
once while the others pay, and every terminal is charged exactly once per order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from unittest.mock import ANY

import zmq
import zmq.asyncio

from common import messages
from common.messages import Event
from tests.terminals.conftest import Connector, connector

SLOW_AMOUNT = "1000.03"  # the simulator's customer-slow scenario: accepted after slow_seconds
HINTS_TIMEOUT_S = 10.0  # bounds a wait for an event already due, never a speed


def charged_once(running: Connector, name: str, amount_minor: int) -> bool:
    requests = running.sims[name].ledger.requests
    return len(requests) == 1 and int(requests[0]["CB"]) == amount_minor


async def pay_all(running: Connector, names: list[str]) -> list[tuple[int, object]]:
    return await asyncio.gather(*(running.pay(name, f"ORD-{name}") for name in names))


async def test_two_terminals_are_paid_concurrently_each_charged_once(tmp_path: Path) -> None:
    names = ["lane1", "lane2"]
    async with connector(tmp_path, names) as running:
        answers = await pay_all(running, names)
        for name, (status, body) in zip(names, answers, strict=True):
            assert status == 200, body
            assert isinstance(body, dict) and body["transactionState"] == "accepted"
            assert charged_once(running, name, 999)
            record = running.journal.get(f"ORD-{name}")
            assert record is not None and record.terminal == name
        assert running.sims["default"].ledger.requests == []


async def test_fifty_terminals_are_paid_concurrently_each_charged_once(tmp_path: Path) -> None:
    names = [f"t{n:02d}" for n in range(50)]
    async with connector(tmp_path, names, pay_seconds=0.3) as running:
        answers = await pay_all(running, names)
        assert [status for status, _ in answers] == [200] * 50
        assert all(
            isinstance(body, dict) and body["transactionState"] == "accepted" for _, body in answers
        )
        assert all(charged_once(running, name, 999) for name in names)
        states = {running.journal.get(f"ORD-{n}").state for n in names}  # type: ignore[union-attr]
        assert {str(s) for s in states} == {"accepted"}


async def test_a_busy_terminal_refuses_a_second_order_while_another_terminal_pays(
    tmp_path: Path,
) -> None:
    async with connector(tmp_path, ["lane1", "lane2"]) as running:
        slow = asyncio.create_task(running.pay("lane1", "ORD-SLOW", SLOW_AMOUNT))
        for _ in range(200):  # bounded: until lane1's terminal has the request
            if running.sims["lane1"].ledger.requests:
                break
            await asyncio.sleep(0.01)
        assert running.sims["lane1"].ledger.requests, "lane1 never got its payment"
        busy_status, busy = await running.pay("lane1", "ORD-SECOND")
        other_status, other = await running.pay("lane2", "ORD-OTHER")
        check_status, check = await running.request("GET", "/check?terminal=lane1")
        assert busy_status == 409 and busy["error"]["code"] == "TERMINAL_BUSY"
        assert other_status == 200 and other["transactionState"] == "accepted"
        assert check_status == 200 and check["busy"] is True
        assert not slow.done()  # lane2 paid while lane1 still waited for its customer
        slow_status, slow_body = await slow
        assert slow_status == 200 and slow_body["transactionState"] == "accepted"
        assert len(running.sims["lane1"].ledger.requests) == 1  # the refused one never left
        assert running.journal.get("ORD-SECOND") is None


async def test_orders_and_maintenance_name_only_configured_terminals(tmp_path: Path) -> None:
    async with connector(tmp_path, ["lane1"]) as running:
        status, body = await running.pay("lane9", "ORD-NOWHERE")
        assert status == 403 and body["error"]["code"] == "TERMINAL_NOT_ALLOWED"
        assert body["error"]["details"] == {
            "path": "terminal",
            "rule": "terminals",
            "value": "lane9",
        }
        status, body = await running.request("GET", "/cancel?terminal=lane9")
        assert status == 403 and body["error"]["details"]["path"] == "terminal"
        status, body = await running.request("GET", "/cancel?terminal=lane1")
        assert status == 200 and body["cancelled"] is False
        status, body = await running.request("GET", "/check?terminal=LANE1")
        assert status == 200 and body["responding"] is True
        assert running.journal.get("ORD-NOWHERE") is None


async def test_tp_manager_s_hints_name_the_terminal_of_each_order(tmp_path: Path) -> None:
    """On tp-manager's real PUB socket: each order's busy, started and idle hints carry its
    terminal's key, so one terminal's idle is never read as another's."""
    async with connector(tmp_path, ["lane1", "lane2"]) as running:
        zctx = zmq.asyncio.Context()
        sub = zctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(running.config.events_endpoint)
        heard: list[Event] = []
        try:
            for attempt in range(50):  # the slow joiner: until the subscription is in place
                await running.pay(None, f"WARM-{attempt}")
                if await sub.poll(200):
                    break
            assert await pay_all(running, ["lane1", "lane2"]) == [
                (200, ANY),
                (200, ANY),
            ]
            while sum(e.name == messages.EVENT_TERMINAL_IDLE for e in heard) < 2:
                async with asyncio.timeout(HINTS_TIMEOUT_S):
                    event = Event.from_frames(await sub.recv_multipart())
                if event.data.get("order_id", "").startswith("ORD-lane"):
                    heard.append(event)
        finally:
            sub.close(linger=0)
            zctx.term()
    by_order = {
        order: {e.name: e.data.get("terminal") for e in heard if e.data["order_id"] == order}
        for order in ("ORD-lane1", "ORD-lane2")
    }
    hints = (
        messages.EVENT_TERMINAL_BUSY,
        messages.EVENT_TRANSACTION_STARTED,
        messages.EVENT_TERMINAL_IDLE,
    )
    assert by_order == {
        "ORD-lane1": dict.fromkeys(hints, "lane1"),
        "ORD-lane2": dict.fromkeys(hints, "lane2"),
    }


async def test_cancel_naming_the_default_terminal_leaves_the_others_paying(
    tmp_path: Path,
) -> None:
    """``?terminal=default`` names the configured terminal, as for /check: it must not
    cancel another lane's customer (only a /cancel naming no terminal reaches them all)."""
    async with connector(tmp_path, ["lane1"]) as running:
        slow = asyncio.create_task(running.pay("lane1", "ORD-LANE1", SLOW_AMOUNT))
        for _ in range(300):  # bounded: until lane1's terminal has the request
            if running.sims["lane1"].ledger.requests:
                break
            await asyncio.sleep(0.01)
        assert running.sims["lane1"].ledger.requests, "lane1 never got its payment"
        status, body = await running.request("GET", "/cancel?terminal=default")
        assert status == 200 and body["cancelled"] is False and body["orderId"] is None, body
        status, paid = await slow
        assert status == 200 and paid["transactionState"] == "accepted", paid
