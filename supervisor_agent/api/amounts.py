"""Amounts and currencies of a request, turned into integer minor units or a 400.

Desktop and kiosk amounts are major units (``9.99``, ``"10,23"``); POS API
amounts are already minor units (``100`` = 1.00).  Both end as an ``int``,
checked against the currency's ISO 4217 exponent and the range the terminal
protocol can carry.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from common.money import CurrencyInfo, MoneyError, currency, to_minor
from supervisor_agent.api.errors import ApiError, invalid

# Largest amount each wire format can carry, in minor units.
MAX_MINOR_BY_PROTOCOL = {
    "concert-v2": 10**8 - 1,  # 8 digits
    "concert-v3": 10**12 - 1,  # CB: at most 12 digits
}
DEFAULT_CURRENCY = "EUR"


def resolve_currency(value: Any, path: str = "currency") -> CurrencyInfo:
    if value is None:
        value = DEFAULT_CURRENCY
    try:
        return currency(value)
    except MoneyError as exc:
        raise invalid(path, "iso4217", str(exc), value) from None


def major_to_minor(value: Any, cur: CurrencyInfo, path: str = "amount") -> int:
    """``"10,23"`` / ``9.99`` / ``100`` in major units -> minor units, or a 400."""
    if value is None:
        raise invalid(path, "required", "is required", value, has_value=False)
    if not isinstance(value, str | int | Decimal) or isinstance(value, bool):
        raise invalid(path, "type", "must be a JSON number or a decimal string", value)
    try:
        return to_minor(value, cur)
    except MoneyError as exc:
        rule = "precision" if "decimal(s)" in str(exc) else "format"
        if "negative" in str(exc):
            rule = "minimum"
        if "out of range" in str(exc):
            rule = "maximum"
        raise invalid(path, rule, str(exc), value) from None


def minor_units(value: Any, path: str) -> int:
    """A POS API amount: a whole number of minor units (``100``; ``100.0`` is tolerated)."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise invalid(path, "type", "must be a JSON number of minor units", value)
    dec = Decimal(value)
    if dec != dec.to_integral_value():
        raise invalid(
            path, "integer", "is in minor units (100 = 1.00) and must be a whole number", value
        )
    if dec < 0:
        raise invalid(path, "minimum", "must not be negative", value)
    return int(dec)


def check_payable(amount_minor: int, protocol: str, path: str = "amount") -> None:
    if amount_minor <= 0:
        raise invalid(path, "exclusive_minimum", "must be greater than zero", amount_minor)
    limit = MAX_MINOR_BY_PROTOCOL.get(protocol)
    if limit is not None and amount_minor > limit:
        raise invalid(
            path,
            "maximum",
            f"is more than {protocol} can carry ({limit} minor units)",
            amount_minor,
        )


def forces_authorization(
    amount_minor: int, cur: CurrencyInfo, threshold_major: Decimal | None
) -> bool:
    """True when the amount is at or above ``authorization_threshold`` (major units)."""
    if threshold_major is None:
        return False
    return Decimal(amount_minor) >= threshold_major.scaleb(cur.exponent)


__all__ = [
    "ApiError",
    "check_payable",
    "forces_authorization",
    "major_to_minor",
    "minor_units",
    "resolve_currency",
]
