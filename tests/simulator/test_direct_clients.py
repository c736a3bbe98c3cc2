"""The direct Concert V2 clients of benchmarks/fast_path.py pay against the real simulator.

The benchmark compares the connector with these clients; a client that only seemed to
pay (wrong frame, status misread) would make that comparison meaningless.  No timing here.
"""

from __future__ import annotations

import pytest

from benchmarks.concert_v2_client import ConcertV2Client, ConcertV2Error, parse_answer

from .conftest import StartSim

REFUSE_AMOUNT = 100_001  # 1000.01: the simulator's refuse scenario, whatever --scenario says


def test_the_minimal_client_pays_and_reads_the_answer_field_by_field(start_sim: StartSim) -> None:
    sim = start_sim()
    with ConcertV2Client(sim.pty_path) as client:
        approved = client.pay(999, "978")
        refused = client.pay(REFUSE_AMOUNT, "978")
    assert approved.accepted
    assert (approved.pos, approved.amount, approved.currency) == ("01", 999, "978")
    assert approved.report.startswith("497010XXXXXX1234")  # the simulator's CB test card
    assert not refused.accepted
    assert (refused.status, refused.amount) == ("7", REFUSE_AMOUNT)
    assert sim.logged_field("scenario", "refuse")


def test_the_minimal_client_rejects_a_damaged_answer_frame() -> None:
    good = b"\x02" + b"010" + b"0" * 77 + b"\x03"
    good += bytes([_xor(good[1:])])
    assert parse_answer(good).status == "0"
    with pytest.raises(ConcertV2Error, match="LRC"):
        parse_answer(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(ConcertV2Error, match="83"):
        parse_answer(good[:-1])


def test_pyteliummanager_gets_an_approved_answer_from_the_simulator(start_sim: StartSim) -> None:
    """The public library (the `bench` extra) interoperates with our simulator."""
    telium = pytest.importorskip("telium")
    sim = start_sim()
    device = telium.Telium(sim.pty_path, timeout=3)
    try:
        ask = telium.TeliumAsk.new_payment(9.99, payment_mode="debit", target_currency="978")
        assert device.ask(ask)
        answer = device.verify(ask, waiting_timeout=5)
    finally:
        device.close()
    assert answer is not None and answer.has_succeeded
    assert (answer.amount, answer.currency_numeric) == (9.99, "978")


def _xor(data: bytes) -> int:
    value = 0
    for byte in data:
        value ^= byte
    return value
