"""Concert V2 codec: bytes and strings in, typed values or typed errors out.

The driver only writes requests and reads answers; the other direction is the
simulator's own codec (tp_manager/simulator/concert_v2_codec.py), written apart, so
the cross-checks here fail if either side misreads the wire.
"""

from __future__ import annotations

import pytest

from tp_manager.concert_v2.codec import (
    decode_answer,
    encode_frame,
    encode_request,
    lrc,
    mask_pans,
    to_payment_result,
)
from tp_manager.concert_v2.link import BadFrame, BadFrameReason, Frame, FrameReceiver
from tp_manager.simulator import concert_v2_codec as sim
from tp_manager.terminal.errors import (
    AmountOutOfRange,
    InvalidRequest,
    MalformedMessage,
)
from tp_manager.terminal.model import (
    FailureReason,
    PaymentRequest,
    PaymentStatus,
    TransactionType,
)

STX, ETX = b"\x02", b"\x03"
PAN = "4970101234567890"


def req(**kw: object) -> PaymentRequest:
    base: dict[str, object] = {"amount": 999, "currency_numeric": "978"}
    base.update(kw)
    return PaymentRequest(**base)  # type: ignore[arg-type]


# --- LRC and frames ----------------------------------------------------------------


def test_lrc_is_xor_of_bytes() -> None:
    assert lrc(b"") == 0
    assert lrc(b"\x03") == 0x03
    assert lrc(b"A\x03") == 0x41 ^ 0x03
    assert lrc(b"AB\x03") == 0x41 ^ 0x42 ^ 0x03


def test_encode_frame_layout() -> None:
    frame = encode_frame("AB")
    assert frame == STX + b"AB" + ETX + bytes([0x41 ^ 0x42 ^ 0x03])
    assert frame == sim.build_frame("AB")


def test_encode_frame_refuses_control_characters() -> None:
    with pytest.raises(InvalidRequest):
        encode_frame("A\x03B")
    with pytest.raises(InvalidRequest):
        encode_frame("é")


def test_the_receiver_reads_the_simulator_frames() -> None:
    # Cutting a byte stream into frames (noise, truncation...) is pinned in test_link.py.
    good = sim.build_frame("0100000999")
    bad = sim.build_frame("0100000999", corrupt_lrc=True)  # the bad-lrc-once scenario
    assert FrameReceiver().feed(good + bad) == [
        Frame("0100000999"),
        BadFrame(BadFrameReason.BAD_LRC, len(bad)),
    ]


# --- requests ----------------------------------------------------------------------


def test_encode_request_exact_layout() -> None:
    text = encode_request(req())
    assert text == "0100000999110978          A010B010"
    assert len(text) == 34


def test_encode_request_every_field() -> None:
    text = encode_request(
        req(
            amount=99_999_999,
            currency_numeric="840",
            transaction_type=TransactionType.CANCEL,
            force_authorization=True,
            pos_number=42,
            full_answer=False,
            private="TX-1",
        ),
        payment_mode="C",
    )
    assert text == "42999999990C2840TX-1      A010B011"


@pytest.mark.parametrize(
    ("ttype", "code"),
    [(TransactionType.DEBIT, "0"), (TransactionType.CREDIT, "1"), (TransactionType.CANCEL, "2")],
)
def test_transaction_type_codes(ttype: TransactionType, code: str) -> None:
    assert encode_request(req(transaction_type=ttype))[12] == code


@pytest.mark.parametrize("amount", [0, -1, 100_000_000, 10**12])
def test_amount_out_of_range(amount: int) -> None:
    with pytest.raises(AmountOutOfRange):
        encode_request(req(amount=amount))


@pytest.mark.parametrize("amount", [1, 99_999_999])
def test_amount_limits_accepted(amount: int) -> None:
    assert int(encode_request(req(amount=amount))[2:10]) == amount


