"""The kiosk seed's ``receipt`` object and ``ticket`` lines, from a terminal answer.

Concert V2/V3 answers carry only part of what the seed's receipt shows (the
seed's receipt is an Ingenico ticket record).  Each field below is either
taken from the answer, computed by the connector (said so), or null: nothing
is invented.  The card number is masked again here, whatever the driver did,
so a full PAN can never reach a register.
"""

from __future__ import annotations

import base64
import html
import re
from datetime import datetime
from typing import Any

from common.money import MoneyError, currency_by_numeric, format_major
from common.redact import mask_card_field, mask_pans
from supervisor_agent.api.models_kiosk import RECEIPT_FIELDS

RECEIPT_MASK_CHAR = "X"
AMOUNT_DIGITS = 8  # the seed's "00000899"

TICKET_TYPE = {"debit": "DEBIT", "credit": "CREDIT", "cancel": "ANNULATION"}
TICKET_STATUS = {
    "accepted": "PAIEMENT ACCEPTE",
    "refused": "PAIEMENT REFUSE",
    "not_verified": "PAIEMENT NON ABOUTI",
}


def mask_pan(value: str | None) -> str | None:
    """``4970101234561234`` or ``497010######1234`` -> ``497010XXXXXX1234`` (the seed's)."""
    return mask_card_field(value, RECEIPT_MASK_CHAR) if value else None


def build_receipt(result: dict[str, Any], at: datetime) -> dict[str, str | None]:
    """The seed's receipt with every key; null where the answer has no such data."""
    receipt: dict[str, str | None] = dict.fromkeys(RECEIPT_FIELDS)
    amount = int(result.get("amount") or 0)
    numeric = str(result.get("currency_numeric") or "")
    receipt.update(
        localDate=at.strftime("%d%m%y"),  # connector clock when the answer came
        localTime=at.strftime("%H%M%S"),
        contractNumber=result.get("merchant_contract"),
        primaryAccountNumber=mask_pan(result.get("masked_pan")),
        cardAppExpiry=result.get("card_expiry"),
        currencyNumCode=numeric or None,
        readingMode=result.get("reading_mode"),
        authorizationNumber=result.get("authorization_number"),
        amount=f"{amount:0{AMOUNT_DIGITS}d}",
        AID=result.get("aid"),
    )
    try:
        cur = currency_by_numeric(numeric)
    except MoneyError:
        return receipt
    receipt.update(currencyAlphaCode=cur.alpha, currencyFractionPart=str(cur.exponent))
    return receipt


def build_ticket(result: dict[str, Any], at: datetime) -> str:
    """Printable lines joined by ``|`` (the seed's form), composed by the connector."""
    lines = [
        "ECR CONNECTOR",
        f"LE {at:%d/%m/%y} A {at:%H:%M:%S}",
    ]
    pan = mask_pan(result.get("masked_pan"))
    if pan:
        lines.append(pan)
    if result.get("payment_application"):
        lines.append(f"APPLICATION {result['payment_application']}")
    if result.get("authorization_number"):
        lines.append(f"NO AUTO:{result['authorization_number']}")
    amount = int(result.get("amount") or 0)
    try:
        cur = currency_by_numeric(str(result.get("currency_numeric") or ""))
        lines.append(f"MONTANT:{format_major(amount, cur, decimal_comma=True)} {cur.alpha}")
    except MoneyError:
        lines.append(f"MONTANT:{amount}")
    lines.append(TICKET_TYPE.get(str(result.get("transaction_type")), "DEBIT"))
    lines.append(TICKET_STATUS.get(str(result.get("status")), "PAIEMENT NON ABOUTI"))
    return "|".join(lines) + "||"


_LINE_BREAK = re.compile(r"<\s*(br\s*/?|/p|/div|/tr|/h[1-6])\s*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")


def ticket_text(text: str, fmt: str | None) -> str:
    """A terminal ticket as plain lines: HTML loses its tags (a line per paragraph/break)."""
    if fmt != "html":
        return text
    body = _TAG.sub("", _LINE_BREAK.sub("\n", text))
    return "\n".join(line.strip() for line in html.unescape(body).splitlines() if line.strip())


def terminal_ticket(result: dict[str, Any]) -> str | None:
    """The customer's ticket the terminal printed (Concert V3 ``AK``), as plain lines."""
    text = result.get("customer_ticket")
    if not isinstance(text, str) or not text:
        return None
    return mask_pans(ticket_text(text, result.get("ticket_format")), luhn=True)[0]


def kiosk_ticket(result: dict[str, Any], at: datetime) -> str:
    """The kiosk ``ticket``: the terminal's own when it sent one, else composed here."""
    own = terminal_ticket(result)
    if own is None:
        return build_ticket(result, at)
    return "|".join(own.splitlines()) + "||"


def base64_receipt(ticket: str) -> str:
    """The POS API's ``receipt``: the ticket lines, one per line, base64."""
    return base64.b64encode(ticket.rstrip("|").replace("|", "\n").encode()).decode()
