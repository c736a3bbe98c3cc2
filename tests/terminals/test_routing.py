"""An order reaches its terminal under one key, whichever way it names it: a POS API order
whose ``host_information`` is the configured Concert V3 terminal's own address is that
terminal (key ``default``, its one driver and busy flag), whatever ``protocol`` it names
(sent in that version, as before), so it can never run beside an order that names no
terminal."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from supervisor_agent.api.examples import pos_example_request
from tests.terminals.conftest import LOOPBACK, Connector, connector

SLOW_MINOR = 100003  # the simulator's customer-slow scenario (POS amounts are minor units)
POS_ROUTE = "/v1/connector/order"


def pos_order(order_id: str, amount_minor: int, host_port: int | None) -> dict[str, Any]:
    body = pos_example_request()
    body["order"]["order_id"] = order_id
    body["order"]["price"]["amount"] = amount_minor
    body["order"]["price"]["basket"] = []
    if host_port is not None:  # the POS protocol is left to its default, ConcertV3.1
        body["pos_technical_info"]["host_information"] = {"host": LOOPBACK, "port": host_port}
    return body


async def until_requested(running: Connector, name: str) -> None:
    for _ in range(300):  # bounded: until the terminal has the slow request
        if running.sims[name].ledger.requests:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{name}'s terminal never got its payment")


async def test_an_order_naming_the_configured_terminal_by_address_shares_its_busy_state(
    tmp_path: Path,
) -> None:
    async with connector(tmp_path, [], allow_default=True, protocol_version="0302") as running:
        own = running.sims["default"].port
        for first, second in ((None, own), (own, None)):
            n = len(running.sims["default"].ledger.requests)
            slow = asyncio.create_task(
                running.request("POST", POS_ROUTE, pos_order(f"SLOW-{first}", SLOW_MINOR, first))
            )
            for _ in range(300):  # bounded
                if len(running.sims["default"].ledger.requests) > n:
                    break
                await asyncio.sleep(0.01)
            status, body = await running.request(
                "POST", POS_ROUTE, pos_order(f"NEXT-{second}", 999, second)
            )
            assert status == 409 and body["error"]["code"] == "TERMINAL_BUSY", body
            slow_status, slow_body = await slow
            assert slow_status == 200 and slow_body["transactionState"] == "accepted"
            requests = running.sims["default"].ledger.requests[n:]
            assert [int(r["CB"]) for r in requests] == [SLOW_MINOR]  # the second never left
            # the version the order names with its address (POS default ConcertV3.1), else
            # the config's: one driver for both
            assert requests[0]["CZ"] == ("0302" if first is None else "0301")
            record = running.journal.get(f"SLOW-{first}")
            assert record is not None and record.terminal == "default"
            assert running.journal.get(f"NEXT-{second}") is None  # refused before the journal
