"""The Concert V3 driver: a :class:`~tp_manager.terminal.base.Terminal` over TCP.

Concert V3 opens one TCP connection per transaction, so there is no link to
keep open: ``link_state`` is what the last attempt taught us (``UP`` after an
exchange or a probe that connected, ``DOWN`` after a connection failure,
``DISCONNECTED`` before the first attempt and after :meth:`close`).

What the terminal takes beyond the mandatory tags is its profile
(common/concert_v3_profiles.py): with one that has them, ``check`` asks the terminal
to identify itself, ``reset`` reboots it, ``telecollect`` runs its remote collection,
and :meth:`ConcertV3Terminal.transaction_status` asks for a past payment's outcome
(status recovery, tp_manager/status_recovery.py); without, they answer NOT_SUPPORTED
naming the profile.  Each of these holds the busy flag like a payment: never two
exchanges on one terminal.  A payment that arrives during a *look* -- an identification
or a TCP connect probe (a ``check``: the status page, the agent's start, ``GET /check``;
or the idle link watch, tp_manager/keepalive.py) -- waits for it to end instead of being
turned away busy: the look is brief, the customer is real, and a terminal that takes one
connection at a time must not see the payment's connect while the probe's is open.
While it waits, that payment holds the terminal (``busy``: a second order is turned away,
no other exchange starts) and ``cancel`` stops it before it asks anything.
Reboot and remote collection are an operator's acts and keep the terminal busy.

Orders may name their terminal (POS API ``host_information`` / ``protocol``):
tp_manager/terminal/factory.py gives each terminal its own driver, built once and kept.
Drivers do not share the busy flag: each one serialises its own transactions, and
the terminal itself refuses a second connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

import structlog

from common.commands.cancel import CancelReply
from common.commands.telecollect import CollectedApp, TelecollectReply
from common.concert_v3_profiles import Action, Profile
from tp_manager.concert_v3 import messages, transport
from tp_manager.concert_v3.messages import Contract
from tp_manager.concert_v3.transport import ExchangeProgress, ExchangeTimeouts
from tp_manager.terminal.base import KeepAnswer, LinkStateCallback
from tp_manager.terminal.errors import (
    Cancelled,
    LinkDown,
    LinkLost,
    NotSupported,
    TerminalBusy,
    TerminalError,
    TransactionTimeout,
)
from tp_manager.terminal.model import (
    LinkState,
    PaymentRequest,
    PaymentResult,
    Probed,
    TerminalStatus,
)

log = structlog.get_logger(__name__)

DEFAULT_PORT: Final = 8888
CANCEL_WAIT_S: Final = 2.0  # how long cancel() waits for the exchange to unwind
# An identification involves no customer: a terminal answers it at once or not at all.
# This bounds how long it holds the terminal (and a payment waiting behind it).
IDENTIFICATION_ANSWER_S: Final = 5.0
# A status question (CD=T) involves no customer either, and holds the terminal as long as
# it waits: the next customer's payment would be turned away busy meanwhile.
STATUS_ANSWER_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class ConcertV3Settings:
    host: str
    port: int = DEFAULT_PORT
    version: str = messages.DEFAULT_VERSION
    register_id: str = messages.DEFAULT_REGISTER_ID
    pos_number: int | None = None  # None: use each request's pos_number
    contracts: tuple[Contract, ...] = ()
    transaction_timeout: float = transport.TRANSACTION_TIMEOUT_S
    connect_timeout: float = transport.CONNECT_TIMEOUT_S
    probe_timeout: float = transport.PROBE_TIMEOUT_S
    settle: float = transport.ANSWER_SETTLE_S
    echo_grace: float = transport.ECHO_GRACE_S
    profile: Profile = messages.DEFAULT_PROFILE
    # an order that names this terminal by address is sent in the version it names
    order_version: bool = False

    def timeouts(self) -> ExchangeTimeouts:
        return ExchangeTimeouts(
            connect=self.connect_timeout,
            transaction=self.transaction_timeout,
            settle=self.settle,
            echo_grace=self.echo_grace,
        )


@dataclass(slots=True)
class _Waiting:
    """A payment waiting for a look to end, and whether the register cancelled it."""

    order_id: str | None
    cancelled: bool = False


class ConcertV3Terminal:
    """One payment terminal at ``host:port``; one transaction at a time."""

    protocol = messages.PROTOCOL

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        version: str = messages.DEFAULT_VERSION,
        *,
        register_id: str = messages.DEFAULT_REGISTER_ID,
        pos_number: int | None = None,
        contracts: Sequence[Contract] = (),
        transaction_timeout: float = transport.TRANSACTION_TIMEOUT_S,
        connect_timeout: float = transport.CONNECT_TIMEOUT_S,
        probe_timeout: float = transport.PROBE_TIMEOUT_S,
        settle: float = transport.ANSWER_SETTLE_S,
        echo_grace: float = transport.ECHO_GRACE_S,
        profile: Profile = messages.DEFAULT_PROFILE,
        order_version: bool = False,
        on_link_state: LinkStateCallback | None = None,
    ) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"terminal port must be 1..65535, got {port}")
        if pos_number is not None and not (
            messages.MIN_POS_NUMBER <= pos_number <= messages.MAX_POS_NUMBER
        ):
            raise ValueError(f"POS number must be 1..99, got {pos_number}")
        self._settings = ConcertV3Settings(
            host=host,
            port=port,
            version=messages.protocol_version(version),
            register_id=messages.validate_register_id(register_id),
            pos_number=pos_number,
            contracts=tuple(contracts),
            transaction_timeout=transaction_timeout,
            connect_timeout=connect_timeout,
            probe_timeout=probe_timeout,
            settle=settle,
            echo_grace=echo_grace,
            profile=profile,
            order_version=order_version,
        )
        self._on_link_state = on_link_state
        self._link = LinkState.DISCONNECTED
        self._busy = False
        self._inflight: asyncio.Task[transport.Exchange] | None = None
        self._progress = ExchangeProgress()
        self._order_id: str | None = None
        self._doing = "a transaction"
        self._cancel_requested = False
        self._look_done = asyncio.Event()  # cleared while a look (identification, probe) runs
        self._look_done.set()
        # payments waiting for a look to end: they hold the terminal (busy, cancellable)
        self._waiting: list[_Waiting] = []
        self._last_exchange = time.monotonic()  # the end of the last exchange or probe

    @property
    def link_state(self) -> LinkState:
        return self._link

    @property
    def busy(self) -> bool:
        """Whether an order must be turned away: not during a look (identification, TCP
        probe), which a payment waits for (:meth:`pay`), unless a payment already waits."""
        return (self._busy and self._look_done.is_set()) or bool(self._waiting)

    @property
    def _taken(self) -> bool:
        """An exchange runs, or a payment waits for the look under way to end: no other
        exchange (a look, a status question, reboot, collection) may start."""
        return self._busy or bool(self._waiting)

    def busy_reason(self) -> str:
        if self._waiting and not (self._busy and self._look_done.is_set()):
            return (
                f"terminal at {self._target} is already taken by order "
                f"{self._waiting[0].order_id}; wait for its result or cancel it"
            )
        if self._order_id is None:
            return f"terminal at {self._target} is busy with {self._doing}; try again shortly"
        return (
            f"terminal at {self._target} is already running a transaction (order "
            f"{self._order_id}); wait for its result or cancel it"
        )

    async def start(self) -> None:
        """Nothing stays open between transactions; a probe sets the first link state."""
        await self.check()

    async def close(self) -> None:
        await self.cancel()
        self._set_link(LinkState.DISCONNECTED, "closed")

    async def pay(self, request: PaymentRequest, keep: KeepAnswer | None = None) -> PaymentResult:
        """``keep`` is left to the caller: Concert V3 does not acknowledge an answer (the
        terminal can be asked for it again, status recovery), so nothing waits for it."""
        # a look ends within its own timeouts; then this pays, unless another exchange
        # took the terminal meanwhile or the register cancelled it
        if not self._look_done.is_set():
            await self._after_look(request)
        if self._busy:
            raise TerminalBusy(self.busy_reason())
        self._busy = True
        self._order_id = request.order_id
        self._cancel_requested = False
        try:
            return await self._pay(request)
        finally:
            self._busy = False
            self._inflight = None
            self._cancel_requested = False
            self._last_exchange = time.monotonic()

    async def _after_look(self, request: PaymentRequest) -> None:
        """Wait for the look under way, holding the terminal meanwhile (``busy``: a second
        order is refused at once, ``cancel`` reaches this one); Cancelled, with nothing
        asked, if the register cancelled it meanwhile."""
        if self._waiting:
            raise TerminalBusy(self.busy_reason())
        waiting = _Waiting(request.order_id)
        self._waiting.append(waiting)
        try:
            await self._look_done.wait()
        finally:
            self._waiting.remove(waiting)
        if waiting.cancelled:
            log.warning("concert_v3.transaction.cancelled", request_sent=False, answer_bytes=0)
            err = Cancelled(
                "transaction cancelled by the register while it waited for the terminal's "
                "identification or link probe: nothing was sent"
            )
            err.money_may_have_moved = False
            raise err

    def _payment_fields(self, request: PaymentRequest) -> tuple[messages.Field, ...]:
        s = self._settings
        return messages.build_request(
            request,
            version=self._version_for(request),
            register_id=s.register_id,
            pos_number=s.pos_number,
            profile=s.profile,
        )

    async def _pay(self, request: PaymentRequest) -> PaymentResult:
        s = self._settings
        sent = self._payment_fields(request)
        payload = messages.encode_request(sent)
        log.debug(
            "concert_v3.transaction.start",
            host=s.host,
            port=s.port,
            version=s.version,
            amount=request.amount,
            currency=request.currency_numeric,
            transaction_type=str(request.transaction_type),
            order_id=request.order_id,
        )
        progress = self._progress = ExchangeProgress()
        echo_tags = [tag for tag, _ in sent]
        task = asyncio.create_task(
            transport.exchange(s.host, s.port, payload, echo_tags, s.timeouts(), progress)
        )
        self._inflight = task
        try:
            exchanged = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._cancel_requested and (current is None or current.cancelling() == 0):
                raise self._cancelled(progress) from None
            raise
        except TerminalError as exc:
            if isinstance(exc, (LinkDown, LinkLost)):
                self._set_link(LinkState.DOWN, exc.message)
            elif progress.connected:
                self._set_link(LinkState.UP, "connected")
            log.warning(
                "concert_v3.transaction.failed",
                code=exc.code,
                error=exc.message,
                money_may_have_moved=exc.money_may_have_moved,
                order_id=request.order_id,
            )
            raise
        self._set_link(LinkState.UP, "answered")
        result = messages.parse_answer(
            exchanged.fields,
            sent,
            profile=s.profile,
            contracts=s.contracts,
            timings=exchanged.timings,
        )
        log.debug(  # tp_manager.transaction.finished is the payment's info line
            "concert_v3.transaction.done",
            status=str(result.status),
            failure_reason=None if result.failure_reason is None else str(result.failure_reason),
            amount=result.amount,
            payment_application=result.payment_application,
            segments=exchanged.segments,
            total_ms=round(result.timings.total_ms, 1),
            order_id=request.order_id,
        )
        return result

    def _cancelled(self, progress: ExchangeProgress) -> Cancelled:
        if progress.request_sent:
            err = Cancelled(
                "transaction cancelled by the register after the request reached the "
                "terminal; the customer may have paid: check the terminal"
            )
        else:
            err = Cancelled("transaction cancelled by the register before the request was sent")
            err.money_may_have_moved = False  # nothing reached the terminal
        log.warning(
            "concert_v3.transaction.cancelled",
            request_sent=progress.request_sent,
            answer_bytes=progress.answer_bytes,
        )
        return err

    async def cancel(self) -> CancelReply:
        """Close the connection in flight; the pending :meth:`pay` raises :class:`Cancelled`.

        Closing is not an abort: Concert V3 has no abort message, so once the request
        was sent the terminal may still complete the payment, and no answer can come
        back on a closed connection (the order stays ``unknown`` until checked).
        """
        task = self._inflight
        if task is None or task.done():
            waiting = [w for w in self._waiting if not w.cancelled]
            for each in waiting:  # a payment waiting for a look: it will ask nothing
                each.cancelled = True
            if waiting:
                return CancelReply(cancelled=True, order_id=waiting[0].order_id)
            return CancelReply(cancelled=False)
        self._cancel_requested = True
        if not task.cancel():
            return CancelReply(cancelled=False)
        await asyncio.wait({task}, timeout=CANCEL_WAIT_S)
        return CancelReply(
            cancelled=task.done(),
            order_id=self._order_id,
            terminal_may_still_complete=self._progress.request_sent,
        )

    def _version_for(self, request: PaymentRequest) -> str:
        """The ``CZ`` of a payment (and of the status question about it): the version the
        order names with its address (POS API ``protocol``) on a driver that takes it (the
        configured terminal's, one only orders name: one driver per terminal, whatever
        version each order speaks), else the driver's own."""
        target = request.target
        if self._settings.order_version and target is not None and target.version:
            return messages.protocol_version(target.version)
        return self._settings.version

    @property
    def profile(self) -> Profile:
        return self._settings.profile

    def _unsupported(self, action: Action, what: str) -> NotSupported:
        return NotSupported(
            f"terminal at {self._target} runs Concert V3 profile {self.profile.name!r}, "
            f"which has no {what} ({action}); set a profile that has it "
            "(docs/terminals.md) or run it from the terminal's menu"
        )

    async def _act(
        self,
        fields: tuple[messages.Field, ...],
        doing: str,
        answer_timeout_s: float | None = None,
    ) -> dict[str, str]:
        """One exchange that is not a payment, under the busy flag; the answer's fields
        (within the transaction timeout, or ``answer_timeout_s`` when shorter)."""
        if self._taken:
            raise TerminalBusy(self.busy_reason())
        self._busy, self._doing, self._order_id = True, doing, None
        s = self._settings
        timeouts = s.timeouts()
        if answer_timeout_s is not None and answer_timeout_s < timeouts.transaction:
            timeouts = replace(timeouts, transaction=answer_timeout_s)
        try:
            exchanged = await transport.exchange(
                s.host,
                s.port,
                messages.encode_request(fields),
                [tag for tag, _ in fields],
                timeouts,
            )
        except (LinkDown, LinkLost) as exc:
            self._set_link(LinkState.DOWN, exc.message)
            raise
        finally:
            self._busy, self._doing = False, "a transaction"
            self._last_exchange = time.monotonic()
        self._set_link(LinkState.UP, "answered")
        return dict(messages.mask_answer(exchanged.fields))

    async def action(
        self, action: Action, what: str, answer_timeout_s: float | None = None
    ) -> dict[str, str]:
        """Run a ``CD`` action the profile takes (NOT_SUPPORTED otherwise)."""
        if not self.profile.takes(action):
            raise self._unsupported(action, what)
        s = self._settings
        fields = messages.build_action_request(
            action,
            version=s.version,
            register_id=s.register_id,
            pos_number=s.pos_number or messages.MIN_POS_NUMBER,
        )
        answer = await self._act(fields, what, answer_timeout_s)
        log.info("concert_v3.action.done", action=str(action), ae=answer.get(messages.TAG_STATUS))
        return answer

    async def reset(self) -> bool:
        """Reboot (``CD=R``); whether the terminal took it."""
        answer = await self.action(Action.REBOOT, "reboot")
        return answer.get(messages.TAG_STATUS) == messages.STATUS_DONE

    async def telecollect(self) -> TelecollectReply:
        """Remote collection (``CD=B``); the application the answer names, if any."""
        answer = await self.action(Action.REMOTE_COLLECTION, "remote collection")
        done = answer.get(messages.TAG_STATUS) == messages.STATUS_DONE
        app = answer.get(messages.TAG_PAYMENT_APPLICATION, "terminal")
        return TelecollectReply(
            done=done,
            detail=f"AE={answer.get(messages.TAG_STATUS)}",
            apps=[CollectedApp(name=app, status="0" if done else "1")],
        )

    @property
    def recovers_status(self) -> bool:
        return self.profile.takes(Action.STATUS) and self.profile.reference

    async def transaction_status(
        self, request: PaymentRequest, answer_timeout_s: float | None = None
    ) -> PaymentResult | None:
        """Ask the terminal for the outcome of the payment ``request`` (``CD=T``, named by
        its ``CF``); None when it has no verdict for it.  The answer is awaited
        :data:`STATUS_ANSWER_S` at most, or ``answer_timeout_s`` when shorter (what is
        left of status recovery's budget)."""
        if not self.recovers_status:
            raise self._unsupported(Action.STATUS, "transaction status")
        payment = self._payment_fields(request)
        status = messages.build_status_request(payment)
        if status is None:
            raise NotSupported(f"order {request.order_id!r} cannot be named in CF")
        wait = (
            STATUS_ANSWER_S if answer_timeout_s is None else min(answer_timeout_s, STATUS_ANSWER_S)
        )
        answer = await self._act(status, f"the status of order {request.order_id}", wait)
        return messages.parse_status_answer(
            tuple(answer.items()), payment, profile=self.profile, contracts=self._settings.contracts
        )

    async def check(self) -> TerminalStatus:
        """Identify the terminal (profiles that take it) or probe with a TCP connect +
        close, when idle; never while a transaction runs.

        A check that arrives during another look (the link watch's probe, the status
        page's check) waits for it, then looks itself: answered from the look under way,
        it would report the link as that look found it at its start, "up" for a terminal
        that died meanwhile."""
        while not self._look_done.is_set():  # each look ends within its own timeouts
            await self._look_done.wait()
        if self._taken:
            return self._busy_status()
        if self.profile.takes(Action.IDENTIFICATION):
            return await self._identify()
        return await self._probe()

    def _busy_status(self) -> TerminalStatus:
        return TerminalStatus(
            protocol=self.protocol,
            link=self._link,
            busy=True,
            responding=None,
            detail="transaction in flight; not probing",
        )

    async def _probe(self) -> TerminalStatus:
        """A TCP connect + close, held as a look: a payment arriving meanwhile waits."""
        if self._taken:  # took the terminal while this check was called
            return self._busy_status()
        s = self._settings
        self._busy, self._doing, self._order_id = True, "a link probe", None
        self._look_done.clear()
        try:
            connect_ms = await transport.probe(s.host, s.port, s.probe_timeout)
        except LinkDown as exc:
            self._set_link(LinkState.DOWN, exc.message)
            log.info("concert_v3.probe.failed", host=s.host, port=s.port, code=exc.code)
            return TerminalStatus(
                protocol=self.protocol,
                link=self._link,
                busy=False,
                responding=False,
                detail=exc.message,
            )
        finally:
            self._busy, self._doing = False, "a transaction"
            self._last_exchange = time.monotonic()
            self._look_done.set()
        self._set_link(LinkState.UP, "probe connected")
        log.debug("concert_v3.probe.ok", host=s.host, port=s.port, connect_ms=round(connect_ms, 1))
        return TerminalStatus(
            protocol=self.protocol,
            link=self._link,
            busy=False,
            responding=True,
            detail=f"TCP connect to {self._target} in {connect_ms:.0f} ms",
        )

    # -- the idle link watch (tp_manager/keepalive.py) -------------------------------

    @property
    def silent(self) -> bool:
        """The last exchange or probe could not reach the terminal."""
        return self._link is LinkState.DOWN

    def idle_for(self) -> float | None:
        """Seconds since the last exchange or probe ended; None while one runs."""
        if self._busy:
            return None
        return max(0.0, time.monotonic() - self._last_exchange)

    async def keepalive_probe(self) -> Probed | None:
        """One TCP connect + close (never identification: a watch every few minutes
        should not make the terminal do anything); None when the terminal is in use."""
        if self._taken:
            return None
        status = await self._probe()
        if status.responding is None:  # a transaction took the terminal first
            return None
        return Probed(responding=status.responding)

    def silence_detail(self, verdict: Probed, idle_s: float, retry_s: float) -> str:
        return (
            f"no TCP connection to {self._target} after {idle_s:.0f} s idle: "
            f"probed every {retry_s:g} s"
        )

    def report_silent(self, detail: str) -> bool:
        """The probe already reported the link down; False if it has come back since."""
        return self._link is LinkState.DOWN

    async def _identify(self) -> TerminalStatus:
        if self._taken:  # took the terminal while this check was called
            return self._busy_status()
        self._look_done.clear()
        try:
            answer = await self.action(
                Action.IDENTIFICATION, "identification", IDENTIFICATION_ANSWER_S
            )
        except (LinkDown, LinkLost) as exc:
            return TerminalStatus(self.protocol, self._link, False, False, exc.message)
        except TransactionTimeout:  # connected, but no answer: no customer is involved
            detail = f"identification (CD=I) unanswered within {IDENTIFICATION_ANSWER_S:g} s"
            return TerminalStatus(self.protocol, self._link, False, False, detail)
        finally:
            self._look_done.set()
        ae = answer.get(messages.TAG_STATUS)
        return TerminalStatus(
            protocol=self.protocol,
            link=self._link,
            busy=False,
            responding=ae == messages.STATUS_DONE,
            detail=f"identification (CD=I) answered AE={ae}",
        )

    @property
    def _target(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"

    def _set_link(self, state: LinkState, detail: str) -> None:
        if state is self._link:
            return
        self._link = state
        log.info("concert_v3.link.state", state=str(state), detail=detail, target=self._target)
        if self._on_link_state is not None:
            self._on_link_state(state, detail)
