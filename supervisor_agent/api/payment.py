"""The payment service: from a parsed order to a journal row, which every answer renders.

Order of work for each payment:

1. ``journal.begin`` claims the order id on its terminal, atomically, and in the same
   fsynced commit marks it at the terminal (before anything is sent): a finished
   order with the same payment is *replayed* (its row, untouched); the same order
   id with another payment is refused (409 ORDER_ID_REUSED, naming the fields);
   an order still at the terminal is 409 IN_PROGRESS; another order open on the
   same terminal is 409 TERMINAL_BUSY.  Nothing is written in those cases.
2. ``pay`` on tp-manager (common/commands/pay.py is the contract);
3. ``journal.finish`` writes the outcome, decided by the one rule
   (``pay.transaction_state``) and queues HiPay's notification, in one fsynced commit;
4. the verdict is acknowledged to tp-manager (which holds it until then, so a
   verdict the agent never journaled is collected later: reconciler.py);
5. ``notifier.deliver_now`` fills ``notificationHipaySent``: one attempt at the row the
   journal handed back (no read), awaited within the budget (HiPay refusing or down
   answers at once; the notifier retries later).

The journal's writes run on its one writer thread (journal.Database), awaited without
a hop through the default thread pool; docs/durability.md lists every fsync.

The route then renders the row in its flavour (api/flavours/).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import structlog

from common.commands import errors as codes
from common.commands import pay as pay_contract
from common.money import CurrencyInfo
from common.payment import PaymentRequest, PaymentResult, TerminalTarget, TransactionType
from supervisor_agent.api import error_codes
from supervisor_agent.api.errors import ApiError
from supervisor_agent.api.settings import ApiSettings
from supervisor_agent.client import CommandFailed, TerminalClient
from supervisor_agent.journal import (
    DEFAULT_TERMINAL,
    BeginKind,
    Finished,
    Journal,
    StorageUnavailable,
    TransactionRecord,
    TxError,
    TxState,
)
from supervisor_agent.notifier import DeliveryStatus, Notifier

log = structlog.get_logger(__name__)

HELD_RETRY_FIRST_S = 1.0  # a held outcome is tried again after this, doubling
HELD_RETRY_MAX_S = 30.0

Flavour = Literal["desktop", "kiosk", "pos"]

# The flavours whose answer shows what HiPay has of the order (``notificationHipaySent``,
# ``numberOfNotificationSent``): their answer waits for the notification, at most
# ``notification_budget``.  The POS API's ``OrderResponse`` has no such field, so a POS
# answer waits for nothing it would not show: its notification leaves at the same moment
# and the outbox carries it as any other.
SHOWS_DELIVERY: Final[frozenset[Flavour]] = frozenset({"desktop", "kiosk"})

# What makes two posts of one order id the same payment (Stripe's idempotency keys,
# Adyen's TransactionStatus): the journal request's keys, named as the register knows them.
IDENTITY_FIELDS: dict[str, str] = {
    "amount": "amount",
    "currency": "currency",
    "transaction_type": "transaction type",
    "force_authorization": "force authorization",
    "target": "terminal",
    "terminal_id": "terminal",
    # the API shape it was paid in: every answer is rendered from the journaled echo, in
    # that shape, so a route of another shape cannot replay it
    "flavour": "API shape",
}


@dataclass(frozen=True, slots=True)
class PaymentOrder:
    """A payment as one of the three request shapes asked for it, ready for the journal."""

    flavour: Flavour
    order_id: str
    amount_minor: int
    currency: CurrencyInfo
    transaction_type: TransactionType
    force_authorization: bool  # effective: requested, or forced by the threshold
    target: TerminalTarget | None  # POS API host_information; None: our terminal
    journal_request: dict[str, Any]  # canonical request (hipay_payload) + the echo
    terminal_id: str | None = None  # a terminal named in the config (wins over target)
    target_key: str | None = None  # target's key (api/terminals.address_key): ``default``
    # for the configured terminal's own address

    @property
    def terminal(self) -> str:
        """The journal's key for the terminal (common/terminals.py): one busy state each."""
        if self.terminal_id is not None:
            return self.terminal_id
        if self.target is None:
            return DEFAULT_TERMINAL
        return self.target_key or self.target.address

    def payment_request(self, pos_number: int) -> PaymentRequest:
        return PaymentRequest(
            amount=self.amount_minor,
            currency_numeric=self.currency.numeric_code,
            transaction_type=self.transaction_type,
            force_authorization=self.force_authorization,
            pos_number=pos_number,
            order_id=self.order_id,
            target=self.target,
            terminal=self.terminal_id,
        )


@dataclass(frozen=True, slots=True)
class HeldOutcome:
    """A verdict the journal could not take yet, and the row it will become."""

    record: TransactionRecord
    result: PaymentResult | None
    error: TxError | None


