"""Real loopback TCP for the Concert V3 tests: the simulator in-process, and tiny
hand-written servers for the faults a simulator should not be asked to fake."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tp_manager.concert_v3 import ConcertV3Terminal
from tp_manager.concert_v3.codec import Field, FieldStreamDecoder
from tp_manager.concert_v3.messages import MANDATORY_REQUEST_TAGS
from tp_manager.simulator.concert_v3 import run_tcp_simulator
from tp_manager.simulator.scenarios import Scenario

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 5.0
REQUEST_READ_TIMEOUT_S = 5.0
# Short timers so every test runs in well under a second or two.
FAST = {
    "transaction_timeout": 2.0,
    "connect_timeout": 1.0,
    "probe_timeout": 0.5,
    "settle": 0.05,
    "echo_grace": 0.2,
}

StartSimulator = Callable[..., Awaitable[int]]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
StartServer = Callable[[Handler], Awaitable[int]]


def terminal(port: int, **overrides: object) -> ConcertV3Terminal:
    settings = {**FAST, **overrides}
    return ConcertV3Terminal(LOOPBACK, port, **settings)  # type: ignore[arg-type]


@pytest.fixture
async def start_simulator() -> AsyncIterator[StartSimulator]:
    """Start ``run_tcp_simulator`` on port 0 in this event loop; stopped after the test."""
    tasks: list[asyncio.Task[None]] = []

    async def start(
        default: Scenario = Scenario.APPROVE, slow_seconds: float = 0.3, **kwargs: object
    ) -> int:
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            run_tcp_simulator(
                LOOPBACK,
                0,
                default,
                slow_seconds,
                lambda _host, port: ready.set_result(port),
                **kwargs,  # type: ignore[arg-type]
            )
        )
        tasks.append(task)
        async with asyncio.timeout(READY_TIMEOUT_S):
            return await ready

    yield start
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """A tiny TCP server on 127.0.0.1:0 running ``handler`` per connection."""
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(handler: Handler) -> int:
        async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.transport.abort()

        server = await asyncio.start_server(wrapped, LOOPBACK, 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
    for writer in writers:
        writer.transport.abort()


def decode_whole(data: bytes) -> tuple[Field, ...]:
    """One whole message through the driver's decoder, fed at once (the transport feeds
    it segment by segment; test_codec_properties checks any split gives the same)."""
    decoder = FieldStreamDecoder()
    decoder.feed(data)
    return decoder.finish()


async def read_request(reader: asyncio.StreamReader) -> FieldStreamDecoder:
    """Read a driver's request whole: its mandatory tags, then whatever more comes within
    a short quiet time (the profile's optional tags, a forced CC)."""
    decoder = FieldStreamDecoder()
    async with asyncio.timeout(REQUEST_READ_TIMEOUT_S):
        for _ in range(1000):  # bounded; a request is under 100 bytes
            chunk = await reader.read(1024)
            if not chunk:
                break
            decoder.feed(chunk)
            if not decoder.has_partial_field and set(MANDATORY_REQUEST_TAGS) <= decoder.tags:
                # give optional tags (sent after the mandatory ones) a moment to arrive
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.02):
                        more = await reader.read(1024)
                        decoder.feed(more)
                break
    return decoder


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the peer gets a TCP RST, not a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def dead_port() -> int:
    """A port with nothing listening: bind a socket, note its port, close it."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])
