"""One Concert V3 exchange over TCP: connect, send the request, read the answer, close.

The register opens a connection per transaction (the terminal is the server).
Every way that can go wrong has its own error, so the layers above can tell
"nothing was sent, try again" (:class:`LinkDown` subclasses) from "the customer
may have paid" (:class:`LinkLost` subclasses, :class:`TransactionTimeout`).

Reading follows the completeness rule of :mod:`tp_manager.concert_v3.codec`:
read until the answer is ``COMPLETE`` and then keep reading while bytes still
come within ``settle`` seconds (trailing fields in a later segment); accept a
``USABLE`` answer (status present, an echo missing) once the line has been quiet
for ``echo_grace`` seconds; a close by the terminal ends reading at once.  A reset
(RST: embedded stacks often close with SO_LINGER 0) is a close too once the answer is
``USABLE`` or ``COMPLETE``: nothing more can come, and the answer stands; inside the
answer it is :class:`ConnectionReset` (the customer may have paid).  An ``AE=11``
("taken into account") is never the answer, even one that does not echo every field:
the result follows on the same connection, later or in the same segment (it begins
where a tag of the acknowledgement comes again).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final, cast

import structlog

from tp_manager.concert_v3.codec import (
    AnswerProgress,
    DuplicateTag,
    Field,
    FieldStreamDecoder,
    answer_progress,
)
from tp_manager.concert_v3.messages import STATUS_ACKNOWLEDGED, TAG_STATUS
from tp_manager.terminal.errors import (
    ConnectionRefused,
    ConnectionReset,
    ConnectTimeout,
    HostUnreachable,
    IncompleteAnswer,
    LinkDown,
    LinkLost,
    MalformedMessage,
    TransactionTimeout,
)
from tp_manager.terminal.model import Timings

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT_S: Final = 5.0  # TCP connect, DNS included
TRANSACTION_TIMEOUT_S: Final = 120.0  # request sent .. whole answer read
PROBE_TIMEOUT_S: Final = 2.0  # check(): connect + close
ANSWER_SETTLE_S: Final = 0.1  # after a complete answer, wait this long for trailing fields
ECHO_GRACE_S: Final = 1.0  # accept an answer missing an echoed field after this much quiet
CLOSE_TIMEOUT_S: Final = 1.0  # wait for our FIN to be handled before giving up
MAX_ANSWER_BYTES: Final = 64 * 1024  # far above any real answer; stops a babbling peer

_UNREACHABLE_ERRNOS: Final = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}
)


@dataclass(frozen=True, slots=True)
class ExchangeTimeouts:
    connect: float = CONNECT_TIMEOUT_S
    transaction: float = TRANSACTION_TIMEOUT_S
    settle: float = ANSWER_SETTLE_S
    echo_grace: float = ECHO_GRACE_S


@dataclass(slots=True)
class ExchangeProgress:
    """Filled in as the exchange goes, so a caller that cancels it knows how far it got."""

    connected: bool = False
    request_sent: bool = False
    answer_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Exchange:
    fields: tuple[Field, ...]
    segments: int  # TCP reads that brought answer bytes
    timings: Timings = field(default_factory=Timings)


def connect_error(exc: OSError, host: str, port: int) -> LinkDown:
    """Name what stopped a TCP connect (nothing was sent)."""
    where = f"{host}:{port}"
    if isinstance(exc, ConnectionRefusedError) or "Connection refused" in str(exc):
        return ConnectionRefused(
            f"terminal at {where} refused the connection: nothing listens on that port "
            "(terminal off, wrong port, or not in cash-register mode)"
        )
    if isinstance(exc, socket.gaierror):
        return HostUnreachable(f"cannot resolve terminal host {host!r}: {exc.strerror or exc}")
    if exc.errno in _UNREACHABLE_ERRNOS:
        return HostUnreachable(
            f"terminal host {where} is unreachable ({exc.strerror or exc}): "
            "check the network and the terminal's IP address"
        )
    return LinkDown(f"cannot connect to terminal at {where}: {exc}")


class _Connection(asyncio.Protocol):
    """One TCP connection's events, as they come: bytes, the peer's end, the loss.

    It only moves bytes: what they mean is the :class:`_AnswerReader`'s, which hears of
    them the moment the event loop reads them (no stream buffer, no reader task woken per
    read, no timeout context per read).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader: _AnswerReader | None = None
        # what came before a reader was attached, in order: bytes, or an end (None for
        # the peer's close, the error of a loss), as a stream would have buffered it
        self._early: list[bytes | Exception | None] = []
        self.lost = False
        self.lost_error: Exception | None = None
        self.closed: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        self._drained: asyncio.Future[None] | None = None  # while the kernel's buffer is full

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport subclasses
        self.transport = cast(asyncio.Transport, transport)

    def attach(self, reader: _AnswerReader) -> None:
        """From now on the connection's events go to ``reader``, the earlier ones first."""
        self.reader = reader
        early, self._early = self._early, []
        for event in early:
            if isinstance(event, bytes):
                reader.received(event)
            else:
                reader.ended(event)

    def data_received(self, data: bytes) -> None:
        if self.reader is not None:
            self.reader.received(data)
        else:
            self._early.append(data)

    def eof_received(self) -> bool:
        if self.reader is not None:
            self.reader.ended(None)
        else:
            self._early.append(None)
        return True  # half-closed: we close when done, as a stream would

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost, self.lost_error = True, exc
        if not self.closed.done():
            self.closed.set_result(None)
        self._resume()
        if self.reader is not None:
            self.reader.ended(exc)
        else:
            self._early.append(exc)

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        self._resume()

    def _resume(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    async def drain(self) -> None:
        """Wait for room to write; ``ConnectionResetError`` (or the loss's own error)
        once the connection is lost, as a stream's ``drain`` raises."""
        if self._drained is not None:
            await self._drained
        if self.lost:
            raise self.lost_error or ConnectionResetError("Connection lost")


async def _connect(host: str, port: int, connect_s: float) -> tuple[asyncio.Transport, _Connection]:
    loop = asyncio.get_running_loop()
    connection = _Connection(loop)
    try:
        async with asyncio.timeout(connect_s):
            await loop.create_connection(lambda: connection, host, port)
    except TimeoutError:
        raise ConnectTimeout(
            f"no TCP connection to terminal at {host}:{port} within {connect_s:g} s "
            "(terminal off, busy with another connection, or a firewall drops packets)"
        ) from None
    except OSError as exc:
        raise connect_error(exc, host, port) from None
    assert connection.transport is not None
    return connection.transport, connection


async def _close(transport: asyncio.Transport, connection: _Connection, *, abort: bool) -> None:
    if abort:
        transport.abort()
        return
    transport.close()
    if connection.closed.done():
        return
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await connection.closed
    except TimeoutError:
        transport.abort()


async def probe(host: str, port: int, connect_s: float = PROBE_TIMEOUT_S) -> float:
    """Connect and close at once; the connect time in ms, or a :class:`LinkDown` error."""
    started = time.monotonic()
    transport, connection = await _connect(host, port, connect_s)
    elapsed = (time.monotonic() - started) * 1000
    await _close(transport, connection, abort=False)
    return elapsed


def _ms(since: float) -> float:
    return (time.monotonic() - since) * 1000


async def exchange(
    host: str,
    port: int,
    payload: bytes,
    echo_tags: Collection[str],
    timeouts: ExchangeTimeouts = ExchangeTimeouts(),
    progress: ExchangeProgress | None = None,
) -> Exchange:
    """Run one request/answer exchange; the connection is closed whatever happens."""
    progress = progress if progress is not None else ExchangeProgress()
    started = time.monotonic()
    transport, connection = await _connect(host, port, timeouts.connect)
    progress.connected = True
    connect_ms = _ms(started)
    log.debug("concert_v3.tcp.connected", host=host, port=port, connect_ms=round(connect_ms, 1))
    reader = _AnswerReader(host, port, echo_tags, timeouts, progress)
    connection.attach(reader)
    clean = False
    try:
        sending = time.monotonic()
        try:
            transport.write(payload)
            progress.request_sent = True
            await connection.drain()
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise ConnectionReset(
                f"terminal at {host}:{port} reset the connection while the request was sent: {exc}"
            ) from None
        except OSError as exc:  # part of the request may have left: the terminal may act
            raise LinkLost(
                f"terminal at {host}:{port} was lost while the request was sent "
                f"({_os_reason(exc)}); the customer may have paid: check the terminal"
            ) from None
        request_ms = _ms(sending)
        log.debug("concert_v3.request.sent", bytes=len(payload))
        fields, segments, first_byte_at = await reader.answer()
        clean = True
    finally:
        reader.stop()
        await _close(transport, connection, abort=not clean)
    wait_ms = (first_byte_at - sending) * 1000 - request_ms
    return Exchange(
        fields=fields,
        segments=segments,
        timings=Timings(
            connect_ms=connect_ms,
            request_ms=request_ms,
            wait_ms=max(wait_ms, 0.0),
            total_ms=_ms(started),
        ),
    )


class _AnswerReader:
    """The module docstring's reading rule, driven by the connection's events.

    Bytes are decoded as they arrive; after each arrival one timer is set for what the
    answer's state allows: the transaction deadline while it is ``PARTIAL``, the settle
    time once ``COMPLETE``, the echo grace while ``USABLE`` (never past the deadline).
    The timer firing, the peer's end or a bad byte ends reading with the answer or an
    error; bytes after that are not read.  Its callbacks run in the context the
    connection was made in (the payment's log context).
    """

    def __init__(
        self,
        host: str,
        port: int,
        echo_tags: Collection[str],
        timeouts: ExchangeTimeouts,
        progress: ExchangeProgress,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._host, self._port = host, port
        self._echo_tags = echo_tags
        self._timeouts = timeouts
        self._progress = progress
        self._decoder = FieldStreamDecoder()
        self._state = AnswerProgress.PARTIAL
        self._segments = 0
        self._total = 0
        self._first_byte_at: float | None = None
        self._deadline: float | None = None  # set once the request is sent
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._done: asyncio.Future[tuple[tuple[Field, ...], int, float]] = (
            self._loop.create_future()
        )

    async def answer(self) -> tuple[tuple[Field, ...], int, float]:
        """The answer's fields, the reads that brought them, when its first byte came."""
        self._deadline = self._loop.time() + self._timeouts.transaction
        self._arm()
        return await self._done

    def stop(self) -> None:
        """No more timers, and nothing more to hear (the exchange ended or was cancelled):
        an end that comes later, or one nobody awaited (the peer reset the connection
        before the request was sent), is not reported twice."""
        self._cancel_timer()
        if not self._done.done():
            self._done.cancel()
        elif not self._done.cancelled():
            self._done.exception()  # seen: the exchange raised its own error

    def received(self, chunk: bytes) -> None:
        if self._done.done():
            return
        if self._first_byte_at is None:
            self._first_byte_at = time.monotonic()
        self._segments += 1
        self._total += len(chunk)
        self._progress.answer_bytes = self._total
        log.debug("concert_v3.answer.segment", bytes=len(chunk), total=self._total)
        if self._total > MAX_ANSWER_BYTES:
            self._fail(MalformedMessage(f"answer longer than {MAX_ANSWER_BYTES} bytes"))
            return
        try:
            self._feed(chunk)
        except MalformedMessage as exc:
            self._fail(exc)
            return
        state = answer_progress(self._decoder, self._echo_tags)
        if state is not AnswerProgress.PARTIAL and _is_acknowledgement(self._decoder):
            # BA=1 style "taken into account": the result follows on this connection.
            if state is AnswerProgress.COMPLETE:  # the acknowledgement is whole
                log.warning("concert_v3.answer.unexpected_ack")
                self._decoder = FieldStreamDecoder()
            # else it may still lack an echo: kept, until its first tag comes again
            state = AnswerProgress.PARTIAL  # nothing of the result yet
        self._state = state
        self._arm()

    def _feed(self, chunk: bytes) -> None:
        """Decode ``chunk``; where a tag of an acknowledgement (``AE=11``) comes again,
        the result begins (both may come in one segment)."""
        data = chunk
        while True:  # bounded: each pass after the first consumes a whole field at least
            before = self._decoder.byte_count
            try:
                self._decoder.feed(data)
                return
            except DuplicateTag as exc:
                if not _is_acknowledgement(self._decoder):
                    raise
                log.warning("concert_v3.answer.unexpected_ack")
                # the decoder stopped on the tag's second byte; its first may have come
                # in an earlier segment: the new message starts with the whole tag
                second = self._decoder.byte_count - before
                data = exc.tag.encode("ascii") + data[second + 1 :]
                self._decoder = FieldStreamDecoder()

    def ended(self, exc: Exception | None) -> None:
        """The peer closed (``exc`` None) or the connection was lost."""
        if self._done.done():
            return
        reset = isinstance(exc, (ConnectionResetError, BrokenPipeError))
        if exc is None or (reset and self._state is not AnswerProgress.PARTIAL):
            if self._state is AnswerProgress.PARTIAL:
                self._fail(_closed_error(self._host, self._port, self._decoder))
            else:
                self._finish()
        elif reset:
            self._fail(
                ConnectionReset(
                    f"terminal at {self._host}:{self._port} reset the connection after "
                    f"{self._total} answer bytes: {exc}"
                )
            )
        else:  # a timeout, an unreachable host: the line is gone, whatever it was
            self._fail(
                LinkLost(
                    f"terminal at {self._host}:{self._port} was lost after {self._total} "
                    f"answer bytes ({_os_reason(exc)}); the customer may have paid: "
                    "check the terminal"
                )
            )

    def _arm(self) -> None:
        deadline = self._deadline
        if deadline is None or self._done.done():
            return  # the request is not sent yet: its answer() sets the first timer
        state = self._state
        now = self._loop.time()
        if state is AnswerProgress.COMPLETE:
            at = min(now + self._timeouts.settle, deadline)
        elif state is AnswerProgress.USABLE:
            at = min(now + self._timeouts.echo_grace, deadline)
        else:
            at = deadline
        if at <= now:
            self._quiet()
            return
        if self._timer is not None:
            if at == self._timer_at:
                return  # still the deadline
            self._timer.cancel()
        self._timer, self._timer_at = self._loop.call_at(at, self._quiet), at

    def _quiet(self) -> None:
        """Nothing came in the time the state allowed."""
        self._timer = None
        if self._done.done():
            return
        if self._state is AnswerProgress.PARTIAL:
            self._fail(_timeout_error(self._host, self._port, self._timeouts, self._decoder))
        else:
            self._finish()

    def _fail(self, exc: BaseException) -> None:
        self._cancel_timer()
        self._done.set_exception(exc)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _finish(self) -> None:
        self._cancel_timer()
        decoder = self._decoder
        fields = decoder.finish()
        if self._state is AnswerProgress.USABLE:
            missing = sorted(set(self._echo_tags) - decoder.tags)
            log.warning("concert_v3.answer.echo_missing", missing=missing)
        assert self._first_byte_at is not None  # not PARTIAL implies bytes were read
        log.debug(
            "concert_v3.answer.received",
            bytes=self._total,
            segments=self._segments,
            fields=len(fields),
        )
        self._done.set_result((fields, self._segments, self._first_byte_at))


def _is_acknowledgement(decoder: FieldStreamDecoder) -> bool:
    """A complete answer that only says the request was taken into account."""
    return dict(decoder.fields).get(TAG_STATUS) == STATUS_ACKNOWLEDGED


def _timeout_error(
    host: str, port: int, timeouts: ExchangeTimeouts, decoder: FieldStreamDecoder
) -> TransactionTimeout:
    got = f"only {decoder.byte_count} bytes of an answer" if decoder.byte_count else "no answer"
    return TransactionTimeout(
        f"terminal at {host}:{port} sent {got} within the transaction timeout "
        f"({timeouts.transaction:g} s); the customer may have paid: check the terminal"
    )


def _os_reason(exc: BaseException) -> str:
    """``Connection timed out`` rather than ``[Errno 110] Connection timed out``."""
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__


def _closed_error(host: str, port: int, decoder: FieldStreamDecoder) -> LinkLost:
    if decoder.byte_count == 0:
        return LinkLost(
            f"terminal at {host}:{port} closed the connection without answering; "
            "the customer may have paid: check the terminal"
        )
    return IncompleteAnswer(
        f"terminal at {host}:{port} closed the connection after {decoder.byte_count} bytes "
        "of an incomplete answer; the customer may have paid: check the terminal"
    )
