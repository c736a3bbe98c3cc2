"""Money as integer minor units, with ISO 4217 exponents.

Amounts reach the connector as JSON numbers (``9.99``), strings with a dot or a
decimal comma (``"10,23"``) or, in the POS API, integers already in minor units.
Binary floats are never used to carry an amount: JSON numbers are parsed as
:class:`decimal.Decimal` from their text, and everything past the parser is an
``int`` of minor units.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from functools import cache
from typing import Any

# Withdrawn codes that the POS API seed's currency enum still lists; the
# ``iso4217`` package only carries the active ones, and drops a code when ISO withdraws
# it (BGN, HRK, ANG... since the seed was written).  (numeric code, exponent)
_LEGACY: dict[str, tuple[int, int]] = {
    "FRF": (250, 2),
    "SKK": (703, 2),
    "EEK": (233, 2),
    "BYR": (974, 0),
    "LTL": (440, 2),
    "LVL": (428, 2),
    "MRO": (478, 2),
    "STD": (678, 2),
    "VEF": (937, 2),
    "TMM": (795, 2),
    "ZMK": (894, 2),
    "ANG": (532, 2),  # numeric 532 is XCG's now: a terminal's 532 reads as XCG
    "BGN": (975, 2),
    "CUC": (931, 2),
    "HRK": (191, 2),
    "SLL": (694, 2),
    "ZWL": (932, 2),
}


class MoneyError(ValueError):
    """An amount or a currency a user sent cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class CurrencyInfo:
    alpha: str
    numeric: int
    exponent: int

    @property
    def numeric_code(self) -> str:
        """The 3-digit zero-padded code the terminal protocols carry (``978``)."""
        return f"{self.numeric:03d}"


@cache
def _iso() -> Any:
    """The ``iso4217`` table, read at the first look-up: the package parses its XML
    when imported, about 1 MB that tp-manager, which never looks a currency up, would
    hold all day."""
    from iso4217 import Currency

    return Currency


# The codes already looked up: ISO 4217 is a fixed table, so a code's answer never changes,
# and only valid codes are kept (a few hundred at most).  A payment looks its currency up
# five times (validation, order, journal, live events); the table's look-up is an Enum
# call of several microseconds, this a dict read.
_LOOKED_UP: dict[str, CurrencyInfo] = {}


def currency(code: str) -> CurrencyInfo:
    """Look up an ISO 4217 alphabetic code (case-sensitive, as the seeds' enum is)."""
    if type(code) is str:
        known = _LOOKED_UP.get(code)
        if known is not None:
            return known
        info = _LOOKED_UP[code] = _look_up(code)
        return info
    return _look_up(code)  # a str subclass (an enum member): looked up, never kept


def _look_up(code: str) -> CurrencyInfo:
    if not isinstance(code, str) or not re.fullmatch(r"[A-Z]{3}", code):
        raise MoneyError(f"currency must be a 3-letter ISO 4217 code, got {code!r}")
    if code in _LEGACY:
        num, exp = _LEGACY[code]
        return CurrencyInfo(code, num, exp)
    try:
        cur = _iso()(code)
    except ValueError:
        raise MoneyError(f"currency {code!r} is not an ISO 4217 code") from None
    if cur.exponent is None:  # funds and metals (XAU, XDR...) have no minor unit
        raise MoneyError(f"currency {code!r} has no minor unit and cannot be paid by card")
    return CurrencyInfo(code, int(cur.number), int(cur.exponent))


def currency_by_numeric(numeric: int | str) -> CurrencyInfo:
    """Reverse look-up, for the numeric codes terminals send back."""
    try:
        n = int(numeric)
    except (TypeError, ValueError):
        raise MoneyError(f"numeric currency code must be digits, got {numeric!r}") from None
    for cur in _iso():  # the active code first: ISO reuses a withdrawn code's number
        if cur.number == n and cur.exponent is not None:
            return CurrencyInfo(cur.code, n, int(cur.exponent))
    for alpha, (num, exp) in _LEGACY.items():
        if num == n:
            return CurrencyInfo(alpha, num, exp)
    raise MoneyError(f"numeric currency code {numeric!r} is not an ISO 4217 code")


# No amount of any currency has this many digits (the terminal protocols carry 12): past
# it, an amount is refused before any arithmetic on it.
MAX_AMOUNT_DIGITS = 30

_DECIMAL_TEXT = re.compile(r"[0-9]+(?:[.,][0-9]+)?")


def to_decimal(value: object) -> Decimal:
    """Read a major-unit amount from what JSON gave us, without a binary float.

    Strings accept a dot or a decimal comma.  ``float`` is accepted only because
    a JSON number may have been decoded as one; it is converted through its
    shortest ``repr`` (``9.99`` -> ``Decimal('9.99')``), which is the text the
    sender wrote.  Prefer decoding JSON with ``parse_float=Decimal``.
    """
    if isinstance(value, bool):
        raise MoneyError("amount must be a number or a decimal string, got a boolean")
    if isinstance(value, Decimal):
        dec = value
    elif isinstance(value, int):
        dec = Decimal(value)
    elif isinstance(value, float):
        dec = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not _DECIMAL_TEXT.fullmatch(text):
            raise MoneyError(
                f"amount must look like 9.99 or 10,23 (digits, one dot or comma), got {value!r}"
            )
        dec = Decimal(text.replace(",", "."))
    else:
        raise MoneyError(f"amount must be a number or a decimal string, got {type(value).__name__}")
    if not dec.is_finite():
        raise MoneyError("amount must be a finite number")
    return dec


def whole_units(dec: Decimal, exponent: int) -> int | None:
    """``dec`` times ``10**exponent`` as an int, exactly; None when that is not whole.

    Exact at any length: the default decimal context rounds to 28 digits, which would
    read ``1.000000000000000000000000000001`` EUR as 100 cents.  Values past
    :data:`MAX_AMOUNT_DIGITS` digits are refused before any arithmetic (MoneyError).
    """
    if not dec.is_finite():
        raise MoneyError("amount must be a finite number")
    if dec and dec.adjusted() + exponent >= MAX_AMOUNT_DIGITS:
        raise MoneyError("amount is out of range")
    digits = len(dec.as_tuple().digits)
    exact = Context(prec=digits + abs(exponent) + 1, Emin=MIN_EMIN, Emax=MAX_EMAX)
    scaled = dec.scaleb(exponent, context=exact)
    if scaled != scaled.to_integral_value(context=exact):
        return None
    return int(scaled)


def to_minor(value: object, cur: CurrencyInfo) -> int:
    """Convert a major-unit amount to integer minor units of ``cur``.

    Refuses more decimals than the currency has (``9.999 EUR``) and negative
    amounts, rather than rounding money silently.
    """
    dec = to_decimal(value)
    if dec < 0:
        raise MoneyError("amount must not be negative")
    minor = whole_units(dec, cur.exponent)
    if minor is None:
        raise MoneyError(
            f"amount {value!r} has more than {cur.exponent} decimal(s), "
            f"the precision of {cur.alpha}"
        )
    return minor


def to_major(minor: int, cur: CurrencyInfo) -> Decimal:
    """Minor units back to a major-unit Decimal, for shapes that show ``9.99``."""
    return Decimal(minor).scaleb(-cur.exponent)


def format_major(minor: int, cur: CurrencyInfo, decimal_comma: bool = False) -> str:
    """``899`` EUR -> ``"8.99"`` (or ``"8,99"``): exact, never through a float."""
    text = f"{to_major(minor, cur):.{cur.exponent}f}"
    return text.replace(".", ",") if decimal_comma else text
