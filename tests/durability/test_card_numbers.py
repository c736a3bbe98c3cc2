"""A card number the register puts in free text never reaches the journal or HiPay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.messages import Reply, Request
from supervisor_agent.api.examples import pos_example_request
from tests.api.conftest import RecordingTpManager, payment_result
from tests.durability.conftest import Stub
from tests.durability.test_api_journal import wired

PAN = "4970101234561235"  # Luhn-valid, as every real card number
PAN_SPACED = "4970 1012 3456 1235"


def files_bytes(folder: Path, pattern: str) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.glob(pattern)))


async def no_card_number_anywhere(
    folder: Path, stub: Stub, answer: Any, looked_up: Any
) -> list[dict[str, Any]]:
    """PAN, whole or spaced, is in none of: the journal's files as they are on disk (file,
    WAL, SHM; the journal closed), what HiPay received, the answer, the lookup.  Returns
    what HiPay received."""
    journal_bytes = files_bytes(folder, "journal.sqlite3*")
    received = await stub.received()
    assert received, "HiPay got the notification"
    for where, text in (
        ("journal", journal_bytes.decode("latin-1")),
        ("HiPay", repr(received)),
        ("answer", repr(answer)),
        ("lookup", repr(looked_up)),
    ):
        i = text.find(PAN)
        assert i < 0, (where, text[max(0, i - 200) : i + 50])
        assert PAN_SPACED not in text, where
    return received


async def test_card_numbers_in_every_free_text_field_are_masked(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    request = pos_example_request()
    order = request["order"]
    order["description"] = f"paid with {PAN}"
    order["long_description"] = f"card {PAN_SPACED}"
    order["custom_data"] = {"note": PAN, "as_number": int(PAN)}
    request["customer"]["first_name"] = PAN
    request["customer"]["email"] = f"{PAN}@example.com"
    async with wired(tpm, stub, tmp_path) as (api, _, _):
        status, body, _ = await api.post("/v1/connector/order", request)
        assert status == 200, body
        _, looked_up, _ = await api.get(f"/transactions/{order['order_id']}")
    received = await no_card_number_anywhere(tmp_path, stub, body, looked_up)
    assert "497010######1235" in received[0]["body"]["order"]["description"]
    assert body["order"]["custom_data"]["as_number"] == "497010######1235"


async def test_a_card_number_in_any_field_of_the_terminal_s_result_is_masked(
    tpm: RecordingTpManager, stub: Stub, tmp_path: Path
) -> None:
    """The terminal's free fields (Concert V3 ``CF`` private data, an authorization text)
    are the terminal's to fill: a card number in one is masked before the journal, HiPay
    or the register sees it, like one in the fields known to carry it."""

    async def pay(request: Request) -> Reply:
        return Reply.success(
            request.id,
            payment_result(
                request.properties,
                protocol="concert-v3",
                terminal_data=f"card={PAN}",
                merchant_contract=PAN_SPACED,
            ),
        )

    tpm.responders["pay"] = pay
    request = pos_example_request()
    order_id = request["order"]["order_id"]
    async with wired(tpm, stub, tmp_path) as (api, _, _):
        status, body, _ = await api.post("/v1/connector/order", request)
        assert status == 200, body
        _, looked_up, _ = await api.get(f"/transactions/{order_id}")
    received = await no_card_number_anywhere(tmp_path, stub, body, looked_up)
    sent = received[0]["body"]["terminal_result"]
    assert sent["terminal_data"] == "card=497010######1235"
