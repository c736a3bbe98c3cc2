"""Concert V3 profiles, end to end through one in-process connector: the default profile
sends the mandatory tags only (and so pays on a strict terminal); a profile with the
actions serves /check, /tlc and /reset, without them a 501 names the profile; status
recovery turns an unknown payment into the terminal's verdict; tickets round-trip."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

from tests.terminals.conftest import Connector, connector
from tp_manager.concert_v3.messages import MANDATORY_REQUEST_TAGS
from tp_manager.simulator.concert_v3_family import Family

DROP_LINK = "1000.08"  # the simulator decides (accepted), then drops the link mid-answer
RECONCILE_WAIT_S = 10.0
POLL_S = 0.05


async def until_state(running: Connector, order_id: str, state: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECONCILE_WAIT_S
    body: dict[str, Any] = {}
    while loop.time() < deadline:  # bounded by the deadline
        status, body = await running.request("GET", f"/transactions/{order_id}")
        if status == 200 and body["transactionState"] == state:
            return body
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"{order_id} never became {state}: {body}")


async def test_the_default_profile_sends_only_the_mandatory_tags_and_pays_a_strict_terminal(
    tmp_path: Path,
) -> None:
    strict = Family.named(strict=True)
    async with connector(tmp_path, ["lane1"], family=strict) as running:
        status, body = await running.pay("lane1", "ORD-STRICT")
        assert status == 200 and body["transactionState"] == "accepted"
        (sent,) = running.sims["lane1"].ledger.requests
        assert sorted(sent) == sorted(MANDATORY_REQUEST_TAGS)
        assert "BF" not in sent


async def test_a_strict_terminal_refuses_what_a_richer_profile_sends(tmp_path: Path) -> None:
    strict = Family.named(strict=True)
    async with connector(tmp_path, ["lane1"], family=strict, profile="payxpert") as running:
        status, body = await running.pay("lane1", "ORD-RICH")
        assert status == 200 and body["transactionState"] == "refused"
        assert body["errorCode"] == "FORMAT_ERROR"


async def test_profile_actions_answer_the_kiosk_shapes_and_the_default_profile_says_501(
    tmp_path: Path,
) -> None:
    async with connector(tmp_path, ["lane1"], profile="castles", api_flavour="kiosk") as rich:
        status, (check,) = await rich.request("GET", "/check?terminal=lane1")
        assert status == 200 and check["cr"] == "0" and "CD=I" in check["detail"]
        status, (tlc,) = await rich.request("GET", "/tlc?terminal=lane1")
        assert status == 200 and tlc["NbApp"] == "1" and tlc["App"][0]["Status"] == "0"
        status, (reset,) = await rich.request("GET", "/reset?terminal=lane1")
        assert status == 200 and reset["done"] is True
    async with connector(tmp_path / "plain", ["lane1"]) as plain:
        for route in ("/tlc", "/reset"):
            status, body = await plain.request("GET", f"{route}?terminal=lane1")
            assert status == 501 and body["error"]["code"] == "NOT_SUPPORTED"
            assert "profile 'default'" in body["error"]["message"]


async def test_status_recovery_turns_an_unknown_payment_into_the_terminals_verdict(
    tmp_path: Path,
) -> None:
    async with connector(tmp_path, ["lane1"], profile="payxpert") as running:
        status, body = await running.pay("lane1", "ORD-LOST", DROP_LINK)
        assert status == 200 and body["transactionState"] == "unknown"
        reconciled = await until_state(running, "ORD-LOST", "accepted")
        assert reconciled["paymentStatus"] == "SUCCESS"
        record = running.journal.get("ORD-LOST")
        assert record is not None and record.reconciled_from == "unknown"
        assert running.sims["lane1"].ledger.payments("ORD-LOST") == 1  # asked, never re-charged


async def test_tickets_round_trip_in_the_kiosk_ticket_and_the_reprint(tmp_path: Path) -> None:
    async with connector(tmp_path, ["lane1"], profile="payxpert", api_flavour="kiosk") as kiosk:
        status, (paid,) = await kiosk.pay("lane1", "ORD-TICKET")
        assert status == 200 and paid["status"] == "Success"
        assert paid["ticket"].startswith("SIMULATED SHOP|TICKET CLIENT|")
        assert "PAIEMENT ACCEPTÉ" in paid["ticket"]
        status, reprint = await kiosk.request("GET", "/transactions/ORD-TICKET/ticket")
        assert status == 200 and reprint["source"] == "terminal"
        assert reprint["lines"][:2] == ["SIMULATED SHOP", "TICKET CLIENT"]
        assert reprint["merchant"].splitlines()[1] == "TICKET COMMERCANT"
        answer = kiosk.sims["lane1"].ledger.answers["ORD-TICKET"]
        assert answer is not None
        wrapped = answer["AK"]
        first = wrapped[5 : 5 + int(wrapped[2:5])]
        assert base64.b64decode(first).decode("latin-1") == reprint["customer"]
        status, missing = await kiosk.request("GET", "/transactions/NOPE/ticket")
        assert status == 404 and missing["error"]["code"] == "ORDER_NOT_FOUND"
