"""Concert V2 link layer as sans-I/O state machines: bytes and timeouts in, effects out.

No asyncio, no clock, no port here.  The I/O layer (``terminal.py``) feeds every
byte it reads to the active machine with ``receive_data``, and carries out the
effects it gets back, in order:

* :class:`Send` -- write these bytes;
* :class:`StartTimer` / :class:`StopTimer` -- a machine has at most one deadline
  pending; starting one replaces the previous.  When it fires, the I/O layer
  calls ``machine.timeout(timer)`` (stale timers are ignored by the machine);
* :class:`Note` -- something worth a log line (retries, discarded bytes);
* :class:`Milestone` -- a point the I/O layer timestamps for ``Timings``;
* :class:`AnswerArrived` -- the terminal's answer frame, read whole and checked but
  not yet acknowledged: the I/O layer has it written down, then calls
  ``answer_kept()`` and the machine sends the ACK (the terminal forgets an answer once
  it has the ACK, so the layer above decides when that may be; past
  ``LinkTimeouts.keep_answer`` the machine ACKs on its own);
* :class:`Completed` / :class:`Failed` / :class:`Probed` -- the machine is done;
* :class:`Released` -- the register stops waiting (a cancel) but the machine runs
  on: the terminal has the request and Concert V2 cannot abort it, so the
  exchange goes to its natural end (the answer, or the transaction timeout) and
  its :class:`Completed` / :class:`Failed` is then a late answer.

Machines:

* :class:`FrameReceiver` cuts a byte stream into :class:`ControlByte`,
  :class:`Frame` and :class:`BadFrame` events and never raises on any input;
* :class:`Exchange` runs one payment: register ENQ -> ACK -> request frame ->
  ACK/NAK -> EOT, then the terminal's ENQ -> our ACK -> answer frame -> (kept) our
  ACK, or NAK -> EOT;
* :class:`Listener` runs the receive half alone, for an answer the terminal
  sends when no payment is waiting (after a cancel or a transaction timeout);
* :class:`Probe` asks "are you there?" (ENQ -> ACK) and hands the line back (EOT).

Every state that waits has a deadline and every retry is counted, so each
machine ends after a bounded number of timeouts whatever bytes arrive.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tp_manager.concert_v2 import constants as c
from tp_manager.concert_v2.codec import lrc
from tp_manager.concert_v2.constants import ControlCode, Timer
from tp_manager.terminal.errors import (
    BadChecksum,
    Cancelled,
    LinkLost,
    MalformedMessage,
    ProtocolError,
    RequestRejected,
    TerminalBusy,
    TerminalError,
    TerminalNotResponding,
    TransactionTimeout,
)
from tp_manager.terminal.model import Probed  # a probe's verdict, shared with Concert V3

# --- receiver events -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ControlByte:
    code: ControlCode


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame whose LRC checked and whose message is printable ASCII."""

    message: str


class BadFrameReason(enum.StrEnum):
    BAD_LRC = "bad_lrc"
    TRUNCATED = "truncated"  # a frame cut short by STX, a control byte or a timeout
    GARBAGE = "garbage"  # bytes outside any frame that are not control bytes
    NON_ASCII = "non_ascii"  # a frame whose message holds non-printable bytes
    TOO_LONG = "too_long"  # no ETX within MAX_MESSAGE_LENGTH bytes


@dataclass(frozen=True, slots=True)
class BadFrame:
    """Bytes the receiver could not use; ``size`` only, never the content (it may hold a PAN)."""

    reason: BadFrameReason
    size: int

    def error(self) -> ProtocolError:
        if self.reason is BadFrameReason.BAD_LRC:
            return BadChecksum(f"answer frame failed its LRC check ({self.size} bytes)")
        return MalformedMessage(f"answer frame unusable: {self.reason} ({self.size} bytes)")


Event = ControlByte | Frame | BadFrame


class _RxState(enum.Enum):
    IDLE = enum.auto()
    IN_FRAME = enum.auto()
    AWAIT_LRC = enum.auto()


