"""A minimal, synchronous Concert V2 client: the benchmarks' reference floor.

It pays once the way the protocol says (/work/shared/protocol-notes.md) and nothing
more: no retries, no NAK handling, no reconnects, no logging.  Anything that is not the
happy path raises :class:`ConcertV2Error`.  It shares no code with the connector's driver
(``tp_manager.concert_v2``) or the simulator's codec, so that a misreading in either shows
up as a failed payment here instead of being copied.

One payment:

1. register -> terminal: ENQ, wait ACK; ``STX request ETX LRC``, wait ACK; EOT;
2. terminal -> register: wait ENQ, ACK; read ``STX answer ETX LRC`` (83 bytes, we ask for
   the full answer), check STX, ETX and the LRC, ACK; wait EOT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import serial

STX: Final = b"\x02"
ETX: Final = b"\x03"
EOT: Final = b"\x04"
ENQ: Final = b"\x05"
ACK: Final = b"\x06"

REQUEST_LENGTH: Final = 34
FULL_ANSWER_LENGTH: Final = 80
FULL_ANSWER_FRAME: Final = 1 + FULL_ANSWER_LENGTH + 1 + 1  # STX + answer + ETX + LRC

ANSWER_FULL: Final = "1"
PAYMENT_MODE_CARD: Final = "1"
TRANSACTION_DEBIT: Final = "0"
PRIVATE_BLANK: Final = " " * 10
DELAY_AT_END: Final = "A010"  # answer when the transaction is over
AUTHORIZATION_TERMINAL_DECIDES: Final = "B010"
STATUS_ACCEPTED: Final = "0"

# One timeout for every read: the customer's time included, so a slow customer is not
# an error.  A single value keeps the port's settings untouched during a payment (each
# change of a pyserial timeout is a tcsetattr); a broken exchange is only noticed later.
READ_TIMEOUT_S: Final = 30.0


class ConcertV2Error(Exception):
    """The exchange left the happy path (missing or wrong byte, bad frame or LRC)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The terminal's 80-character full answer, field by field."""

    pos: str
    status: str  # 0 accepted, 7 refused, 9 not verified
    amount: int  # minor units
    payment_mode: str
    report: str  # 55 characters, terminal-specific (masked card number...)
    currency: str  # ISO 4217 numeric
    private: str

    @property
    def accepted(self) -> bool:
        return self.status == STATUS_ACCEPTED


def lrc(data: bytes) -> int:
    """XOR of the bytes after STX, ETX included."""
    value = 0
    for byte in data:
        value ^= byte
    return value


def frame(message: str) -> bytes:
    body = message.encode("ascii") + ETX
    return STX + body + bytes([lrc(body)])


def request_message(amount_minor: int, currency_numeric: str, pos: int = 1) -> str:
    """The 34-character debit request asking for the full answer."""
    message = (
        f"{pos:02d}{amount_minor:08d}{ANSWER_FULL}{PAYMENT_MODE_CARD}{TRANSACTION_DEBIT}"
        f"{currency_numeric}{PRIVATE_BLANK}{DELAY_AT_END}{AUTHORIZATION_TERMINAL_DECIDES}"
    )
    if len(message) != REQUEST_LENGTH:
        raise ValueError(f"request is {len(message)} characters, not {REQUEST_LENGTH}")
    return message


def parse_answer(raw: bytes) -> Answer:
    """An 83-byte full-answer frame, checked: STX first, ETX before the LRC, LRC right."""
    if len(raw) != FULL_ANSWER_FRAME:
        raise ConcertV2Error(f"answer frame is {len(raw)} bytes, expected {FULL_ANSWER_FRAME}")
    if raw[:1] != STX or raw[-2:-1] != ETX:
        raise ConcertV2Error("answer frame lacks STX or ETX")
    if lrc(raw[1:-1]) != raw[-1]:
        raise ConcertV2Error("answer frame has a bad LRC")
    text = raw[1:-2].decode("ascii")
    return Answer(
        pos=text[0:2],
        status=text[2],
        amount=int(text[3:11]),
        payment_mode=text[11],
        report=text[12:67],
        currency=text[67:70],
        private=text[70:80],
    )


class ConcertV2Client:
    """One serial port, 8N1, opened once; :meth:`pay` runs one whole exchange."""

    def __init__(self, port: str, baudrate: int = 9600) -> None:
        self.port = serial.Serial(
            port,
            baudrate=baudrate,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_NONE,
            stopbits=serial.STOPBITS_ONE,
            timeout=READ_TIMEOUT_S,
        )

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> ConcertV2Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def pay(self, amount_minor: int, currency_numeric: str) -> Answer:
        request = frame(request_message(amount_minor, currency_numeric))
        self._send(ENQ)
        self._expect(ACK, "ACK to our ENQ")
        self._send(request)
        self._expect(ACK, "ACK to our request")
        self._send(EOT)
        self._expect(ENQ, "the terminal's ENQ")
        self._send(ACK)
        raw = self.port.read(FULL_ANSWER_FRAME)
        answer = parse_answer(raw)
        self._send(ACK)
        self._expect(EOT, "EOT after the answer")
        return answer

    def _send(self, data: bytes) -> None:
        self.port.write(data)

    def _expect(self, wanted: bytes, what: str) -> None:
        got = self.port.read(1)
        if got != wanted:
            raise ConcertV2Error(f"expected {what} ({wanted!r}), got {got!r}")
