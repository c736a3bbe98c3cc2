"""The kiosk (unattended) connector's payment request and answer (seed: kiosk-unattended-*)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from supervisor_agent.api.models_common import (
    Basket,
    CurrencyCode,
    CustomData,
    Customer,
    MajorAmount,
    OrderId,
    PaymentError,
    TerminalName,
    TruthFields,
)


class KioskPaymentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: MajorAmount
    orderId: OrderId | None = None
    currency: CurrencyCode = "EUR"
    basket: Basket = None
    customer: Customer | None = None
    customData: CustomData | None = None
    terminal: TerminalName | None = None


# Every key of the seed's receipt, in the seed's order.  Concert V2/V3 answers
# carry only some of them: the others are null (receipt.py says which).
RECEIPT_FIELDS = (
    "ticketHeader",
    "localDate",
    "localTime",
    "acceptor",
    "transactionType",
    "contractNumber",
    "SIRET",
    "activity",
    "paymentType",
    "siteType",
    "primaryAccountNumber",
    "TASA",
    "cardAppExpiry",
    "serviceCode",
    "crypto",
    "currencyNumCode",
    "acceptationSystemNum",
    "transactionNumber",
    "transactionFileNumber",
    "readingMode",
    "authorizationNumber",
    "forceCode",
    "amount",
    "currencyAlphaCode",
    "currencyFractionPart",
    "counterValueAmount",
    "counterValueCurrencyAlphaCode",
    "counterValueCurrencyFractionPart",
    "inclusiveAmount",
    "ticketFooter",
    "AID",
    "label",
)

KioskReceipt = create_model(  # the seed's receipt; what the answer does not carry is null
    "KioskReceipt",
    __module__=__name__,
    **{name: (str | None, ...) for name in RECEIPT_FIELDS},  # type: ignore[call-overload]
)


class KioskPaymentResponse(TruthFields):
    """The one element of the kiosk's 200 answer (the seed answers an array)."""

    status: str = Field(json_schema_extra={"enum": ["Success", "Failure"]})
    error: PaymentError | None
    receipt: KioskReceipt | None  # type: ignore[valid-type]
    ticket: str | None = Field(description="Printable lines separated by '|', as in the seed.")
    amount: Any = Field(
        json_schema_extra={"anyOf": [{"type": "number"}, {"type": "string"}]},
        description="The request's amount, echoed as sent.",
    )
    currency: str
    orderId: str
    basket: Any = Field(
        description="The basket as sent ({} when none), even when it was dropped (the order "
        "then has an empty cart and warnings says why), as the kiosk seed's answer echoes it."
    )
    customer: dict[str, Any]
    customData: dict[str, Any]
    notificationHipaySent: bool
    warnings: list[str]