# The bytes a frame's body ends at (ETX, or STX / a control byte that cuts it short),
# and those that mean something outside a frame (ETX there is noise, like any other).
_FRAME_STOP = re.compile(rb"[\x02\x03\x04\x05\x06\x15]")
_IDLE_STOP = re.compile(rb"[\x02\x04\x05\x06\x15]")
_NOT_PRINTABLE = re.compile(rb"[^\x20-\x7e]")
# One event per control byte, built once: they are immutable.
_CONTROL_EVENTS: dict[int, ControlByte] = {int(code): ControlByte(code) for code in ControlCode}
_EOT_EVENT = _CONTROL_EVENTS[c.EOT]
_ENQ_EVENT = _CONTROL_EVENTS[c.ENQ]
_ACK_EVENT = _CONTROL_EVENTS[c.ACK]
_NAK_EVENT = _CONTROL_EVENTS[c.NAK]


class FrameReceiver:
    """Cut a Concert V2 byte stream into events; any input is accepted.

    A chunk is scanned run by run, not byte by byte: a frame's body up to its ETX (or
    the byte that cuts it short) and a run of noise are each one regex search and one
    copy.  Garbage runs are reported once per run (a run ends at a significant byte or
    at the end of the chunk given to ``feed``).
    """

    def __init__(self, max_message_length: int = c.MAX_MESSAGE_LENGTH) -> None:
        self._max = max_message_length
        self._state = _RxState.IDLE
        self._buf = bytearray()
        self._garbage = 0

    def feed(self, data: bytes | bytearray) -> list[Event]:
        events: list[Event] = []
        data = bytes(data)
        at, size = 0, len(data)
        while at < size:
            state = self._state
            if state is _RxState.IN_FRAME:
                at = self._feed_body(data, at, events)
            elif state is _RxState.AWAIT_LRC:
                self._end_frame(data[at], events)
                at += 1
            else:
                at = self._feed_idle(data, at, events)
        self._flush_garbage(events)
        return events

    def reset(self) -> list[Event]:
        """Drop a partial frame (a deadline passed); report what was dropped."""
        events: list[Event] = []
        self._flush_garbage(events)
        if self._state is not _RxState.IDLE:
            etx = 1 if self._state is _RxState.AWAIT_LRC else 0  # read, but not kept in _buf
            events.append(BadFrame(BadFrameReason.TRUNCATED, 1 + len(self._buf) + etx))
        self._state = _RxState.IDLE
        self._buf.clear()
        return events

    def _flush_garbage(self, events: list[Event]) -> None:
        if self._garbage:
            events.append(BadFrame(BadFrameReason.GARBAGE, self._garbage))
            self._garbage = 0

    def _feed_body(self, data: bytes, at: int, events: list[Event]) -> int:
        """Inside a frame: keep the body up to the next significant byte; where to go on."""
        stop = _FRAME_STOP.search(data, at)
        end = len(data) if stop is None else stop.start()
        room = self._max - len(self._buf)
        if end - at > room:
            # Too long to be a Concert V2 frame: the byte past the limit and what
            # follows are noise until the next significant byte.
            events.append(BadFrame(BadFrameReason.TOO_LONG, self._max + 1))
            self._buf.clear()
            self._state = _RxState.IDLE
            self._garbage = 1
            return at + room + 1
        self._buf += data[at:end]
        if stop is None:
            return end
        if data[end] == c.ETX:
            self._state = _RxState.AWAIT_LRC
            return end + 1
        # STX or a control byte: the frame was cut short; the byte is read again, idle
        events.append(BadFrame(BadFrameReason.TRUNCATED, len(self._buf) + 1))
        self._buf.clear()
        self._state = _RxState.IDLE
        return end

    def _end_frame(self, check: int, events: list[Event]) -> None:
        """The LRC byte after ETX: the frame, or why it is unusable."""
        self._state = _RxState.IDLE
        body = bytes(self._buf)
        self._buf.clear()
        size = len(body) + 3  # STX, ETX, LRC
        if lrc(body) ^ c.ETX != check:
            events.append(BadFrame(BadFrameReason.BAD_LRC, size))
        elif _NOT_PRINTABLE.search(body) is not None:
            events.append(BadFrame(BadFrameReason.NON_ASCII, size))
        else:
            events.append(Frame(body.decode("ascii")))

    def _feed_idle(self, data: bytes, at: int, events: list[Event]) -> int:
        """Outside a frame: count noise up to the next STX or control byte; where to go on."""
        stop = _IDLE_STOP.search(data, at)
        if stop is None:
            self._garbage += len(data) - at
            return len(data)
        where = stop.start()
        self._garbage += where - at
        self._flush_garbage(events)
        byte = data[where]
        if byte == c.STX:
            self._state = _RxState.IN_FRAME
        else:
            events.append(_CONTROL_EVENTS[byte])
        return where + 1


