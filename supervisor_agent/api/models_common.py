"""Pieces shared by the desktop, kiosk and POS API models.

The models validate requests (pydantic, lax only where the seeds are) and are
the single source of ``GET /openapi.json``.  Echoed parts (cart, customer,
custom data) are answered from the parsed body itself, not from a model dump,
so they go back exactly as sent.
"""

from __future__ import annotations

import enum
import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from common.money import MoneyError, currency
from common.redact import mask_pans
from supervisor_agent.hipay_payload import customer_field

SCHEMA_REF = "#/components/schemas/{model}"
ORDER_ID_MAX = 64
# Printable ASCII, no spaces: an order id goes in logs and URLs.
ORDER_ID_PATTERN = rf"^[\x21-\x7e]{{1,{ORDER_ID_MAX}}}$"


class TransactionTypeName(enum.StrEnum):
    """The seeds' spelling; tp-manager takes the lowercase value."""

    DEBIT = "Debit"
    CREDIT = "Credit"
    CANCEL = "Cancel"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _scalar(value: Any) -> Any:
    if isinstance(value, bool | int | Decimal | float | str):
        return value
    raise PydanticCustomError(
        "scalar_value",
        "custom data values must be a boolean, a number or a string, got {kind}",
        {"kind": _kind(value)},
    )


def _amount_type(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float | str):
        raise PydanticCustomError(
            "amount_type",
            "amount must be a JSON number or a decimal string, got {kind}",
            {"kind": _kind(value)},
        )
    return value


def _iso_currency(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError(
            "iso4217", "currency must be a string, got {kind}", {"kind": _kind(value)}
        )
    try:
        currency(value)
    except MoneyError as exc:
        raise PydanticCustomError("iso4217", "{problem}", {"problem": str(exc)}) from None
    return value


def _int_or_str(value: Any) -> Any:
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise PydanticCustomError(
        "int_or_str", "must be a whole JSON number or a string, got {kind}", {"kind": _kind(value)}
    )


# An identifier the seeds write as a number or as a string (a customer id, a merchant
# contract, an article number).  One validator rather than a StrictInt | StrictStr union,
# whose errors would name the union's branches ("customer.id.str") instead of the field.
IntOrStr = Annotated[
    Any,
    BeforeValidator(_int_or_str),
    WithJsonSchema({"type": ["integer", "string"]}),
]

CustomValue = Annotated[
    Any,
    BeforeValidator(_scalar),
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"type": "number"}, {"type": "string"}]}),
]
CustomData = Annotated[
    dict[str, CustomValue],
    Field(description="Free key/values; only boolean, number and string values are accepted."),
]

# common.money.to_decimal's text (digits, one dot or comma, blanks around), and not
# zero: the server refuses zero (exclusive_minimum), so the document must too.
_BLANKS = r"[ \t\r\n]*"
MAJOR_AMOUNT_PATTERN = (
    rf"^{_BLANKS}(?:[0-9]*[1-9][0-9]*(?:[.,][0-9]+)?|[0-9]+[.,][0-9]*[1-9][0-9]*){_BLANKS}$"
)

MajorAmount = Annotated[
    Any,
    BeforeValidator(_amount_type),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": MAJOR_AMOUNT_PATTERN},
            ],
            "description": "Major units: a number (9.99) or a string with a dot or a "
            'decimal comma ("10,23"); at most the currency\'s ISO 4217 decimals.',
            "examples": [9.99, "10,23"],
        }
    ),
]

CurrencyCode = Annotated[
    Any,
    BeforeValidator(_iso_currency),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "default": "EUR",
            "description": "ISO 4217 alphabetic code.",
        }
    ),
]


def _order_id(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError(
            "order_id", "order id must be a string, got {kind}", {"kind": _kind(value)}
        )
    if not re.fullmatch(ORDER_ID_PATTERN, value):
        raise PydanticCustomError(
            "order_id",
            f"order id must be 1 to {ORDER_ID_MAX} printable ASCII characters without spaces",
        )
    if mask_pans(value, luhn=True)[1]:
        # The order id is the journal's key and goes to HiPay and the logs as it is, where
        # a card number never may: one that reads as a card number (common/redact.py's
        # issued_like) cannot be kept apart from one, so it is refused by name.
        raise PydanticCustomError(
            "card_number",
            "order id must not hold 13 to 19 digits in a row that read as a card number "
            "(the Luhn check, and a first digit cards of that length are issued with); use "
            "another order id (a separator in the digits will do)",
        )
    return value


OrderId = Annotated[
    str,
    BeforeValidator(_order_id),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": ORDER_ID_PATTERN,
            "description": f"Printable ASCII, no spaces, at most {ORDER_ID_MAX} characters; "
            "no run of 13 to 19 digits that reads as a card number (Luhn-valid, a first "
            "digit cards of that length are issued with).",
            "examples": ["Order_12345"],
        }
    ),
]

TerminalName = Annotated[
    StrictStr,
    Field(
        description=(
            "Addition to the seed: the id of a terminal named in the connector's config "
            "(terminals.<id>), or 'default'; absent: the configured terminal."
        ),
        examples=["lane1"],
        min_length=1,
        max_length=32,
    ),
]

# A cart/basket is accepted as anything: the seeds' rule is that a malformed
# one does not fail the payment (basket.py checks it and may drop it).
Basket = Annotated[
    Any,
    WithJsonSchema(
        {
            "anyOf": [
                {"$ref": SCHEMA_REF.format(model="BasketItem")},
                {"type": "array", "items": {"$ref": SCHEMA_REF.format(model="BasketItem")}},
                {"type": "object", "maxProperties": 0},
                {"type": "null"},
            ],
            "description": "One item, an array of items, or {} (no basket). If malformed, or "
            "if its total does not match the amount, the payment goes on with an empty basket "
            "and a warning.",
        }
    ),
]


