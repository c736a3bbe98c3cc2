"""Concert V3 requests and answers: PaymentRequest -> fields -> PaymentResult.

Sans-I/O, like :mod:`codec`.  The choices the protocol notes leave open are
made here, in one place:

* What is sent beyond the six mandatory tags is the terminal's profile
  (common/concert_v3_profiles.py): ``BA``, ``CF`` (the order's own reference, so an
  answer or a status request matches it), ``CK`` (tickets).  ``CC`` only when the order
  forces a payment application.  ``BF`` never.
* ``AE=10`` is ``ACCEPTED``.  ``AE=01`` reads through the profile's ``AF`` table:
  ``04`` (refused) and ``05`` (forbidden) are ``REFUSED``: the card or the terminal
  said no; abandon (``06``, ``11``), terminal timeout (``08``), format error (``09``),
  an unknown AF or no AF are ``NOT_VERIFIED``: the payment did not happen, but no
  one refused the card.  An unknown AE is ``NOT_VERIFIED`` too.
* ``AA`` (card number) is re-masked if a terminal sends more than the first 6
  and last 4 digits in clear, in the result and in ``raw``; so are card numbers in the
  tickets ``AK`` carries (tp_manager/concert_v3/tickets.py).
* ``merchant_contract`` is ``CG`` when the terminal sends it, else the
  configured contract whose payment application is the answer's ``CC``.  The
  contract rank is not carried by the protocol and is not reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import structlog

from common.concert_v3_profiles import ACTION_CODES, PROFILES, Action, Profile
from common.concert_v3_versions import DEFAULT_VERSION, protocol_version
from common.redact import mask_card_field
from tp_manager.concert_v3.codec import Field, as_mapping, encode_fields
from tp_manager.concert_v3.tickets import Tickets, decode_tickets
from tp_manager.terminal.errors import AmountOutOfRange, InvalidRequest, MalformedMessage
from tp_manager.terminal.model import (
    FailureReason,
    PaymentRequest,
    PaymentResult,
    PaymentStatus,
    Timings,
    TransactionType,
)

log = structlog.get_logger(__name__)

PROTOCOL: Final = "concert-v3"
REGISTER_ID_SIZE: Final = 12
DEFAULT_REGISTER_ID: Final = "ECRCONNECTOR"
MIN_AMOUNT: Final = 1
MAX_AMOUNT: Final = 999_999_999_999  # CB carries at most 12 digits
AMOUNT_MIN_DIGITS: Final = 2
MIN_POS_NUMBER: Final = 1
MAX_POS_NUMBER: Final = 99

# request tags
TAG_VERSION: Final = "CZ"
TAG_REGISTER_ID: Final = "CJ"
TAG_POS_NUMBER: Final = "CA"
TAG_AMOUNT: Final = "CB"
TAG_TRANSACTION_TYPE: Final = "CD"
TAG_CURRENCY: Final = "CE"
TAG_ANSWER_MODE: Final = "BA"
TAG_PAYMENT_APPLICATION: Final = "CC"
TAG_TICKETS: Final = "CK"
MANDATORY_REQUEST_TAGS: Final = ("CZ", "CJ", "CA", "CB", "CD", "CE")
ANSWER_MODE_AT_END: Final = "0"
REFERENCE_MAX: Final = 99  # CF: 1..99 chars
ACTION_AMOUNT: Final = "00"  # CB is mandatory: an action that moves no money carries zero
ACTION_CURRENCY: Final = "978"  # CE is mandatory: an action carries EUR, no money moves
DEFAULT_PROFILE: Final = PROFILES["default"]

# answer tags
TAG_STATUS: Final = "AE"
TAG_FAILURE: Final = "AF"
TAG_READING_MODE: Final = "CI"
TAG_AUTHORIZATION: Final = "AC"
TAG_PAN: Final = "AA"
TAG_AID: Final = "AI"
TAG_EXPIRY: Final = "AB"
TAG_PRIVATE: Final = "CF"
TAG_CONTRACT: Final = "CG"
TAG_TICKET: Final = "AK"

STATUS_DONE: Final = "10"
STATUS_NOT_DONE: Final = "01"
STATUS_ACKNOWLEDGED: Final = "11"  # BA=1 immediate acknowledgement, not a result

TRANSACTION_CODES: Final = {
    TransactionType.DEBIT: "0",
    TransactionType.CREDIT: "1",
    TransactionType.CANCEL: "2",
}
_TRANSACTION_BY_CODE: Final = {code: kind for kind, code in TRANSACTION_CODES.items()}

PAN_MASK_CHAR: Final = "#"
_PAYMENT_APPLICATION = re.compile(r"[0-9A-Z]{3}")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


@dataclass(frozen=True, slots=True)
class Contract:
    """One entry of the POS API ``contract_array``."""

    payment_application: str  # 3 chars, e.g. "001"
    merchant_contract: str  # 7 chars in the POS API
    rank: str = ""  # 3 chars; the wire does not carry it


def validate_register_id(register_id: str) -> str:
    if len(register_id) != REGISTER_ID_SIZE or not _PRINTABLE.fullmatch(register_id):
        raise ValueError(
            f"register id (CJ) must be {REGISTER_ID_SIZE} printable ASCII chars, "
            f"got {register_id!r}"
        )
    return register_id


def check_amount(amount: int) -> None:
    """Refuse what CB cannot carry, before anything touches the network."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise AmountOutOfRange(f"amount must be an integer of minor units, got {amount!r}")
    if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        raise AmountOutOfRange(
            f"amount {amount} is out of range for Concert V3 ({MIN_AMOUNT}..{MAX_AMOUNT} "
            "minor units)"
        )