# --- effects ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes
    label: str  # "enq", "request", "ack", "nak", "eot": for logs, never the content


@dataclass(frozen=True, slots=True)
class StartTimer:
    timer: Timer
    seconds: float


@dataclass(frozen=True, slots=True)
class StopTimer:
    pass


@dataclass(frozen=True, slots=True)
class Note:
    event: str
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Milestone:
    name: str  # "enq_acked", "request_acked", "answer_started", "answer_received"


@dataclass(frozen=True, slots=True)
class AnswerArrived:
    """The answer frame's message, not yet ACKed: keep it, then call ``answer_kept()``."""

    message: str


@dataclass(frozen=True, slots=True)
class Completed:
    message: str  # the answer message (not yet decoded: the codec does that)


@dataclass(frozen=True, slots=True)
class Failed:
    error: TerminalError


@dataclass(frozen=True, slots=True)
class Released:
    error: TerminalError  # what the register is told now; the machine is not finished


Effect = (
    Send
    | StartTimer
    | StopTimer
    | Note
    | Milestone
    | AnswerArrived
    | Completed
    | Failed
    | Probed
    | Released
)

_ENQ = bytes([c.ENQ])
_ACK = bytes([c.ACK])
_NAK = bytes([c.NAK])
_EOT = bytes([c.EOT])


@dataclass(frozen=True, slots=True)
class LinkTimeouts:
    """Every deadline and retry budget of the link, so tests and sites can tune them."""

    control_byte: float = c.CONTROL_BYTE_TIMEOUT_S
    end_of_frame: float = c.END_OF_FRAME_TIMEOUT_S
    transaction: float = c.TRANSACTION_TIMEOUT_S
    probe: float = c.PROBE_TIMEOUT_S
    keep_answer: float = c.KEEP_ANSWER_BUDGET_S
    enq_tries: int = c.ENQ_TRIES
    nak_resend_tries: int = c.NAK_RESEND_TRIES
    receive_nak_tries: int = c.RECEIVE_NAK_TRIES


def _ignored(event: Event, phase: str) -> Note:
    if isinstance(event, BadFrame):
        return Note("concert_v2.link.discarded", {"reason": str(event.reason), "size": event.size})
    kind = event.code.name if isinstance(event, ControlByte) else "frame"
    return Note("concert_v2.link.unexpected", {"got": kind, "phase": phase})


def _with_money_flag(error: TerminalError, may_have_moved: bool) -> TerminalError:
    """Set whether money may have moved for this one failure (class default otherwise)."""
    error.money_may_have_moved = may_have_moved
    return error


# --- the receive half ------------------------------------------------------------


class _ReceivePhase(enum.Enum):
    WAIT_ENQ = "wait_enq"
    WAIT_FRAME = "wait_frame"
    WAIT_KEPT = "wait_kept"  # the frame is read; our ACK waits until it is written down
    WAIT_EOT = "wait_eot"
    DONE = "done"


