"""Concert V2 messages and frames, as pure functions (no I/O, no clock).

A request is the 34-character message of protocol-notes.md; an answer is 25
characters (short) or 80 (full: with the 55-character report).  Everything is
validated before a byte is built, so a request the wire cannot carry fails with
:class:`AmountOutOfRange` or :class:`InvalidRequest` before the link is touched.

Card numbers: the report is the only field that can carry a card number and its
layout varies by terminal, so we do not assume where the number sits.  Every run
of 13 or more digits in the report (or groups of 4 to 6 digits split by single
spaces or dashes, as printed on cards) is masked in place: the first 6 and the last 4
digits are kept, every digit in between becomes ``#`` (the character the
project's examples use: ``497010######1234``).  Runs longer than a card number
(a PAN glued to a date, say) are masked the same way, which may hide a few
harmless digits but never leaves a full PAN.  The masked report is what goes
into ``PaymentResult.report``, ``raw`` and ``masked_pan``; error messages never
quote a message's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.redact import mask_pans
from tp_manager.concert_v2 import constants as c
from tp_manager.terminal.errors import (
    AmountOutOfRange,
    InvalidRequest,
    MalformedMessage,
)
from tp_manager.terminal.model import (
    FailureReason,
    PaymentRequest,
    PaymentResult,
    PaymentStatus,
    Timings,
    TransactionType,
)

TRANSACTION_CODES: dict[TransactionType, str] = {
    TransactionType.DEBIT: "0",
    TransactionType.CREDIT: "1",
    TransactionType.CANCEL: "2",
}

STATUS_CODES: dict[str, PaymentStatus] = {
    "0": PaymentStatus.ACCEPTED,
    "7": PaymentStatus.REFUSED,
    "9": PaymentStatus.NOT_VERIFIED,
}
_FAILURE_BY_STATUS = {
    PaymentStatus.REFUSED: FailureReason.REFUSED,
    PaymentStatus.NOT_VERIFIED: FailureReason.OTHER,
}

DEFAULT_PAYMENT_MODE = "1"  # card
DELAY_AT_END = "A010"  # answer when the transaction is over (we never ask A011)
AUTHORIZATION_TERMINAL_DECIDES = "B010"
AUTHORIZATION_FORCED = "B011"
ANSWER_FULL = "1"
ANSWER_SHORT = "0"

_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_CURRENCY = re.compile(r"[0-9]{3}")
_PAYMENT_MODE = re.compile(r"[0-9A-Z]")
_ANSWER_HEAD = re.compile(r"(?P<pos>[0-9]{2})(?P<status>.)(?P<amount>[0-9]{8})(?P<mode>.)")
_ANSWER_TAIL = re.compile(r"(?P<cur>[0-9]{3})(?P<private>.{10})")
_MASKED_PAN = re.compile(r"(?<![0-9])[0-9]{0,6}[#*Xx]{3,13}[0-9]{4}(?![0-9])")


def is_printable_ascii(text: str) -> bool:
    return _PRINTABLE.fullmatch(text) is not None


# --- frames --------------------------------------------------------------------


def lrc(data: bytes | bytearray) -> int:
    """XOR of every byte given; a frame's LRC covers message + ETX, not STX."""
    value = 0
    for byte in data:
        value ^= byte
    return value


def encode_frame(message: str) -> bytes:
    """``STX message ETX LRC``; the message must be printable ASCII."""
    if not is_printable_ascii(message):
        raise InvalidRequest("a Concert V2 message must be printable ASCII")
    body = message.encode("ascii") + bytes([c.ETX])
    return bytes([c.STX]) + body + bytes([lrc(body)])


# --- requests ------------------------------------------------------------------


def validate_request(request: PaymentRequest, payment_mode: str = DEFAULT_PAYMENT_MODE) -> None:
    """Refuse what the 34-character request cannot carry; nothing is sent yet."""
    amount = request.amount
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidRequest("amount must be an integer number of minor units")
    if not c.AMOUNT_MIN <= amount <= c.AMOUNT_MAX:
        raise AmountOutOfRange(
            f"amount {amount} is outside {c.AMOUNT_MIN}..{c.AMOUNT_MAX} minor units, "
            "the range of the 8-digit Concert V2 amount field"
        )
    pos = request.pos_number
    if isinstance(pos, bool) or not isinstance(pos, int):
        raise InvalidRequest("POS number must be an integer")
    if not c.POS_NUMBER_MIN <= pos <= c.POS_NUMBER_MAX:
        raise InvalidRequest(f"POS number {pos} is outside {c.POS_NUMBER_MIN}..{c.POS_NUMBER_MAX}")
    cur = request.currency_numeric
    if not isinstance(cur, str) or not _CURRENCY.fullmatch(cur):
        raise InvalidRequest("currency must be a 3-digit ISO 4217 numeric code")
    if request.transaction_type not in TRANSACTION_CODES:
        raise InvalidRequest(f"transaction type {request.transaction_type!r} is not supported")
    private = request.private
    if not isinstance(private, str) or len(private) > c.PRIVATE_LENGTH:
        raise InvalidRequest(f"private field must be at most {c.PRIVATE_LENGTH} characters")
    if not is_printable_ascii(private):
        raise InvalidRequest("private field must be printable ASCII")
    if not (isinstance(payment_mode, str) and _PAYMENT_MODE.fullmatch(payment_mode)):
        raise InvalidRequest("payment mode must be one character 0-9 or A-Z")


