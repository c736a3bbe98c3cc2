"""The terminal's own ticket, from a Concert V3 answer's ``AK``: decoded, never guessed.

The request's ``CK`` asked for it: position 2 whose copy (``0`` customer, ``1``
merchant, ``2`` both), position 3 how it is written (``0`` Latin-1 text, ``1`` HTML),
always base64 on the wire.  ``AK`` holds one ticket, or, when both copies come, one
``ZT`` field per copy inside it (tag, 3-digit length, value), customer first: that is
this connector's reading of "possibly wrapped in a ZT tag" (docs/terminals.md).  A
ticket that does not decode is dropped with a warning: the payment's verdict stands
without it.  Card numbers in a ticket are masked again (common.redact), in the decoded
text and in the ``AK`` the journal keeps in the raw answer (:attr:`Tickets.wire`: the
masked text encoded again, as it came); an ``AK`` that does not decode is not kept at
all, since no one can tell what it holds.
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
    wire: str  # the AK value with the tickets' card numbers masked, wrapped as it came


def _unwrap(value: str) -> tuple[list[str], bool]:
    """``ZT``-wrapped parts, or the value itself when it is not wrapped; whether it was."""
    parts: list[str] = []
    rest = value
    while rest.startswith(WRAP_TAG) and rest[2:WRAP_HEADER].isdigit():
        size = int(rest[2:WRAP_HEADER])
        parts.append(rest[WRAP_HEADER : WRAP_HEADER + size])
        rest = rest[WRAP_HEADER + size :]
    return (parts, True) if parts and not rest else ([value], False)


def _decode(part: str, html: bool) -> tuple[str, str]:
    """The ticket's text, card numbers masked, and the charset it was written in."""
    data = base64.b64decode(part, validate=True)
    charset = "latin-1"
    if html:
        try:
            text, charset = data.decode(HTML_ENCODING), HTML_ENCODING
        except UnicodeDecodeError:
            text = data.decode(charset)
    else:
        text = data.decode(charset)
    return mask_pans(text, luhn=True)[0], charset


def _encode(text: str, charset: str) -> str:
    return base64.b64encode(text.encode(charset)).decode("ascii")


def decode_tickets(ak: str | None, ck: str | None) -> Tickets | None:
    """The tickets ``AK`` carries for the ``CK`` sent; None without both."""
    if not ak or not ck or len(ck) != CK_SIZE:
        return None
    html = ck[2] == TicketFormat.HTML
    parts, wrapped = _unwrap(ak)
    try:
        decoded = [_decode(part, html) for part in parts]
    except (binascii.Error, ValueError) as exc:
        log.warning("concert_v3.ticket.undecodable", error=str(exc), size=len(ak))
        return None
    texts = [text for text, _ in decoded]
    encoded = [_encode(text, charset) for text, charset in decoded]
    wire = "".join(f"{WRAP_TAG}{len(e):03d}{e}" for e in encoded) if wrapped else encoded[0]
    copies = ck[1]
    customer: str | None
    merchant: str | None
    if copies == TicketCopies.MERCHANT:
        customer, merchant = None, texts[0]
    else:
        customer = texts[0]
        merchant = texts[1] if copies == TicketCopies.BOTH and len(texts) > 1 else None
    return Tickets(format=HTML if html else TEXT, customer=customer, merchant=merchant, wire=wire)