class AnswerReceiver:
    """Terminal ENQ -> our ACK -> frame -> (kept) our ACK, or NAK (the terminal resends)
    -> EOT.

    ``wait_timeout`` bounds the wait for the terminal's ENQ (the transaction
    timeout); ``None`` waits forever (the idle :class:`Listener`).  A good frame gives
    :class:`AnswerArrived` and no ACK: the terminal forgets its answer once ACKed, so
    the ACK waits for :meth:`kept` (the layer above has written the answer down), or
    for ``keep_answer`` seconds at most.  Once the answer frame is ACKed the answer is
    ours: a missing EOT is only noted.
    """

    def __init__(self, timeouts: LinkTimeouts, wait_timeout: float | None) -> None:
        self._t = timeouts
        self._wait_timeout = wait_timeout
        self.phase = _ReceivePhase.WAIT_ENQ
        self._message: str | None = None
        self._naks = 0
        self._repeats = 0
        self._last_bad: BadFrame | None = None

    @property
    def in_session(self) -> bool:
        """The terminal has started sending (we ACKed its ENQ)."""
        return self.phase in (
            _ReceivePhase.WAIT_FRAME,
            _ReceivePhase.WAIT_KEPT,
            _ReceivePhase.WAIT_EOT,
        )

    def begin(self) -> list[Effect]:
        if self._wait_timeout is None:
            return []
        return [StartTimer(Timer.TRANSACTION, self._wait_timeout)]

    def on_event(self, event: Event) -> list[Effect]:
        phase = self.phase
        if phase is _ReceivePhase.WAIT_ENQ:
            if event == _ENQ_EVENT:
                self.phase = _ReceivePhase.WAIT_FRAME
                return [
                    Send(_ACK, "ack"),
                    Milestone("answer_started"),
                    StartTimer(Timer.END_OF_FRAME, self._t.end_of_frame),
                ]
            if isinstance(event, Frame) and self._wait_timeout is None:
                # A whole answer frame with no ENQ before it, to an idle register: the
                # terminal resending an answer whose ACK never came, its ENQ read by a
                # tp-manager since killed.  Taken like any answer, else it is lost.
                return [Note("concert_v2.link.frame_without_enq"), *self._take_frame(event)]
            return [_ignored(event, phase.value)]
        if phase is _ReceivePhase.WAIT_FRAME:
            if isinstance(event, Frame):
                return self._take_frame(event)
            if isinstance(event, BadFrame):
                if event.reason is BadFrameReason.GARBAGE:
                    return [_ignored(event, phase.value)]
                return self._reject(event)
            if event.code is ControlCode.ENQ:
                # The terminal did not get our ACK and asks again.
                self._repeats += 1
                if self._repeats > self._t.enq_tries:
                    return self._fail(ProtocolError("terminal keeps sending ENQ, never a frame"))
                return [Send(_ACK, "ack"), StartTimer(Timer.END_OF_FRAME, self._t.end_of_frame)]
            if event.code is ControlCode.EOT:
                bad = self._last_bad
                err = bad.error() if bad else ProtocolError("terminal ended its session, no frame")
                return self._fail(err)
            return [_ignored(event, phase.value)]
        if phase is _ReceivePhase.WAIT_KEPT:
            # The terminal waits for our ACK; whatever it sends meanwhile (the frame again
            # if its own deadline was shorter) is answered by that ACK.
            return [_ignored(event, phase.value)]
        if phase is _ReceivePhase.WAIT_EOT:
            if event == _EOT_EVENT:
                return self._complete()
            if isinstance(event, Frame):
                # Our ACK was lost: the terminal resent the same answer.
                self._repeats += 1
                if self._repeats > self._t.receive_nak_tries:
                    return self._complete()
                return [Send(_ACK, "ack"), StartTimer(Timer.CONTROL_BYTE, self._t.control_byte)]
            return [_ignored(event, phase.value)]
        return []

    def timeout(self, timer: Timer) -> list[Effect]:
        phase = self.phase
        if phase is _ReceivePhase.WAIT_ENQ:
            return self._fail(
                TransactionTimeout(f"no answer from the terminal within {self._wait_timeout} s")
            )
        if phase is _ReceivePhase.WAIT_FRAME:
            return self._reject(BadFrame(BadFrameReason.TRUNCATED, 0))
        if phase is _ReceivePhase.WAIT_KEPT:
            # Not written down in time: the terminal's own deadline is near, and an
            # answer held in memory is better than one the terminal gives up sending.
            return [Note("concert_v2.link.acked_unkept"), *self._acknowledge()]
        if phase is _ReceivePhase.WAIT_EOT:
            return [Note("concert_v2.link.eot_missing"), *self._complete()]
        return []

    def _take_frame(self, event: Frame) -> list[Effect]:
        """The answer frame: handed up, its ACK held until it is kept."""
        self._message = event.message
        self.phase = _ReceivePhase.WAIT_KEPT
        return [
            Milestone("answer_received"),
            AnswerArrived(event.message),
            StartTimer(Timer.KEEP_ANSWER, self._t.keep_answer),
        ]

    def kept(self) -> list[Effect]:
        """The answer is written down: ACK it (nothing if it was ACKed already)."""
        if self.phase is not _ReceivePhase.WAIT_KEPT:
            return []
        return self._acknowledge()

    def _acknowledge(self) -> list[Effect]:
        self.phase = _ReceivePhase.WAIT_EOT
        return [Send(_ACK, "ack"), StartTimer(Timer.CONTROL_BYTE, self._t.control_byte)]

    def link_lost(self) -> list[Effect]:
        """The line is gone after the answer frame came in: the answer is the outcome."""
        return [Note("concert_v2.link.lost_after_answer"), *self._complete()]

    def _reject(self, bad: BadFrame) -> list[Effect]:
        self._last_bad = bad
        if self._naks >= self._t.receive_nak_tries:
            return self._fail(bad.error())
        self._naks += 1
        return [
            Note("concert_v2.link.nak_sent", {"reason": str(bad.reason), "tries": self._naks}),
            Send(_NAK, "nak"),
            StartTimer(Timer.END_OF_FRAME, self._t.end_of_frame),
        ]

    def _complete(self) -> list[Effect]:
        self.phase = _ReceivePhase.DONE
        assert self._message is not None
        return [StopTimer(), Completed(self._message)]

    def _fail(self, error: TerminalError) -> list[Effect]:
        self.phase = _ReceivePhase.DONE
        # The terminal was answering: the customer may well have paid.
        return [StopTimer(), Failed(_with_money_flag(error, True))]


