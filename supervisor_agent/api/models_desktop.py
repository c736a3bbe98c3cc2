"""The desktop connector's payment request and answer (seed: desktop-connector-*.txt)."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictBool, model_validator
from pydantic_core import PydanticCustomError

from supervisor_agent.api.models_common import (
    Basket,
    CurrencyCode,
    CustomData,
    Customer,
    MajorAmount,
    OrderId,
    TerminalName,
    TransactionTypeName,
    TruthFields,
)

# The seed's own example spells it ``transation_type``; both spellings are accepted.
TRANSACTION_TYPE_KEYS = ("transaction_type", "transation_type")


def _document_misspelling(schema: dict[str, Any]) -> None:
    schema["properties"]["transation_type"] = {
        "$ref": "#/components/schemas/TransactionTypeName",
        "deprecated": True,
        "description": "The seed example's spelling of transaction_type; accepted too.",
    }


class DesktopPaymentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_document_misspelling)

    amount: MajorAmount
    transaction_type: TransactionTypeName = Field(
        TransactionTypeName.DEBIT,
        validation_alias=AliasChoices(*TRANSACTION_TYPE_KEYS),
        description="Debit (default), Credit (refund to the card) or Cancel.",
    )
    force_authorization: StrictBool = Field(
        False, description="Force an authorization whatever authorization_threshold says."
    )
    currency: CurrencyCode = "EUR"
    order_id: OrderId | None = None
    cart: Basket = None
    customer: Customer | None = None
    custom_data: CustomData | None = None
    terminal: TerminalName | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_transaction_type(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if all(k in data for k in TRANSACTION_TYPE_KEYS):
                if data["transaction_type"] != data["transation_type"]:
                    raise PydanticCustomError(
                        "conflicting_fields",
                        "transaction_type and transation_type are both given and differ",
                    )
                data = {k: v for k, v in data.items() if k != "transation_type"}
        return data


class DesktopPaymentResponse(TruthFields):
    """200 answer of POST / in the desktop flavour."""

    paymentStatus: str = Field(json_schema_extra={"enum": ["SUCCESS", "FAILURE"]})
    notificationHipaySent: bool = Field(
        description="HiPay acknowledged the transaction notification before this answer."
    )
    numberOfNotificationSent: int
    errorCode: str | None = Field(description="null on success; see docs/error-codes.md.")
    errorDescription: str | None
    amount: Any = Field(
        json_schema_extra={"anyOf": [{"type": "number"}, {"type": "string"}]},
        description="The request's amount, echoed as sent (same JSON type and text).",
    )
    currency: str
    orderId: str
    transationType: TransactionTypeName = Field(description="The seed's spelling, kept.")
    forceAuthorization: bool = Field(
        description="Whether the terminal was asked to force an authorization (by the request "
        "or by authorization_threshold)."
    )
    cart: Any = Field(description="The cart the order carries: {} when none or when dropped.")
    customer: dict[str, Any]
    customData: dict[str, Any]
    warnings: list[str] = Field(description="Why the cart was dropped, if it was.")
