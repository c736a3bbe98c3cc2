"""What the three flavours share: reading a body into an order, rendering a row's verdict.

Parsing: everything that can reject a request happens before the journal is
touched, so a rejected request never reaches the journal or tp-manager.  The
journal request is the canonical shape of hipay_payload.py, plus
``echo_json`` (what the answer repeats, as the register sent it) and
``warnings`` (a dropped basket), so a replay or a lookup renders the very answer
the first call got.

Rendering: ``paymentStatus`` and the error come from the row's state and
result; every answer adds ``transactionState`` (the one to trust before asking
a customer to pay again) and, when unknown, the advice.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError

from common.money import CurrencyInfo, to_minor
from common.payment import PaymentStatus, TransactionType
from common.redact import redact
from supervisor_agent.api import error_codes
from supervisor_agent.api.amounts import (
    check_payable,
    forces_authorization,
    major_to_minor,
    resolve_currency,
)
from supervisor_agent.api.basket import check_basket
from supervisor_agent.api.errors import from_validation_error
from supervisor_agent.api.payment import Flavour, PaymentAnswer, PaymentOrder
from supervisor_agent.api.settings import ApiSettings
from supervisor_agent.api.terminals import named_terminal
from supervisor_agent.api.wire_json import dumps, loads
from supervisor_agent.journal import TransactionRecord, TxState
from supervisor_agent.notifier import DeliveryStatus

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

ECHO_KEY = "echo_json"  # the request as the register sent it (Decimals kept as text)
WARNINGS_KEY = "warnings"
BASKET_MONEY = ("unit_price", "total_amount", "discount")
UNKNOWN_ADVICE = (
    "The customer may have paid: do not ask for the payment again. The terminal's own "
    "answer, if it comes, is reconciled: ask GET /transactions/{order_id}; otherwise check "
    "the terminal's journal (or the HiPay console)."
)
_REASON_CODES = {
    "refused": error_codes.REFUSED,
    "abandoned": error_codes.ABANDONED,
    "timeout": error_codes.TERMINAL_TIMEOUT,
    "forbidden": error_codes.FORBIDDEN,
    "format_error": error_codes.FORMAT_ERROR,
}


# --- parsing ------------------------------------------------------------------


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


def effective_authorization(
    settings: ApiSettings, amount: int, requested: bool, cur: CurrencyInfo, order_id: str
) -> bool:
    forced = forces_authorization(amount, cur, settings.authorization_threshold)
    if forced and not requested:
        log.info(
            "api.payment.authorization_forced",
            order_id=order_id,
            threshold=str(settings.authorization_threshold),
        )
    return requested or forced


def plain(value: Any) -> Any:
    """JSON-safe copy of echoed, non-money data: Decimals become ints or floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def basket_minor(raw: Any, cur: CurrencyInfo, major: bool) -> list[dict[str, Any]]:
    """A basket check_basket kept, with its money fields as int minor units, for HiPay."""
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, Mapping) and raw else []
    out: list[dict[str, Any]] = []
    for item in items:
        converted = dict(plain({k: v for k, v in item.items() if k not in BASKET_MONEY}))
        for key in BASKET_MONEY:
            if item.get(key) is None:
                continue
            value = Decimal(item[key])
            minor = to_minor(abs(value), cur) if major else int(abs(value))
            converted[key] = -minor if value < 0 else minor
        out.append(converted)
    return out


def journal_request(
    *,
    order_id: str,
    amount_minor: int,
    cur: CurrencyInfo,
    transaction_type: str,
    force_authorization: bool,
    echo: dict[str, Any],
    warnings: list[str],
    target: dict[str, Any] | None = None,
    terminal_id: str | None = None,
    **canonical: Any,
) -> dict[str, Any]:
    """The canonical request (hipay_payload.py) plus the echo and the warnings.

    A card number the register put in a free-text field (a description, custom data,
    a customer field) is masked here, before the journal, HiPay or an answer sees it,
    by the one masker the logs use (common.redact).
    """
    safe_echo, safe_canonical = redact(echo), redact(canonical)
    if safe_echo != echo or safe_canonical != canonical:
        log.warning("api.request.card_number_masked", order_id=order_id)
    named = {} if terminal_id is None else {"terminal_id": terminal_id}
    return {
        "order_id": order_id,
        "amount": amount_minor,
        "currency": cur.alpha,
        "transaction_type": transaction_type,
        "force_authorization": force_authorization,
        "target": target,
        **named,
        ECHO_KEY: dumps(safe_echo),
        WARNINGS_KEY: warnings,
        **safe_canonical,
    }