# --- machines the I/O layer drives -------------------------------------------------


class _Session:
    """Common plumbing: a FrameReceiver, one pending timer, a finished flag."""

    def __init__(self) -> None:
        self._rx = FrameReceiver()
        self._timer: Timer | None = None
        self.finished = False

    def receive_data(self, data: bytes | bytearray) -> list[Effect]:
        out: list[Effect] = []
        for event in self._rx.feed(data):
            if self.finished:
                break
            out.extend(self._track(self._on_event(event)))
        return out

    def timeout(self, timer: Timer) -> list[Effect]:
        if self.finished or timer is not self._timer:
            return []  # stale: replaced or stopped before it fired
        self._timer = None
        self._rx.reset()
        return self._track(self._on_timeout(timer))

    def _track(self, effects: Iterable[Effect]) -> list[Effect]:
        out = list(effects)
        for effect in out:
            if isinstance(effect, StartTimer):
                self._timer = effect.timer
            elif isinstance(effect, StopTimer):
                self._timer = None
            elif isinstance(effect, Completed | Failed | Probed):
                self.finished = True
                self._timer = None
        return out

    def _on_event(self, event: Event) -> list[Effect]:
        raise NotImplementedError

    def _on_timeout(self, timer: Timer) -> list[Effect]:
        raise NotImplementedError


class ExchangePhase(enum.Enum):
    SEND_ENQ = "send_enq"
    SEND_FRAME = "send_frame"
    RECEIVE = "receive"
    DONE = "done"