def order_reference(order_id: str | None) -> str | None:
    """The order's own reference for ``CF``: its id, when ``CF`` can carry it."""
    if order_id and len(order_id) <= REFERENCE_MAX and _PRINTABLE.fullmatch(order_id):
        return order_id
    return None


def build_request(
    request: PaymentRequest,
    *,
    version: str = DEFAULT_VERSION,
    register_id: str = DEFAULT_REGISTER_ID,
    pos_number: int | None = None,
    profile: Profile = DEFAULT_PROFILE,
) -> tuple[Field, ...]:
    """The request fields, CZ first. ``pos_number`` (configured) wins over the request's;
    the optional tags are the ``profile``'s."""
    check_amount(request.amount)
    pos = request.pos_number if pos_number is None else pos_number
    if (
        isinstance(pos, bool)
        or not isinstance(pos, int)
        or not MIN_POS_NUMBER <= pos <= MAX_POS_NUMBER
    ):
        raise InvalidRequest(f"POS number must be {MIN_POS_NUMBER}..{MAX_POS_NUMBER}, got {pos!r}")
    if not re.fullmatch(r"[0-9]{3}", request.currency_numeric or ""):
        raise InvalidRequest(
            f"currency must be a 3-digit ISO 4217 numeric code, got {request.currency_numeric!r}"
        )
    fields: list[Field] = [
        (TAG_VERSION, protocol_version(version)),
        (TAG_REGISTER_ID, validate_register_id(register_id)),
        (TAG_POS_NUMBER, f"{pos:02d}"),
        (TAG_AMOUNT, f"{request.amount:0{AMOUNT_MIN_DIGITS}d}"),
        (TAG_TRANSACTION_TYPE, TRANSACTION_CODES[TransactionType(request.transaction_type)]),
        (TAG_CURRENCY, request.currency_numeric),
    ]
    if profile.answer_mode:
        fields.append((TAG_ANSWER_MODE, ANSWER_MODE_AT_END))
    reference = order_reference(request.order_id) if profile.reference else None
    if reference is not None:
        fields.append((TAG_PRIVATE, reference))
    if profile.tickets is not None:
        fields.append((TAG_TICKETS, profile.tickets.ck))
    if request.payment_application is not None:
        if not _PAYMENT_APPLICATION.fullmatch(request.payment_application):
            raise InvalidRequest(
                "payment application (CC) must be 3 chars of 0-9A-Z, "
                f"got {request.payment_application!r}"
            )
        fields.append((TAG_PAYMENT_APPLICATION, request.payment_application))
    return tuple(fields)


