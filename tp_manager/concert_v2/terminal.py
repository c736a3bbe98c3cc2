"""ConcertV2Terminal: the Concert V2 driver tp-manager talks to.

It owns the serial port, keeps it open (reconnecting with capped exponential
backoff when the device goes away), and runs one payment at a time through the
sans-I/O machines of ``link.py``; this module only moves bytes and runs timers.

Cancel: Concert V2 has no documented message to cancel a transaction once the
terminal has the request; the customer cancels on the terminal itself.
``cancel()`` therefore only stops *waiting*: the pending ``pay`` raises
:class:`Cancelled` (money may have moved once the request left), but the
exchange runs on to its natural end -- the answer, or the transaction timeout --
and the driver stays ``busy`` meanwhile, so the next ``pay`` is refused at once
(TERMINAL_BUSY) instead of ENQ-ing into a terminal still in its transaction.
That answer, like one that arrives after a :class:`TransactionTimeout` (read by
the idle Listener), is logged ``concert_v2.late_answer`` and handed to
``on_late_answer``, which stores it against its order.

The answer frame is ACKed only once it is written down: the terminal forgets an
answer it has the ACK of, so a tp-manager killed between the ACK and the write
would lose the verdict for good.  ``pay``'s ``keep`` (the payment's verdict) or
``on_late_answer`` (a late one) is awaited first, for
``KEEP_ANSWER_BUDGET_S`` at most (the link machine's deadline: the terminal waits
3 s for the ACK, then resends).  A kill before the ACK leaves the terminal holding
its answer, which it sends again to the restarted driver's Listener.

Keep-alive: the driver runs probes (``keepalive_probe``) and says how long the line
has been quiet (``idle_for``), but *when* to probe and what a silent terminal means
is decided above it (``tp_manager/keepalive.py``).  When told the terminal is silent
(``report_silent``) the driver reports its link down and reopens the port; the link is
reported up again by the first answer the terminal gives (a probe's or a payment's).
A payment that arrives during a probe waits for that probe's current ENQ to be
answered or to time out (at most ``probe_timeout``); the probe then sends no further
ENQ and hands the line back with EOT (``Probe.yield_line``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog

from common.commands.cancel import CancelReply
from common.commands.telecollect import TelecollectReply
from tp_manager.concert_v2 import constants as c
from tp_manager.concert_v2.codec import (
    DEFAULT_PAYMENT_MODE,
    decode_answer,
    encode_frame,
    encode_request,
    to_payment_result,
)
from tp_manager.concert_v2.constants import Timer
from tp_manager.concert_v2.link import (
    AnswerArrived,
    Completed,
    Effect,
    Exchange,
    Failed,
    LinkTimeouts,
    Listener,
    Milestone,
    Note,
    Probe,
    Released,
    Send,
    StartTimer,
    StopTimer,
    _Session,
)
from tp_manager.concert_v2.transport import SerialSettings, SerialTransport
from tp_manager.terminal.base import KeepAnswer, LinkStateCallback
from tp_manager.terminal.errors import (
    Cancelled,
    LinkDown,
    LinkLost,
    MalformedMessage,
    NotSupported,
    ProtocolError,
    TerminalBusy,
    TerminalError,
)
from tp_manager.terminal.model import (
    LinkState,
    PaymentRequest,
    PaymentResult,
    Probed,
    TerminalStatus,
    Timings,
    TransactionType,
)

log = structlog.get_logger(__name__)

# Writes a late answer down; the answer's ACK waits for it (see the module's docstring).
LateAnswerCallback = Callable[[PaymentResult], Awaitable[object]]


def _ms(start: float | None, end: float | None) -> float:
    if start is None or end is None:
        return 0.0
    return round((end - start) * 1000.0, 3)


class ConcertV2Terminal:
    """A Concert V2 terminal on a serial port (RS-232, USB-CDC or a pty)."""

    protocol = c.PROTOCOL_NAME

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "none",
        stopbits: int = 1,
        rtscts: bool = False,
        transaction_timeout: float = c.TRANSACTION_TIMEOUT_S,
        control_byte_timeout: float = c.CONTROL_BYTE_TIMEOUT_S,
        end_of_frame_timeout: float = c.END_OF_FRAME_TIMEOUT_S,
        probe_timeout: float = c.PROBE_TIMEOUT_S,
        keep_answer_timeout: float = c.KEEP_ANSWER_BUDGET_S,
        probe_tries: int = c.PROBE_TRIES,
        enq_tries: int = c.ENQ_TRIES,
        nak_resend_tries: int = c.NAK_RESEND_TRIES,
        receive_nak_tries: int = c.RECEIVE_NAK_TRIES,
        payment_mode: str = DEFAULT_PAYMENT_MODE,
        reconnect_initial_delay: float = c.RECONNECT_INITIAL_DELAY_S,
        reconnect_max_delay: float = c.RECONNECT_MAX_DELAY_S,
        reconnect_factor: float = c.RECONNECT_BACKOFF_FACTOR,
        on_link_state: LinkStateCallback | None = None,
        on_late_answer: LateAnswerCallback | None = None,
    ) -> None:
        self.settings = SerialSettings(port, baudrate, bytesize, parity, stopbits, rtscts)
        self.settings.pyserial_kwargs()  # bad settings fail here, not in the background
        self.timeouts = LinkTimeouts(
            control_byte=control_byte_timeout,
            end_of_frame=end_of_frame_timeout,
            transaction=transaction_timeout,
            probe=probe_timeout,
            keep_answer=keep_answer_timeout,
            enq_tries=enq_tries,
            nak_resend_tries=nak_resend_tries,
            receive_nak_tries=receive_nak_tries,
        )
        self.probe_tries = probe_tries
        self.payment_mode = payment_mode
        self._reconnect = (reconnect_initial_delay, reconnect_max_delay, reconnect_factor)
        self._on_link_state = on_link_state
        self._on_late_answer = on_late_answer

        self._state = LinkState.DISCONNECTED
        self._detail = ""
        self._last_error: TerminalError | None = None
        self._transport: SerialTransport | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._first_attempt = asyncio.Event()

        self._session: _Session | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._exchange_future: asyncio.Future[str] | None = None
        self._probe_future: asyncio.Future[Probed] | None = None
        self._marks: dict[str, float] = {}
        self._busy = False  # a pay() call is running
        self._cancel_before_start = False  # cancel() while the pay waits for a probe
        self._order_id: str | None = None  # of the last exchange
        self._request: PaymentRequest | None = None  # of the exchange in flight
        self._keep: KeepAnswer | None = None  # writes the exchange's verdict down
        # The exchange's answer, built when its frame arrived (or why it is unreadable)
        self._verdict: PaymentResult | MalformedMessage | None = None
        self._keeping: asyncio.Task[None] | None = None  # an answer written down, then ACKed
        self._pay_type = TransactionType.DEBIT  # of the last exchange
        # The type and order of the last request that left (its ENQ ACKed, its frame sent):
        # a late answer is the answer to that one, not to a later request that never left
        # (a terminal still holding an abandoned payment ignores new ones, OCA pos #550).
        self._late_for: tuple[TransactionType, str | None] = (TransactionType.DEBIT, None)
        self._last_activity = time.monotonic()  # a byte sent or received, or the port opened
        self._silent: str | None = None  # why the terminal is reported silent (keep-alive)

    # --- Terminal protocol ---------------------------------------------------

    @property
    def link_state(self) -> LinkState:
        return self._state

    @property
    def busy(self) -> bool:
        """A pay is running, a cancelled exchange is still running, or the terminal is talking."""
        return (
            self._busy
            or isinstance(self._session, Exchange)
            or (isinstance(self._session, Listener) and self._session.in_session)
        )

    def busy_reason(self) -> str:
        session = self._session
        if isinstance(session, Exchange) and session.released:
            return (
                f"the terminal may still be completing order {self._order_id} "
                "(Concert V2 cannot abort it): its answer is awaited"
            )
        if isinstance(session, Listener) and session.in_session:
            return "the terminal is sending a message; try again in a moment"
        return f"a transaction is already in flight on this terminal (order {self._order_id})"

    async def start(self) -> None:
        """Open the port; return once the first attempt is over, up or not.

        A port that is missing or refused leaves the link DOWN and the driver
        retrying in the background; ``pay`` then raises the typed reason.
        """
        if self._supervisor is None:
            self._stop.clear()
            self._first_attempt.clear()
            self._supervisor = asyncio.create_task(self._supervise(), name="concert_v2.link")
        await self._first_attempt.wait()

    async def close(self) -> None:
        self._stop.set()
        keeping, self._keeping = self._keeping, None
        if keeping is not None:  # no ACK: the terminal keeps its answer for the next start
            keeping.cancel()
        self._fail_session(LinkDown("driver closed"))
        task, self._supervisor = self._supervisor, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._drop_transport()
        self._set_state(LinkState.DISCONNECTED, "closed")

    async def pay(self, request: PaymentRequest, keep: KeepAnswer | None = None) -> PaymentResult:
        """One payment; ``keep`` writes the terminal's verdict down before the terminal
        is told its answer arrived (the ACK)."""
        message = encode_request(request, self.payment_mode)  # typed errors before any byte
        if self.busy:
            raise TerminalBusy(self.busy_reason())
        self._busy = True
        self._cancel_before_start = False
        self._order_id = request.order_id
        try:
            probe = self._probe_future
            if probe is not None:  # a probe holds the line for one short handshake
                if isinstance(self._session, Probe):
                    self._session.yield_line()
                with contextlib.suppress(Exception):
                    await asyncio.shield(probe)
                if self._cancel_before_start:
                    error = Cancelled("cancelled by the register before the request left")
                    error.money_may_have_moved = False
                    raise error
            return await self._run_exchange(request, message, keep)
        finally:
            self._busy = False

    async def cancel(self) -> CancelReply:
        """Stop waiting; ``terminal_may_still_complete`` while the exchange runs on."""
        session = self._session
        if not isinstance(session, Exchange):
            if not self._busy or self._cancel_before_start:
                return CancelReply(cancelled=False)
            # The pay waits for a probe's handshake: it has asked nothing, and will not.
            self._cancel_before_start = True
            log.info("concert_v2.pay.cancel_requested", phase="wait_probe")
            return CancelReply(cancelled=True, order_id=self._order_id)
        cancelled = not session.released and not session.answered
        if cancelled:
            log.info("concert_v2.pay.cancel_requested", phase=session.phase.value)
            self._apply(session, session.cancel())
        return CancelReply(
            cancelled=cancelled,
            order_id=self._order_id,
            terminal_may_still_complete=session.released and not session.finished,
        )

    async def reset(self) -> bool:
        """Concert V2 has no reboot message."""
        raise NotSupported("concert-v2 has no reset message; run it from the terminal's menu")

    async def telecollect(self) -> TelecollectReply:
        """Concert V2 has no remote collection message."""
        raise NotSupported("concert-v2 has no telecollect message; run it from the terminal's menu")

    async def check(self) -> TerminalStatus:
        if self.busy:
            return self._status(busy=True, responding=None)
        if self._state is not LinkState.UP or self._transport is None:
            return self._status(busy=False, responding=None)
        responding = (await self._probe(tries=1)).responding
        log.info("concert_v2.check", responding=responding)
        return self._status(busy=False, responding=responding)

    # --- keep-alive (scheduled and judged by tp_manager/keepalive.py) ----------------

    @property
    def silent(self) -> bool:
        """The terminal was reported silent and has not answered since."""
        return self._silent is not None

    def idle_for(self) -> float | None:
        """Seconds the line has been quiet; None when no probe may run now (the port is
        not open, a payment or the terminal's own message is under way, a probe runs)."""
        if self._transport is None or self.busy or self._probe_future is not None:
            return None
        return max(0.0, time.monotonic() - self._last_activity)

    async def keepalive_probe(self) -> Probed | None:
        """One keep-alive probe (``probe_tries`` ENQs); None when the line is not free."""
        if self.idle_for() is None:
            return None
        return await self._probe(tries=self.probe_tries)

    def silence_detail(self, verdict: Probed, idle_s: float, retry_s: float) -> str:
        return (
            f"the terminal answered none of {verdict.tries} keep-alive ENQs after "
            f"{idle_s:.0f} s idle: port reopened, probed every {retry_s:g} s"
        )

    def report_silent(self, detail: str) -> bool:
        """The terminal does not answer: report the link down and reopen the port (a USB
        serial link that went to sleep often comes back on a fresh open).  Refused (False)
        while the line is in use or the port is not open: that has its own outcome."""
        if self.idle_for() is None:
            return False
        self._silent = detail
        log.warning("concert_v2.link.silent", port=self.settings.port, detail=detail)
        self._set_state(LinkState.DOWN, detail)
        self._last_error = LinkDown(detail)
        self._drop_transport()  # the supervisor opens the port again, with its backoff
        return True

    def _answered(self) -> None:
        """The terminal answered (a probe's ENQ, a payment's ENQ, its own message)."""
        if self._silent is None:
            return
        self._silent = None
        self._last_error = None
        self._set_state(LinkState.UP, f"{self.settings.port} open; the terminal answers again")

    async def _probe(self, tries: int) -> Probed:
        """Run a probe, or join the one running; the caller may be ``check`` or keep-alive."""
        fut = self._probe_future
        if fut is None:
            probe = Probe(self.timeouts.probe, tries)
            self._discard_queued()
            fut = asyncio.get_running_loop().create_future()
            self._probe_future = fut
            self._session = probe
            self._apply(probe, probe.start())
        return await asyncio.shield(fut)

    # --- payment -------------------------------------------------------------

    async def _run_exchange(
        self, request: PaymentRequest, message: str, keep: KeepAnswer | None
    ) -> PaymentResult:
        # A terminal reported silent is still asked (the port is open): its answer to
        # this ENQ brings the link up; if it stays silent the ENQ tries fail with
        # TERMINAL_NOT_RESPONDING and nothing was charged.
        if self._stop.is_set():  # closing: a pay that waited for a probe asks nothing
            raise LinkDown(f"the driver of {self.settings.port} is closing")
        if self._transport is None:
            raise self._down_error()
        loop = asyncio.get_running_loop()
        exchange = Exchange(encode_frame(message), self.timeouts)
        fut: asyncio.Future[str] = loop.create_future()
        self._exchange_future = fut
        self._pay_type = request.transaction_type
        self._order_id = request.order_id
        self._request, self._keep, self._verdict = request, keep, None
        self._marks = {"start": time.monotonic()}
        self._session = exchange
        log.debug(  # tp_manager.transaction.finished is the payment's info line
            "concert_v2.pay.start",
            amount=request.amount,
            currency=request.currency_numeric,
            type=str(request.transaction_type),
            order_id=request.order_id,
        )
        self._discard_queued()
        try:
            self._apply(exchange, exchange.start())
            answer_message = await fut
        except asyncio.CancelledError:
            # The caller's task was cancelled: stop waiting as a cancel would.
            self._apply(exchange, exchange.cancel())
            if fut.done() and not fut.cancelled():
                fut.exception()  # retrieved: nobody awaits it any more
            raise
        except TerminalError as err:
            log.warning(
                "concert_v2.pay.failed",
                code=err.code,
                reason=err.message,
                money_may_have_moved=err.money_may_have_moved,
                order_id=request.order_id,
            )
            raise
        finally:
            self._exchange_future = None
            if self._session is exchange and exchange.finished:
                self._listen()
        verdict = self._verdict
        if verdict is None:  # no AnswerArrived before Completed: never, but cheap to cover
            verdict = self._answer_of(request, answer_message)
        if isinstance(verdict, MalformedMessage):
            log.warning("concert_v2.pay.failed", code=verdict.code, reason=verdict.message)
            raise verdict
        log.debug(
            "concert_v2.pay.done",
            status=str(verdict.status),
            amount=verdict.amount,
            currency=verdict.currency_numeric,
            masked_pan=verdict.masked_pan,
            total_ms=verdict.timings.total_ms,
            order_id=request.order_id,
        )
        return verdict

    def _answer_of(self, request: PaymentRequest, message: str) -> PaymentResult | MalformedMessage:
        """The payment's verdict from its answer frame (timed up to the frame), or why the
        frame is unreadable."""
        end = time.monotonic()
        try:
            answer = decode_answer(message)
        except MalformedMessage as err:
            err.money_may_have_moved = True  # the terminal did answer something
            return err
        m = self._marks
        timings = Timings(
            connect_ms=_ms(m.get("start"), m.get("enq_acked")),
            request_ms=_ms(m.get("enq_acked"), m.get("request_acked")),
            wait_ms=_ms(m.get("request_acked"), m.get("answer_started")),
            total_ms=_ms(m.get("start"), end),
        )
        result = to_payment_result(answer, request.transaction_type, timings)
        mismatch = [
            name
            for name, sent, got in (
                ("amount", request.amount, answer.amount),
                ("currency", request.currency_numeric, answer.currency_numeric),
                ("pos_number", request.pos_number, answer.pos_number),
                ("private", request.private.rstrip(" "), answer.private),
            )
            if sent != got
        ]
        if mismatch:
            log.warning("concert_v2.pay.answer_mismatch", fields=mismatch)
        return result

    # --- an answer written down before its ACK ------------------------------------

    def _keep_answer(self, session: _Session, message: str) -> None:
        """The terminal's answer frame is in: have it written down, then ACK it."""
        writing: Awaitable[object] | None = None
        try:
            if isinstance(session, Exchange) and not session.released:
                assert self._request is not None  # set with the exchange
                self._verdict = verdict = self._answer_of(self._request, message)
                if self._keep is not None and isinstance(verdict, PaymentResult):
                    writing = self._keep(verdict)
            else:
                late = self._late_result(message)
                if late is not None and self._on_late_answer is not None:
                    writing = self._on_late_answer(late)
        except Exception:  # a keeper's bug must not keep the terminal waiting
            log.exception("concert_v2.callback_failed", callback="keep_answer")
        if writing is None:
            self._ack_answer(session)
            return
        self._keeping = asyncio.get_running_loop().create_task(
            self._ack_once_kept(session, writing), name="concert_v2.keep_answer"
        )

    async def _ack_once_kept(self, session: _Session, writing: Awaitable[object]) -> None:
        try:
            await writing
        except Exception:  # the keeper logs its store's refusal; the answer is ACKed anyway
            log.exception("concert_v2.callback_failed", callback="keep_answer")
        if self._keeping is asyncio.current_task():
            self._keeping = None
        self._ack_answer(session)

    def _ack_answer(self, session: _Session) -> None:
        if self._session is not session or not isinstance(session, Exchange | Listener):
            return  # the line was lost meanwhile: the terminal sends the answer again
        try:
            self._apply(session, session.answer_kept())
        except Exception:
            log.exception("concert_v2.internal_error", where="keep_answer")
            self._fail_session(LinkLost("internal error in the Concert V2 driver"))

    # --- effects -------------------------------------------------------------

    def _apply(self, session: _Session, effects: list[Effect]) -> None:
        """Carry out a machine's effects, in order."""
        for effect in effects:
            if isinstance(effect, Send):
                if not self._send(session, effect):
                    return
            elif isinstance(effect, StartTimer):
                self._cancel_timer()
                self._timer = asyncio.get_running_loop().call_later(
                    effect.seconds, self._fire, session, effect.timer
                )
            elif isinstance(effect, StopTimer):
                self._cancel_timer()
            elif isinstance(effect, Note):
                log.info(effect.event, **dict(effect.fields))
            elif isinstance(effect, Milestone):
                self._marks[effect.name] = time.monotonic()
                if effect.name == "enq_acked":  # the request frame goes out next
                    self._late_for = (self._pay_type, self._order_id)
                if effect.name in ("enq_acked", "answer_started"):
                    self._answered()
            elif isinstance(effect, AnswerArrived):
                self._keep_answer(session, effect.message)
            elif isinstance(effect, Released):
                fut = self._exchange_future
                if fut is not None and not fut.done():
                    fut.set_exception(effect.error)
            elif isinstance(effect, Completed | Failed | Probed):
                if isinstance(effect, Probed) and effect.responding:
                    self._answered()
                self._finished(session, effect)

    def _send(self, session: _Session, effect: Send) -> bool:
        transport = self._transport
        try:
            if transport is None:
                raise LinkLost("serial port is not open")
            transport.write(effect.data)
        except LinkLost as err:
            self._fail_session(err)
            return False
        self._last_activity = time.monotonic()
        log.debug("concert_v2.link.sent", what=effect.label, size=len(effect.data))
        return True

    def _finished(self, session: _Session, effect: Completed | Failed | Probed) -> None:
        self._cancel_timer()
        if isinstance(session, Exchange):
            fut = self._exchange_future
            if fut is not None and not fut.done():
                if isinstance(effect, Completed):
                    fut.set_result(effect.message)
                elif isinstance(effect, Failed):
                    fut.set_exception(effect.error)
            elif session.released:
                self._late_failure(effect)
        elif isinstance(session, Probe):
            pfut, self._probe_future = self._probe_future, None
            if pfut is not None and not pfut.done():
                pfut.set_result(effect if isinstance(effect, Probed) else Probed(False))
        elif isinstance(session, Listener):
            self._late_failure(effect)
        if self._session is session:
            self._listen()
            listener = self._session
            if isinstance(session, Exchange) and session.terminal_asked and listener is not None:
                assert isinstance(listener, Listener)
                self._apply(listener, listener.take_enq())

    def _late_failure(self, effect: Completed | Failed | Probed) -> None:
        """A late exchange ended without an answer (a late answer was kept as it came)."""
        if not isinstance(effect, Failed):
            return
        if isinstance(effect.error, ProtocolError):
            log.warning("concert_v2.late_answer.unreadable", code=effect.error.code)
        else:  # a cancelled exchange ran out of time or lost the link
            log.warning(
                "concert_v2.late_answer.missing", code=effect.error.code, order_id=self._late_for[1]
            )

    def _late_result(self, message: str) -> PaymentResult | None:
        """A late answer's verdict, logged; None if unreadable."""
        try:
            result = to_payment_result(decode_answer(message), self._late_for[0])
        except MalformedMessage as err:
            log.warning("concert_v2.late_answer.unreadable", code=err.code)
            return None
        log.warning(
            "concert_v2.late_answer",
            status=str(result.status),
            amount=result.amount,
            currency=result.currency_numeric,
            private=result.private,
            masked_pan=result.masked_pan,
        )
        return result

    def _fire(self, session: _Session, timer: Timer) -> None:
        self._timer = None
        if session is not self._session:
            return
        try:
            self._apply(session, session.timeout(timer))
        except Exception:  # never let a bug wedge the link: fail what is pending
            log.exception("concert_v2.internal_error", where="timer")
            self._fail_session(LinkLost("internal error in the Concert V2 driver"))

    def _discard_queued(self) -> None:
        """A new session starts: what an earlier one left queued is stale."""
        if self._transport is not None:
            self._transport.discard_queued()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _listen(self) -> None:
        """Between payments, still answer the terminal if it speaks up."""
        self._cancel_timer()
        self._session = Listener(self.timeouts) if self._transport is not None else None

    def _fail_session(self, error: TerminalError) -> None:
        session = self._session
        if isinstance(session, Exchange) and not session.finished:
            self._apply(session, session.link_lost(error.message))
        elif isinstance(session, Probe):
            self._apply(session, session.link_lost())
        self._listen()

    # --- link supervision ------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        self._last_activity = time.monotonic()
        session = self._session
        if session is None:
            return
        try:
            self._apply(session, session.receive_data(data))
        except Exception:
            log.exception("concert_v2.internal_error", where="receive")
            self._fail_session(LinkLost("internal error in the Concert V2 driver"))

    def _on_lost(self, error: LinkLost) -> None:
        self._fail_session(error)

    def _drop_transport(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        self._cancel_timer()
        self._session = None

    async def _supervise(self) -> None:
        initial, cap, factor = self._reconnect
        delay = initial
        self._set_state(LinkState.CONNECTING, f"opening {self.settings.port}")
        while not self._stop.is_set():
            try:
                try:
                    transport = await SerialTransport.open(
                        self.settings, self._on_data, self._on_lost
                    )
                except TerminalError:
                    raise
                except Exception as exc:  # a driver surprise must not end the supervision
                    log.exception("concert_v2.link.open_crashed", port=self.settings.port)
                    raise LinkDown(f"cannot open serial port {self.settings.port}: {exc}") from exc
            except TerminalError as err:
                if self._last_error is None or err.message != self._last_error.message:
                    log.warning("concert_v2.link.open_failed", code=err.code, reason=err.message)
                self._last_error = err
                self._set_state(LinkState.DOWN, err.message)
            else:
                self._transport = transport
                delay = initial
                self._last_activity = time.monotonic()
                self._listen()
                if self._silent is None:
                    self._last_error = None
                    self._set_state(LinkState.UP, f"{self.settings.port} open")
                else:  # reopened after a silent probe: up only once the terminal answers
                    self._set_state(
                        LinkState.DOWN, f"{self.settings.port} reopened; {self._silent}"
                    )
                self._first_attempt.set()
                await transport.closed.wait()
                self._transport = None
                self._session = None
                self._cancel_timer()
                if self._stop.is_set():
                    break
                if self._silent is None:
                    self._last_error = LinkDown(f"serial port {self.settings.port} was lost")
                    self._set_state(LinkState.DOWN, self._last_error.message)
            self._first_attempt.set()
            log.info("concert_v2.link.reconnect_wait", delay_s=delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()
            delay = min(delay * factor, cap)

    def _down_error(self) -> TerminalError:
        if self._last_error is not None:  # a fresh instance per raise, same type
            return type(self._last_error)(self._last_error.message)
        return LinkDown(f"serial link is {self._state}: {self._detail}")

    def _set_state(self, state: LinkState, detail: str) -> None:
        if (state, detail) == (self._state, self._detail):
            return
        self._state, self._detail = state, detail
        log.info("concert_v2.link.state", state=str(state), detail=detail)
        if self._on_link_state is not None:
            try:
                self._on_link_state(state, detail)
            except Exception:
                log.exception("concert_v2.callback_failed", callback="on_link_state")

    def _status(self, *, busy: bool, responding: bool | None) -> TerminalStatus:
        return TerminalStatus(
            protocol=self.protocol,
            link=self._state,
            busy=busy,
            responding=responding,
            detail=self._detail,
        )