class Exchange(_Session):
    """One payment, register side then terminal side.

    Ends with exactly one :class:`Completed` (the answer message) or
    :class:`Failed` carrying a typed error: TerminalNotResponding (no ACK to
    ENQ; or no ACK/NAK to the request frame, where money may have moved: the
    terminal may have taken a frame whose ACK was lost), RequestRejected (NAK
    after every resend), TransactionTimeout,
    BadChecksum / MalformedMessage / ProtocolError (answer unusable after every
    NAK), LinkLost, Cancelled (before the request left).  A cancel once the
    request frame has left gives :class:`Released` instead, at most once, and
    the machine runs on to one of those ends.
    """

    def __init__(self, frame: bytes, timeouts: LinkTimeouts | None = None) -> None:
        super().__init__()
        self._frame = frame
        self._t = timeouts or LinkTimeouts()
        self.phase = ExchangePhase.SEND_ENQ
        self._enq_sent = 0
        self._resends = 0
        # Request frames the terminal answered with neither ACK nor NAK: it may have taken
        # one (its ACK lost on the line) and be in the transaction, so a failure from then
        # on is unknown, never failed.
        self._unanswered_frames = 0
        self._answer = AnswerReceiver(self._t, self._t.transaction)
        self.released = False  # the register stopped waiting; the terminal may still answer
        # The terminal asked for the line (its own ENQ) before taking our request: it has a
        # message to give (the answer of an earlier payment); the I/O layer hands the line
        # to a Listener, which ACKs that ENQ (:meth:`Listener.take_enq`).
        self.terminal_asked = False

    def start(self) -> list[Effect]:
        self._enq_sent = 1
        timer = StartTimer(Timer.CONTROL_BYTE, self._t.control_byte)
        return self._track([Send(_ENQ, "enq"), timer])

    def cancel(self) -> list[Effect]:
        """The register gives up waiting; the terminal is not told (Concert V2 cannot).

        Before the request left (ENQ not ACKed) the line is handed back and nothing
        was asked.  Once the answer frame is in there is nothing to cancel (the verdict
        is being written down).  Between, the terminal may have the request: the register is
        released (money may have moved) and the exchange runs on, still holding
        the line, so the terminal's answer is read, not collided with.
        """
        if self.finished or self.released or self.answered:
            return []
        if self.phase is ExchangePhase.SEND_ENQ:
            error = _with_money_flag(Cancelled("cancelled by the register"), False)
            return self._finish([Send(_EOT, "eot")], error)
        self.released = True
        error = _with_money_flag(
            Cancelled(
                "cancelled by the register after the request left; Concert V2 cannot abort: "
                "the terminal may still complete the payment"
            ),
            True,
        )
        return [Released(error)]

    @property
    def answered(self) -> bool:
        """The terminal's answer frame is in: nothing is left to cancel."""
        return self._answer.phase in (_ReceivePhase.WAIT_KEPT, _ReceivePhase.WAIT_EOT)

    def answer_kept(self) -> list[Effect]:
        """The answer of :class:`AnswerArrived` is written down: the terminal may have its ACK."""
        if self.finished or self.phase is not ExchangePhase.RECEIVE:
            return []
        return self._track(self._answer.kept())

    def link_lost(self, reason: str) -> list[Effect]:
        if self.finished:
            return []
        if self.answered:  # the answer is in (and being written down): it is the outcome
            self.phase = ExchangePhase.DONE
            return self._track(self._answer.link_lost())
        moved = self.phase is not ExchangePhase.SEND_ENQ
        return self._finish([], _with_money_flag(LinkLost(f"link lost: {reason}"), moved))

    def _finish(self, out: list[Effect], error: TerminalError) -> list[Effect]:
        self.phase = ExchangePhase.DONE
        return self._track([*out, StopTimer(), Failed(error)])

    def _on_event(self, event: Event) -> list[Effect]:
        phase = self.phase
        if phase is ExchangePhase.RECEIVE:
            out = self._answer.on_event(event)
            if any(isinstance(e, Completed | Failed) for e in out):
                self.phase = ExchangePhase.DONE
            return out
        if phase is ExchangePhase.SEND_ENQ:
            if event == _ACK_EVENT:
                self.phase = ExchangePhase.SEND_FRAME
                return [
                    Milestone("enq_acked"),
                    Send(self._frame, "request"),
                    StartTimer(Timer.CONTROL_BYTE, self._t.control_byte),
                ]
            if event == _NAK_EVENT:
                return self._retry_enq("nak")
            if event == _ENQ_EVENT:
                # Both sides asked for the line.  Ours carries nothing yet; the terminal's
                # is an answer it holds (a payment given up on), which it would otherwise
                # keep trying to give while our ENQs go unanswered, and lose.  It goes
                # first; this payment is refused busy, nothing was asked.
                self.terminal_asked = True
                return self._finish(
                    [Note("concert_v2.link.terminal_asked_first")],
                    _with_money_flag(
                        TerminalBusy(
                            "the terminal is giving the answer of an earlier payment; "
                            "nothing was asked for this one: try again in a moment"
                        ),
                        False,
                    ),
                )
            return [_ignored(event, phase.value)]
        if phase is ExchangePhase.SEND_FRAME:
            if event == _ACK_EVENT:
                self.phase = ExchangePhase.RECEIVE
                return [Send(_EOT, "eot"), Milestone("request_acked"), *self._answer.begin()]
            if event == _NAK_EVENT:
                return self._resend_frame("nak")
            return [_ignored(event, phase.value)]
        return []

    def _on_timeout(self, timer: Timer) -> list[Effect]:
        phase = self.phase
        if phase is ExchangePhase.SEND_ENQ:
            return self._retry_enq("timeout")
        if phase is ExchangePhase.SEND_FRAME:
            return self._resend_frame("timeout")
        if phase is ExchangePhase.RECEIVE:
            out = self._answer.timeout(timer)
            if any(isinstance(e, Completed | Failed) for e in out):
                self.phase = ExchangePhase.DONE
            return out
        return []

    def _retry_enq(self, why: str) -> list[Effect]:
        if self._enq_sent >= self._t.enq_tries:
            return self._finish(
                [Send(_EOT, "eot")],
                TerminalNotResponding(
                    f"no ACK to ENQ after {self._enq_sent} tries: terminal off, busy or unplugged"
                ),
            )
        self._enq_sent += 1
        return [
            Note("concert_v2.link.enq_retry", {"why": why, "tries": self._enq_sent}),
            Send(_ENQ, "enq"),
            StartTimer(Timer.CONTROL_BYTE, self._t.control_byte),
        ]

    def _resend_frame(self, why: str) -> list[Effect]:
        if why == "timeout":
            self._unanswered_frames += 1
        if self._resends >= self._t.nak_resend_tries or self.released:
            if why == "nak":
                error: TerminalError = RequestRejected(
                    f"terminal NAKed the request {self._resends + 1} times"
                )
            else:
                error = TerminalNotResponding(
                    "no ACK or NAK to the request frame: the terminal may have taken it "
                    "(its ACK lost on the line); check the terminal before paying again"
                )
            return self._finish(
                [Send(_EOT, "eot")], _with_money_flag(error, self._unanswered_frames > 0)
            )
        self._resends += 1
        return [
            Note("concert_v2.link.request_resent", {"why": why, "tries": self._resends}),
            Send(self._frame, "request"),
            StartTimer(Timer.CONTROL_BYTE, self._t.control_byte),
        ]