@dataclass(frozen=True, slots=True)
class PaymentAnswer:
    """A journal row and what HiPay has of it: everything an answer is rendered from.

    ``delivery`` is None for a flavour whose answer does not show it (``SHOWS_DELIVERY``).
    """

    record: TransactionRecord
    delivery: DeliveryStatus | None


def differing_fields(stored: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The payment fields in which a re-post differs from the journaled order."""
    return [key for key in IDENTITY_FIELDS if stored.get(key) != new.get(key)]


def reused_error(order_id: str, fields: list[str], stored: Mapping[str, Any]) -> ApiError:
    names = ", ".join(IDENTITY_FIELDS[f] for f in fields)
    return ApiError(
        409,
        error_codes.ORDER_ID_REUSED,
        f"order {order_id!r} was already used for another payment (it differs in: {names}); "
        "use a new order id, or repeat the first payment exactly to get its answer",
        path="order_id",
        rule="idempotency",
        value=order_id,
        has_value=True,
        extra={"fields": fields, "journaled": {f: stored.get(f) for f in fields}},
    )


def storage_error(exc: Exception) -> ApiError:
    return ApiError(
        503,
        error_codes.STORAGE_UNAVAILABLE,
        "the journal cannot be written (disk full or failing): nothing was sent to the "
        "terminal; free space on the data directory's disk",
        description=str(exc),
    )


def busy_error(detail: str | None = None) -> ApiError:
    return ApiError(
        409,
        error_codes.TERMINAL_BUSY,
        detail or "another payment is in flight on the terminal; nothing was sent",
    )


def in_progress_error(order_id: str) -> ApiError:
    return ApiError(
        409,
        error_codes.IN_PROGRESS,
        f"order {order_id!r} is being paid right now; wait for its answer "
        f"(or ask GET /transactions/{order_id})",
        path="order_id",
        rule="idempotency",
        value=order_id,
        has_value=True,
    )


class PaymentService:
    def __init__(
        self,
        client: TerminalClient,
        settings: ApiSettings,
        journal: Journal,
        notifier: Notifier,
        acknowledge: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.journal = journal
        self.notifier = notifier
        self.acknowledge = acknowledge
        self._held: dict[str, HeldOutcome] = {}
        self._held_writer: asyncio.Task[None] | None = None

    async def pay(self, order: PaymentOrder) -> PaymentAnswer:
        try:
            # the claim and "at the terminal" in one fsynced commit, before the terminal
            # is woken: a crash from here on recovers as unknown (docs/durability.md)
            begun = await self.journal.begin(
                order.order_id,
                order.journal_request,
                flavour=order.flavour,
                terminal=order.terminal,
            )
        except StorageUnavailable as exc:
            raise storage_error(exc) from None
        if begun.kind is BeginKind.BUSY:
            log.info("api.payment.busy", order_id=order.order_id, busy_with=begun.record.order_id)
            raise busy_error()
        if begun.kind is not BeginKind.NEW:
            journaled = {**begun.record.request, "flavour": begun.record.flavour}
            fields = differing_fields(
                journaled, {**order.journal_request, "flavour": order.flavour}
            )
            if fields:
                log.warning("api.payment.order_id_reused", order_id=order.order_id, fields=fields)
                raise reused_error(order.order_id, fields, journaled)
            if begun.kind is BeginKind.IN_PROGRESS:
                raise in_progress_error(order.order_id)
            log.info("api.payment.replayed", order_id=order.order_id)
            return PaymentAnswer(begun.record, await self.delivery(begun.record))
        finished = await self._run(order, begun.record)
        record = finished.record
        if record.state is TxState.FAILED and record.error_code == codes.TERMINAL_BUSY:
            raise busy_error(record.error_message)
        return PaymentAnswer(record, await self._notify(finished, order.flavour))

    async def _run(self, order: PaymentOrder, at_terminal: TransactionRecord) -> Finished:
        """Ask the terminal, journal what it said; the row is final when this returns,
        or the outcome is held until the disk takes it (the register gets it either way)."""
        started = time.monotonic()
        log.info(
            "api.payment.started",
            order_id=order.order_id,
            amount=order.amount_minor,
            currency=order.currency.alpha,
            transaction_type=str(order.transaction_type),
            force_authorization=order.force_authorization,
            target=order.target.address if order.target else None,
        )
        result: PaymentResult | None = None
        error: TxError | None = None
        moved = False
        try:
            reply = await self.client.call(
                pay_contract.NAME,
                pay_contract.to_properties(order.payment_request(self.settings.pos_number)),
                timeout=self.settings.payment_timeout_s,
            )
            result = pay_contract.result_of(reply)
        except CommandFailed as exc:
            error, moved = TxError(exc.code, exc.message), exc.money_may_have_moved
        except (
            ValueError
        ) as exc:  # a reply that is not a PaymentResult: a bug, money may have moved
            error, moved = TxError(codes.INTERNAL_ERROR, f"unreadable pay reply: {exc}"), True
        state = TxState(pay_contract.transaction_state(result, moved))
        answered_at = time.time() if result is not None else None
        try:
            finished = await self.journal.finish(
                order.order_id, state, result, error, answered_at=answered_at
            )
        except StorageUnavailable as exc:
            log.error(
                "agent.journal.storage_unavailable",
                order_id=order.order_id,
                state=str(state),
                error=str(exc),
                advice="the verdict is held in memory and journaled as soon as the disk allows",
            )
            finished = Finished(self._hold(at_terminal, state, result, error, answered_at), None)
        else:
            if result is not None and self.acknowledge is not None:
                self.acknowledge(order.order_id)
        log.info(
            "api.payment.finished",
            order_id=order.order_id,
            state=str(state),
            error_code=error.code if error else None,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        if state is TxState.UNKNOWN:
            log.error(
                "agent.payment.outcome_unknown",
                order_id=order.order_id,
                error_code=error.code if error else None,
                advice="the customer may have paid: the terminal's late answer, if any, is "
                "reconciled; otherwise check the terminal's journal",
            )
        return finished

    def held(self, order_id: str) -> TransactionRecord | None:
        """A finished payment whose row the disk has not taken yet (what it will say)."""
        held = self._held.get(order_id)
        return held.record if held else None

    def _hold(
        self,
        record: TransactionRecord,
        state: TxState,
        result: PaymentResult | None,
        error: TxError | None,
        answered_at: float | None,
    ) -> TransactionRecord:
        """Keep an outcome the journal refused; a task writes it once the disk allows."""
        held = HeldOutcome(
            record=dataclasses.replace(
                record,
                state=state,
                result=result.to_dict() if result else None,
                error_code=error.code if error else None,
                error_message=error.message if error else None,
                answered_at=answered_at,
                finished_at=time.time(),
            ),
            result=result,
            error=error,
        )
        self._held[record.order_id] = held
        if self._held_writer is None or self._held_writer.done():
            self._held_writer = asyncio.create_task(self._write_held(), name="held-outcomes")
        return held.record

    async def _write_held(self) -> None:
        """Journal held outcomes as soon as the disk takes them: no row stays open."""
        delay = HELD_RETRY_FIRST_S
        while self._held:
            await asyncio.sleep(delay)
            for order_id, held in list(self._held.items()):
                record = held.record
                try:
                    await self.journal.finish(
                        order_id,
                        record.state,
                        held.result,
                        held.error,
                        answered_at=record.answered_at,
                    )
                except StorageUnavailable:
                    delay = min(delay * 2, HELD_RETRY_MAX_S)
                    break
                del self._held[order_id]
                delay = HELD_RETRY_FIRST_S
                log.warning(
                    "agent.journal.held_written", order_id=order_id, state=str(record.state)
                )
                if held.result is not None and self.acknowledge is not None:
                    self.acknowledge(order_id)
                self.notifier.kick()

    async def _notify(self, finished: Finished, flavour: Flavour) -> DeliveryStatus | None:
        """The attempt at the notification the journal just queued: awaited within the
        budget when the flavour's answer shows its delivery, else only started."""
        note = finished.notification
        shown = flavour in SHOWS_DELIVERY
        if note is None or finished.record.order_id in self._held:
            return DeliveryStatus(sent=False, count=0) if shown else None
        try:
            if not shown:
                self.notifier.send_soon(note)
                return None
            return await self.notifier.deliver_now(
                note.order_id, self.settings.notification_budget_s, queued=note
            )
        except Exception:  # a notifier fault must not hide the terminal's verdict
            log.exception("api.payment.notify_failed", order_id=note.order_id)
            self.notifier.kick()  # the worker sends it on its own schedule
            return DeliveryStatus(sent=False, count=0) if shown else None

    async def delivery(self, record: TransactionRecord) -> DeliveryStatus | None:
        """What HiPay has of an order now, without waiting (replays and lookups): whether
        it has the newest notification (a reconciled order's corrected one), and how many
        copies it may hold of all of them (the ``unknown`` one counts too).  None for a
        flavour whose answer does not show it (nothing is read)."""
        if record.flavour not in SHOWS_DELIVERY:
            return None
        return await asyncio.to_thread(self._delivery, record.order_id)

    def _delivery(self, order_id: str) -> DeliveryStatus:
        outbox = self.journal.outbox
        note = outbox.get_by_order(order_id)
        if note is None:
            return DeliveryStatus(sent=False, count=0)
        count = outbox.received_of_order(order_id)
        return DeliveryStatus(sent=note.sent, count=count, state=str(note.state))
