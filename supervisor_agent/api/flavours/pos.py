"""The POS API's shape: a ``RootOrder`` in, an ``OrderResponse`` out.

An order may name its own Concert V3 terminal (``host_information``); it must be
in ``allowed_terminals``.  Options of the seed this connector cannot honour are
refused by name (``UNSUPPORTED_FIELD``) rather than silently ignored.
"""

from __future__ import annotations

import copy
from typing import Any

from common.concert_v3_versions import PROTOCOL_NAMES
from common.payment import TerminalTarget, TransactionType
from supervisor_agent.api import error_codes
from supervisor_agent.api.amounts import check_payable, resolve_currency
from supervisor_agent.api.basket import check_basket
from supervisor_agent.api.errors import ApiError, invalid
from supervisor_agent.api.flavours.parts import (
    Verdict,
    answered_at,
    basket_minor,
    effective_authorization,
    journal_request,
    plain,
    validate,
)
from supervisor_agent.api.models_pos import RootOrder
from supervisor_agent.api.payment import PaymentAnswer, PaymentOrder
from supervisor_agent.api.receipt import base64_receipt, kiosk_ticket
from supervisor_agent.api.settings import ApiSettings
from supervisor_agent.api.terminals import address_key, terminal_at

_ORDER_TEXT = ("description", "long_description", "soft_descriptor")


def unsupported(path: str, message: str, value: Any) -> ApiError:
    return ApiError(
        400,
        error_codes.UNSUPPORTED_FIELD,
        f"{path}: {message}",
        path=path,
        rule="unsupported",
        value=value,
        has_value=True,
    )


def _check_supported(req: RootOrder, notify_url_supported: bool) -> None:
    tech = req.pos_technical_info
    if tech.protocol == "AppNepting":
        raise unsupported(
            "pos_technical_info.protocol",
            "AppNepting is not supported: this connector drives Concert V2/V3 terminals",
            tech.protocol,
        )
    if tech.push_to == "SDK":
        raise unsupported(
            "pos_technical_info.push_to",
            "SDK is not supported: this connector is the ECR end (use POS or ECR)",
            tech.push_to,
        )
    if not req.order.initialize_payment_terminal:
        raise unsupported(
            "order.initialize_payment_terminal",
            "false is not supported: this connector only takes payments on its terminal",
            False,
        )
    if tech.notify_url is not None and not notify_url_supported:
        raise unsupported(
            "pos_technical_info.notify_url",
            "a per-order notification URL is not supported; the configured one is used",
            tech.notify_url,
        )


def _target(req: RootOrder, settings: ApiSettings) -> TerminalTarget | None:
    tech = req.pos_technical_info
    target = None
    if tech.host_information is not None:
        host, port = tech.host_information.host, tech.host_information.port
        target = TerminalTarget(host=host, port=port, version=PROTOCOL_NAMES[tech.protocol])
        if target.address not in settings.allowed_terminals:
            raise ApiError(
                403,
                error_codes.TERMINAL_NOT_ALLOWED,
                f"terminal {target.address} is not in this connector's allowed_terminals",
                path="pos_technical_info.host_information",
                rule="allowed_terminals",
                value=target.address,
                has_value=True,
            )
    _check_device(req, settings, target)
    return target


def _check_device(req: RootOrder, settings: ApiSettings, target: TerminalTarget | None) -> None:
    """``device_information`` describes the terminal the order goes to.  Only the
    configured terminal's serial number is known (the config's ``serial_number``): an order
    for it naming another serial is refused; one that ``host_information`` sends to another
    terminal names that terminal's, which nothing here can check."""
    device = req.pos_technical_info.device_information
    if target is not None and target.address != settings.terminal_location:
        return
    if (
        device is not None
        and device.serial_number
        and settings.serial_number
        and device.serial_number != settings.serial_number
    ):
        raise invalid(
            "pos_technical_info.device_information.serial_number",
            "device_mismatch",
            f"this connector drives terminal {settings.serial_number!r}",
            device.serial_number,
        )


def parse(
    body: dict[str, Any], settings: ApiSettings, notify_url_supported: bool = False
) -> PaymentOrder:
    req = validate(RootOrder, body)
    _check_supported(req, notify_url_supported)
    target = _target(req, settings)
    named = terminal_at(settings, target.address) if target else None
    order_in, price = req.order, req.order.price
    cur = resolve_currency(price.currency, "order.price.currency")
    amount = price.amount
    check_payable(
        amount, "concert-v3" if target else settings.terminal_protocol, "order.price.amount"
    )
    fees = (price.tax_fees or 0) + (price.shipping_fees or 0)
    raw_order = body["order"]
    basket = check_basket(
        raw_order.get("price", {}).get("basket"),
        amount,
        cur,
        "minor",
        "order.price.basket",
        fees,
        order_in.order_id,
    )
    echo_order = raw_order
    if basket.warning:
        echo_order = copy.deepcopy(raw_order)
        echo_order["price"]["basket"] = []
    force = effective_authorization(
        settings, amount, req.pos_technical_info.force_authorization, cur, order_in.order_id
    )
    ttype = TransactionType(order_in.transaction_type.lower())
    # as sent: customer and shipping are echoed only when the order has them, not sent or
    # sent as null alike (the seed's OrderResponse objects are not nullable)
    echo: dict[str, Any] = {
        "order": echo_order,
        **{key: body[key] for key in ("customer", "shipping") if body.get(key) is not None},
        "pos_technical_info": body["pos_technical_info"],
    }
    canonical: dict[str, Any] = {
        "basket": basket_minor(echo_order.get("price", {}).get("basket") or [], cur, major=False),
        "custom_data": plain(raw_order.get("custom_data") or {}),
        "customer": plain(body.get("customer") or {}),
    }
    for key in _ORDER_TEXT:
        if raw_order.get(key):
            canonical[key] = str(raw_order[key])
    for key in ("tax_fees", "shipping_fees"):
        if getattr(price, key) is not None:
            canonical[key] = int(getattr(price, key))
    if body.get("shipping"):
        canonical["shipping"] = plain(body["shipping"])
    return PaymentOrder(
        flavour="pos",
        order_id=order_in.order_id,
        amount_minor=amount,
        currency=cur,
        transaction_type=ttype,
        force_authorization=force,
        target=target,
        terminal_id=named.id if named else None,
        target_key=address_key(settings, target.address) if target else None,
        journal_request=journal_request(
            order_id=order_in.order_id,
            amount_minor=amount,
            cur=cur,
            transaction_type=str(ttype),
            force_authorization=force,
            echo=echo,
            warnings=[basket.warning] if basket.warning else [],
            target=target.to_dict() if target else None,
            terminal_id=named.id if named else None,
            **canonical,
        ),
    )


def render(answer: PaymentAnswer) -> dict[str, Any]:
    """The seed's OrderResponse.  Its ``receipt`` (a string) and ``error`` (an object) are
    not nullable, like its echoes: a payment without a terminal answer has no receipt, a
    success no error, and the key is left out rather than null."""
    verdict = Verdict(answer.record)
    result = answer.record.result
    error = verdict.error()
    return {
        "paymentStatus": "Success" if verdict.success else "Failure",
        **(
            {"receipt": base64_receipt(kiosk_ticket(result, answered_at(answer.record)))}
            if result is not None
            else {}
        ),
        **({"error": error} if error is not None else {}),
        **verdict.echo,
        "warnings": verdict.warnings,
        **verdict.truth(),
    }