class Listener(_Session):
    """The receive half alone, for an answer nobody is waiting for any more."""

    def __init__(self, timeouts: LinkTimeouts | None = None) -> None:
        super().__init__()
        self._answer = AnswerReceiver(timeouts or LinkTimeouts(), None)

    @property
    def in_session(self) -> bool:
        return self._answer.in_session

    def answer_kept(self) -> list[Effect]:
        """The answer of :class:`AnswerArrived` is written down: the terminal may have its ACK."""
        if self.finished:
            return []
        return self._track(self._answer.kept())

    def take_enq(self) -> list[Effect]:
        """The terminal's ENQ, read by the machine that had the line before this one."""
        return self._track(self._answer.on_event(_ENQ_EVENT))

    def _on_event(self, event: Event) -> list[Effect]:
        return self._answer.on_event(event)

    def _on_timeout(self, timer: Timer) -> list[Effect]:
        return self._answer.timeout(timer)


class Probe(_Session):
    """ENQ -> ACK? then EOT: is the terminal there and idle?

    Up to ``tries`` ENQs, each given ``timeout`` for an answer (``PROBE_TRIES`` x
    ``PROBE_TIMEOUT_S`` for the keep-alive: pyTeliumManager's three tries 1 s apart;
    one try for ``check``, which must answer quickly).  ACK or NAK means the terminal
    is there (NAK: there but not ready); so does its own ENQ -- it wants the line to
    send something: we end our turn with EOT and the Listener takes its next ENQ.
    The line is always handed back with EOT.

    :meth:`yield_line` is how a payment that arrives meanwhile gets the line: the
    probe sends no further ENQ and ends at the current ENQ's answer or deadline.  It
    never ends *inside* a handshake: an ACK still on its way would then be read as
    the answer to the payment's ENQ (or worse, to its request frame).
    """

    def __init__(self, timeout: float = c.PROBE_TIMEOUT_S, tries: int = 1) -> None:
        super().__init__()
        if tries < 1:
            raise ValueError("a probe sends at least one ENQ")
        self._timeout = timeout
        self._tries = tries
        self._sent = 0
        self.yielding = False

    def start(self) -> list[Effect]:
        self._sent = 1
        return self._track([Send(_ENQ, "enq"), StartTimer(Timer.PROBE, self._timeout)])

    def yield_line(self) -> None:
        """A payment waits: no further ENQ; end at this ENQ's answer or deadline."""
        self.yielding = True

    def _on_event(self, event: Event) -> list[Effect]:
        if isinstance(event, ControlByte) and event.code is not ControlCode.EOT:
            return [Send(_EOT, "eot"), StopTimer(), Probed(True, self._sent)]
        return [_ignored(event, "probe")]

    def _on_timeout(self, timer: Timer) -> list[Effect]:
        if self._sent < self._tries and not self.yielding:
            self._sent += 1
            return [
                Note("concert_v2.link.probe_retry", {"tries": self._sent}),
                Send(_ENQ, "enq"),
                StartTimer(Timer.PROBE, self._timeout),
            ]
        cut_short = self.yielding and self._sent < self._tries
        return [Send(_EOT, "eot"), Probed(False, self._sent, cut_short)]

    def link_lost(self) -> list[Effect]:
        """The port went away mid-probe: no verdict on the terminal itself."""
        if self.finished:
            return []
        return self._track([Probed(False, self._sent, cut_short=True)])
