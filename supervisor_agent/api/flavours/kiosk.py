"""The kiosk connector's shape: ``POST /`` body in, the seed's one-element array out.

The receipt and ticket are composed from the journal row: the terminal's result
and the time its answer arrived, so every read of one payment shows one receipt.
"""

from __future__ import annotations

from typing import Any

from common.payment import TransactionType
from supervisor_agent.api.amounts import check_payable, major_to_minor, resolve_currency
from supervisor_agent.api.basket import check_basket
from supervisor_agent.api.flavours.parts import (
    Verdict,
    answered_at,
    basket_minor,
    effective_authorization,
    generate_order_id,
    journal_request,
    plain,
    validate,
)
from supervisor_agent.api.models_kiosk import KioskPaymentRequest
from supervisor_agent.api.payment import PaymentAnswer, PaymentOrder
from supervisor_agent.api.receipt import build_receipt, build_ticket
from supervisor_agent.api.settings import ApiSettings


def parse(body: dict[str, Any], settings: ApiSettings) -> PaymentOrder:
    req = validate(KioskPaymentRequest, body)
    cur = resolve_currency(req.currency)
    amount = major_to_minor(req.amount, cur)
    check_payable(amount, settings.terminal_protocol)
    order_id = req.orderId or generate_order_id()
    force = effective_authorization(settings, amount, False, cur, order_id)
    basket = check_basket(body.get("basket"), amount, cur, "major", "basket", order_id=order_id)
    echo = {
        "amount": body["amount"],
        "currency": cur.alpha,
        "orderId": order_id,
        "basket": basket.basket,
        "customer": body.get("customer") or {},
        "customData": body.get("customData") or {},
    }
    return PaymentOrder(
        flavour="kiosk",
        order_id=order_id,
        amount_minor=amount,
        currency=cur,
        transaction_type=TransactionType.DEBIT,
        force_authorization=force,
        target=None,
        journal_request=journal_request(
            order_id=order_id,
            amount_minor=amount,
            cur=cur,
            transaction_type=str(TransactionType.DEBIT),
            force_authorization=force,
            echo=echo,
            warnings=[basket.warning] if basket.warning else [],
            basket=basket_minor(basket.basket, cur, major=True),
            custom_data=plain(echo["customData"]),
            customer=plain(echo["customer"]),
        ),
    )


def render(answer: PaymentAnswer) -> list[dict[str, Any]]:
    verdict = Verdict(answer.record, answer.delivery)
    echo, result = verdict.echo, answer.record.result
    at = answered_at(answer.record)
    return [
        {
            "status": "Success" if verdict.success else "Failure",
            "error": verdict.error(),
            "receipt": build_receipt(result, at) if result is not None else None,
            "ticket": build_ticket(result, at) if result is not None else None,
            "amount": echo["amount"],
            "currency": echo["currency"],
            "orderId": echo["orderId"],
            "basket": echo["basket"],
            "customer": echo["customer"],
            "customData": echo["customData"],
            "notificationHipaySent": answer.delivery.sent,
            "warnings": verdict.warnings,
            **verdict.truth(),
        }
    ]
