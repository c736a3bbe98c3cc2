"""Tickets (``CK``/``AK``) from a terminal played byte for byte on loopback TCP: a card
number printed in clear on a ticket is masked in the decoded ticket and in the answer the
journal keeps (``raw``), and a ticket that does not decode costs the payment nothing."""

from __future__ import annotations

import asyncio
import base64
import dataclasses

from common.concert_v3_profiles import (
    Profile,
    TicketCopies,
    TicketFormat,
    Tickets,
    profile_named,
)
from tp_manager.concert_v3.codec import encode_fields
from tp_manager.concert_v3.tickets import WRAP_HEADER
from tp_manager.terminal.model import PaymentRequest, PaymentResult

from .conftest import StartServer, decode_whole, read_request, terminal

CLEAR_PAN = "4111111111111111"  # passes Luhn, as every real card number does
MASKED_PAN = "411111######1111"
EUR = "978"


def profile(copies: TicketCopies, fmt: TicketFormat = TicketFormat.LATIN1) -> Profile:
    return dataclasses.replace(profile_named("payxpert"), tickets=Tickets(copies, fmt))


async def pay_with_ticket(
    start_server: StartServer, ak: str, copies: TicketCopies
) -> PaymentResult:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = dict((await read_request(reader)).fields)
        answer = [*request.items(), ("AE", "10"), ("AA", MASKED_PAN), ("AK", ak)]
        writer.write(encode_fields(answer))
        await writer.drain()
        await asyncio.sleep(1)

    port = await start_server(handler)
    request = PaymentRequest(amount=100, currency_numeric=EUR, order_id="ORD-TICKET")
    return await terminal(port, profile=profile(copies)).pay(request)


def b64(text: str, charset: str = "latin-1") -> str:
    return base64.b64encode(text.encode(charset)).decode("ascii")


def kept_ak(raw: str) -> str | None:
    return dict(decode_whole(raw.encode("ascii"))).get("AK")


async def test_a_clear_card_number_on_the_ticket_is_masked_in_the_journal_s_raw_answer(
    start_server: StartServer,
) -> None:
    ticket = f"CARTE {CLEAR_PAN}\nMONTANT 1,00 EUR\nMERCI DE VOTRE VISITE é"
    result = await pay_with_ticket(start_server, b64(ticket), TicketCopies.CUSTOMER)
    assert result.accepted
    assert result.customer_ticket == ticket.replace(CLEAR_PAN, MASKED_PAN)
    ak = kept_ak(result.raw)
    assert ak is not None
    assert base64.b64decode(ak).decode("latin-1") == result.customer_ticket


async def test_both_wrapped_tickets_are_masked_in_the_raw_answer(
    start_server: StartServer,
) -> None:
    customer, merchant = f"CLIENT {CLEAR_PAN}", f"COMMERCANT {CLEAR_PAN}"
    parts = [b64(customer), b64(merchant)]
    wrapped = "".join(f"ZT{len(p):03d}{p}" for p in parts)
    result = await pay_with_ticket(start_server, wrapped, TicketCopies.BOTH)
    assert result.customer_ticket == f"CLIENT {MASKED_PAN}"
    assert result.merchant_ticket == f"COMMERCANT {MASKED_PAN}"
    ak = kept_ak(result.raw)
    assert ak is not None and ak.startswith("ZT")
    first = ak[WRAP_HEADER : WRAP_HEADER + int(ak[2:WRAP_HEADER])]
    second = ak[2 * WRAP_HEADER + len(first) :]
    assert base64.b64decode(first).decode("latin-1") == f"CLIENT {MASKED_PAN}"
    assert base64.b64decode(second).decode("latin-1") == f"COMMERCANT {MASKED_PAN}"


async def test_a_ticket_that_does_not_decode_costs_the_payment_nothing_and_is_not_kept(
    start_server: StartServer,
) -> None:
    """Bad base64 (here: its padding lost) cannot be checked for a card number: the
    payment stands without the ticket, and the blob is not kept in the raw answer."""
    blob = b64(f"CARTE {CLEAR_PAN}").rstrip("=") + "A"
    result = await pay_with_ticket(start_server, blob, TicketCopies.CUSTOMER)
    assert result.accepted and result.customer_ticket is None
    assert kept_ak(result.raw) is None