def encode_request(request: PaymentRequest, payment_mode: str = DEFAULT_PAYMENT_MODE) -> str:
    """The 34-character request message (without STX/ETX/LRC)."""
    validate_request(request, payment_mode)
    message = "".join(
        (
            f"{request.pos_number:02d}",
            f"{request.amount:08d}",
            ANSWER_FULL if request.full_answer else ANSWER_SHORT,
            payment_mode,
            TRANSACTION_CODES[request.transaction_type],
            request.currency_numeric,
            request.private.ljust(c.PRIVATE_LENGTH),
            DELAY_AT_END,
            AUTHORIZATION_FORCED if request.force_authorization else AUTHORIZATION_TERMINAL_DECIDES,
        )
    )
    assert len(message) == c.REQUEST_LENGTH
    return message


# --- answers -------------------------------------------------------------------


def find_masked_pan(report: str) -> str | None:
    """The masked card number in an (already masked) report, if one is there."""
    _, masked = mask_pans(report)
    if masked:
        return masked[0]
    m = _MASKED_PAN.search(report)
    return m.group(0) if m else None


@dataclass(frozen=True, slots=True)
class Answer:
    """A decoded answer; ``report`` and ``raw`` are already PAN-masked."""

    pos_number: int
    status: PaymentStatus
    amount: int
    payment_mode: str
    currency_numeric: str
    private: str
    report: str | None
    masked_pan: str | None
    raw: str


def decode_answer(text: str) -> Answer:
    """Parse a 25- or 80-character answer message."""
    if not isinstance(text, str) or not is_printable_ascii(text):
        raise MalformedMessage("answer must be printable ASCII")
    if len(text) == c.FULL_ANSWER_LENGTH:
        end = 12 + c.REPORT_LENGTH
        head, report, tail = text[:12], text[12:end], text[end:]
    elif len(text) == c.SHORT_ANSWER_LENGTH:
        head, report, tail = text[:12], None, text[12:]
    else:
        raise MalformedMessage(
            f"answer is {len(text)} characters, expected {c.SHORT_ANSWER_LENGTH} (short) "
            f"or {c.FULL_ANSWER_LENGTH} (full)"
        )
    m = _ANSWER_HEAD.fullmatch(head)
    if m is None:
        raise MalformedMessage("answer POS number or amount is not digits")
    status = STATUS_CODES.get(m["status"])
    if status is None:
        raise MalformedMessage(f"answer status {m['status']!r} is not 0, 7 or 9")
    t = _ANSWER_TAIL.fullmatch(tail)
    if t is None:
        raise MalformedMessage("answer currency is not 3 digits")
    masked_report: str | None = None
    masked_pan: str | None = None
    if report is not None:
        masked_report, _ = mask_pans(report)
        masked_pan = find_masked_pan(report)
    raw = head + (masked_report or "") + tail
    return Answer(
        pos_number=int(m["pos"]),
        status=status,
        amount=int(m["amount"]),
        payment_mode=m["mode"],
        currency_numeric=t["cur"],
        private=t["private"].rstrip(" "),
        report=masked_report,
        masked_pan=masked_pan,
        raw=raw,
    )


def to_payment_result(
    answer: Answer, transaction_type: TransactionType, timings: Timings | None = None
) -> PaymentResult:
    """The protocol-free result the layers above use."""
    return PaymentResult(
        status=answer.status,
        amount=answer.amount,
        currency_numeric=answer.currency_numeric,
        transaction_type=transaction_type,
        protocol=c.PROTOCOL_NAME,
        pos_number=answer.pos_number,
        payment_mode=answer.payment_mode,
        masked_pan=answer.masked_pan,
        report=answer.report,
        private=answer.private,
        failure_reason=_FAILURE_BY_STATUS.get(answer.status),
        raw=answer.raw,
        timings=timings or Timings(),
    )
