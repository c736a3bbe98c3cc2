"""Concert V3 codec and message typing, on worked examples."""

from __future__ import annotations

import pytest

from common.concert_v3_versions import protocol_name
from tp_manager.concert_v3.codec import (
    AnswerProgress,
    BadLength,
    BadTag,
    BadValue,
    DuplicateTag,
    FieldStreamDecoder,
    NonAsciiByte,
    TruncatedMessage,
    answer_progress,
    encode_field,
    encode_fields,
)
from tp_manager.concert_v3.messages import (
    Contract,
    build_request,
    encode_request,
    mask_pan,
    parse_answer,
    protocol_version,
    validate_register_id,
)
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

from .conftest import decode_whole

REQUEST = PaymentRequest(amount=999, currency_numeric="978")
SENT = build_request(REQUEST)


# --- fields ---------------------------------------------------------------------------


def test_encode_field_pads_the_length() -> None:
    assert encode_field("CZ", "0301") == b"CZ0040301"
    assert encode_field("CF", "x" * 999) == b"CF999" + b"x" * 999


def test_decode_whole_message() -> None:
    data = b"CZ0040301CB003999AA016497010######1234"
    assert decode_whole(data) == (
        ("CZ", "0301"),
        ("CB", "999"),
        ("AA", "497010######1234"),
    )


@pytest.mark.parametrize(
    ("data", "error", "text"),
    [
        (b"cz0040301", BadTag, "bad tag character 'c' at offset 0"),
        (b"C-0040301", BadTag, "offset 1"),
        (b"CZ0x40301", BadLength, "non-digit 'x'"),
        (b"CZ000", BadLength, "length 000"),
        (b"CZ004030", TruncatedMessage, "ends inside field CZ"),
        (b"CZ00", TruncatedMessage, "ends inside field"),
        (b"", TruncatedMessage, "empty message"),
        (b"CZ0040301CZ0040302", DuplicateTag, "tag CZ appears twice"),
        (b"CZ004\xc3\xa9301", NonAsciiByte, "0xC3 at offset 5"),
        (b"CF003a\nb", BadValue, "control byte 0x0A"),
        (b"CZ0040301 ", BadTag, "' ' at offset 9"),
    ],
)
def test_malformed_input_is_a_typed_error(data: bytes, error: type, text: str) -> None:
    with pytest.raises(error, match=text) as caught:
        decode_whole(data)
    assert isinstance(caught.value, MalformedMessage)
    assert caught.value.code == "MALFORMED_MESSAGE"


def test_decoder_error_is_sticky() -> None:
    decoder = FieldStreamDecoder()
    with pytest.raises(BadTag):
        decoder.feed(b"!!")
    with pytest.raises(BadTag):
        decoder.feed(b"CZ0040301")
    with pytest.raises(BadTag):
        decoder.finish()


@pytest.mark.parametrize(
    ("tag", "value"),
    [("C", "1"), ("cz", "1"), ("CZ", ""), ("CZ", "x" * 1000), ("CZ", "é"), ("CZ", "a\tb")],
)
def test_encoder_refuses_what_the_wire_cannot_carry(tag: str, value: str) -> None:
    with pytest.raises(InvalidRequest):
        encode_field(tag, value)


def test_encoder_refuses_duplicates_and_empty_messages() -> None:
    with pytest.raises(InvalidRequest):
        encode_fields([("CZ", "0301"), ("CZ", "0302")])
    with pytest.raises(InvalidRequest):
        encode_fields([])


def test_completeness_rule_step_by_step() -> None:
    echo = ("CZ", "CB")
    decoder = FieldStreamDecoder()
    states = []
    for chunk in (b"CZ0040301", b"AE00", b"210", b"CB003", b"999", b"CC003001"):
        decoder.feed(chunk)
        states.append(answer_progress(decoder, echo))
    assert states == [
        AnswerProgress.PARTIAL,  # no AE yet
        AnswerProgress.PARTIAL,  # AE half read
        AnswerProgress.USABLE,  # AE whole, CB not echoed yet
        AnswerProgress.PARTIAL,  # CB half read
        AnswerProgress.COMPLETE,
        AnswerProgress.COMPLETE,  # trailing fields keep it complete
    ]


