"""From a parsed body to a :class:`PaymentOrder`, for each request shape.

Everything that can reject a request happens here, before the payment
service is called: a rejected request never reaches the journal or
tp-manager.  What the answer echoes is kept from the body as sent.
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError

from common.concert_v3_versions import PROTOCOL_NAMES
from supervisor_agent.api import error_codes
from supervisor_agent.api.amounts import (
    check_payable,
    forces_authorization,
    major_to_minor,
    resolve_currency,
)
from supervisor_agent.api.basket import check_basket
from supervisor_agent.api.errors import ApiError, from_validation_error, invalid
from supervisor_agent.api.models_desktop import DesktopPaymentRequest
from supervisor_agent.api.models_kiosk import KioskPaymentRequest
from supervisor_agent.api.models_pos import RootOrder
from supervisor_agent.api.payment import PaymentOrder
from supervisor_agent.api.settings import ApiSettings

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class PreparedPayment:
    order: PaymentOrder
    echo: dict[str, Any]  # what the answer repeats, as sent
    warnings: list[str] = field(default_factory=list)


def validate(model: type[M], body: dict[str, Any]) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def generate_order_id() -> str:
    """``ECR_<YYYYMMDD>_<HHMMSSmmm>_<6 hex>`` (UTC): unique enough for one till, readable
    in the console, and with no run of 13 digits, so the logs' card-number masking never
    mistakes it for a card number."""
    now = datetime.now(UTC)
    return f"ECR_{now:%Y%m%d}_{now:%H%M%S}{now.microsecond // 1000:03d}_{secrets.token_hex(3)}"


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


def _threshold(settings: ApiSettings, amount: int, requested: bool, cur: Any, oid: str) -> bool:
    forced = forces_authorization(amount, cur, settings.authorization_threshold)
    if forced and not requested:
        log.info(
            "api.payment.authorization_forced",
            order_id=oid,
            threshold=str(settings.authorization_threshold),
        )
    return requested or forced


def desktop_order(body: dict[str, Any], settings: ApiSettings) -> PreparedPayment:
    req = validate(DesktopPaymentRequest, body)
    cur = resolve_currency(req.currency)
    amount = major_to_minor(req.amount, cur)
    check_payable(amount, settings.terminal_protocol)
    order_id = req.order_id or generate_order_id()
    force = _threshold(settings, amount, req.force_authorization, cur, order_id)
    basket = check_basket(body.get("cart"), amount, cur, "major", "cart", order_id=order_id)
    ttype = req.transaction_type
    echo = {
        "amount": body["amount"],
        "currency": cur.alpha,
        "orderId": order_id,
        "transationType": str(ttype),
        "forceAuthorization": force,
        "cart": basket.basket,
        "customer": body.get("customer") or {},
        "customData": body.get("custom_data") or {},
    }
    order = PaymentOrder(
        order_id=order_id,
        amount_minor=amount,
        currency=cur,
        transaction_type=ttype.lower(),
        force_authorization=force,
        journal_request=_journal_request("desktop", echo, amount),
    )
    return PreparedPayment(order, echo, [basket.warning] if basket.warning else [])


def kiosk_order(body: dict[str, Any], settings: ApiSettings) -> PreparedPayment:
    req = validate(KioskPaymentRequest, body)
    cur = resolve_currency(req.currency)
    amount = major_to_minor(req.amount, cur)
    check_payable(amount, settings.terminal_protocol)
    order_id = req.orderId or generate_order_id()
    force = _threshold(settings, amount, False, cur, order_id)
    basket = check_basket(body.get("basket"), amount, cur, "major", "basket", order_id=order_id)
    echo = {
        "amount": body["amount"],
        "currency": cur.alpha,
        "orderId": order_id,
        "basket": basket.basket,
        "customer": body.get("customer") or {},
        "customData": body.get("customData") or {},
    }
    order = PaymentOrder(
        order_id=order_id,
        amount_minor=amount,
        currency=cur,
        transaction_type="debit",
        force_authorization=force,
        journal_request=_journal_request("kiosk", echo, amount),
    )
    return PreparedPayment(order, echo, [basket.warning] if basket.warning else [])


def pos_order(
    body: dict[str, Any], settings: ApiSettings, notify_url_supported: bool = False
) -> PreparedPayment:
    req = validate(RootOrder, body)
    tech, order_in, price = req.pos_technical_info, req.order, req.order.price
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
    if not order_in.initialize_payment_terminal:
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
    device = tech.device_information
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
    target = None
    if tech.host_information is not None:
        host, port = tech.host_information.host, tech.host_information.port
        if f"{host}:{port}" not in settings.allowed_terminals:
            raise ApiError(
                403,
                error_codes.TERMINAL_NOT_ALLOWED,
                f"terminal {host}:{port} is not in this connector's allowed_terminals",
                path="pos_technical_info.host_information",
                rule="allowed_terminals",
                value=f"{host}:{port}",
                has_value=True,
            )
        target = {
            "protocol": "concert-v3",
            "version": PROTOCOL_NAMES[tech.protocol],
            "host": host,
            "port": port,
        }
    cur = resolve_currency(price.currency, "order.price.currency")
    amount = price.amount
    check_payable(
        amount, "concert-v3" if target else settings.terminal_protocol, "order.price.amount"
    )
    fees = (price.tax_fees or 0) + (price.shipping_fees or 0)
    raw_order = body["order"]
    raw_basket = raw_order.get("price", {}).get("basket")
    basket = check_basket(
        raw_basket, amount, cur, "minor", "order.price.basket", fees, order_in.order_id
    )
    echo_order = raw_order
    if basket.warning:
        echo_order = copy.deepcopy(raw_order)
        echo_order["price"]["basket"] = []
    force = _threshold(settings, amount, tech.force_authorization, cur, order_in.order_id)
    echo = {
        "order": echo_order,
        "customer": body.get("customer"),
        "shipping": body.get("shipping"),
        "pos_technical_info": body["pos_technical_info"],
    }
    journal = _journal_request("pos", echo, amount)
    journal.update(currency=cur.alpha, target=target, notify_url=tech.notify_url)
    order = PaymentOrder(
        order_id=order_in.order_id,
        amount_minor=amount,
        currency=cur,
        transaction_type=order_in.transaction_type.lower(),
        force_authorization=force,
        target=target,
        journal_request=journal,
    )
    return PreparedPayment(order, echo, [basket.warning] if basket.warning else [])


def _journal_request(flavour: str, echo: dict[str, Any], amount_minor: int) -> dict[str, Any]:
    """What the journal keeps of the request (may hold Decimals: write it with wire_json)."""
    return {"flavour": flavour, "amount_minor": amount_minor, **echo}
