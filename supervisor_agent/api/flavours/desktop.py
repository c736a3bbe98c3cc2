"""The desktop connector's shape: ``POST /`` body in, the seed's payment object out.

Echo choices (docs/http-api.md): ``amount`` goes back exactly as sent (the seed
echoes ``"10,23"``); ``cart`` is the basket the order carries, ``{}`` when none
was sent or it was dropped; customer and custom data as sent.
"""

from __future__ import annotations

from typing import Any

from common.payment import TransactionType
from supervisor_agent.api.amounts import check_payable, major_to_minor, resolve_currency
from supervisor_agent.api.basket import check_basket
from supervisor_agent.api.flavours.parts import (
    Verdict,
    basket_minor,
    effective_authorization,
    generate_order_id,
    journal_request,
    plain,
    validate,
)
from supervisor_agent.api.models_desktop import DesktopPaymentRequest
from supervisor_agent.api.payment import PaymentAnswer, PaymentOrder
from supervisor_agent.api.settings import ApiSettings


def parse(body: dict[str, Any], settings: ApiSettings) -> PaymentOrder:
    req = validate(DesktopPaymentRequest, body)
    cur = resolve_currency(req.currency)
    amount = major_to_minor(req.amount, cur)
    check_payable(amount, settings.terminal_protocol)
    order_id = req.order_id or generate_order_id()
    force = effective_authorization(settings, amount, req.force_authorization, cur, order_id)
    basket = check_basket(body.get("cart"), amount, cur, "major", "cart", order_id=order_id)
    ttype = TransactionType(req.transaction_type.lower())
    echo = {
        "amount": body["amount"],
        "currency": cur.alpha,
        "orderId": order_id,
        "transationType": str(req.transaction_type),
        "forceAuthorization": force,
        "cart": basket.basket,
        "customer": body.get("customer") or {},
        "customData": body.get("custom_data") or {},
    }
    return PaymentOrder(
        flavour="desktop",
        order_id=order_id,
        amount_minor=amount,
        currency=cur,
        transaction_type=ttype,
        force_authorization=force,
        target=None,
        journal_request=journal_request(
            order_id=order_id,
            amount_minor=amount,
            cur=cur,
            transaction_type=str(ttype),
            force_authorization=force,
            echo=echo,
            warnings=[basket.warning] if basket.warning else [],
            basket=basket_minor(basket.basket, cur, major=True),
            custom_data=plain(echo["customData"]),
            customer=plain(echo["customer"]),
        ),
    )


def render(answer: PaymentAnswer) -> dict[str, Any]:
    verdict = Verdict(answer.record, answer.delivery)
    echo = verdict.echo
    return {
        "paymentStatus": "SUCCESS" if verdict.success else "FAILURE",
        "notificationHipaySent": answer.delivery.sent,
        "numberOfNotificationSent": answer.delivery.count,
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
