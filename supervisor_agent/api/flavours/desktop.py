"""The desktop connector's shape: ``POST /`` body in, the seed's payment object out.

Echo choices (docs/http-api.md): ``amount`` goes back exactly as sent (the seed
echoes ``"10,23"``); ``cart`` is the basket the order carries, ``{}`` when none
was sent or it was dropped; customer and custom data as sent.
"""

from __future__ import annotations

from typing import Any

from common.payment import TransactionType
from supervisor_agent.api.flavours.parts import (
    Verdict,
    major_unit_order,
    shown_delivery,
    validate,
)
from supervisor_agent.api.models_desktop import DesktopPaymentRequest
from supervisor_agent.api.payment import PaymentAnswer, PaymentOrder
from supervisor_agent.api.settings import ApiSettings


def parse(body: dict[str, Any], settings: ApiSettings) -> PaymentOrder:
    req = validate(DesktopPaymentRequest, body)
    return major_unit_order(
        "desktop",
        body,
        settings,
        amount=req.amount,
        currency_code=req.currency,
        order_id=req.order_id,
        requested_force=req.force_authorization,
        transaction_type=TransactionType(req.transaction_type.lower()),
        basket_key="cart",
        terminal=req.terminal,
        custom_data_key="custom_data",
        echo_extra=lambda force: {
            "transationType": str(req.transaction_type),
            "forceAuthorization": force,
        },
    )


def render(answer: PaymentAnswer) -> dict[str, Any]:
    verdict = Verdict(answer.record)
    delivery = shown_delivery(answer)
    echo = verdict.echo
    return {
        "paymentStatus": "SUCCESS" if verdict.success else "FAILURE",
        "notificationHipaySent": delivery.sent,
        "numberOfNotificationSent": delivery.count,
        "errorCode": verdict.error_code,
        "errorDescription": verdict.error_description,
        "amount": echo["amount"],
        "currency": echo["currency"],
        "orderId": echo["orderId"],
        "transationType": echo["transationType"],
        "forceAuthorization": echo["forceAuthorization"],
        "cart": echo["cart"],
        "customer": echo["customer"],
        "customData": echo["customData"],
        "warnings": verdict.warnings,
        **verdict.truth(),
    }