def build_action_request(
    action: Action,
    *,
    version: str = DEFAULT_VERSION,
    register_id: str = DEFAULT_REGISTER_ID,
    pos_number: int,
) -> tuple[Field, ...]:
    """An action that moves no money (identification, remote collection, reboot): the
    mandatory tags with a zero amount, and the action's ``CD``."""
    return (
        (TAG_VERSION, protocol_version(version)),
        (TAG_REGISTER_ID, validate_register_id(register_id)),
        (TAG_POS_NUMBER, f"{pos_number:02d}"),
        (TAG_AMOUNT, ACTION_AMOUNT),
        (TAG_TRANSACTION_TYPE, ACTION_CODES[action]),
        (TAG_CURRENCY, ACTION_CURRENCY),
    )


def build_status_request(payment: Sequence[Field]) -> tuple[Field, ...] | None:
    """``CD=T`` for the payment sent as ``payment``: its mandatory tags and its ``CF``;
    None when the payment carried no reference (nothing to name it by)."""
    sent = as_mapping(payment)
    if TAG_PRIVATE not in sent:
        return None
    code = ACTION_CODES[Action.STATUS]
    fields = [
        (tag, code if tag == TAG_TRANSACTION_TYPE else sent[tag]) for tag in MANDATORY_REQUEST_TAGS
    ]
    return (*fields, (TAG_PRIVATE, sent[TAG_PRIVATE]))


def encode_request(fields: Iterable[Field]) -> bytes:
    return encode_fields(fields)


def mask_pan(value: str) -> str:
    """``AA`` as the journal may keep it (common.redact's one card-number masker)."""
    return mask_card_field(value, PAN_MASK_CHAR)


def mask_answer(fields: Sequence[Field]) -> tuple[Field, ...]:
    """The answer with AA masked; the same fields when it already was."""
    masked: list[Field] = []
    for tag, value in fields:
        if tag == TAG_PAN:
            safe = mask_pan(value)
            if safe != value:
                log.warning("concert_v3.answer.pan_unmasked", masked_pan=safe)
            value = safe
        masked.append((tag, value))
    return tuple(masked)


def _kept(fields: Sequence[Field], tickets: Tickets | None) -> tuple[Field, ...]:
    """The answer as the journal may keep it: ``AK`` with its tickets' card numbers
    masked, or left out when it did not decode (no one can tell what it holds)."""
    kept: list[Field] = []
    for tag, value in fields:
        if tag == TAG_TICKET:
            if tickets is None:
                continue
            value = tickets.wire
        kept.append((tag, value))
    return tuple(kept)


def _echoed_int(answer: Mapping[str, str], tag: str, sent: int) -> int:
    text = answer.get(tag)
    if text is None:
        return sent
    if not text.isdigit() or not text.isascii():
        raise MalformedMessage(f"answer field {tag} must be digits, got {text!r}")
    value = int(text)
    if value != sent:
        log.warning("concert_v3.answer.echo_mismatch", tag=tag, sent=sent, echoed=value)
    return value


def _echoed(answer: Mapping[str, str], request: Mapping[str, str], tag: str) -> str:
    value = answer.get(tag, request[tag])
    if value != request[tag]:
        log.warning("concert_v3.answer.echo_mismatch", tag=tag, sent=request[tag], echoed=value)
    return value


def _status(
    answer: Mapping[str, str], profile: Profile
) -> tuple[PaymentStatus, FailureReason | None]:
    ae = answer.get(TAG_STATUS)
    if ae == STATUS_DONE:
        return PaymentStatus.ACCEPTED, None
    if ae == STATUS_NOT_DONE:
        return profile.reading(answer.get(TAG_FAILURE))
    log.warning("concert_v3.answer.unknown_status", ae=ae, af=answer.get(TAG_FAILURE))
    return profile.reading(None)


