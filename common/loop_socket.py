"""``LoopSocket``: a plain ZeroMQ socket driven by the running event loop.

Both processes spent a large share of each payment's CPU in pyzmq's asyncio layer
(``zmq.asyncio``): a future, a done-callback and a ``call_later(0)`` per message, socket
options read through ``__getattr__`` on every receive and enum arithmetic on every
readiness check (py-spy: 13 % of the agent's main thread in one of its lambdas alone).
This class keeps only what the connector uses: multipart ``send``/``recv`` on a plain
``zmq.Socket``, woken by ``loop.add_reader`` on the socket's ``FD``, on uvloop and on
asyncio's own loop alike (common/event_loop.py).

The ``FD`` is edge-triggered: it signals when libzmq has *commands* to process, and
any operation on the socket (a send, a receive, reading ``EVENTS``) may process them,
taking the signal with it while a message stays unread.  So after every send and
receive, and whenever the reader fires, :meth:`_serve` reads ``EVENTS`` (which
processes what is pending, so a later change signals again) and hands out messages
while someone waits for them.  ``_readable`` remembers what the last read said, so a
receive that finds nobody ahead of it takes a message already there at once.

Rules for its users: configure, bind and connect ``sock`` before awaiting on this
object, and afterwards send and receive only through it (an operation behind its back
could take the FD's signal unseen).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Sequence
from typing import Any, Final, cast

import zmq

# Plain ints: pyzmq's IntFlag constants cost an enum operation per use.
_POLLIN: Final = int(zmq.POLLIN)
_POLLOUT: Final = int(zmq.POLLOUT)
_EVENTS: Final = int(zmq.EVENTS)
_SNDTIMEO: Final = int(zmq.SNDTIMEO)
_NOBLOCK: Final = int(zmq.NOBLOCK)
_MORE_NOBLOCK: Final = int(zmq.SNDMORE) | _NOBLOCK
_MS_PER_S: Final = 1000.0

_monitor_numbers = itertools.count()  # a process-wide unique inproc address per monitor


def send_now(sock: zmq.Socket[bytes], frames: Sequence[bytes]) -> None:
    """Send ``frames`` as one message without waiting: ``zmq.Again`` when there is no
    room (a message is all or nothing).  pyzmq's ``send_multipart(flags=NOBLOCK)`` does
    the same through an enum operation per frame (``SNDMORE | flags``); tp-manager's PUB
    sends this way too."""
    send = sock.send
    for frame in frames[:-1]:
        send(frame, _MORE_NOBLOCK)
    send(frames[-1], _NOBLOCK)


class _PendingSend:
    """A send that found no room: its frames, its waiter, its ``SNDTIMEO`` timer."""

    __slots__ = ("frames", "future", "timer")

    def __init__(self, frames: Sequence[bytes], future: asyncio.Future[None]) -> None:
        self.frames = frames
        self.future = future
        self.timer: asyncio.TimerHandle | None = None


class LoopSocket:
    """A ZeroMQ socket of ``kind`` on ``context``, awaited on the running loop.

    ``context`` may be any ``zmq.Context`` (a ``zmq.asyncio.Context`` too): the socket
    is always a plain one.  Closing it while a send or receive waits fails that wait
    with ``ZMQError(ENOTSOCK)``, as a plain socket's call on a closed socket does.
    """

    def __init__(self, context: zmq.Context[Any], kind: int) -> None:
        self.sock: zmq.Socket[bytes] = context.socket(kind, socket_class=zmq.Socket)
        self._loop = asyncio.get_running_loop()
        self._fd = cast(int, self.sock.getsockopt(zmq.FD))
        self._receivers: deque[asyncio.Future[list[bytes]]] = deque()
        self._senders: deque[_PendingSend] = deque()
        # received for a receiver cancelled in the same loop iteration: the next one's
        self._kept: deque[list[bytes]] = deque()
        # POLLIN as of the last EVENTS read.  Unknown at first, so the first receive
        # looks: a pipe made by the caller's own connect signals nothing for its first
        # messages until the socket has once found it empty (libzmq's ypipe starts awake)
        self._readable = True
        self._closed = False
        self._loop.add_reader(self._fd, self._on_signal)

    @property
    def closed(self) -> bool:
        return self._closed

    async def recv_multipart(self) -> list[bytes]:
        """The next message's frames; waits for one."""
        if self._kept:
            return self._kept.popleft()
        if self._closed:
            raise zmq.ZMQError(zmq.ENOTSOCK)
        tried = self._readable and not self._receivers
        if tried:
            try:
                frames = self._recv()
            except zmq.Again:  # nothing after all: wait, as below
                pass
            else:
                self._serve()
                return frames
        future: asyncio.Future[list[bytes]] = self._loop.create_future()
        self._receivers.append(future)
        if tried:
            self._serve()  # the failed receive processed commands: look again
        try:
            return await future
        except asyncio.CancelledError:
            if not future.done():
                self._receivers.remove(future)
            elif not future.cancelled() and future.exception() is None:
                # the message came in the iteration the waiter was cancelled: it goes
                # to the next receiver rather than nowhere
                self._hand_on(future.result())
            raise

    async def send_multipart(self, frames: Sequence[bytes]) -> None:
        """Queue ``frames`` as one message.

        A send that finds no room (``zmq.Again``: no connected peer with ``IMMEDIATE``,
        a full queue) waits for room up to the socket's ``SNDTIMEO`` (forever at -1,
        libzmq's default), then raises ``zmq.Again``; other errors (``EHOSTUNREACH``
        from a ROUTER with ``ROUTER_MANDATORY``) raise at once.
        """
        if self._closed:
            raise zmq.ZMQError(zmq.ENOTSOCK)
        if not self._senders:
            try:
                send_now(self.sock, frames)
            except zmq.Again:
                pass
            else:
                self._serve()  # the send may have processed, and hidden, an arrival
                return
        timeout_ms = cast(int, self.sock.getsockopt(_SNDTIMEO))
        if timeout_ms == 0:
            raise zmq.Again()
        pending = _PendingSend(frames, self._loop.create_future())
        if timeout_ms > 0:
            pending.timer = self._loop.call_later(
                timeout_ms / _MS_PER_S, self._send_timed_out, pending
            )
        self._senders.append(pending)
        self._serve()
        try:
            await pending.future
        except asyncio.CancelledError:
            self._drop_send(pending)
            raise

    def open_monitor(self, events: int) -> LoopSocket:
        """A PAIR socket receiving this socket's ``events`` (``zmq.EVENT_*``), as pyzmq's
        ``get_monitor_socket`` gives, but a :class:`LoopSocket`."""
        address = f"inproc://loop-socket-monitor.{next(_monitor_numbers)}"
        self.sock.monitor(address, events)
        monitor = LoopSocket(self.sock.context, zmq.PAIR)
        monitor.sock.connect(address)
        return monitor

    def close(self, linger: int | None = None) -> None:
        """Stop watching the FD (before libzmq closes it), fail the waits, close."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        for receiver in self._receivers:
            if not receiver.done():
                receiver.set_exception(zmq.ZMQError(zmq.ENOTSOCK))
        for pending in self._senders:
            if pending.timer is not None:
                pending.timer.cancel()
            if not pending.future.done():
                pending.future.set_exception(zmq.ZMQError(zmq.ENOTSOCK))
        self._receivers.clear()
        self._senders.clear()
        self.sock.close(linger)

    # --- the socket, non-blocking ----------------------------------------------------

    def _recv(self) -> list[bytes]:
        """One whole message; raises ``zmq.Again`` when none is there.

        Frames, not ``recv_multipart``: ``Frame.more`` is a field, where reading
        ``RCVMORE`` per frame goes through a socket-option enum lookup."""
        frame = self.sock.recv(_NOBLOCK, copy=False)
        frames = [frame.bytes]
        while frame.more:  # the rest of a message arrives with its first frame
            frame = self.sock.recv(_NOBLOCK, copy=False)
            frames.append(frame.bytes)
        return frames

    def _on_signal(self) -> None:
        """The reader callback: with a receive waiting, the signal is most likely its
        message, so take it before the ``EVENTS`` read rather than after one (a read
        costs a system call or two: one per message saved)."""
        receivers = self._receivers
        while receivers and receivers[0].done():  # cancelled while waiting
            receivers.popleft()
        if receivers and not self._closed:
            try:
                frames = self._recv()
            except zmq.Again:  # another command (room to send, a new peer)
                pass
            else:
                receivers.popleft().set_result(frames)
        self._serve()

    def _serve(self) -> None:
        """Hand out what the socket holds to those waiting, until nothing more can go.

        Ends right after an ``EVENTS`` read that found nothing to do: libzmq has then
        processed its pending commands, so any later arrival or room signals the FD.
        The tail of every send and receive and of the reader callback.
        """
        if self._closed:
            return
        sock = self.sock
        receivers, senders = self._receivers, self._senders
        recv_failed = False
        while True:
            events = cast(int, sock.getsockopt(_EVENTS))
            self._readable = bool(events & _POLLIN)
            while receivers and receivers[0].done():  # cancelled while waiting
                receivers.popleft()
            if self._readable and receivers and not recv_failed:
                try:
                    frames = self._recv()
                except zmq.Again:  # EVENTS said yes, yet nothing came: not again this round
                    recv_failed = True
                else:
                    receivers.popleft().set_result(frames)
                continue
            while senders and senders[0].future.done():
                senders.popleft()
            if events & _POLLOUT and senders:
                # one try per report of room, as pyzmq's asyncio sockets do: a ROUTER
                # reports room while the one peer's queue may still be full
                pending = senders.popleft()
                if pending.timer is not None:
                    pending.timer.cancel()
                try:
                    send_now(sock, pending.frames)
                except zmq.ZMQError as exc:
                    pending.future.set_exception(exc)
                else:
                    pending.future.set_result(None)
                continue
            return

    def _hand_on(self, frames: list[bytes]) -> None:
        receivers = self._receivers
        while receivers and receivers[0].done():
            receivers.popleft()
        if receivers:
            receivers.popleft().set_result(frames)
        else:
            self._kept.append(frames)

    def _send_timed_out(self, pending: _PendingSend) -> None:
        self._drop_send(pending)
        if not pending.future.done():
            pending.future.set_exception(zmq.Again())

    def _drop_send(self, pending: _PendingSend) -> None:
        if pending.timer is not None:
            pending.timer.cancel()
        if pending in self._senders:
            self._senders.remove(pending)
