"""A Concert V2 terminal named in the config (``terminals.<id>``, protocol concert-v2) pays
through the whole connector: the HTTP API, the journal, ZeroMQ, tp-manager's driver built
from the config (its own serial profile, RTS/CTS and keep-alive), the simulator's pty, and
HiPay; beside a Concert V3 terminal paying at the same time."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.simulator.conftest import StartSim, start_sim  # noqa: F401  (the fixture)
from tests.terminals.conftest import connector

SLOW_AMOUNT = "1000.03"  # the simulator's customer-slow scenario: accepted after --slow-seconds
SIM_LOG_TIMEOUT_S = 10.0  # bounds a wait for a line already due, never a speed


async def test_a_named_concert_v2_terminal_pays_end_to_end_beside_a_v3_one(
    tmp_path: Path,
    start_sim: StartSim,  # noqa: F811
) -> None:
    sim = start_sim()
    serial = {
        "lane2": {
            "device": sim.pty_path,
            "serial_profile": "usb-8n1",
            "rtscts": "true",
            "keepalive_interval": "60",
        }
    }
    async with connector(tmp_path / "connector", ["lane1"], serial=serial) as running:
        spec = {t.id: t for t in running.config.terminals}["lane2"]
        assert spec.line.rtscts and spec.keepalive_interval == 60.0
        (v2_status, v2), (v3_status, v3) = await asyncio.gather(
            running.pay("lane2", "ORD-V2", "12.34"), running.pay("lane1", "ORD-V3", "5.67")
        )
        assert v2_status == 200 and v2["transactionState"] == "accepted", v2
        assert v3_status == 200 and v3["transactionState"] == "accepted", v3
        record = running.journal.get("ORD-V2")
        assert record is not None and record.terminal == "lane2"
        assert str(record.state) == "accepted"
        assert record.result is not None and record.result["amount"] == 1234
        assert sim.logged_field("amount", 1234)  # the Concert V2 terminal was asked for it
        assert running.sims["default"].ledger.requests == []  # nobody else was charged
        assert [int(r["CB"]) for r in running.sims["lane1"].ledger.requests] == [567]
        status, check = await running.request("GET", "/check?terminal=lane2")
        assert status == 200 and check["link"] == "up" and check["busy"] is False, check
        busy_free, again = await running.pay("lane2", "ORD-V2-2", "1.00")
        assert busy_free == 200 and again["transactionState"] == "accepted"


async def test_a_second_cancel_says_the_terminal_may_still_complete_the_payment(
    tmp_path: Path,
    start_sim: StartSim,  # noqa: F811
) -> None:
    """Concert V2 cannot abort: once cancelled, the payment runs on at the terminal.  A
    second ``/cancel`` must say so, not "no transaction in flight" while the customer is
    still paying (and the terminal still refuses the next order)."""
    sim = start_sim("--slow-seconds", "2")
    serial = {"lane2": {"device": sim.pty_path, "serial_profile": "usb-8n1"}}
    async with connector(tmp_path / "connector", [], serial=serial) as running:
        slow = asyncio.create_task(running.pay("lane2", "ORD-CXL", SLOW_AMOUNT))
        assert await asyncio.to_thread(sim.logged_field, "amount", 100003, SIM_LOG_TIMEOUT_S)
        status, first = await running.request("GET", "/cancel?terminal=lane2")
        assert status == 200 and first["cancelled"] is True, first
        assert first["terminalMayStillComplete"] is True
        status, again = await running.request("GET", "/cancel?terminal=lane2")
        assert status == 200, again
        assert again["cancelled"] is False  # nothing more to stop: it was already cancelled
        assert again["orderId"] == "ORD-CXL" and again["terminalMayStillComplete"] is True
        assert "no transaction in flight" not in again["message"]
        assert "ORD-CXL" in again["message"] and "may still complete" in again["message"]
        status, body = await slow
        assert status == 200 and body["transactionState"] == "unknown", body