def major_unit_order(
    flavour: Flavour,
    body: dict[str, Any],
    settings: ApiSettings,
    *,
    amount: Any,
    currency_code: Any,
    order_id: str | None,
    requested_force: bool,
    transaction_type: TransactionType,
    basket_key: str,
    custom_data_key: str,
    terminal: str | None = None,
    echo_extra: Callable[[bool], dict[str, Any]] | None = None,
    echo_dropped_basket: bool = False,
) -> PaymentOrder:
    """The desktop and kiosk seeds' orders: amounts in major units, a cart or basket.

    ``echo_extra(force)`` adds the flavour's own echoed keys (desktop: the type and the
    effective force flag), in the flavour's key order after ``orderId``.  A basket the
    seeds' rule drops is never journaled (HiPay's order has an empty cart); the answer
    echoes it as sent with ``echo_dropped_basket`` (the kiosk seed's answer does), else
    ``{}`` (the desktop seed's).
    """
    spec = named_terminal(settings, terminal, "terminal")
    cur = resolve_currency(currency_code)
    amount_minor = major_to_minor(amount, cur)
    check_payable(amount_minor, spec.protocol if spec else settings.terminal_protocol)
    order_id = order_id or generate_order_id()
    force = effective_authorization(settings, amount_minor, requested_force, cur, order_id)
    basket = check_basket(
        body.get(basket_key), amount_minor, cur, "major", basket_key, order_id=order_id
    )
    sent_basket = body.get(basket_key)
    echoed_basket = basket.basket
    if echo_dropped_basket and sent_basket is not None:
        echoed_basket = sent_basket
    echo: dict[str, Any] = {
        "amount": body["amount"],
        "currency": cur.alpha,
        "orderId": order_id,
        **(echo_extra(force) if echo_extra else {}),
        basket_key: echoed_basket,
        "customer": body.get("customer") or {},
        "customData": body.get(custom_data_key) or {},
    }
    return PaymentOrder(
        flavour=flavour,
        order_id=order_id,
        amount_minor=amount_minor,
        currency=cur,
        transaction_type=transaction_type,
        force_authorization=force,
        target=None,
        terminal_id=spec.id if spec else None,
        journal_request=journal_request(
            order_id=order_id,
            amount_minor=amount_minor,
            cur=cur,
            transaction_type=str(transaction_type),
            force_authorization=force,
            terminal_id=spec.id if spec else None,
            echo=echo,
            warnings=[basket.warning] if basket.warning else [],
            basket=basket_minor(basket.basket, cur, major=True),
            custom_data=plain(echo["customData"]),
            customer=plain(echo["customer"]),
        ),
    )


# --- rendering ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """A journal row read as an answer: status, error, and what to trust."""

    record: TransactionRecord

    @property
    def echo(self) -> dict[str, Any]:
        data = loads(self.record.request[ECHO_KEY])
        assert isinstance(data, dict)
        return data

    @property
    def warnings(self) -> list[str]:
        return list(self.record.request.get(WARNINGS_KEY) or [])

    @property
    def success(self) -> bool:
        return self.record.state is TxState.ACCEPTED

    @property
    def error_code(self) -> str | None:
        record = self.record
        if self.success:
            return None
        if record.error_code is not None:
            return record.error_code
        result = record.result or {}
        reason = result.get("failure_reason")
        if reason in _REASON_CODES:
            return _REASON_CODES[reason]
        if result.get("status") == PaymentStatus.NOT_VERIFIED:
            return error_codes.NOT_VERIFIED
        return error_codes.REFUSED

    @property
    def error_description(self) -> str | None:
        code = self.error_code
        if code is None:
            return None
        message = self.record.error_message
        text = error_codes.describe(code) or (message or code)
        if message and message not in text:
            text = f"{text} ({message})"
        return text

    def error(self) -> dict[str, Any] | None:
        if self.success:
            return None
        return {"errorCode": self.error_code, "errorDescription": self.error_description}

    def truth(self) -> dict[str, Any]:
        """What every answer adds to the seed's shape: the state, and what to do about it."""
        record = self.record
        extra: dict[str, Any] = {"transactionState": str(record.state)}
        if record.state is TxState.UNKNOWN:
            extra["advice"] = UNKNOWN_ADVICE.replace("{order_id}", record.order_id)
        if record.reconciled_at is not None:
            extra["reconciled"] = {
                "from": record.reconciled_from,
                "at": iso_time(record.reconciled_at),
            }
        return extra


def shown_delivery(answer: PaymentAnswer) -> DeliveryStatus:
    """What HiPay has of the order, for a flavour whose answer shows it (desktop, kiosk:
    ``payment.SHOWS_DELIVERY``, the one place that says which flavours wait for it)."""
    if answer.delivery is None:
        raise ValueError(f"order {answer.record.order_id!r}: its answer has no delivery to show")
    return answer.delivery


def iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def answered_at(record: TransactionRecord) -> datetime:
    """When the terminal answered (local time, as a receipt prints it), from the row."""
    return datetime.fromtimestamp(record.answered_at or record.finished_at or record.created_at)
