"""The payment service: one payment at a time, from a validated order to an outcome.

Order of work for each payment (the journal is journal_seam.JournalSeam over
the SQLite journal; the notifier is notifier.Notifier):

1. a second payment while one is in flight is refused at once (409
   TERMINAL_BUSY): it must never queue behind the customer at the terminal;
2. ``journal.begin(order_id, request)``: NEW goes on, IN_PROGRESS is a 409,
   DONE answers the stored outcome without touching the terminal;
3. ``pay`` on tp-manager;
4. ``journal.finish(order_id, outcome)``;
5. the terminal is free again (the next payment may start), then
   ``notifier.deliver_now(order_id, budget) -> (sent, count)`` fills
   ``notificationHipaySent`` / ``numberOfNotificationSent``.
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from common.commands import pay as pay_contract
from common.money import CurrencyInfo
from common.payment import PaymentRequest, TerminalTarget, TransactionType
from supervisor_agent.api import error_codes
from supervisor_agent.api.errors import ApiError
from supervisor_agent.api.settings import ApiSettings
from supervisor_agent.client import CommandFailed, TerminalClient

log = structlog.get_logger(__name__)


class JournalState(enum.StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class TerminalOutcome:
    """What tp-manager answered: a PaymentResult dict, or an error code."""

    result: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    money_may_have_moved: bool = False

    @property
    def outcome_unknown(self) -> bool:
        """The customer may have been charged though no verdict came back."""
        return self.error_code is not None and self.money_may_have_moved

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "error_code": self.error_code,
            "error_message": self.error_message,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TerminalOutcome:
        return cls(data.get("result"), data.get("error_code"), data.get("error_message"))


@dataclass(frozen=True, slots=True)
class JournalEntry:
    state: JournalState
    outcome: TerminalOutcome | None = None  # set when DONE


class PaymentJournal(Protocol):
    async def begin(self, order_id: str, request: dict[str, Any]) -> JournalEntry: ...

    async def at_terminal(self, order_id: str) -> None:
        """Written before the pay command leaves: a crash after it means 'outcome unknown'."""

    async def finish(self, order_id: str, outcome: TerminalOutcome) -> None: ...


class Delivery(Protocol):
    @property
    def sent(self) -> bool:  # notificationHipaySent
        ...

    @property
    def count(self) -> int:  # numberOfNotificationSent
        ...


class Notifier(Protocol):
    async def deliver_now(self, order_id: str, budget_s: float) -> Delivery: ...


@dataclass(frozen=True, slots=True)
class PaymentOrder:
    """A payment as the terminal needs it, built from any of the three request shapes."""

    order_id: str
    amount_minor: int
    currency: CurrencyInfo
    transaction_type: str  # "debit" | "credit" | "cancel"
    force_authorization: bool  # effective: requested, or forced by the threshold
    target: dict[str, Any] | None = None  # POS API host_information; None: our terminal
    journal_request: dict[str, Any] = field(default_factory=dict)

    def pay_properties(self, pos_number: int) -> dict[str, Any]:
        target = None
        if self.target:
            target = TerminalTarget(
                host=self.target["host"], port=self.target["port"], version=self.target["version"]
            )
        return pay_contract.to_properties(
            PaymentRequest(
                amount=self.amount_minor,
                currency_numeric=self.currency.numeric_code,
                transaction_type=TransactionType(self.transaction_type),
                force_authorization=self.force_authorization,
                pos_number=pos_number,
                order_id=self.order_id,
                target=target,
            )
        )


_REASON_CODES = {
    "refused": error_codes.REFUSED,
    "abandoned": error_codes.ABANDONED,
    "timeout": error_codes.TERMINAL_TIMEOUT,
    "forbidden": error_codes.FORBIDDEN,
    "format_error": error_codes.FORMAT_ERROR,
}


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    order: PaymentOrder
    terminal: TerminalOutcome
    notification_sent: bool = False
    notification_count: int = 0
    replayed: bool = False

    @property
    def success(self) -> bool:
        result = self.terminal.result
        return result is not None and result.get("status") == "accepted"

    @property
    def error_code(self) -> str | None:
        if self.terminal.error_code is not None:
            return self.terminal.error_code
        result = self.terminal.result or {}
        if self.success:
            return None
        reason = result.get("failure_reason")
        if reason in _REASON_CODES:
            return _REASON_CODES[reason]
        if result.get("status") == "not_verified":
            return error_codes.NOT_VERIFIED
        return error_codes.REFUSED

    @property
    def error_description(self) -> str | None:
        code = self.error_code
        if code is None:
            return None
        text = error_codes.describe(code) or (self.terminal.error_message or code)
        if self.terminal.error_message and self.terminal.error_message not in text:
            text = f"{text} ({self.terminal.error_message})"
        return text


class PaymentService:
    def __init__(
        self,
        client: TerminalClient,
        settings: ApiSettings,
        journal: PaymentJournal,
        notifier: Notifier,
    ) -> None:
        self.client = client
        self.settings = settings
        self.journal = journal
        self.notifier = notifier
        self._lock = asyncio.Lock()

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    async def pay(self, order: PaymentOrder) -> PaymentOutcome:
        if self._lock.locked():
            log.info("api.payment.busy", order_id=order.order_id)
            raise busy_error()
        replayed = False
        async with self._lock:
            entry = await self.journal.begin(order.order_id, order.journal_request)
            if entry.state is JournalState.IN_PROGRESS:
                raise ApiError(
                    409,
                    error_codes.IN_PROGRESS,
                    f"order {order.order_id!r} is being paid right now; wait for its answer",
                    path="order_id",
                    rule="idempotency",
                    value=order.order_id,
                    has_value=True,
                )
            if entry.state is JournalState.DONE and entry.outcome is not None:
                terminal = entry.outcome
                replayed = True
                log.info("api.payment.replayed", order_id=order.order_id)
            else:
                await self.journal.at_terminal(order.order_id)
                terminal = await self._call_terminal(order)
                await self.journal.finish(order.order_id, terminal)
        if terminal.error_code == error_codes.TERMINAL_BUSY:
            raise busy_error(terminal.error_message)
        sent, count = await self._notify(order.order_id)
        return PaymentOutcome(order, terminal, sent, count, replayed)

    async def _call_terminal(self, order: PaymentOrder) -> TerminalOutcome:
        started = time.monotonic()
        log.info(
            "api.payment.started",
            order_id=order.order_id,
            amount=order.amount_minor,
            currency=order.currency.alpha,
            transaction_type=order.transaction_type,
            force_authorization=order.force_authorization,
            target=_describe_target(order.target),
        )
        try:
            result = await self.client.call(
                "pay",
                order.pay_properties(self.settings.pos_number),
                timeout=self.settings.payment_timeout_s,
            )
            outcome = TerminalOutcome(result=result)
        except CommandFailed as exc:
            outcome = TerminalOutcome(
                error_code=exc.code,
                error_message=exc.message,
                money_may_have_moved=exc.money_may_have_moved,
            )
        log.info(
            "api.payment.finished",
            order_id=order.order_id,
            status=(outcome.result or {}).get("status", "error"),
            error_code=outcome.error_code,
            outcome_unknown=outcome.outcome_unknown,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return outcome

    async def _notify(self, order_id: str) -> tuple[bool, int]:
        try:
            delivery = await self.notifier.deliver_now(
                order_id, self.settings.notification_budget_s
            )
        except Exception:  # a notifier fault must not hide the terminal's verdict
            log.exception("api.payment.notify_failed", order_id=order_id)
            return False, 0
        return bool(delivery.sent), int(delivery.count)


def busy_error(detail: str | None = None) -> ApiError:
    return ApiError(
        409,
        error_codes.TERMINAL_BUSY,
        detail or "another payment is in flight on the terminal; nothing was sent",
    )


def _describe_target(target: dict[str, Any] | None) -> str | None:
    if not target:
        return None
    return f"{target.get('host')}:{target.get('port')}"