def outcome_failure(af: str | None, profile: Profile) -> bool:
    """Whether ``AF`` in a status answer tells how the payment ended.  No ``AF`` (no
    verdict: no such transaction, still at the customer), a code the profile does not
    know, or a format error (the *question* was not understood) says nothing about the
    payment: read as a verdict, it would turn an unknown payment, maybe paid, into a
    failed one."""
    if af is None or af not in profile.failures:
        return False
    return profile.reading(af)[1] is not FailureReason.FORMAT_ERROR


def parse_status_answer(
    fields: Sequence[Field],
    payment: Sequence[Field],
    *,
    profile: Profile,
    contracts: Sequence[Contract] = (),
    timings: Timings | None = None,
) -> PaymentResult | None:
    """The verdict a ``CD=T`` answer gives for ``payment``, or None when it gives none:
    another reference echoed, or ``AE=01`` without an ``AF`` that tells how a payment
    ended (:func:`outcome_failure`).  Its ``CD`` echo is ``T``: the payment's own type is
    read from what was sent."""
    answer = as_mapping(fields)
    sent = as_mapping(payment)
    if answer.get(TAG_PRIVATE) != sent.get(TAG_PRIVATE):
        log.warning("concert_v3.status.other_reference", echoed=answer.get(TAG_PRIVATE))
        return None
    if answer.get(TAG_STATUS) not in (STATUS_DONE, STATUS_NOT_DONE):
        return None
    if answer.get(TAG_STATUS) == STATUS_NOT_DONE and not outcome_failure(
        answer.get(TAG_FAILURE), profile
    ):
        return None
    as_payment = [
        (tag, sent[tag] if tag == TAG_TRANSACTION_TYPE else value) for tag, value in fields
    ]
    return parse_answer(as_payment, payment, profile=profile, contracts=contracts, timings=timings)


def parse_answer(
    fields: Sequence[Field],
    sent: Sequence[Field],
    *,
    profile: Profile = DEFAULT_PROFILE,
    contracts: Sequence[Contract] = (),
    timings: Timings | None = None,
) -> PaymentResult:
    """Type an answer to the request ``sent``; echoed CA/CB/CD/CE win (they are what was done)."""
    safe = mask_answer(fields)
    answer = as_mapping(safe)
    request = as_mapping(sent)
    if TAG_STATUS not in answer:
        raise MalformedMessage("answer has no status field AE")
    status, reason = _status(answer, profile)
    tickets = decode_tickets(answer.get(TAG_TICKET), request.get(TAG_TICKETS))
    amount = _echoed_int(answer, TAG_AMOUNT, int(request[TAG_AMOUNT]))
    pos_number = _echoed_int(answer, TAG_POS_NUMBER, int(request[TAG_POS_NUMBER]))
    currency = _echoed(answer, request, TAG_CURRENCY)
    type_code = _echoed(answer, request, TAG_TRANSACTION_TYPE)
    kind = _TRANSACTION_BY_CODE.get(type_code)
    if kind is None:
        raise MalformedMessage(f"answer field CD is not a known transaction type: {type_code!r}")
    application = answer.get(TAG_PAYMENT_APPLICATION)
    contract = answer.get(TAG_CONTRACT)
    if contract is None and application is not None:
        contract = next(
            (c.merchant_contract for c in contracts if c.payment_application == application),
            None,
        )
    return PaymentResult(
        status=status,
        amount=amount,
        currency_numeric=currency,
        transaction_type=kind,
        protocol=PROTOCOL,
        pos_number=pos_number,
        masked_pan=answer.get(TAG_PAN),
        failure_reason=reason,
        authorization_number=answer.get(TAG_AUTHORIZATION),
        payment_application=application,
        reading_mode=answer.get(TAG_READING_MODE),
        aid=answer.get(TAG_AID),
        card_expiry=answer.get(TAG_EXPIRY),
        merchant_contract=contract,
        terminal_data=answer.get(TAG_PRIVATE),
        ticket_format=tickets.format if tickets else None,
        customer_ticket=tickets.customer if tickets else None,
        merchant_ticket=tickets.merchant if tickets else None,
        raw=encode_fields(_kept(safe, tickets)).decode("ascii"),
        timings=timings or Timings(),
    )
