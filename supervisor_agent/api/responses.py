"""The three answer shapes of a payment, from one :class:`PaymentOutcome`.

Echo choices (docs/http-api.md): ``amount`` goes back exactly as sent (the
desktop seed echoes ``"10,23"``, the kiosk seed ``100``); ``cart``/``basket``
is the basket the order carries, ``{}`` when none was sent or it was dropped
(the desktop seed's ``"cart": {}``); customer and custom data as sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from supervisor_agent.api.orders import PreparedPayment
from supervisor_agent.api.payment import PaymentOutcome
from supervisor_agent.api.receipt import base64_receipt, build_receipt, build_ticket


def desktop_body(prepared: PreparedPayment, outcome: PaymentOutcome) -> dict[str, Any]:
    echo = prepared.echo
    return {
        "paymentStatus": "SUCCESS" if outcome.success else "FAILURE",
        "notificationHipaySent": outcome.notification_sent,
        "numberOfNotificationSent": outcome.notification_count,
        "errorCode": outcome.error_code,
        "errorDescription": outcome.error_description,
        "amount": echo["amount"],
        "currency": echo["currency"],
        "orderId": echo["orderId"],
        "transationType": echo["transationType"],
        "forceAuthorization": echo["forceAuthorization"],
        "cart": echo["cart"],
        "customer": echo["customer"],
        "customData": echo["customData"],
        "warnings": list(prepared.warnings),
    }


def _error(outcome: PaymentOutcome) -> dict[str, Any] | None:
    if outcome.success:
        return None
    return {"errorCode": outcome.error_code, "errorDescription": outcome.error_description}


def kiosk_body(
    prepared: PreparedPayment, outcome: PaymentOutcome, now: datetime | None = None
) -> list[dict[str, Any]]:
    echo = prepared.echo
    result = outcome.terminal.result
    at = now or datetime.now()
    return [
        {
            "status": "Success" if outcome.success else "Failure",
            "error": _error(outcome),
            "receipt": build_receipt(result, at) if result is not None else None,
            "ticket": build_ticket(result, at) if result is not None else None,
            "amount": echo["amount"],
            "currency": echo["currency"],
            "orderId": echo["orderId"],
            "basket": echo["basket"],
            "customer": echo["customer"],
            "customData": echo["customData"],
            "notificationHipaySent": outcome.notification_sent,
            "warnings": list(prepared.warnings),
        }
    ]


def pos_body(
    prepared: PreparedPayment, outcome: PaymentOutcome, now: datetime | None = None
) -> dict[str, Any]:
    result = outcome.terminal.result
    at = now or datetime.now()
    return {
        "paymentStatus": "Success" if outcome.success else "Failure",
        "receipt": base64_receipt(build_ticket(result, at)) if result is not None else None,
        "error": _error(outcome),
        **prepared.echo,
        "warnings": list(prepared.warnings),
    }