@pytest.mark.parametrize(
    "kw",
    [
        {"pos_number": 0},
        {"pos_number": 100},
        {"private": "12345678901"},
        {"private": "caf\u00e9"},
        {"private": "a\tb"},
        {"currency_numeric": "EUR"},
        {"currency_numeric": "97"},
        {"amount": 9.99},
        {"amount": True},
    ],
)
def test_invalid_request(kw: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        encode_request(req(**kw))


def test_invalid_payment_mode() -> None:
    with pytest.raises(InvalidRequest):
        encode_request(req(), payment_mode="")
    with pytest.raises(InvalidRequest):
        encode_request(req(), payment_mode="ab")


def test_the_simulator_reads_the_driver_request() -> None:
    original = req(private="ORDER42", pos_number=7, force_authorization=True)
    parsed = sim.parse_request(encode_request(original, payment_mode="2").encode("ascii"))
    assert parsed == sim.V2Request(
        pos="07",
        amount=999,
        answer_flag="1",
        payment_mode="2",
        transaction_type="0",
        currency="978",
        private="ORDER42   ",
        delay="A010",
        authorization="B011",
    )


# --- answers -----------------------------------------------------------------------

SHORT_OK = "010000009991978ORDER42   "


def report_with(text: str) -> str:
    return text.ljust(55)[:55]


def test_decode_short_answer() -> None:
    answer = decode_answer(SHORT_OK)
    assert answer.pos_number == 1
    assert answer.status is PaymentStatus.ACCEPTED
    assert answer.amount == 999
    assert answer.payment_mode == "1"
    assert answer.currency_numeric == "978"
    assert answer.private == "ORDER42"
    assert answer.report is None and answer.masked_pan is None
    assert answer.raw == SHORT_OK


@pytest.mark.parametrize(
    ("char", "status", "reason"),
    [
        ("0", PaymentStatus.ACCEPTED, None),
        ("7", PaymentStatus.REFUSED, FailureReason.REFUSED),
        ("9", PaymentStatus.NOT_VERIFIED, FailureReason.OTHER),
    ],
)
def test_status_codes(char: str, status: PaymentStatus, reason: FailureReason | None) -> None:
    answer = decode_answer("01" + char + SHORT_OK[3:])
    assert answer.status is status
    result = to_payment_result(answer, TransactionType.DEBIT)
    assert result.failure_reason is reason
    assert result.protocol == "concert-v2"


def test_full_answer_masks_pan_everywhere() -> None:
    report = report_with(f"{PAN} 2512 TERMINAL 0042 AUTH 123456")
    text = "010000025001" + report + "978          "
    assert len(text) == 80
    answer = decode_answer(text)
    assert answer.masked_pan == "497010######7890"
    assert PAN not in (answer.report or "")
    assert PAN not in answer.raw
    assert answer.report is not None and answer.report.startswith("497010######7890 2512 ")
    assert len(answer.report) == 55 and len(answer.raw) == 80
    result = to_payment_result(answer, TransactionType.DEBIT)
    for value in (result.raw, result.report, result.masked_pan):
        assert value is not None and PAN not in value
    assert result.amount == 2500


def test_pan_glued_to_other_digits_is_over_masked_not_leaked() -> None:
    report = report_with(f"{PAN}2512")
    answer = decode_answer("010000025001" + report + "978          ")
    assert answer.masked_pan == "497010##########2512"
    assert "1234567890" not in answer.raw


def test_full_answer_keeps_terminal_masked_pan() -> None:
    report = report_with("497010XXXXXX7890 2512 TID 0042")
    answer = decode_answer("017000025001" + report + "978          ")
    assert answer.masked_pan == "497010XXXXXX7890"
    assert answer.report == report
    assert answer.status is PaymentStatus.REFUSED


def test_mask_grouped_and_long_runs() -> None:
    masked, found = mask_pans("CB 4970 1012 3456 7890 / 12345678901234567890123")
    assert "1012 3456" not in masked
    assert masked.startswith("CB 4970 10## #### 7890")
    assert found[0] == "497010######7890"
    assert found[1] == "123456" + "#" * 13 + "0123"
    # short digit runs (dates, amounts, terminal ids) are left alone
    assert mask_pans("2512 000123 42")[0] == "2512 000123 42"


@pytest.mark.parametrize(
    "text",
    [
        "",
        SHORT_OK[:-1],
        SHORT_OK + " ",
        "0A" + SHORT_OK[2:],  # POS not digits
        "015" + SHORT_OK[3:],  # unknown status
        "0100000099X" + SHORT_OK[11:],  # amount not digits
        SHORT_OK[:12] + "97E" + SHORT_OK[15:],  # currency not digits
        SHORT_OK[:20] + "\x01" + SHORT_OK[21:],  # control char
        "x" * 80,
    ],
)
def test_decode_answer_malformed(text: str) -> None:
    with pytest.raises(MalformedMessage):
        decode_answer(text)


def test_malformed_answer_error_does_not_quote_a_pan() -> None:
    text = "010000025001" + report_with(PAN) + "978" + "\x01" * 10
    with pytest.raises(MalformedMessage) as info:
        decode_answer(text)
    assert PAN not in str(info.value)


def test_the_driver_reads_the_simulator_answer() -> None:
    sent = req(amount=12, currency_numeric="826", pos_number=3, private="abc")
    parsed = sim.parse_request(encode_request(sent, payment_mode="C").encode("ascii"))
    text = sim.build_answer(parsed, sim.STATUS_REFUSED, sequence=5)
    answer = decode_answer(text)
    assert (answer.status, answer.amount, answer.currency_numeric) == (
        PaymentStatus.REFUSED,
        12,
        "826",
    )
    assert (answer.pos_number, answer.payment_mode, answer.private) == (3, "C", "abc")
    assert answer.report == sim.build_report(parsed, sim.STATUS_REFUSED, sequence=5)
    assert answer.masked_pan == "513000XXXXXX5678"  # the simulator's card for mode C
    assert answer.raw == text
