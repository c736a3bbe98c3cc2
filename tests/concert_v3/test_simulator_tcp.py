"""The Concert V3 simulator seen from a raw TCP client (no driver in between)."""

from __future__ import annotations

import ast
import asyncio
import base64
from pathlib import Path

import pytest

from tp_manager.concert_v3.codec import FieldStreamDecoder, encode_fields
from tp_manager.simulator import concert_v3 as simulator

from .conftest import LOOPBACK, StartSimulator

READ_TIMEOUT_S = 3.0
REQUEST = [
    ("CZ", "0301"),
    ("CJ", "ECRCONNECTOR"),
    ("CA", "01"),
    ("CB", "1500"),
    ("CD", "0"),
    ("CE", "978"),
]


async def read_message(reader: asyncio.StreamReader, until_tag: str) -> dict[str, str]:
    """Read whole fields until ``until_tag`` has arrived (bounded in bytes and time)."""
    decoder = FieldStreamDecoder()
    async with asyncio.timeout(READ_TIMEOUT_S):
        while until_tag not in decoder.tags or decoder.has_partial_field:
            chunk = await reader.read(1)  # one byte at a time: never past this message
            assert chunk, f"closed after {decoder.byte_count} bytes"
            decoder.feed(chunk)
            assert decoder.byte_count < 4096
    return dict(decoder.fields)


async def exchange(port: int, request: bytes, until_tag: str = "AE") -> dict[str, str]:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        writer.write(request)
        await writer.drain()
        return await read_message(reader, until_tag)
    finally:
        writer.close()


async def test_answer_echoes_the_request_cz_first(start_simulator: StartSimulator) -> None:
    port = await start_simulator()
    answer = await exchange(port, encode_fields([*REQUEST, ("BA", "0")]), until_tag="CG")
    assert list(answer)[:7] == ["CZ", "CJ", "CA", "CB", "CD", "CE", "BA"]
    assert [answer[tag] for tag, _ in REQUEST] == [value for _, value in REQUEST]
    assert answer["AE"] == "10"
    assert answer["AA"].count("#") == 6


async def test_immediate_acknowledgement_then_result(start_simulator: StartSimulator) -> None:
    port = await start_simulator()
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        writer.write(encode_fields([*REQUEST[:3], ("CB", "100001"), *REQUEST[4:], ("BA", "1")]))
        await writer.drain()
        ack = await read_message(reader, "AE")
        assert ack["AE"] == "11" and "AF" not in ack
        final = await read_message(reader, "AA")  # refuse: AA is the last field
        assert (final["AE"], final["AF"]) == ("01", "04")
    finally:
        writer.close()


@pytest.mark.parametrize(
    "fields",
    [
        REQUEST[:3] + REQUEST[4:],  # CB missing
        [("CJ", "ECRCONNECTOR"), *REQUEST[:1], *REQUEST[2:]],  # CZ not first
        [*REQUEST[:3], ("CB", "1"), *REQUEST[4:]],  # CB under 2 digits
        [*REQUEST[:4], ("CD", "7"), *REQUEST[5:]],  # unknown transaction type
    ],
)
async def test_bad_request_gets_format_error(
    start_simulator: StartSimulator, fields: list[tuple[str, str]]
) -> None:
    port = await start_simulator()
    answer = await exchange(port, encode_fields(fields), until_tag="AF")
    assert (answer["AE"], answer["AF"]) == ("01", "09")


async def test_broken_bytes_get_format_error(start_simulator: StartSimulator) -> None:
    port = await start_simulator()
    answer = await exchange(port, b"CZ00x0301", until_tag="AF")
    assert (answer["AE"], answer["AF"]) == ("01", "09")


async def test_probe_connection_is_harmless(start_simulator: StartSimulator) -> None:
    port = await start_simulator()
    for _ in range(3):
        _reader, writer = await asyncio.open_connection(LOOPBACK, port)
        writer.close()
        await writer.wait_closed()
    answer = await exchange(port, encode_fields(REQUEST))
    assert answer["AE"] == "10"


async def test_pay_seconds_delays_the_answer(start_simulator: StartSimulator) -> None:
    port = await start_simulator(pay_seconds=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await exchange(port, encode_fields(REQUEST))
    assert answer["AE"] == "10" and loop.time() - started >= 0.2


def test_cut_points_never_fall_on_a_field_boundary() -> None:
    answer = simulator.build_answer(dict(REQUEST), simulator.Scenario.APPROVE)
    data = simulator.encode(answer)
    boundaries = {0, len(data)}
    offset = 0
    for value in answer.values():
        offset += 5 + len(value)
        boundaries.add(offset)
    for parts in (2, 3, 4, 7):
        cuts = simulator.cut_points(answer, parts)
        assert cuts and not boundaries & set(cuts)
        assert all(0 < cut < len(data) for cut in cuts)


def test_simulator_is_independent_of_the_driver() -> None:
    tree = ast.parse(Path(simulator.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    forbidden = {
        m for m in imported if m.startswith(("tp_manager.concert_v3", "tp_manager.terminal"))
    }
    assert not forbidden


@pytest.mark.parametrize(
    ("amount", "numeric", "printed"),
    [(500, "392", "MONTANT 500 JPY"), (1_234, "048", "MONTANT 1,234 BHD")],
    ids=["JPY", "BHD"],
)
async def test_the_ticket_prints_the_amount_in_its_own_currency(
    start_simulator: StartSimulator, amount: int, numeric: str, printed: str
) -> None:
    """The simulated ticket reads CB with CE's exponent: it printed every amount as
    hundredths of EUR (500 JPY as 'MONTANT 5,00 EUR')."""
    port = await start_simulator()
    request = [*REQUEST, ("CK", "100")]
    request = [(t, str(amount) if t == "CB" else numeric if t == "CE" else v) for t, v in request]
    answer = await exchange(port, encode_fields(request), until_tag="AK")
    ticket = base64.b64decode(answer["AK"]).decode("latin-1")
    assert printed in ticket.splitlines()