# --- requests -------------------------------------------------------------------------


def test_request_fields_in_order() -> None:
    """The default profile: the six mandatory tags, nothing else (no BA)."""
    assert encode_request(SENT) == b"CZ0040301CJ012ECRCONNECTORCA00201CB003999CD0010CE003978"


def test_request_small_amount_has_two_digits_and_cc_only_when_forced() -> None:
    fields = dict(build_request(PaymentRequest(amount=5, currency_numeric="978")))
    assert fields["CB"] == "05" and "CC" not in fields
    forced = build_request(
        PaymentRequest(
            amount=10**12 - 1,
            currency_numeric="840",
            transaction_type=TransactionType.CANCEL,
            payment_application="00C",
        ),
        version="0302",
        register_id="REG000000001",
        pos_number=42,
    )
    assert forced[0] == ("CZ", "0302")
    assert dict(forced) == {
        "CZ": "0302",
        "CJ": "REG000000001",
        "CA": "42",
        "CB": "999999999999",
        "CD": "2",
        "CE": "840",
        "CC": "00C",
    }


@pytest.mark.parametrize("amount", [0, -1, 10**12, 10**15])
def test_amount_out_of_range(amount: int) -> None:
    with pytest.raises(AmountOutOfRange):
        build_request(PaymentRequest(amount=amount, currency_numeric="978"))


@pytest.mark.parametrize(
    "request_",
    [
        PaymentRequest(amount=1, currency_numeric="978", pos_number=0),
        PaymentRequest(amount=1, currency_numeric="978", pos_number=100),
        PaymentRequest(amount=1, currency_numeric="EUR"),
        PaymentRequest(amount=1, currency_numeric="978", payment_application="0001"),
    ],
)
def test_invalid_request_fields(request_: PaymentRequest) -> None:
    with pytest.raises(InvalidRequest):
        build_request(request_)


def test_protocol_versions() -> None:
    assert protocol_version("ConcertV3.1") == "0301"
    assert protocol_version("ConcertV3.2") == "0302"
    assert protocol_version("0300") == "0300"
    with pytest.raises(ValueError, match="AppNepting"):
        protocol_version("AppNepting")


def test_versions_without_a_pos_api_name_are_named_none() -> None:
    """0310 and 0320 are configurable; the agent's notifications then carry no protocol
    (its pos_context asks protocol_name for every Concert V3 configuration)."""
    assert protocol_version("0320") == "0320" and protocol_version("0310") == "0310"
    assert protocol_name("0302") == "ConcertV3.2"
    assert protocol_name("0310") is None and protocol_name("0320") is None


@pytest.mark.parametrize("register_id", ["SHORT", "THIRTEENCHARS", "ECRCONNECTÖR"])
def test_register_id_is_twelve_printable_chars(register_id: str) -> None:
    with pytest.raises(ValueError, match="12 printable"):
        validate_register_id(register_id)


# --- answers --------------------------------------------------------------------------


def answer(**extra: str) -> tuple[tuple[str, str], ...]:
    return (*SENT, *extra.items())


