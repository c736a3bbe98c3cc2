"""The POS API seed's ``RootOrder`` / ``OrderResponse`` (seed: pos-api-openapi-flattened.txt).

Field names, enums and defaults are the seed's.  Amounts in ``price`` are
minor units (the seed: "100 for 1").  Fields the seed allows but this
connector cannot honour are accepted by the model and refused, with a 400 that
says so, by ``payment.pos_order`` (see UNSUPPORTED in docs/http-api.md).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from supervisor_agent.api.models_common import (
    SCHEMA_REF,
    CurrencyCode,
    CustomData,
    IntOrStr,
    OrderId,
    PaymentError,
    TransactionTypeName,
    TruthFields,
)

DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _minor(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise PydanticCustomError("minor_units", "must be a JSON number of minor units")
    if value < 0:
        raise PydanticCustomError("minimum", "must not be negative")
    if Decimal(value) != Decimal(value).to_integral_value():
        raise PydanticCustomError(
            "minor_units", "is in minor units (100 = 1.00) and must be a whole number"
        )
    return int(value)


MinorAmount = Annotated[
    int,
    BeforeValidator(_minor),
    WithJsonSchema(
        {"type": "integer", "minimum": 0, "description": "Minor units: 100 = 1.00 EUR."}
    ),
]

PosBasket = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": ["array", "null"],
            "items": {"$ref": SCHEMA_REF.format(model="BasketItem")},
            "description": "Money fields in minor units, like price.amount. If malformed or if "
            "the totals plus fees do not match the amount, the payment goes on with an empty "
            "basket and a warning.",
        }
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(_Strict):
    amount: MinorAmount
    currency: CurrencyCode = "EUR"
    tax_fees: MinorAmount | None = None
    shipping_fees: MinorAmount | None = None
    basket: PosBasket = None


class Order(_Strict):
    order_id: OrderId
    transaction_type: TransactionTypeName = TransactionTypeName.DEBIT
    initialize_payment_terminal: StrictBool = True
    price: Price
    description: StrictStr = "POS payment"
    long_description: StrictStr | None = None
    soft_descriptor: StrictStr | None = None
    custom_data: CustomData | None = None


class Address(_Strict):
    country: Annotated[StrictStr, Field(pattern=r"^[A-Z]{2}$")] | None = None
    state: StrictStr | None = None
    city: StrictStr | None = None
    zip_code: StrictStr | None = None
    street_address: StrictStr | None = None
    street_additional_details: StrictStr | None = None
    house_number: StrictStr | None = None


class PosCustomer(_Strict):
    customer_id: StrictStr | None = None
    email: StrictStr | None = None
    phone: StrictStr | None = None
    first_name: StrictStr | None = None
    last_name: StrictStr | None = None
    birthdate: Annotated[StrictStr, Field(pattern=DATE_PATTERN)] | None = None
    gender: Literal["U", "F", "M"] | None = None
    additional_customer_information: StrictStr | None = None
    customer_location: Address | None = None


class RecipientInformation(_Strict):
    first_name: StrictStr | None = None
    last_name: StrictStr | None = None
    additional_info: StrictStr | None = None
    gender: Literal["M", "F", "U"] | None = None
    phone: StrictStr | None = None


class Shipping(_Strict):
    delivery_date: Annotated[StrictStr, Field(pattern=DATE_PATTERN)] | None = None
    delivery_method: (
        Literal[
            "EXPRESS24H",
            "EXPRESS48H",
            "STORE",
            "STORE24H",
            "CARRIER",
            "CARRIER24H",
            "RELAYPOINT",
            "RELAYPOINT24H",
        ]
        | None
    ) = None
    carrier_description: StrictStr | None = None
    recipient_information: RecipientInformation | None = None
    delivery_address: Address | None = None


class DeviceInformation(_Strict):
    serial_number: StrictStr | None = None
    manufacturer: StrictStr | None = None


class HostInformation(_Strict):
    host: Annotated[StrictStr, Field(min_length=1, max_length=253)]
    port: Annotated[StrictInt, Field(ge=1, le=65535)] = 8888


class Contract(_Strict):
    merchant_contract: IntOrStr | None = None
    rank: Annotated[StrictStr, Field(min_length=3, max_length=3)] | None = None
    payment_application: Annotated[StrictStr, Field(pattern=r"^[0-9A-Z]{3}$")] | None = None


class TerminalTransactionDisplay(_Strict):
    contract_array: list[Contract] | None = None


class TechnicalInformation(_Strict):
    notify_url: StrictStr | None = None
    device_information: DeviceInformation | None = None
    host_information: HostInformation | None = None
    terminal_transaction_display: TerminalTransactionDisplay
    push_to: Literal["POS", "SDK", "ECR"] = "POS"
    protocol: Literal["AppNepting", "ConcertV3.1", "ConcertV3.2"] = "ConcertV3.1"
    force_authorization: StrictBool = False


class RootOrder(_Strict):
    order: Order
    customer: PosCustomer | None = None
    shipping: Shipping | None = None
    pos_technical_info: TechnicalInformation


class OrderResponse(TruthFields):
    """200 answer of POST /v1/connector/order."""

    paymentStatus: Literal["Success", "Failure"]
    receipt: str | None = Field(
        None,
        description="Base64 of the receipt text the connector composes from the terminal's "
        "answer (the kiosk 'ticket' lines); absent when the terminal gave no answer.",
    )
    error: PaymentError | None = Field(None, description="Absent on success.")
    order: dict[str, Any]
    customer: dict[str, Any] | None = Field(
        None, description="As sent; absent when the order had none."
    )
    shipping: dict[str, Any] | None = Field(
        None, description="As sent; absent when the order had none."
    )
    pos_technical_info: dict[str, Any]
    warnings: list[str]
