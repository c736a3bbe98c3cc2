"""Card numbers and secrets out of anything we keep or print: one implementation.

A PAN is 13 to 19 digits, written in one run or in groups of 4 to 6 split by
a space or a dash, as printed on cards.  Masking keeps the first 6 and the last
4 digits (what a receipt shows) and turns the rest into ``#``, keeping the
length and separators so fixed-width fields stay in place.

``luhn=True`` masks only runs that pass the Luhn check every real card number
passes and that start as an issued card number of their length can
(:func:`issued_like`): the logs and the journal carry order ids and timestamps whose
long digit runs must stay readable, and one run in ten passes the Luhn check by
chance (the seeds' ``ORDER_<millisecond clock>`` ids among them).  The terminal
report, whose only long digit run is the card number, is masked unconditionally.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

PAN_MIN_DIGITS = 13
PAN_MAX_DIGITS = 19
PAN_KEEP_FIRST = 6
PAN_KEEP_LAST = 4
MASK_CHAR = "#"
REDACTED = "[redacted]"
# A configured secret shorter than this ("pwd", the seeds' example API password) is also
# a piece of ordinary words, names and numbers: replaced everywhere, it would cut up every
# log line holding those letters (event names included) and show by the pattern of the
# cuts what the secret is.  Such a secret is replaced only where it stands alone.
SHORT_SECRET_CHARS = 8

# A grouped number must not start or end inside a longer digit run: a match ending
# mid-run would leave the rest of the run (maybe 13 digits) unmasked.
_PAN_RUN = re.compile(
    rf"[0-9]{{{PAN_MIN_DIGITS},}}|(?<![0-9])[0-9]{{4,6}}(?:[ -][0-9]{{4,6}}){{2,4}}(?![0-9])"
)
# The cheap test that lets a text skip the regex: with no space and no dash, only the
# first alternative of _PAN_RUN (13 digits in a row) can match.
_DIGIT_RUN = re.compile(rf"[0-9]{{{PAN_MIN_DIGITS}}}")
# Keys whose values are secrets whatever they hold.
SECRET_KEY = re.compile(
    r"pass(word)?|pwd|secret|token|^(proxy-)?authori[sz]ation$|api[_-]?key|cookie|^pan$|card_?number",
    re.IGNORECASE,
)
# Credentials inside free text: an Authorization header value, a URL's user:password@.
_AUTH_VALUE = re.compile(r"\b(Basic|Bearer|Digest)\s+[A-Za-z0-9+/=._~-]+", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+@")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# ISO/IEC 7812's first digit (the major industry identifier) against the lengths cards
# of that digit are issued in: 1 is UATP (15 digits only), 2 Mastercard's 2-series and
# Mir (16 to 19), 0 is never issued.  Every other first digit may be any card length.
# A clock in milliseconds (13 digits, 1... until 2033, then 2...), microseconds or
# nanoseconds (16 and 19 digits, 1...) is thus never taken for a card number.
_ISSUED_LENGTHS: dict[str, range | tuple[int, ...]] = {
    "0": (),
    "1": (15,),
    "2": range(16, PAN_MAX_DIGITS + 1),
}
_ANY_LENGTH = range(PAN_MIN_DIGITS, PAN_MAX_DIGITS + 1)


def issued_like(digits: str) -> bool:
    """Whether ``digits`` could be an issued card number: its length, its first digit
    and the Luhn check.  What ``luhn=True`` masks."""
    if not digits or len(digits) not in _ISSUED_LENGTHS.get(digits[0], _ANY_LENGTH):
        return False
    return luhn_ok(digits)


def may_hold_pan(text: str) -> bool:
    """False only when :data:`_PAN_RUN` cannot match ``text``: shorter than a card number,
    or with no group separator and no run of 13 digits.  The logs' fast path: most values
    (order ids, states, amounts) are turned away here without the full pattern."""
    if len(text) < PAN_MIN_DIGITS:
        return False
    if " " in text or "-" in text:  # the separators a grouped card number may have
        return True
    return _DIGIT_RUN.search(text) is not None


def mask_pans(text: str, *, luhn: bool = False) -> tuple[str, list[str]]:
    """Mask every card-number-like run; return the text and the masked numbers found."""
    if not may_hold_pan(text):
        return text, []
    return _mask_pans(text, luhn)


def _mask_pans(text: str, luhn: bool) -> tuple[str, list[str]]:
    found: list[str] = []

    def _mask(match: re.Match[str]) -> str:
        run = match.group(0)
        digits = "".join(ch for ch in run if ch.isdigit())
        if len(digits) < PAN_MIN_DIGITS:
            return run
        if luhn and not issued_like(digits):
            return run
        out: list[str] = []
        seen = 0
        for ch in run:
            if ch.isdigit():
                seen += 1
                keep = seen <= PAN_KEEP_FIRST or seen > len(digits) - PAN_KEEP_LAST
                out.append(ch if keep else MASK_CHAR)
            else:
                out.append(ch)
        masked = "".join(out)
        found.append(masked.replace(" ", "").replace("-", ""))
        return masked

    return _PAN_RUN.sub(_mask, text), found


def mask_pans_in_texts(fields: dict[str, Any]) -> list[str]:
    """Mask, in place, the card numbers (``luhn=True``) in every text value of ``fields``;
    the keys of the values masked.  For a terminal's result: the terminal fills its free
    fields (Concert V3 private data, the wire message holding it) as it likes, so every
    text field is looked at, not a list of the ones known to carry a card number."""
    masked: list[str] = []
    for key, value in fields.items():
        if isinstance(value, str):
            fields[key], found = mask_pans(value, luhn=True)
            if found:
                masked.append(key)
    return masked


_MASKABLE = re.compile(r"[0-9#X*]")


def mask_card_field(value: str, mask_char: str = MASK_CHAR) -> str:
    """A field that holds a card number (Concert V3 ``AA``, a receipt's PAN), masked.

    Keeps the first 6 and last 4 characters and hides every digit (or earlier mask
    character) in between; a value too short to keep 6+4 keeps only its last 4.
    ``mask_char`` is ``#`` in the journal and ``X`` on the kiosk receipt (the seed's).
    """
    chars = re.sub(r"\s", "", value)
    if len(chars) <= PAN_KEEP_FIRST + PAN_KEEP_LAST:
        head, tail = chars[:-PAN_KEEP_LAST], chars[-PAN_KEEP_LAST:]
        return _MASKABLE.sub(mask_char, head) + tail
    head, middle = chars[:PAN_KEEP_FIRST], chars[PAN_KEEP_FIRST:-PAN_KEEP_LAST]
    return head + _MASKABLE.sub(mask_char, middle) + chars[-PAN_KEEP_LAST:]


def _has_whitespace(text: str) -> bool:
    """Whether ``\\s`` can match: every whitespace character but the ASCII space is
    unprintable (a Separator or Other category), so two C-level checks decide it."""
    return " " in text or not text.isprintable()


@lru_cache(maxsize=8)  # the configured passwords: two per process
def _standing_alone(secret: str) -> re.Pattern[str]:
    """``secret`` where no letter, digit or underscore touches either end of it."""
    return re.compile(rf"(?<!\w){re.escape(secret)}(?!\w)")


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Free text fit for a log: no credential, no card number, no known secret value.

    Each pattern runs only on a text it could change (``_AUTH_VALUE`` needs whitespace,
    ``_URL_USERINFO`` a ``://``, a card number :func:`may_hold_pan`): the same result as
    running them all, for a fraction of the cost on the short values a log line holds."""
    for secret in secrets:
        if secret and secret in text:
            if len(secret) >= SHORT_SECRET_CHARS:
                text = text.replace(secret, REDACTED)
            else:
                text = _standing_alone(secret).sub(REDACTED, text)
    if _has_whitespace(text):
        text = _AUTH_VALUE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    if "://" in text:
        text = _URL_USERINFO.sub(f"{REDACTED}@", text)
    if not may_hold_pan(text):  # most values
        return text
    return _mask_pans(text, luhn=True)[0]


SECRET_KEYS_CACHED = 4096  # keys are mostly field names from the code: a small set


@lru_cache(maxsize=SECRET_KEYS_CACHED)
def is_secret_key(key: str) -> bool:
    """Whether a field named ``key`` holds a secret whatever its value (:data:`SECRET_KEY`)."""
    return SECRET_KEY.search(key) is not None


PAN_AS_NUMBER_MIN = 10 ** (PAN_MIN_DIGITS - 1)  # 13 digits


def redact(value: Any, secrets: tuple[str, ...] = ()) -> Any:
    """A copy of ``value`` (mappings, lists, text) with secrets and card numbers removed."""
    kind = type(value)  # exact types first: the common case, and cheaper than isinstance
    if kind is str:
        return redact_text(value, secrets)
    if value is None or kind is bool or kind is float:
        return value
    if kind is int and value < PAN_AS_NUMBER_MIN:
        return value
    if kind is dict:
        return redact_fields(value, secrets)
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, Mapping):
        return redact_fields(value, secrets)
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value >= PAN_AS_NUMBER_MIN:
        text = str(value)  # a PAN sent as a JSON number
        masked = redact_text(text, secrets)
        return value if masked == text else masked
    if isinstance(value, bool | int | float | Decimal):
        return value
    return redact_text(str(value), secrets)  # exceptions, paths, bytes: as the log shows them


def redact_fields(
    fields: Mapping[Any, Any],
    secrets: tuple[str, ...] = (),
    *,
    trusted: frozenset[str] = frozenset(),
) -> dict[Any, Any]:
    """:func:`redact` of a mapping; the values of ``trusted`` keys are copied as they are
    (the log pipeline's own timestamp, level and logger name: never a caller's data)."""
    out: dict[Any, Any] = {}
    for key, value in fields.items():
        if key in trusted:
            out[key] = value
        elif value and is_secret_key(str(key)):
            out[key] = REDACTED
        elif type(value) is str:  # most fields: one call less
            out[key] = redact_text(value, secrets)
        else:
            out[key] = redact(value, secrets)
    return out
