"""The body of a HiPay notification: a POS API ``RootOrder`` plus the terminal's verdict.

The connector has already taken the payment on the terminal, so it tells HiPay
about it with the same shape the POS API uses to *ask* for a payment
(``POST /v1/connector/order``), with ``initialize_payment_terminal`` false and
``push_to`` ``ECR``.  The POS API schema has no field for the terminal's
answer, so it travels under an extra top-level key, :data:`TERMINAL_RESULT_KEY`
(``terminal_result``); docs/hipay-notifications.md describes it.

The journal stores requests in one *canonical* shape whatever API flavour they
came in (the HTTP layer converts); :func:`validate_request` checks it when the
transaction begins, so building the payload when it finishes cannot fail on the
request::

    {
      "order_id": "ORDER_1",               # also the journal key
      "transaction_type": "debit",         # debit | credit | cancel (any case)
      "amount": 899,                        # int, minor units
      "currency": "EUR",                    # ISO 4217 alpha
      "force_authorization": false,         # optional
      "description": "...",                 # optional, also long_description, soft_descriptor
      "tax_fees": 0, "shipping_fees": 0,    # optional, int minor units
      "basket": [ {BasketItem, unit_price/total_amount/discount as int minor units} ],
      "customer": {"customer_id": "283749291", "email": ..., "first_name": ..., ...},
      "shipping": {...},                    # optional, POS API Shipping
      "custom_data": {"shop": "Opera"}      # optional, flat values
    }

Basket amounts are sent in minor units, like ``price.amount``: the schema says
their sum must equal the order amount, which only holds in one unit.  (The
seed's examples show ``8.99`` beside an amount of ``100``; that is a choice
made where the seed contradicts itself, and it is documented.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from common.money import MoneyError, currency

TERMINAL_RESULT_KEY = "terminal_result"
PUSH_TO = "ECR"
DEFAULT_PROTOCOL = "ConcertV3.1"  # the POS API's default; its enum has no Concert V2 value
DEFAULT_DESCRIPTION = "POS payment"
PAYLOAD_VERSION = 1  # bumped if the terminal_result block changes shape

_TRANSACTION_TYPES = {"debit": "Debit", "credit": "Credit", "cancel": "Cancel"}
_BASKET_MONEY = ("unit_price", "total_amount", "discount")
_ORDER_TEXT = ("description", "long_description", "soft_descriptor")
# Terminal result fields that go to HiPay.  Left out on purpose: ``raw`` (the wire
# message, kept in the journal only), ``card_expiry`` (cardholder data HiPay does not
# need), ``private`` and ``timings`` (local plumbing).
_RESULT_FIELDS = (
    "status",
    "failure_reason",
    "amount",
    "currency_numeric",
    "transaction_type",
    "protocol",
    "authorization_number",
    "masked_pan",
    "payment_application",
    "payment_mode",
    "reading_mode",
    "aid",
    "merchant_contract",
    "terminal_data",
)
# Desktop/kiosk flavour customer keys -> POS API keys.  The seeds' examples write
# ``firstname``/``lastname``, their tables ``firstName``/``lastName``: both are taken.
_CUSTOMER_ALIASES = {
    "id": "customer_id",
    "firstname": "first_name",
    "lastname": "last_name",
    "firstName": "first_name",
    "lastName": "last_name",
}
# BasketItem keys the POS API types as strings; the desktop/kiosk seeds send the article
# number as a JSON number (4711892728946).
_BASKET_TEXT = ("european_article_numbering", "product_reference")
IDEMPOTENCY_ORDER_MAX = 120  # longer order ids are represented by their hash only


class PayloadError(ValueError):
    """A journal request that cannot become a HiPay notification; the message says why."""


@dataclass(frozen=True, slots=True)
class Contract:
    """One line of ``terminal_transaction_display.contract_array`` (from the config)."""

    merchant_contract: str
    rank: str
    payment_application: str

    def to_dict(self) -> dict[str, str]:
        return {
            "merchant_contract": self.merchant_contract,
            "rank": self.rank,
            "payment_application": self.payment_application,
        }


@dataclass(frozen=True, slots=True)
class PosContext:
    """What the notification says about this connector and its terminal (from the config)."""

    serial_number: str | None = None
    manufacturer: str | None = None
    protocol: str | None = DEFAULT_PROTOCOL
    contracts: tuple[Contract, ...] = field(default_factory=tuple)
    notify_url: str | None = None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_request(request: Mapping[str, Any]) -> None:
    """Refuse a canonical request the payload builder could not carry (raises PayloadError)."""
    if not isinstance(request.get("order_id"), str) or not request["order_id"]:
        raise PayloadError("order_id must be a non-empty string")
    ttype = request.get("transaction_type", "debit")
    if not isinstance(ttype, str) or ttype.lower() not in _TRANSACTION_TYPES:
        raise PayloadError(f"transaction_type must be debit, credit or cancel, got {ttype!r}")
    amount = request.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise PayloadError(f"amount must be a non-negative int of minor units, got {amount!r}")
    try:
        currency(request.get("currency", "EUR"))
    except MoneyError as exc:
        raise PayloadError(str(exc)) from None
    for key in ("tax_fees", "shipping_fees"):
        if key in request and not _is_int(request[key]):
            raise PayloadError(f"{key} must be an int of minor units")
    basket = request.get("basket")
    if basket is not None:
        if not isinstance(basket, list):
            raise PayloadError("basket must be a list")
        for i, item in enumerate(basket):
            if not isinstance(item, Mapping):
                raise PayloadError(f"basket[{i}] must be an object")
            for key in _BASKET_MONEY:
                if key in item and not _is_int(item[key]):
                    raise PayloadError(f"basket[{i}].{key} must be an int of minor units")
    for key in ("customer", "shipping", "custom_data"):
        if key in request and request[key] is not None and not isinstance(request[key], Mapping):
            raise PayloadError(f"{key} must be an object")
    try:
        json.dumps(request, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"request is not plain JSON: {exc}") from None


def customer_field(key: str, value: Any) -> tuple[str, Any]:
    """A desktop/kiosk customer key and value as HiPay's Customer gets them: the POS API
    name (``firstName`` -> ``first_name``) and ``customer_id`` as a string.  The API
    refuses a customer naming one HiPay field twice with different values."""
    name = _CUSTOMER_ALIASES.get(key, key)
    return name, str(value) if name == "customer_id" else value


def _customer(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None:
            continue
        name, sent = customer_field(key, value)
        out[name] = sent
    return out


def _basket_item(item: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(item)
    for key in _BASKET_TEXT:
        if _is_int(out.get(key)):
            out[key] = str(out[key])
    return out


def _result_block(
    state: str,
    result: Mapping[str, Any] | None,
    error_code: str | None,
    error_message: str | None,
    finished_at: str | None,
    reconciled_from: str | None = None,
) -> dict[str, Any]:
    block: dict[str, Any] = {"payload_version": PAYLOAD_VERSION, "state": state}
    for key in _RESULT_FIELDS:
        block[key] = result.get(key) if result else None
    block["receipt"] = result.get("report") if result else None
    block["error"] = (
        {"code": error_code, "message": error_message or ""} if error_code is not None else None
    )
    block["finished_at"] = finished_at
    if reconciled_from is not None:
        # a correction: this order was notified as ``reconciled_from`` before
        block["reconciled_from"] = reconciled_from
    return block


def build_root_order(
    request: Mapping[str, Any],
    *,
    state: str,
    result: Mapping[str, Any] | None,
    error_code: str | None,
    error_message: str | None,
    context: PosContext,
    finished_at: str | None = None,
    reconciled_from: str | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /v1/connector/order`` for a finished transaction."""
    ttype = str(request.get("transaction_type", "debit")).lower()
    price: dict[str, Any] = {
        "amount": request["amount"],
        "currency": request.get("currency", "EUR"),
    }
    for key in ("tax_fees", "shipping_fees"):
        if request.get(key):
            price[key] = request[key]
    if request.get("basket"):
        price["basket"] = [_basket_item(item) for item in request["basket"]]
    order: dict[str, Any] = {
        "order_id": request["order_id"],
        "transaction_type": _TRANSACTION_TYPES[ttype],
        "initialize_payment_terminal": False,
        "price": price,
        "description": request.get("description") or DEFAULT_DESCRIPTION,
    }
    for key in _ORDER_TEXT[1:]:
        if request.get(key):
            order[key] = request[key]
    if request.get("custom_data"):
        order["custom_data"] = dict(request["custom_data"])

    tech: dict[str, Any] = {
        "push_to": PUSH_TO,
        "terminal_transaction_display": {
            "contract_array": [c.to_dict() for c in context.contracts],
        },
    }
    if context.protocol:
        tech["protocol"] = context.protocol
    device: dict[str, str] = {}
    if context.serial_number:
        device["serial_number"] = context.serial_number
    if context.manufacturer:
        device["manufacturer"] = context.manufacturer
    if device:
        tech["device_information"] = device
    if context.notify_url:
        tech["notify_url"] = context.notify_url
    if request.get("force_authorization"):
        tech["force_authorization"] = True

    body: dict[str, Any] = {"order": order, "pos_technical_info": tech}
    if request.get("customer"):
        body["customer"] = _customer(request["customer"])
    if request.get("shipping"):
        body["shipping"] = dict(request["shipping"])
    body[TERMINAL_RESULT_KEY] = _result_block(
        state, result, error_code, error_message, finished_at, reconciled_from
    )
    return body


