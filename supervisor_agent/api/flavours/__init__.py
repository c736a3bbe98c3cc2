"""One adapter per API flavour: ``parse`` a body into a PaymentOrder, ``render`` a row.

The journal row is what every answer is rendered from (first answer, replay,
lookup), in the flavour the order was paid in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from supervisor_agent.api.flavours import desktop, kiosk, pos
from supervisor_agent.api.payment import Flavour, PaymentAnswer

RENDERERS: dict[Flavour, Callable[[PaymentAnswer], Any]] = {
    "desktop": desktop.render,
    "kiosk": kiosk.render,
    "pos": pos.render,
}


def render(answer: PaymentAnswer) -> Any:
    """The row in the shape its order was paid in."""
    flavour = answer.record.flavour
    if flavour not in RENDERERS:
        raise ValueError(f"journal row {answer.record.order_id!r} has unknown flavour {flavour!r}")
    return RENDERERS[flavour](answer)
