"""A byte pipe to the register over a file descriptor: a pty master or a serial port.

Both kinds are non-blocking file descriptors, so one small class serves them:
an asyncio reader callback fills a buffer, the terminal logic reads one byte at
a time with a deadline (the protocol is byte-driven: ENQ, ACK, NAK, EOT), and
writes may be paced at the line's baud rate so a pty behaves like a cable.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

READ_CHUNK = 4096
WRITE_RETRY_S = 0.005  # wait when the kernel buffer is full (EAGAIN)
WRITE_RETRY_LIMIT = 2000  # ~10 s of a full buffer before giving up


class LinkClosed(ConnectionError):
    """The other end went away (EIO/EOF) or the link was closed on purpose."""


@dataclass(frozen=True, slots=True)
class LineSettings:
    """Serial framing: used to open a device and to pace bytes on any link."""

    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"  # N, E, O, M, S
    stopbits: float = 1

    @property
    def bits_per_byte(self) -> float:
        """Start bit + data bits + parity bit (if any) + stop bits: 10 for 8N1, 11 for 8E1."""
        parity_bits = 0 if self.parity == "N" else 1
        return 1 + self.bytesize + parity_bits + self.stopbits

    @property
    def byte_seconds(self) -> float:
        return self.bits_per_byte / self.baudrate


class ByteLink:
    """One open link. ``close_fn`` releases what ``fd`` belongs to (pty pair, Serial)."""

    def __init__(
        self,
        fd: int,
        close_fn: Callable[[], None],
        description: str,
        pace: LineSettings | None = None,
    ) -> None:
        self._fd = fd
        self._close_fn = close_fn
        self.description = description
        self._pace = pace
        self._buffer = bytearray()
        self._data = asyncio.Event()
        self._closed = False
        self._eof = False
        os.set_blocking(fd, False)
        asyncio.get_running_loop().add_reader(fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:  # EIO: the other side of a pty is gone
            chunk = b""
        if not chunk:
            self._eof = True
            asyncio.get_running_loop().remove_reader(self._fd)
        else:
            self._buffer += chunk
        self._data.set()

    async def read_byte(self, seconds: float | None) -> int | None:
        """Next byte, or ``None`` after ``seconds`` (``None``: wait forever)."""
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        while not self._buffer:
            if self._closed or self._eof:
                raise LinkClosed(self.description)
            self._data.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            try:
                async with asyncio.timeout(remaining):
                    await self._data.wait()
            except TimeoutError:
                return None
        byte = self._buffer[0]
        del self._buffer[0]
        return byte

    def drain_input(self) -> bytes:
        """Forget what the register sent while the terminal was busy; returns it for logs."""
        stale = bytes(self._buffer)
        self._buffer.clear()
        return stale

    async def write(self, data: bytes) -> None:
        """Write everything; with pacing, one byte per byte-time of the line."""
        if self._pace is None:
            await self._write_raw(data)
            return
        step = self._pace.byte_seconds
        start = time.monotonic()
        for index, byte in enumerate(data):
            await self._write_raw(bytes([byte]))
            delay = start + (index + 1) * step - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _write_raw(self, data: bytes) -> None:
        view = memoryview(data)
        for _ in range(WRITE_RETRY_LIMIT):
            if self._closed:
                raise LinkClosed(self.description)
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                written = 0
            except OSError as exc:
                raise LinkClosed(f"{self.description}: {exc}") from exc
            view = view[written:]
            if not view:
                return
            await asyncio.sleep(WRITE_RETRY_S)
        raise LinkClosed(f"{self.description}: write stalled")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._data.set()
        if not self._eof:
            asyncio.get_running_loop().remove_reader(self._fd)
        self._close_fn()
