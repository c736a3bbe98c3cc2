"""Card numbers and credentials out of text: the one masker the codec, journal and logs use."""

from __future__ import annotations

import re
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.redact import (
    _AUTH_VALUE,
    _PAN_RUN,
    _URL_USERINFO,
    PAN_MIN_DIGITS,
    REDACTED,
    issued_like,
    luhn_ok,
    mask_pans,
    may_hold_pan,
    redact,
    redact_text,
)

VISA_TEST = "4970101234567893"  # Luhn-valid
NOT_LUHN = "4970101234567890"
LONG_RUN = re.compile(r"[0-9]{13,}")


def test_luhn() -> None:
    assert luhn_ok(VISA_TEST)
    assert not luhn_ok(NOT_LUHN)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (VISA_TEST, "497010######7893"),
        ("4970 1012 3456 7893", "4970 10## #### 7893"),
        ("4970-1012-3456-7893", "4970-10##-####-7893"),
        ("card 4970101234567893 ok", "card 497010######7893 ok"),
    ],
)
def test_masks_keep_six_and_four(text: str, masked: str) -> None:
    assert mask_pans(text)[0] == masked


def test_a_group_never_ends_inside_a_longer_run() -> None:
    """Found by hypothesis: a grouped match ending mid-run left 12+ digits in clear."""
    text = "0000000-0000-" + "0" * 13 + "00000:" + "0" * 36
    masked, found = mask_pans(text)
    assert LONG_RUN.search(masked) is None
    assert found


def test_luhn_mode_leaves_non_card_numbers_alone() -> None:
    order = "ORDER_1537532589263"  # 13 digits, not Luhn-valid
    assert not luhn_ok("1537532589263")
    assert mask_pans(order, luhn=True)[0] == order
    assert mask_pans(f"pan {VISA_TEST}", luhn=True)[0] == "pan 497010######7893"
    assert mask_pans("1" * 20, luhn=True)[0] == "1" * 20  # longer than any card number


@pytest.mark.parametrize(
    "clock",
    [
        "1537532589264",  # milliseconds, 2018 (the seeds' order ids): 13 digits, 1...
        "2000000000008",  # milliseconds, 2033: 13 digits, 2...
        "1764500000000003",  # microseconds: 16 digits, 1...
        "1764500000000000005",  # nanoseconds: 19 digits, 1...
    ],
)
def test_luhn_mode_leaves_clocks_that_pass_luhn_alone(clock: str) -> None:
    # a card's first digit tells the lengths it is issued in (ISO/IEC 7812): 1 is UATP,
    # 15 digits only; 2 is Mastercard's 2-series and Mir, 16 to 19; no clock fits
    assert luhn_ok(clock) and not issued_like(clock)
    assert mask_pans(f"ORDER_{clock}", luhn=True) == (f"ORDER_{clock}", [])
    assert mask_pans(clock)[0] != clock  # the terminal's report is masked whatever it holds


@pytest.mark.parametrize(
    "card",
    [
        "4222222222222",  # Visa, 13 digits
        "378282246310005",  # American Express, 15
        "100000000000009",  # UATP, 15 digits starting 1
        "2223000048400011",  # Mastercard 2-series, 16
        "6011111111111117",  # Discover
        "4970101234567893",
    ],
)
def test_luhn_mode_masks_every_issued_card_shape(card: str) -> None:
    assert issued_like(card)
    masked, found = mask_pans(f"ref {card}", luhn=True)
    assert card not in masked and found


def test_redact_text_removes_credentials() -> None:
    text = redact_text(
        "Authorization: Basic dXNlcjpwYXNz url=https://u:secretpw@host/x pw=hunter22",
        ("hunter22",),
    )
    assert "dXNlcjpwYXNz" not in text and "secretpw" not in text and "hunter22" not in text
    assert f"Basic {REDACTED}" in text


def test_redact_walks_structures() -> None:
    data = {
        "api_password": "x",
        "headers": {"Authorization": "Basic abc", "Accept": "json"},
        "items": [{"card_number": "1"}, f"paid with {VISA_TEST}"],
        "pan_as_number": int(VISA_TEST),
        "authorization_number": "136967",
        "amount": 899,
    }
    out = redact(data)
    assert out["api_password"] == REDACTED
    assert out["headers"] == {"Authorization": REDACTED, "Accept": "json"}
    assert out["items"] == [{"card_number": REDACTED}, "paid with 497010######7893"]
    assert out["pan_as_number"] == "497010######7893"
    assert out["authorization_number"] == "136967"
    assert out["amount"] == 899


# --- the fast path: each pattern skipped only where it could not change the text --------

WHITESPACE = re.compile(r"\s")
FRAGMENTS = (
    VISA_TEST,
    "4970 1012 3456 7893",
    "4970-1012-3456-7893",
    "1537532589263",
    "Basic ",
    "bearer\t",
    "Digest\u00a0",
    "https://",
    "u:pw@",
    "ECR_20261129_230109526_866a43",
    "2026-11-29T23:01:09.577005Z",
    "sekrit-pass",
)
TEXTS = st.lists(
    st.sampled_from(FRAGMENTS) | st.text(alphabet="0123456789 -:/@aB\t\u2003\u00a0#_", max_size=6),
    max_size=8,
).map("".join)


def _reference_redact_text(text: str, secrets: tuple[str, ...]) -> str:
    """redact_text as it was before its fast path: every pattern on every text."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _AUTH_VALUE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _URL_USERINFO.sub(f"{REDACTED}@", text)
    return mask_pans(text, luhn=True)[0]


def test_every_whitespace_character_but_the_space_is_unprintable() -> None:
    """What redact_text's whitespace check (``" " in text or not text.isprintable()``)
    relies on to skip the Authorization pattern, for every code point ``\\s`` matches."""
    spaces = [chr(i) for i in range(sys.maxunicode + 1) if WHITESPACE.match(chr(i))]
    assert " " in spaces and "\u2003" in spaces and len(spaces) > 20
    assert [c for c in spaces if c != " " and c.isprintable()] == []


@settings(max_examples=200, deadline=None)
@given(TEXTS)
def test_a_text_turned_away_holds_no_card_number(text: str) -> None:
    if not may_hold_pan(text):
        for match in _PAN_RUN.finditer(text):
            assert sum(ch.isdigit() for ch in match.group(0)) < PAN_MIN_DIGITS, text


@settings(max_examples=200, deadline=None)
@given(TEXTS)
def test_the_fast_path_redacts_exactly_as_every_pattern_does(text: str) -> None:
    secrets = ("sekrit-pass",)  # at least SHORT_SECRET_CHARS: replaced anywhere
    assert redact_text(text, secrets) == _reference_redact_text(text, secrets)
    assert redact({"k": text, "password": text}, secrets) == {
        "k": _reference_redact_text(text, secrets),
        "password": REDACTED if text else text,
    }


def test_a_short_secret_is_replaced_only_where_it_stands_alone() -> None:
    """The seeds' example API password is ``pwd``: replacing it inside words would cut up
    event names and paths, and show what the password is by where the cuts fall."""
    secrets = ("pwd", "p")
    line = "tp_manager.started path=/srv/pwdx user=log pass=pwd url-part:p@ p"
    assert redact_text(line, secrets) == (
        "tp_manager.started path=/srv/pwdx user=log pass=[redacted] url-part:[redacted]@ [redacted]"
    )
    long_secret = "hunter22-long"
    assert redact_text(f"x{long_secret}y", (long_secret,)) == "x[redacted]y"