def build_fallback(
    order_id: str, state: str, result: Mapping[str, Any] | None, error: str
) -> dict[str, Any]:
    """A minimal body for when :func:`build_root_order` failed: a notification is never dropped."""
    body: dict[str, Any] = {
        "order": {"order_id": order_id, "initialize_payment_terminal": False},
        "pos_technical_info": {"push_to": PUSH_TO, "terminal_transaction_display": {}},
    }
    body[TERMINAL_RESULT_KEY] = _result_block(state, result, "PAYLOAD_INCOMPLETE", error, None)
    return body


def idempotency_key(order_id: str, state: str, result: Mapping[str, Any] | None) -> str:
    """``Idempotency-Key`` of the notification: order id + a digest of the terminal's data.

    Computed once when the notification is queued and stored with it, so every
    attempt (and every reconciliation send) carries the same key.  ASCII only,
    so it is always a valid header value.
    """
    terminal = {k: result.get(k) for k in _RESULT_FIELDS} if result else None
    material = json.dumps(
        {"order_id": order_id, "state": state, "terminal": terminal},
        sort_keys=True,
        separators=(",", ":"),
    )
    digest = hashlib.sha256(material.encode()).hexdigest()[:24]
    readable = quote(order_id, safe="-_.~")
    if len(readable) > IDEMPOTENCY_ORDER_MAX:
        return f"ecr-{digest}"
    return f"ecr-{readable}-{digest}"
