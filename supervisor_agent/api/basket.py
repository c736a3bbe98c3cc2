"""The seeds' basket rule: a bad basket never fails a payment.

"If the cart content is not correctly fulfilled or doesn't match the total
amount of the order, the order will be created with an empty cart" (kiosk
seed; the desktop table marks ``cart`` with the same footnote).  So a basket
is checked apart from the request: when it is malformed, or when the sum of
its ``total_amount`` (plus fees, POS API) differs from the amount, the order
goes on with an empty basket and the reason is logged and answered in
``warnings``.  The per-line formula of the seed (unit price x quantity -
discount, with a discount that is "0 or negative") contradicts itself, so
lines are not re-computed: only the total is compared.  A money value with more
decimals than its unit allows (``8.99`` minor units) drops the basket too: money
is never truncated.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import structlog
from pydantic import TypeAdapter, ValidationError

from common.money import CurrencyInfo, MoneyError, whole_units
from supervisor_agent.api.errors import location
from supervisor_agent.api.models_common import BasketItem

log = structlog.get_logger(__name__)

EMPTY_BASKET: dict[str, Any] = {}
_ITEMS = TypeAdapter(list[BasketItem])


@dataclass(frozen=True, slots=True)
class BasketCheck:
    basket: Any  # what the order carries: the basket as sent, or {} when dropped
    warning: str | None


def check_basket(
    raw: Any,
    amount_minor: int,
    cur: CurrencyInfo,
    unit: Literal["major", "minor"],
    field: str,
    fees_minor: int = 0,
    order_id: str = "",
) -> BasketCheck:
    if raw is None:
        return BasketCheck(EMPTY_BASKET, None)
    problem = _problem(raw, amount_minor, cur, unit, field, fees_minor)
    if problem is None:
        return BasketCheck(raw, None)
    warning = f"{field} dropped, the order goes on with an empty basket: {problem}"
    log.warning("api.basket.dropped", order_id=order_id, field=field, reason=problem)
    return BasketCheck(EMPTY_BASKET, warning)


def _problem(
    raw: Any,
    amount_minor: int,
    cur: CurrencyInfo,
    unit: Literal["major", "minor"],
    field: str,
    fees_minor: int,
) -> str | None:
    items_raw = raw if isinstance(raw, list) else [raw]
    if isinstance(raw, dict) and not raw:
        return None  # an explicitly empty cart is a valid empty cart
    if not items_raw:
        return None
    try:
        items = _ITEMS.validate_python(items_raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = first["loc"]
        path = location((field, *loc) if isinstance(raw, list) else (field, *loc[1:]))
        return f"{path}: {first['msg']}"
    scale = cur.exponent if unit == "major" else 0
    total_minor = 0
    for i, item in enumerate(items):
        for key in ("unit_price", "discount", "total_amount"):
            value: Decimal | None = getattr(item, key)
            if value is None:
                continue
            where = f"{field}[{i}].{key}" if isinstance(raw, list) else f"{field}.{key}"
            try:
                minor = whole_units(value, scale)
            except MoneyError as exc:
                return f"{where}: {exc}"
            if minor is None:
                allowed = "the currency allows" if unit == "major" else "minor units allow"
                return f"{where}: {value} has more decimals than {allowed}"
            if key == "total_amount":
                total_minor += minor
    expected = amount_minor - fees_minor
    if total_minor != expected:
        return (
            f"the items' total_amount sum ({total_minor} minor units) does not match the "
            f"amount{' less fees' if fees_minor else ''} ({expected} minor units)"
        )
    return None