class BasketItem(BaseModel):
    """One cart line, as the seeds show it (money in the request's amount unit)."""

    model_config = ConfigDict(extra="allow")

    european_article_numbering: IntOrStr | None = None
    product_reference: StrictStr
    type: Literal["good", "discount", "fee"]
    quantity: StrictInt
    name: StrictStr
    unit_price: Annotated[Decimal, BeforeValidator(_amount_type)]
    tax_rate: Annotated[Decimal, BeforeValidator(_amount_type)]
    discount: Annotated[Decimal, BeforeValidator(_amount_type)] | None = None
    total_amount: Annotated[Decimal, BeforeValidator(_amount_type)]
    product_category: Annotated[StrictInt, Field(ge=1, le=16)] | None = None
    url: StrictStr | None = None


class Customer(BaseModel):
    """The desktop/kiosk customer ({id, firstname, lastname, email}); other keys are echoed.

    The seeds' tables spell the names ``firstName``/``lastName``, their examples
    ``firstname``/``lastname``: both are typed alike, and so are HiPay's own names for
    them (``customer_id``, ``first_name``, ``last_name``).  Both reach HiPay as one field
    (hipay_payload.customer_field), so a customer giving one field twice with different
    values is refused rather than one of them silently dropped.
    """

    model_config = ConfigDict(extra="allow")

    id: IntOrStr | None = None
    firstname: StrictStr | None = None
    lastname: StrictStr | None = None
    firstName: StrictStr | None = None
    lastName: StrictStr | None = None
    email: StrictStr | None = None
    # HiPay's own names for the same fields (POS API Customer), which reach it as they are
    customer_id: IntOrStr | None = None
    first_name: StrictStr | None = None
    last_name: StrictStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_value_per_field(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        seen: dict[str, tuple[str, Any]] = {}
        for key, value in data.items():
            if value is None:
                continue
            name, sent = customer_field(str(key), value)
            if name in seen and seen[name][1] != sent:
                raise PydanticCustomError(
                    "conflicting_fields",
                    "{first} and {second} are the same field ({name}) and differ",
                    {"first": seen[name][0], "second": key, "name": name},
                )
            seen.setdefault(name, (str(key), sent))
        return data


class PaymentError(BaseModel):
    errorCode: str = Field(description="See docs/error-codes.md.", examples=["REFUSED"])
    errorDescription: str | None = None


class ErrorDetails(BaseModel):
    model_config = ConfigDict(extra="allow")

    path: str | None = Field(None, description="The field at fault (cart[0].name, amount...).")
    rule: str | None = Field(None, description="The rule it breaks (required, iso4217...).")
    value: Any = Field(None, description="What was sent, shortened.")


class ErrorBody(BaseModel):
    status: int
    code: str
    message: str | None = None
    description: str | None = None
    details: ErrorDetails | None = None


class ErrorResponse(BaseModel):
    """The POS API seed's ErrorResponse; every non-2xx answer of every route uses it."""

    error: ErrorBody


# --- maintenance answers (desktop: the object; kiosk: an array of one)


class VersionInfo(BaseModel):
    version: str = Field(examples=["0.1.0-concertv2-linux"])
    type: str = Field(examples=["concertv2"])
    os: str = Field(examples=["linux"])


class DesktopVersionInfo(BaseModel):
    version: str = Field(examples=["0.1.0-concertv2-linux"])


class ConfigInfo(BaseModel):
    deviceId: str = Field(description="The terminal's serial number, from the configuration.")


class KioskConfigInfo(VersionInfo):
    deviceId: str


class StopResult(BaseModel):
    message: str = Field(examples=["TP-Manager stopped"])
    stopped: bool


class CancelResult(BaseModel):
    message: str
    cancelled: bool = Field(description="True if a transaction was in flight and is now stopped.")


class CheckResult(BaseModel):
    cr: Literal["0", "1"] = Field(description='"0" when the terminal link is up and answering.')
    card: None = Field(None, description="Not reported by Concert V2/V3: always null.")
    call: None = Field(None, description="Not reported by Concert V2/V3: always null.")
    periph: Literal["0", "1"] = Field(description='"0" when the link to the terminal is up.')
    protocol: str
    link: str
    busy: bool
    responding: bool | None
    detail: str


class TlcApp(BaseModel):
    Name: str
    Status: str


class TlcResult(BaseModel):
    NbApp: str
    App: list[TlcApp]
    done: bool
    detail: str


class ResetResult(BaseModel):
    done: bool
    detail: str


class Reconciliation(BaseModel):
    """Present once the terminal's late verdict replaced what the journal said before."""

    model_config = ConfigDict(populate_by_name=True)

    from_: Literal["unknown", "failed"] = Field(alias="from")
    at: str = Field(description="When the verdict was journaled (UTC, ISO 8601).")


class TruthFields(BaseModel):
    """What this connector adds to every payment answer: the state to trust."""

    transactionState: Literal["accepted", "refused", "failed", "unknown"] = Field(
        description="accepted: paid. refused: not paid. failed: never reached the terminal, "
        "safe to retry. unknown: the customer may have paid; do not ask again (see advice)."
    )
    advice: str | None = Field(
        default=None, description="Present when transactionState is unknown."
    )
    reconciled: Reconciliation | None = Field(
        default=None, description="Present when a late verdict settled an unknown outcome."
    )
