"""A payment as the terminal is asked for it, and the terminal's answer, whatever the wire.

Concert V2 and Concert V3 drivers take :class:`PaymentRequest` and produce
:class:`PaymentResult`; the ``pay`` command carries exactly these two shapes over
the control channel (common/commands/pay.py), and the journal keeps the result as
:meth:`PaymentResult.to_dict` wrote it.  So tp-manager, the channel and the agent
share one definition.  Amounts are integer minor units; currencies ISO 4217 numeric.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

CONCERT_V3_PROTOCOL: Literal["concert-v3"] = "concert-v3"


class TransactionType(enum.StrEnum):
    """The operations a register may ask of a terminal."""

    DEBIT = "debit"
    CREDIT = "credit"  # refund to the card
    CANCEL = "cancel"  # reversal of a previous debit (Concert V2: refund/cancel)


class PaymentStatus(enum.StrEnum):
    """The terminal's verdict. ``NOT_VERIFIED`` is Concert V2's status 9 (other failure)."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    NOT_VERIFIED = "not_verified"


class FailureReason(enum.StrEnum):
    """Why a payment that reached the customer did not succeed, when the terminal says."""

    REFUSED = "refused"
    ABANDONED = "abandoned"  # customer cancelled on the terminal
    TIMEOUT = "timeout"  # terminal-side timeout
    FORBIDDEN = "forbidden"
    FORMAT_ERROR = "format_error"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class TerminalTarget:
    """A Concert V3 terminal an order names (POS API ``host_information``)."""

    host: str
    port: int
    version: str  # the CZ value, e.g. "0302"
    protocol: Literal["concert-v3"] = CONCERT_V3_PROTOCOL

    @property
    def address(self) -> str:
        """``host:port`` as ``allowed_terminals`` spells it (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """One payment as the driver needs it; validated before it gets here."""

    amount: int  # minor units
    currency_numeric: str  # 3 digits, e.g. "978"
    transaction_type: TransactionType = TransactionType.DEBIT
    force_authorization: bool = False
    pos_number: int = 1  # 1..99
    full_answer: bool = True  # Concert V2 answer flag: full answer carries the card report
    private: str = ""  # Concert V2 private field (10 chars), echoed by the terminal
    payment_application: str | None = None  # Concert V3 CC, only to force one
    order_id: str | None = None  # the journal's key; never sent on the wire as such
    target: TerminalTarget | None = None  # None: the configured terminal
    terminal: str | None = None  # a terminal named in the config (its id); wins over target


@dataclass(frozen=True, slots=True)
class Timings:
    """Durations in milliseconds, measured on the monotonic clock."""

    connect_ms: float = 0.0  # ENQ..ACK (V2) or TCP connect (V3)
    request_ms: float = 0.0  # request sent and acknowledged
    wait_ms: float = 0.0  # customer time: request acknowledged .. answer started
    total_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """The terminal's answer, typed; ``raw`` keeps the exact message for the journal."""

    status: PaymentStatus
    amount: int  # minor units, as echoed by the terminal
    currency_numeric: str
    transaction_type: TransactionType
    protocol: str  # "concert-v2" | "concert-v3"
    pos_number: int = 1
    payment_mode: str | None = None  # Concert V2 payment mode char
    masked_pan: str | None = None  # only ever masked, e.g. 497010######1234
    report: str | None = None  # Concert V2 55-char report (full answer only), PAN masked
    private: str | None = None
    failure_reason: FailureReason | None = None
    authorization_number: str | None = None
    payment_application: str | None = None
    reading_mode: str | None = None
    aid: str | None = None
    card_expiry: str | None = None
    merchant_contract: str | None = None
    terminal_data: str | None = None  # Concert V3 CF
    ticket_format: str | None = None  # "text" | "html": the terminal's own ticket (V3 AK)
    customer_ticket: str | None = None
    merchant_ticket: str | None = None
    raw: str = ""  # the answer message as received (masked where it held a PAN)
    timings: Timings = field(default_factory=Timings)

    @property
    def accepted(self) -> bool:
        return self.status is PaymentStatus.ACCEPTED

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, used on the ZeroMQ channel and in the journal.

        ``asdict``'s result, written out: every field is a scalar but ``timings``, and
        ``asdict`` deep-copies each one (64 us a call, twice per payment in tp-manager).
        """
        data = {name: getattr(self, name) for name in _RESULT_FIELDS}
        for key in _RESULT_ENUMS:
            if data[key] is not None:
                data[key] = str(data[key])
        timings = self.timings
        data["timings"] = {name: getattr(timings, name) for name in _TIMING_FIELDS}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PaymentResult:
        """The inverse of :meth:`to_dict`; ``ValueError`` for anything that is not one."""
        try:
            d = dict(data)
            d["status"] = PaymentStatus(d["status"])
            d["transaction_type"] = TransactionType(d["transaction_type"])
            if d.get("failure_reason") is not None:
                d["failure_reason"] = FailureReason(d["failure_reason"])
            d["timings"] = Timings(**(d.get("timings") or {}))
            if not isinstance(d["amount"], int) or isinstance(d["amount"], bool):
                raise ValueError("amount must be integer minor units")
            return cls(**d)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a payment result: {exc}") from None


_RESULT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(PaymentResult))
_RESULT_ENUMS = ("status", "transaction_type", "failure_reason")
_TIMING_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Timings))
