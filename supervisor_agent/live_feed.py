"""What feeds the live events: the journal's writes, the outbox's and tp-manager's PUB.

No second truth: a transaction's events are made from the journal row as it was
written (``transaction.started`` when the row goes ``at_terminal``,
``transaction.finished`` with the journal's final state, ``transaction.reconciled``
when a late verdict replaced ``unknown``), and notification events from the outbox
row.  The row is a frozen record: its facts are rendered when an event is first read
(``EventLog.publish_made``), never on the payment's path when nobody watches.
A transaction's end is the journal's event only: its state is what registers see.

From tp-manager's PUB (through the agent's one subscriber, events.py) come what
only it knows: the link, the terminal busy/idle, and that the terminal has the
payment in hand (its ``transaction.started``, shown as
``transaction.waiting_for_card``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from common import messages
from common.messages import Event
from common.money import MoneyError, currency, format_major
from common.redact import mask_card_field
from common.terminals import DEFAULT_TERMINAL
from supervisor_agent import event_log
from supervisor_agent.event_log import EventLog
from supervisor_agent.journal import TransactionRecord, TxState
from supervisor_agent.metrics import Metrics
from supervisor_agent.outbox import Notification, NotificationState
from supervisor_agent.terminal_links import LINK_DOWN, LINK_UP, TerminalLinks

# What a tp-manager hint carries into the stream: its order, the amount, and the terminal's
# key (the journal's, so a page tells several terminals' payments apart).
_FORWARDED = ("order_id", "amount", "terminal")

# The journal's changes that are live events (observers.py names them).
_TRANSACTION_EVENTS = {
    "at_terminal": event_log.TRANSACTION_STARTED,
    "finished": event_log.TRANSACTION_FINISHED,
    "reconciled": event_log.TRANSACTION_RECONCILED,
}


def amount_text(minor: Any, code: Any) -> str | None:
    """``9.99 EUR`` for a person; None when the row does not carry a readable amount."""
    if not isinstance(minor, int) or not isinstance(code, str):
        return None
    try:
        return f"{format_major(minor, currency(code))} {code}"
    except MoneyError:
        return None


def publish_link(events: EventLog, terminal: str, link: str | None, detail: str | None) -> None:
    """A terminal's ``link.up`` / ``link.down`` live event (``link`` None: an older
    tp-manager's event without the state, told by its name; here taken as down)."""
    name = event_log.LINK_UP if link == LINK_UP else event_log.LINK_DOWN
    events.publish(name, {"terminal": terminal, "link": link, "detail": detail})


def transaction_facts(record: TransactionRecord) -> dict[str, Any]:
    """The shown fields of a journal row: masked, no receipt, no customer data."""
    request, result = record.request, record.result or {}
    pan = result.get("masked_pan")
    return {
        "order_id": record.order_id,
        "state": str(record.state),
        "amount": request.get("amount"),
        "currency": request.get("currency"),
        "amount_text": amount_text(request.get("amount"), request.get("currency")),
        "transaction_type": request.get("transaction_type"),
        "terminal": record.terminal,
        "error_code": record.error_code,
        "masked_pan": mask_card_field(pan) if isinstance(pan, str) and pan else None,
        "reconciled_from": record.reconciled_from,
        "created_at": record.created_at,
        "finished_at": record.finished_at,
    }


class LiveFeed:
    """Turns writes and tp-manager events into :class:`EventLog` events; link events also
    go to the terminals' links (terminal_links.py), which the gauge and the page read."""

    def __init__(
        self,
        events: EventLog,
        metrics: Metrics | None = None,
        links: TerminalLinks | None = None,
    ) -> None:
        self.events = events
        self.metrics = metrics
        self.links = links

    # -- journal and outbox observers (any thread) ----------------------------

    def journal_changed(self, change: str, record: TransactionRecord) -> None:
        name = _TRANSACTION_EVENTS.get(change)
        if name is not None:
            # the row is frozen: its facts are rendered when a reader first asks, not on
            # the payment's path (most events of a till nobody watches are never read)
            self.events.publish_made(name, record.order_id, partial(transaction_facts, record))
        if self.metrics is not None and record.state is TxState.ACCEPTED:
            self.metrics.payment_accepted(record.updated_at)

    def outbox_changed(self, change: str, note: Notification) -> None:
        data = {
            "order_id": note.order_id,
            "notification_id": note.id,
            "attempts": note.attempts,
            "status": note.last_status,
        }
        if note.state is NotificationState.DELIVERED:
            latency = (note.delivered_at or note.updated_at) - note.created_at
            self.events.publish(
                event_log.NOTIFICATION_DELIVERED, {**data, "latency_s": round(latency, 3)}
            )
        elif note.state is NotificationState.DEAD:
            self.events.publish(event_log.NOTIFICATION_DEAD, data)

    # -- tp-manager's PUB ------------------------------------------------------

    def _link(self, event: Event) -> None:
        up = event.name == messages.EVENT_LINK_UP
        terminal = str(event.data.get("terminal") or DEFAULT_TERMINAL)
        link, detail = event.data.get("link"), event.data.get("detail")
        state = str(link or (LINK_UP if up else LINK_DOWN))  # an older tp-manager's may lack it
        publish_link(self.events, terminal, link if link else state, detail)
        if self.links is not None:
            self.links.told(terminal, state, str(detail or ""))

    def _forward(self, name: str) -> Callable[[Event], None]:
        def forward(event: Event) -> None:
            data = {k: v for k, v in event.data.items() if k in _FORWARDED}
            self.events.publish(name, data)

        return forward

    def tp_manager_handlers(self) -> dict[str, Callable[[Event], None]]:
        """Handlers for the agent's event subscriber (merged with the reconciler's)."""
        return {
            messages.EVENT_LINK_UP: self._link,
            messages.EVENT_LINK_DOWN: self._link,
            messages.EVENT_TERMINAL_BUSY: self._forward(event_log.TERMINAL_BUSY),
            messages.EVENT_TERMINAL_IDLE: self._forward(event_log.TERMINAL_IDLE),
            messages.EVENT_TRANSACTION_STARTED: self._forward(
                event_log.TRANSACTION_WAITING_FOR_CARD
            ),
        }
