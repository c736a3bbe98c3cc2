"""Currency look-ups: ISO 4217 and the withdrawn codes, the same answer every time."""

from __future__ import annotations

from enum import StrEnum

import pytest

from common.money import CurrencyInfo, MoneyError, currency, format_major


def test_a_code_is_looked_up_once_and_answers_the_same() -> None:
    first = currency("EUR")
    assert first == CurrencyInfo("EUR", 978, 2)
    assert currency("EUR") is first  # the fixed table's answer, kept
    assert currency("JPY") == CurrencyInfo("JPY", 392, 0)
    assert currency("FRF") == CurrencyInfo("FRF", 250, 2)  # withdrawn, listed by the POS API
    assert format_major(899, currency("EUR")) == "8.99"
    assert format_major(899, currency("JPY")) == "899"


@pytest.mark.parametrize("code", ["eur", "EURO", "", "QQQ", "XAU", 978, None])
def test_a_bad_code_is_refused_every_time(code: object) -> None:
    for _ in range(2):  # a refusal is never kept as an answer
        with pytest.raises(MoneyError):
            currency(code)  # type: ignore[arg-type]


def test_an_enum_member_gets_a_plain_code_back() -> None:
    class Code(StrEnum):
        ISK = "ISK"  # a code no other test looks up first

    assert currency(Code.ISK) == CurrencyInfo("ISK", 352, 0)
    assert type(currency("ISK").alpha) is str  # the member was not kept in its place
