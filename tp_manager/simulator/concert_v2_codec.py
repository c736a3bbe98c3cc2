"""Concert V2 bytes as the simulated terminal sees them: frames, requests, answers.

This is a second, independent reading of the wire facts (see
``/work/shared/protocol-notes.md``): it deliberately shares no code with the
driver in ``tp_manager.concert_v2``, so a misreading of the protocol in one of
them shows up as a failing test instead of being copied into both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STX = 0x02
ETX = 0x03
EOT = 0x04
ENQ = 0x05
ACK = 0x06
NAK = 0x15

REQUEST_LENGTH = 34
FULL_ANSWER_LENGTH = 80
SHORT_ANSWER_LENGTH = 25
REPORT_LENGTH = 55

STATUS_ACCEPTED = "0"
STATUS_REFUSED = "7"
STATUS_NOT_VERIFIED = "9"

ANSWER_FULL = "1"
ANSWER_SHORT = "0"
TRANSACTION_TYPES = frozenset("0124")  # debit, credit, refund/cancel, auto

_REQUEST = re.compile(
    r"(?P<pos>[0-9]{2})"
    r"(?P<amount>[0-9]{8})"
    r"(?P<answer_flag>[01])"
    r"(?P<payment_mode>[0-9A-Z])"
    r"(?P<transaction_type>[0-9])"
    r"(?P<currency>[0-9]{3})"
    r"(?P<private>[\x20-\x7e]{10})"
    r"(?P<delay>A01[01])"  # A010: answer at the end of the transaction, A011: at once
    r"(?P<authorization>B01[01])"  # B010: the terminal decides, B011: forced
)


class MalformedRequest(ValueError):
    """The request frame was read intact but its 34 characters do not parse."""


def lrc(body: bytes) -> int:
    """XOR of every byte after STX up to and including ETX (``body`` includes ETX)."""
    value = 0
    for byte in body:
        value ^= byte
    return value


def build_frame(message: str, corrupt_lrc: bool = False) -> bytes:
    """``STX message ETX LRC``; ``corrupt_lrc`` is for the bad-lrc-once scenario."""
    body = message.encode("ascii") + bytes([ETX])
    check = lrc(body)
    if corrupt_lrc:
        check ^= 0x7F  # still a 7-bit byte, so a 7E1 link can carry it
    return bytes([STX]) + body + bytes([check])


@dataclass(frozen=True, slots=True)
class V2Request:
    """The 34-character payment request, field by field, as text."""

    pos: str
    amount: int  # minor units
    answer_flag: str
    payment_mode: str
    transaction_type: str
    currency: str  # ISO 4217 numeric, 3 digits
    private: str
    delay: str
    authorization: str

    @property
    def full_answer(self) -> bool:
        return self.answer_flag == ANSWER_FULL


def parse_request(message: bytes) -> V2Request:
    """Parse the bytes between STX and ETX; raises :class:`MalformedRequest`."""
    try:
        text = message.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedRequest("request is not ASCII") from None
    if len(text) != REQUEST_LENGTH:
        raise MalformedRequest(f"request is {len(text)} characters, expected {REQUEST_LENGTH}")
    match = _REQUEST.fullmatch(text)
    if match is None:
        raise MalformedRequest("request fields do not match the Concert V2 layout")
    if match["pos"] == "00":
        raise MalformedRequest("POS number 00 is out of range 01..99")
    if match["transaction_type"] not in TRANSACTION_TYPES:
        raise MalformedRequest(f"unknown transaction type {match['transaction_type']!r}")
    return V2Request(
        pos=match["pos"],
        amount=int(match["amount"]),
        answer_flag=match["answer_flag"],
        payment_mode=match["payment_mode"],
        transaction_type=match["transaction_type"],
        currency=match["currency"],
        private=match["private"],
        delay=match["delay"],
        authorization=match["authorization"],
    )


# Test card numbers the simulator "reads", by payment mode, already masked the
# way a terminal prints them: first six and last four digits, never a full PAN.
_MASKED_CARDS: dict[str, str] = {
    "1": "497010XXXXXX1234",  # CB / Visa
    "2": "374245XXXXX1001",  # Amex (15 digits)
    "9": "356999XXXXXX0010",  # JCB
}
_DEFAULT_MASKED_CARD = "513000XXXXXX5678"  # Mastercard
_BRANDS: dict[str, str] = {"1": "CB", "2": "AMEX", "9": "JCB"}
_DEFAULT_BRAND = "MASTERCARD"
CARD_EXPIRY = "2812"  # YYMM
READING_MODE_CONTACTLESS = "2"


def build_report(request: V2Request, status: str, sequence: int) -> str:
    """The 55-character report of a full answer.

    The real layout of this field varies by terminal and is not in the public
    notes; the simulator's own layout is documented in docs/simulator.md:
    masked card (19, left-justified) + expiry YYMM (4) + authorization number
    (6, spaces unless accepted) + reading mode (1) + card brand (10,
    left-justified) + terminal transaction number (6) + 9 spaces.  No run of
    13 or more digits appears, so a PAN scanner over logs stays quiet.  Status 9
    means the card was never read, so that report is all spaces.
    """
    if status == STATUS_NOT_VERIFIED:
        return " " * REPORT_LENGTH
    card = _MASKED_CARDS.get(request.payment_mode, _DEFAULT_MASKED_CARD)
    brand = _BRANDS.get(request.payment_mode, _DEFAULT_BRAND)
    authorization = f"{(sequence * 7919 + request.amount) % 1_000_000:06d}"
    if status != STATUS_ACCEPTED:
        authorization = " " * 6
    report = (
        f"{card:<19}{CARD_EXPIRY}{authorization}{READING_MODE_CONTACTLESS}"
        f"{brand:<10}{sequence % 1_000_000:06d}"
    )
    return f"{report:<{REPORT_LENGTH}}"


def build_answer(request: V2Request, status: str, sequence: int) -> str:
    """Answer text echoing POS, amount, payment mode, currency and private field."""
    head = f"{request.pos}{status}{request.amount:08d}{request.payment_mode}"
    tail = f"{request.currency}{request.private}"
    if request.full_answer:
        answer = head + build_report(request, status, sequence) + tail
        assert len(answer) == FULL_ANSWER_LENGTH
    else:
        answer = head + tail
        assert len(answer) == SHORT_ANSWER_LENGTH
    return answer
