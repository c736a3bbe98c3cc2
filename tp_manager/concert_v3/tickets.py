"""The terminal's own ticket, from a Concert V3 answer's ``AK``: decoded, never guessed.

The request's ``CK`` asked for it: position 2 whose copy (``0`` customer, ``1``
merchant, ``2`` both), position 3 how it is written (``0`` Latin-1 text, ``1`` HTML),
always base64 on the wire.  ``AK`` holds one ticket, or, when both copies come, one
``ZT`` field per copy inside it (tag, 3-digit length, value), customer first: that is
this connector's reading of "possibly wrapped in a ZT tag" (docs/terminals.md).  A
ticket that does not decode is dropped with a warning: the payment's verdict stands
without it.  Card numbers in a ticket are masked again (common.redact).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Final

import structlog

from common.concert_v3_profiles import TicketCopies, TicketFormat
from common.redact import mask_pans

log = structlog.get_logger(__name__)

WRAP_TAG: Final = "ZT"
WRAP_HEADER: Final = 5  # tag (2) + length (3)
CK_SIZE: Final = 3
TEXT: Final = "text"
HTML: Final = "html"
HTML_ENCODING: Final = "utf-8"  # HTML declares no charset on this wire: UTF-8, Latin-1 fallback


@dataclass(frozen=True, slots=True)
class Tickets:
    format: str  # TEXT | HTML
    customer: str | None
    merchant: str | None


def _unwrap(value: str) -> list[str]:
    """``ZT``-wrapped parts, or the value itself when it is not wrapped."""
    parts: list[str] = []
    rest = value
    while rest.startswith(WRAP_TAG) and rest[2:WRAP_HEADER].isdigit():
        size = int(rest[2:WRAP_HEADER])
        parts.append(rest[WRAP_HEADER : WRAP_HEADER + size])
        rest = rest[WRAP_HEADER + size :]
    return parts if parts and not rest else [value]


def _decode(part: str, html: bool) -> str:
    data = base64.b64decode(part, validate=True)
    if html:
        try:
            text = data.decode(HTML_ENCODING)
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    else:
        text = data.decode("latin-1")
    return mask_pans(text, luhn=True)[0]


def decode_tickets(ak: str | None, ck: str | None) -> Tickets | None:
    """The tickets ``AK`` carries for the ``CK`` sent; None without both."""
    if not ak or not ck or len(ck) != CK_SIZE:
        return None
    html = ck[2] == TicketFormat.HTML
    try:
        texts = [_decode(part, html) for part in _unwrap(ak)]
    except (binascii.Error, ValueError) as exc:
        log.warning("concert_v3.ticket.undecodable", error=str(exc), size=len(ak))
        return None
    copies = ck[1]
    customer: str | None
    merchant: str | None
    if copies == TicketCopies.MERCHANT:
        customer, merchant = None, texts[0]
    else:
        customer = texts[0]
        merchant = texts[1] if copies == TicketCopies.BOTH and len(texts) > 1 else None
    return Tickets(format=HTML if html else TEXT, customer=customer, merchant=merchant)
