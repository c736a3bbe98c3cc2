"""What the simulated Concert V3 terminal remembers and which family it plays.

* :class:`Ledger`: every payment the terminal ran, by its ``CF`` (the register's
  reference), with the answer it decided on.  ``CD=T`` (status of a transaction)
  answers from it, and tests read it to prove a terminal was charged exactly once.
* :class:`Family`: the optional tags and ``CD`` actions the terminal takes, from the
  shared profile table (common/concert_v3_profiles.py: the table is data both sides
  must agree on; the wire handling here is the simulator's own).  ``strict`` plays a
  terminal that takes only the six mandatory tags and answers ``AF=09`` to anything else.
* Tickets: with ``CK``, the ticket goes back in ``AK`` as base64 (Latin-1 text or
  HTML); both copies are two ``ZT`` fields inside ``AK``, customer first.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from typing import Final

from common.concert_v3_profiles import ACTION_CODES, PROFILES, Profile
from common.money import MoneyError, currency_by_numeric, format_major

PAYMENT_CODES: Final = frozenset({"0", "1", "2"})  # debit, credit, cancel
STATUS_CODE: Final = "T"  # CD: status of a past transaction
MANDATORY: Final = ("CZ", "CJ", "CA", "CB", "CD", "CE")
LENIENT_PROFILE: Final = "castles"  # the simulator's default: it takes every documented tag
WRAP_TAG: Final = "ZT"
CK_SIZE: Final = 3
CK_TO_REGISTER: Final = "1"
COPY_CUSTOMER, COPY_MERCHANT, COPY_BOTH = "0", "1", "2"
FORMAT_HTML: Final = "1"
TICKET_SHOP: Final = "SIMULATED SHOP"


@dataclass(frozen=True, slots=True)
class Family:
    profile: Profile
    strict: bool = False

    @classmethod
    def named(cls, name: str = LENIENT_PROFILE, strict: bool = False) -> Family:
        return cls(PROFILES[name], strict)

    def problem(self, fields: dict[str, str]) -> str | None:
        """Why this terminal answers AF=09 to tags or a CD it does not take, or None."""
        if self.strict:
            extra = sorted(set(fields) - set(MANDATORY))
            if extra:
                return f"strict terminal: unknown tags {','.join(extra)}"
        code = fields.get("CD", "")
        if code in PAYMENT_CODES:
            return None
        if self.strict or code not in {ACTION_CODES[a] for a in self.profile.actions}:
            return f"CD={code} not taken by this terminal"
        return None


@dataclass
class Ledger:
    """Payments by reference (CF) and their answers; ``None``: still at the customer."""

    answers: dict[str, dict[str, str] | None] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)  # every payment request
    last_ticket: str | None = None

    def started(self, request: dict[str, str]) -> None:
        self.requests.append(dict(request))
        if "CF" in request:
            self.answers[request["CF"]] = None

    def decided(self, request: dict[str, str], answer: dict[str, str]) -> None:
        if "CF" in request:
            self.answers[request["CF"]] = dict(answer)
        if "AK" in answer:
            self.last_ticket = answer["AK"]

    def payments(self, reference: str) -> int:
        """How many payment requests carried this reference: a charge is one."""
        return sum(1 for r in self.requests if r.get("CF") == reference)


def _encode(text: str, html_format: bool) -> str:
    if html_format:
        lines = "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines())
        return base64.b64encode(f"<html><body>{lines}</body></html>".encode()).decode("ascii")
    return base64.b64encode(text.encode("latin-1")).decode("ascii")


def _printed_amount(answer: dict[str, str]) -> str:
    """CB in CE's own unit (500 JPY, 1,234 BHD), as the terminal prints it."""
    minor = int(answer.get("CB", "0"))
    try:
        cur = currency_by_numeric(answer.get("CE", ""))
    except MoneyError:  # a code ISO 4217 does not know: the minor units, as they came
        return f"{minor} ({answer.get('CE', '?')})"
    return f"{format_major(minor, cur, decimal_comma=True)} {cur.alpha}"


def ticket_text(answer: dict[str, str], copy: str) -> str:
    who = "TICKET CLIENT" if copy == COPY_CUSTOMER else "TICKET COMMERCANT"
    verdict = "PAIEMENT ACCEPTÉ" if answer.get("AE") == "10" else "PAIEMENT REFUSÉ"
    lines = [
        TICKET_SHOP,
        who,
        f"CARTE {answer.get('AA', '')}",
        f"MONTANT {_printed_amount(answer)}",
        verdict,
    ]
    if answer.get("AC"):
        lines.insert(3, f"AUTO {answer['AC']}")
    return "\n".join(lines)


def ticket_field(ck: str, answer: dict[str, str]) -> str | None:
    """The ``AK`` value ``CK`` asks for, or None (no ticket to the register)."""
    if len(ck) != CK_SIZE or ck[0] != CK_TO_REGISTER:
        return None
    html_format = ck[2] == FORMAT_HTML
    copies = {COPY_CUSTOMER: [COPY_CUSTOMER], COPY_MERCHANT: [COPY_MERCHANT]}.get(
        ck[1], [COPY_CUSTOMER, COPY_MERCHANT]
    )
    encoded = [_encode(ticket_text(answer, copy), html_format) for copy in copies]
    if len(encoded) == 1:
        return encoded[0]
    return "".join(f"{WRAP_TAG}{len(e):03d}{e}" for e in encoded)
