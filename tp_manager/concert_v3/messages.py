"""Concert V3 requests and answers: PaymentRequest -> fields -> PaymentResult.

Sans-I/O, like :mod:`codec`.  The choices the protocol notes leave open are
made here, in one place:

* ``AE=10`` is ``ACCEPTED``.  ``AE=01`` with ``AF=04`` (refused) or ``AF=05``
  (forbidden) is ``REFUSED``: the card or the terminal said no.  ``AF=11``
  (abandoned by the customer), ``AF=08`` (terminal timeout), ``AF=09`` (format
  error), an unknown AF or no AF are ``NOT_VERIFIED``: the payment did not
  happen, but no one refused the card.  An unknown AE is ``NOT_VERIFIED`` too.
* ``AA`` (card number) is re-masked if a terminal sends more than the first 6
  and last 4 digits in clear, in the result and in ``raw``.
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

from common.concert_v3_versions import DEFAULT_VERSION, protocol_version
from common.redact import mask_card_field
from tp_manager.concert_v3.codec import Field, as_mapping, encode_fields
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
MANDATORY_REQUEST_TAGS: Final = ("CZ", "CJ", "CA", "CB", "CD", "CE")
ANSWER_MODE_AT_END: Final = "0"

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

STATUS_DONE: Final = "10"
STATUS_NOT_DONE: Final = "01"
STATUS_ACKNOWLEDGED: Final = "11"  # BA=1 immediate acknowledgement, not a result

TRANSACTION_CODES: Final = {
    TransactionType.DEBIT: "0",
    TransactionType.CREDIT: "1",
    TransactionType.CANCEL: "2",
}
_TRANSACTION_BY_CODE: Final = {code: kind for kind, code in TRANSACTION_CODES.items()}

# AF -> (status, reason); see the module docstring for why each lands where it does.
FAILURES: Final = {
    "04": (PaymentStatus.REFUSED, FailureReason.REFUSED),
    "05": (PaymentStatus.REFUSED, FailureReason.FORBIDDEN),
    "11": (PaymentStatus.NOT_VERIFIED, FailureReason.ABANDONED),
    "08": (PaymentStatus.NOT_VERIFIED, FailureReason.TIMEOUT),
    "09": (PaymentStatus.NOT_VERIFIED, FailureReason.FORMAT_ERROR),
}
UNKNOWN_FAILURE: Final = (PaymentStatus.NOT_VERIFIED, FailureReason.OTHER)

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


def build_request(
    request: PaymentRequest,
    *,
    version: str = DEFAULT_VERSION,
    register_id: str = DEFAULT_REGISTER_ID,
    pos_number: int | None = None,
) -> tuple[Field, ...]:
    """The request fields, CZ first. ``pos_number`` (configured) wins over the request's."""
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
        (TAG_ANSWER_MODE, ANSWER_MODE_AT_END),
    ]
    if request.payment_application is not None:
        if not _PAYMENT_APPLICATION.fullmatch(request.payment_application):
            raise InvalidRequest(
                "payment application (CC) must be 3 chars of 0-9A-Z, "
                f"got {request.payment_application!r}"
            )
        fields.append((TAG_PAYMENT_APPLICATION, request.payment_application))
    return tuple(fields)


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


def _status(answer: Mapping[str, str]) -> tuple[PaymentStatus, FailureReason | None]:
    ae = answer.get(TAG_STATUS)
    if ae == STATUS_DONE:
        return PaymentStatus.ACCEPTED, None
    if ae == STATUS_NOT_DONE:
        return FAILURES.get(answer.get(TAG_FAILURE, ""), UNKNOWN_FAILURE)
    log.warning("concert_v3.answer.unknown_status", ae=ae, af=answer.get(TAG_FAILURE))
    return UNKNOWN_FAILURE


def parse_answer(
    fields: Sequence[Field],
    sent: Sequence[Field],
    *,
    contracts: Sequence[Contract] = (),
    timings: Timings | None = None,
) -> PaymentResult:
    """Type an answer to the request ``sent``; echoed CA/CB/CD/CE win (they are what was done)."""
    safe = mask_answer(fields)
    answer = as_mapping(safe)
    request = as_mapping(sent)
    if TAG_STATUS not in answer:
        raise MalformedMessage("answer has no status field AE")
    status, reason = _status(answer)
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
        raw=encode_fields(safe).decode("ascii"),
        timings=timings or Timings(),
    )
