"""The kiosk connector's shape: ``POST /`` body in, the seed's one-element array out.

The receipt and ticket are composed from the journal row: the terminal's result
and the time its answer arrived, so every read of one payment shows one receipt.
A terminal that sends its own ticket (Concert V3 ``CK``/``AK``) has it in ``ticket``.
``basket`` is echoed as sent even when the seeds' rule dropped it (the order then has
an empty cart; ``warnings`` says why), as the kiosk seed's own answer echoes a basket
that does not match its amount.
"""

from __future__ import annotations

from typing import Any

from common.payment import TransactionType
from supervisor_agent.api.flavours.parts import (
    Verdict,
    answered_at,
    major_unit_order,
    shown_delivery,
    validate,
)
from supervisor_agent.api.models_kiosk import KioskPaymentRequest
from supervisor_agent.api.payment import PaymentAnswer, PaymentOrder
from supervisor_agent.api.receipt import build_receipt, kiosk_ticket
from supervisor_agent.api.settings import ApiSettings


def parse(body: dict[str, Any], settings: ApiSettings) -> PaymentOrder:
    req = validate(KioskPaymentRequest, body)
    return major_unit_order(
        "kiosk",
        body,
        settings,
        amount=req.amount,
        currency_code=req.currency,
        order_id=req.orderId,
        requested_force=False,  # the kiosk seed has no such field: only the threshold
        transaction_type=TransactionType.DEBIT,
        basket_key="basket",
        terminal=req.terminal,
        custom_data_key="customData",
        echo_dropped_basket=True,  # the kiosk seed's answer echoes its mismatched basket
    )


def render(answer: PaymentAnswer) -> list[dict[str, Any]]:
    verdict = Verdict(answer.record)
    delivery = shown_delivery(answer)
    echo, result = verdict.echo, answer.record.result
    at = answered_at(answer.record)
    return [
        {
            "status": "Success" if verdict.success else "Failure",
            "error": verdict.error(),
            "receipt": build_receipt(result, at) if result is not None else None,
            "ticket": kiosk_ticket(result, at) if result is not None else None,
            "amount": echo["amount"],
            "currency": echo["currency"],
            "orderId": echo["orderId"],
            "basket": echo["basket"],
            "customer": echo["customer"],
            "customData": echo["customData"],
            "notificationHipaySent": delivery.sent,
            "warnings": verdict.warnings,
            **verdict.truth(),
        }
    ]
