"""The live events of ``GET /events``: one numbered, bounded, in-memory log per agent.

Why a log and not a broadcast: a client that reconnects (a phone that slept, a
proxy that cut an idle stream) sends ``Last-Event-ID`` and gets what it missed
from this buffer; one that missed more than the buffer holds (or talks to a
restarted agent) is told so with a ``stream.gap`` event and reloads the state.

Ids are ``<boot>-<seq>``: ``boot`` is unique per agent process, so an id from
before a restart is never taken for a recent one.  ``publish`` may be called
from any thread (the journal writes in worker threads): the buffer is guarded by
a lock and the streams, on the event loop, are woken thread-safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_CAPACITY = 1000  # events kept for Last-Event-ID; about a busy day's hour
STALE_ORDERS_KEPT = 256  # finished orders whose late terminal hints are dropped

# Names of the events a stream carries (docs/log-events.md, "Live events").
LINK_UP = "link.up"
LINK_DOWN = "link.down"
TERMINAL_BUSY = "terminal.busy"
TERMINAL_IDLE = "terminal.idle"
TRANSACTION_STARTED = "transaction.started"
TRANSACTION_WAITING_FOR_CARD = "transaction.waiting_for_card"
TRANSACTION_FINISHED = "transaction.finished"
TRANSACTION_RECONCILED = "transaction.reconciled"
NOTIFICATION_DELIVERED = "notification.delivered"
NOTIFICATION_DEAD = "notification.dead"
STREAM_GAP = "stream.gap"

# tp-manager's hints about an order; dropped once the journal finished that order, so
# the stream never shows a payment going back to the terminal after its verdict.
_ORDER_HINTS = frozenset({TERMINAL_BUSY, TRANSACTION_WAITING_FOR_CARD})


class LiveEvent:
    """One event of the log.  Its ``data`` may be made when first read (``make``): a
    transaction's facts are rendered from its journal row, a frozen record, only if a
    stream or the status page ever reads them; most events of a till nobody watches never
    are.  Made once (then the row is let go), the same for every reader."""

    __slots__ = ("_data", "_make", "id", "name", "seq", "time")

    def __init__(
        self,
        id: str,
        seq: int,
        name: str,
        data: dict[str, Any] | None,
        time: float,
        make: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.id = id
        self.seq = seq
        self.name = name
        self.time = time
        self._data = data
        self._make = make

    @property
    def data(self) -> dict[str, Any]:
        # ``make`` read before ``data``, as they are written in the other order: a reader
        # in another thread that finds ``make`` gone finds the data it made
        make, data = self._make, self._data
        if data is None:
            assert make is not None
            data = make()  # two readers racing make the same dict: the row is frozen
            self._data = data
            self._make = None
        return data

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "event": self.name, "time": self.time, "data": self.data}


@dataclass(frozen=True, slots=True)
class Backlog:
    """What a (re)connecting stream gets first; ``gap`` when some of it is lost."""

    events: list[LiveEvent]
    gap: bool
    cursor: int  # the seq the stream continues after


class EventLog:
    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        *,
        boot: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.boot = boot or format(time.time_ns() // 1000, "x")
        self._clock = clock
        self._buffer: deque[LiveEvent] = deque(maxlen=capacity)
        self._seq = 0
        self._lock = threading.Lock()
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self.closed = False

    # -- writing (any thread) ----------------------------------------------

    def publish(self, name: str, data: dict[str, Any]) -> LiveEvent | None:
        """Append an event and wake the streams; None when it was a stale hint."""
        return self._append(name, data.get("order_id"), dict(data), None)

    def publish_made(
        self, name: str, order_id: str, make: Callable[[], dict[str, Any]]
    ) -> LiveEvent | None:
        """:meth:`publish` of an order's event whose data ``make`` renders when first read
        (it must give the same dict whenever it is called: made from frozen values)."""
        return self._append(name, order_id, None, make)

    def _append(
        self,
        name: str,
        order_id: object,
        data: dict[str, Any] | None,
        make: Callable[[], dict[str, Any]] | None,
    ) -> LiveEvent | None:
        with self._lock:
            if isinstance(order_id, str):
                if name in _ORDER_HINTS and order_id in self._finished:
                    return None
                if name == TRANSACTION_STARTED:
                    self._finished.pop(order_id, None)  # a failed order paid again
                elif name == TRANSACTION_FINISHED:
                    self._finished[order_id] = None
                    while len(self._finished) > STALE_ORDERS_KEPT:
                        self._finished.popitem(last=False)
            self._seq += 1
            event = LiveEvent(
                f"{self.boot}-{self._seq}", self._seq, name, data, self._clock(), make
            )
            self._buffer.append(event)
        self._wake_streams()
        return event

    def close(self) -> None:
        """End every stream (the agent is stopping: open streams must not hold it up)."""
        self.closed = True
        self._wake_streams()

    def _wake_streams(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        if self._changed is not None:
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    # -- reading (the event loop) --------------------------------------------

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._seq

    def latest(self, name: str) -> LiveEvent | None:
        with self._lock:
            return next((e for e in reversed(self._buffer) if e.name == name), None)

    def after(self, seq: int) -> list[LiveEvent]:
        with self._lock:
            return [e for e in self._buffer if e.seq > seq]

    def backlog(self, last_event_id: str | None) -> Backlog:
        """Where a stream starts: after ``Last-Event-ID`` if this log still has it."""
        with self._lock:
            current = self._seq
            oldest = self._buffer[0].seq if self._buffer else current + 1
            kept = list(self._buffer)
        if not last_event_id:
            return Backlog([], gap=False, cursor=current)
        boot, _, seq_text = last_event_id.strip().rpartition("-")
        if boot == self.boot and seq_text.isdigit():
            seq = int(seq_text)
            if seq >= oldest - 1:
                return Backlog([e for e in kept if e.seq > seq], gap=False, cursor=current)
        return Backlog(kept, gap=True, cursor=current)

    async def wait(self, seq: int, timeout_s: float) -> None:
        """Return once an event after ``seq`` exists, the log closed, or ``timeout_s``."""
        self._loop = asyncio.get_running_loop()
        if self._changed is None:
            self._changed = asyncio.Event()
        changed = self._changed
        if self.closed or self.last_seq > seq:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await changed.wait()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the streams run on (set before threads publish)."""
        self._loop = loop
        if self._changed is None:
            self._changed = asyncio.Event()