def test_accepted_answer_is_typed() -> None:
    result = parse_answer(
        answer(
            AE="10",
            CC="00B",
            CI="2",
            AC="123456",
            AA="497010######1234",
            AI="A0000000041010",
            AB="2912",
            CF="TXN42",
            CG="1234567",
        ),
        SENT,
    )
    assert result.status is PaymentStatus.ACCEPTED and result.accepted
    assert result.protocol == "concert-v3"
    assert (result.amount, result.currency_numeric, result.pos_number) == (999, "978", 1)
    assert result.transaction_type is TransactionType.DEBIT
    assert (result.payment_application, result.reading_mode) == ("00B", "2")
    assert (result.authorization_number, result.masked_pan) == ("123456", "497010######1234")
    assert (result.aid, result.card_expiry) == ("A0000000041010", "2912")
    assert (result.terminal_data, result.merchant_contract) == ("TXN42", "1234567")
    assert result.raw == encode_fields(answer(
        AE="10", CC="00B", CI="2", AC="123456", AA="497010######1234",
        AI="A0000000041010", AB="2912", CF="TXN42", CG="1234567",
    )).decode()  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "status", "reason"),
    [
        ({"AE": "01", "AF": "04"}, PaymentStatus.REFUSED, FailureReason.REFUSED),
        ({"AE": "01", "AF": "05"}, PaymentStatus.REFUSED, FailureReason.FORBIDDEN),
        ({"AE": "01", "AF": "11"}, PaymentStatus.NOT_VERIFIED, FailureReason.ABANDONED),
        ({"AE": "01", "AF": "08"}, PaymentStatus.NOT_VERIFIED, FailureReason.TIMEOUT),
        ({"AE": "01", "AF": "09"}, PaymentStatus.NOT_VERIFIED, FailureReason.FORMAT_ERROR),
        ({"AE": "01", "AF": "77"}, PaymentStatus.NOT_VERIFIED, FailureReason.OTHER),
        ({"AE": "01"}, PaymentStatus.NOT_VERIFIED, FailureReason.OTHER),
        ({"AE": "42"}, PaymentStatus.NOT_VERIFIED, FailureReason.OTHER),
    ],
)
def test_failure_mapping(
    fields: dict[str, str], status: PaymentStatus, reason: FailureReason
) -> None:
    result = parse_answer(answer(**fields), SENT)
    assert (result.status, result.failure_reason) == (status, reason)
    assert not result.accepted


def test_echoed_values_win_and_missing_echo_falls_back_to_the_request() -> None:
    echoed = parse_answer((("AE", "10"), ("CB", "1000"), ("CD", "1")), SENT)
    assert echoed.amount == 1000 and echoed.transaction_type is TransactionType.CREDIT
    bare = parse_answer((("AE", "10"),), SENT)
    assert (bare.amount, bare.currency_numeric, bare.pos_number) == (999, "978", 1)


@pytest.mark.parametrize(
    "fields",
    [(("CB", "999"),), (("AE", "10"), ("CB", "9x9")), (("AE", "10"), ("CD", "9"))],
)
def test_unusable_answers_are_malformed(fields: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(MalformedMessage):
        parse_answer(fields, SENT)


def test_full_pan_is_masked_in_result_and_raw() -> None:
    result = parse_answer(answer(AE="10", AA="4970101234561234"), SENT)
    assert result.masked_pan == "497010######1234"
    assert "4970101234561234" not in result.raw


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("4970101234561234", "497010######1234"),
        ("497010######1234", "497010######1234"),
        ("4970101234567890123", "497010#########0123"),
        ("1234567890", "######7890"),
        ("123", "123"),
    ],
)
def test_mask_pan(value: str, masked: str) -> None:
    assert mask_pan(value) == masked


def test_contract_fills_merchant_contract_only_when_cg_is_absent() -> None:
    contracts = [Contract("001", "AAAAAAA", "001"), Contract("00B", "BBBBBBB", "002")]
    from_config = parse_answer(answer(AE="10", CC="00B"), SENT, contracts=contracts)
    assert from_config.merchant_contract == "BBBBBBB"
    from_terminal = parse_answer(answer(AE="10", CC="00B", CG="CCCCCCC"), SENT, contracts=contracts)
    assert from_terminal.merchant_contract == "CCCCCCC"
    unknown_app = parse_answer(answer(AE="10", CC="002"), SENT, contracts=contracts)
    assert unknown_app.merchant_contract is None
