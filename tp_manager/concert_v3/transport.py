"""One Concert V3 exchange over TCP: connect, send the request, read the answer, close.

The register opens a connection per transaction (the terminal is the server).
Every way that can go wrong has its own error, so the layers above can tell
"nothing was sent, try again" (:class:`LinkDown` subclasses) from "the customer
may have paid" (:class:`LinkLost` subclasses, :class:`TransactionTimeout`).

Reading follows the completeness rule of :mod:`tp_manager.concert_v3.codec`:
read until the answer is ``COMPLETE`` and then keep reading while bytes still
come within ``settle`` seconds (trailing fields in a later segment); accept a
``USABLE`` answer (status present, an echo missing) once the line has been quiet
for ``echo_grace`` seconds; a close by the terminal ends reading at once.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final

import structlog

from tp_manager.concert_v3.codec import (
    AnswerProgress,
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
READ_CHUNK: Final = 4096
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


async def open_connection(
    host: str, port: int, connect_s: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        async with asyncio.timeout(connect_s):
            return await asyncio.open_connection(host, port)
    except TimeoutError:
        raise ConnectTimeout(
            f"no TCP connection to terminal at {host}:{port} within {connect_s:g} s "
            "(terminal off, busy with another connection, or a firewall drops packets)"
        ) from None
    except OSError as exc:
        raise connect_error(exc, host, port) from None


async def _close(writer: asyncio.StreamWriter, *, abort: bool) -> None:
    if abort:
        writer.transport.abort()
        return
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        writer.transport.abort()


async def probe(host: str, port: int, connect_s: float = PROBE_TIMEOUT_S) -> float:
    """Connect and close at once; the connect time in ms, or a :class:`LinkDown` error."""
    started = time.monotonic()
    _reader, writer = await open_connection(host, port, connect_s)
    elapsed = (time.monotonic() - started) * 1000
    await _close(writer, abort=False)
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
    reader, writer = await open_connection(host, port, timeouts.connect)
    progress.connected = True
    connect_ms = _ms(started)
    log.debug("concert_v3.tcp.connected", host=host, port=port, connect_ms=round(connect_ms, 1))
    clean = False
    try:
        sending = time.monotonic()
        try:
            writer.write(payload)
            progress.request_sent = True
            await writer.drain()
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise ConnectionReset(
                f"terminal at {host}:{port} reset the connection while the request was sent: {exc}"
            ) from None
        request_ms = _ms(sending)
        log.debug("concert_v3.request.sent", bytes=len(payload))
        fields, segments, first_byte_at = await _read_answer(
            reader, host, port, echo_tags, timeouts, progress
        )
        clean = True
    finally:
        await _close(writer, abort=not clean)
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


async def _read_answer(
    reader: asyncio.StreamReader,
    host: str,
    port: int,
    echo_tags: Collection[str],
    timeouts: ExchangeTimeouts,
    progress: ExchangeProgress,
) -> tuple[tuple[Field, ...], int, float]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeouts.transaction
    decoder = FieldStreamDecoder()
    segments = 0
    total = 0
    first_byte_at: float | None = None
    # Each pass either reads at least one byte or ends the loop, and the total is
    # capped by MAX_ANSWER_BYTES and the deadline, so the loop is bounded.
    while True:
        state = answer_progress(decoder, echo_tags)
        remaining = deadline - loop.time()
        if state is AnswerProgress.COMPLETE:
            wait = min(timeouts.settle, remaining)
        elif state is AnswerProgress.USABLE:
            wait = min(timeouts.echo_grace, remaining)
        else:
            wait = remaining
        try:
            if wait <= 0:
                raise TimeoutError
            async with asyncio.timeout(wait):
                chunk = await reader.read(READ_CHUNK)
        except TimeoutError:
            if state is AnswerProgress.PARTIAL:
                raise _timeout_error(host, port, timeouts, decoder) from None
            break
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise ConnectionReset(
                f"terminal at {host}:{port} reset the connection after {total} answer bytes: {exc}"
            ) from None
        if not chunk:
            if state is AnswerProgress.PARTIAL:
                raise _closed_error(host, port, decoder)
            break
        if first_byte_at is None:
            first_byte_at = time.monotonic()
        segments += 1
        total += len(chunk)
        progress.answer_bytes = total
        log.debug("concert_v3.answer.segment", bytes=len(chunk), total=total)
        if total > MAX_ANSWER_BYTES:
            raise MalformedMessage(f"answer longer than {MAX_ANSWER_BYTES} bytes")
        decoder.feed(chunk)
        if _is_acknowledgement(decoder, echo_tags):
            # BA=1 style "taken into account": the result follows on this connection.
            log.warning("concert_v3.answer.unexpected_ack")
            decoder = FieldStreamDecoder()
    fields = decoder.finish()
    if state is AnswerProgress.USABLE:
        missing = sorted(set(echo_tags) - decoder.tags)
        log.warning("concert_v3.answer.echo_missing", missing=missing)
    assert first_byte_at is not None  # not PARTIAL implies bytes were read
    log.debug("concert_v3.answer.received", bytes=total, segments=segments, fields=len(fields))
    return fields, segments, first_byte_at


def _is_acknowledgement(decoder: FieldStreamDecoder, echo_tags: Collection[str]) -> bool:
    if answer_progress(decoder, echo_tags) is not AnswerProgress.COMPLETE:
        return False
    return dict(decoder.fields).get(TAG_STATUS) == STATUS_ACKNOWLEDGED


def _timeout_error(
    host: str, port: int, timeouts: ExchangeTimeouts, decoder: FieldStreamDecoder
) -> TransactionTimeout:
    got = f"only {decoder.byte_count} bytes of an answer" if decoder.byte_count else "no answer"
    return TransactionTimeout(
        f"terminal at {host}:{port} sent {got} within the transaction timeout "
        f"({timeouts.transaction:g} s); the customer may have paid: check the terminal"
    )


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
