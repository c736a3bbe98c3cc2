"""The serial port under the Concert V2 link: open, read into a callback, write, close.

The port is opened with pyserial (so open errors carry an errno we can map to a
typed fault) and then driven by pyserial-asyncio's transport on the event loop; a write
the port takes at once skips the transport's queue (:meth:`SerialTransport.write`).
A read error (EIO/ENXIO when a USB terminal is unplugged or the other end of a
pty is closed) or an end of file ends the connection with :class:`LinkLost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import getpass
import os
import termios
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import serial
import serial_asyncio
import structlog

from tp_manager.terminal.errors import (
    LinkDown,
    LinkLost,
    PortNotFound,
    PortPermissionDenied,
    PortSettingsRejected,
    TerminalError,
)

log = structlog.get_logger(__name__)

PARITIES: dict[str, str] = {
    "none": serial.PARITY_NONE,
    "even": serial.PARITY_EVEN,
    "odd": serial.PARITY_ODD,
    "n": serial.PARITY_NONE,
    "e": serial.PARITY_EVEN,
    "o": serial.PARITY_ODD,
}
BYTESIZES: dict[int, int] = {7: serial.SEVENBITS, 8: serial.EIGHTBITS}
STOPBITS: dict[int, float] = {1: serial.STOPBITS_ONE, 2: serial.STOPBITS_TWO}
DEFAULT_BAUDRATE = 9600

# The opened port's settings that ``concert_v2.transport.opened`` logs.
IN_EFFECT_LOGGED = ("baudrate", "bytesize", "parity", "stopbits", "rtscts")

_LOST_ERRNOS = frozenset({errno.EIO, errno.ENXIO, errno.ENODEV, errno.EBADF})


@dataclass(frozen=True, slots=True)
class SerialSettings:
    """What the seed config calls baudRate, dataBits, parity, stopBits; and rtscts."""

    port: str
    baudrate: int = DEFAULT_BAUDRATE
    bytesize: int = 8
    parity: str = "none"
    stopbits: int = 1
    rtscts: bool = False  # RTS/CTS hardware flow control

    def pyserial_kwargs(self) -> dict[str, Any]:
        parity = PARITIES.get(str(self.parity).lower())
        if parity is None:
            raise ValueError(f"parity must be none, even or odd, got {self.parity!r}")
        if self.bytesize not in BYTESIZES:
            raise ValueError(f"data bits must be 7 or 8, got {self.bytesize!r}")
        if self.stopbits not in STOPBITS:
            raise ValueError(f"stop bits must be 1 or 2, got {self.stopbits!r}")
        if not isinstance(self.baudrate, int) or self.baudrate <= 0:
            raise ValueError(f"baud rate must be a positive integer, got {self.baudrate!r}")
        return {
            "baudrate": self.baudrate,
            "bytesize": BYTESIZES[self.bytesize],
            "parity": parity,
            "stopbits": STOPBITS[self.stopbits],
            "rtscts": bool(self.rtscts),
            "timeout": 0,
        }


def map_open_error(exc: BaseException, port: str) -> TerminalError:
    """Turn what opening a port raised into the typed fault the register sees."""
    code = getattr(exc, "errno", None)
    if isinstance(exc, FileNotFoundError) or code == errno.ENOENT:
        return PortNotFound(f"serial port {port} does not exist: is the terminal plugged in?")
    if isinstance(exc, PermissionError) or code in (errno.EACCES, errno.EPERM):
        try:
            user = getpass.getuser()
        except Exception:  # no name for this uid (containers)
            user = "$USER"
        return PortPermissionDenied(
            f"permission denied on serial port {port}: add the service user to the dialout "
            f"group (sudo usermod -a -G dialout {user}) and log in again"
        )
    if isinstance(exc, termios.error) or code == errno.EINVAL:
        return PortSettingsRejected(
            f"serial port {port} rejected the line settings ({exc}): check baudRate, dataBits, "
            "parity and stopBits against the terminal's own settings"
        )
    if code in (errno.EBUSY, errno.EAGAIN):  # EAGAIN: another program holds its lock
        return LinkDown(f"serial port {port} is in use by another program")
    if code in _LOST_ERRNOS:
        return LinkDown(f"serial port {port} is not usable: {exc}")
    return LinkDown(f"cannot open serial port {port}: {exc}")


def map_io_error(exc: BaseException | None, port: str) -> LinkLost:
    """A read/write failure or end of file on an open port."""
    if exc is None:
        return LinkLost(f"serial port {port} closed (end of file)")
    return LinkLost(f"serial port {port} failed: {exc}")


def open_port(settings: SerialSettings) -> serial.Serial:
    """Open and configure the port synchronously; raise a typed LinkDown on failure.

    Kept synchronous and separate so the error mapping is exercised by the real
    ``open`` (tests run it as an unprivileged user to get a real EACCES).
    """
    kwargs = settings.pyserial_kwargs()
    try:
        # exclusive: flock(LOCK_EX), so a second program on the line fails loudly
        # instead of reading half of each exchange.  serial_for_url: the config takes a
        # socket:// URL (a terminal behind a serial server in raw TCP mode) as well as a
        # device path, which it opens as serial.Serial does.
        port: serial.Serial = serial.serial_for_url(settings.port, exclusive=True, **kwargs)
        return port
    except (OSError, serial.SerialException, termios.error) as exc:
        raise map_open_error(_errno_of(exc), settings.port) from exc


def _errno_of(exc: BaseException) -> BaseException:
    """pyserial wraps termios' EINVAL in a SerialException whose errno is the only trace."""
    if isinstance(exc, termios.error) and exc.args and isinstance(exc.args[0], int):
        return OSError(exc.args[0], str(exc.args[-1]))
    return exc


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: SerialTransport) -> None:
        self._owner = owner

    def data_received(self, data: bytes) -> None:
        self._owner._data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._lost(exc)


class SerialTransport:
    """An open port: bytes go to ``on_data``; the end of the link to ``on_lost`` once."""

    def __init__(
        self,
        settings: SerialSettings,
        on_data: Callable[[bytes], None],
        on_lost: Callable[[LinkLost], None],
    ) -> None:
        self.settings = settings
        self._on_data = on_data
        self._on_lost = on_lost
        self._transport: asyncio.BaseTransport | None = None
        self._port: serial.Serial | None = None
        self._closing = False
        self._lost_reported = False
        self.closed = asyncio.Event()

    @classmethod
    async def open(
        cls,
        settings: SerialSettings,
        on_data: Callable[[bytes], None],
        on_lost: Callable[[LinkLost], None],
    ) -> SerialTransport:
        self = cls(settings, on_data, on_lost)
        port = open_port(settings)
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await serial_asyncio.connection_for_serial(
                loop, lambda: _Protocol(self), port
            )
        except (OSError, serial.SerialException, termios.error) as exc:
            port.close()
            raise map_open_error(_errno_of(exc), settings.port) from exc
        self._transport = transport
        self._port = port
        line = self.in_effect()
        log.info(
            "concert_v2.transport.opened",
            port=settings.port,
            **{name: line.get(name) for name in IN_EFFECT_LOGGED},
        )
        return self

    def in_effect(self) -> dict[str, Any]:
        """The line settings as the opened port reports them (pyserial's ``get_settings``):
        what the driver actually runs on, not what it asked for."""
        return dict(self._port.get_settings()) if self._port is not None else {}

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self.closed.is_set()

    def write(self, data: bytes) -> None:
        """Send ``data`` without blocking: at once when the port takes it, else queued.

        pyserial-asyncio (0.6) queues every write and arms a writer callback for it: an
        ``add_writer``, a loop turn and a ``remove_writer`` per frame, ten frames and
        control bytes a payment.  A port whose queue is empty takes a frame of a few
        dozen bytes whole (its buffer holds kilobytes), so it is written here; what it
        does not take, and anything after it, goes through the transport's queue, in
        order.  The port's descriptor is non-blocking (pyserial opens it so).
        """
        if not self.is_open:
            raise map_io_error(None, self.settings.port)
        transport = self._transport
        assert transport is not None and self._port is not None
        try:
            if transport.get_write_buffer_size() == 0:  # type: ignore[attr-defined]
                try:
                    sent = os.write(self._port.fileno(), data)
                except BlockingIOError:  # the port's buffer is full: queue it all
                    sent = 0
                if sent == len(data):
                    return
                data = data[sent:]
            transport.write(data)  # type: ignore[attr-defined]
        except (OSError, serial.SerialException) as exc:
            raise map_io_error(exc, self.settings.port) from exc

    def discard_queued(self) -> None:
        """Drop the bytes the port refused and the transport still queues.

        The port refuses bytes only on a line that does not move (its output stopped:
        RTS/CTS with the terminal off, CTS low).  They belong to an exchange that is over;
        sent when the line moves again, a stale ENQ would open a session nobody runs and
        its ACK be read as the answer to the next ENQ or request frame.  What the kernel
        took is left alone: at 9600 baud the last EOT of the exchange before may still be
        on its way.
        """
        transport = self._transport
        if transport is not None and not self.closed.is_set():
            transport.flush()  # type: ignore[attr-defined]  # pyserial-asyncio: clears its queue

    def close(self) -> None:
        """Close on purpose, at once: ``on_lost`` is not called; unsent bytes are dropped.

        A graceful close would wait for the transport's queue to drain, which on a line
        that does not move never happens: the port would stay open, and locked, for good.
        And pyserial drains the kernel's output (``tcdrain``) before closing, which on such
        a line would block the event loop: the kernel's unsent output is flushed first.
        """
        self._closing = True
        port = self._port
        if self._transport is not None and not self.closed.is_set():
            if port is not None:
                with contextlib.suppress(OSError, termios.error, serial.SerialException):
                    port.reset_output_buffer()  # tcflush(TCOFLUSH)
            self._transport.abort()  # type: ignore[attr-defined]

    def _data(self, data: bytes) -> None:
        self._on_data(data)

    def _lost(self, exc: Exception | None) -> None:
        self.closed.set()
        if self._closing or self._lost_reported:
            return
        self._lost_reported = True
        error = map_io_error(exc, self.settings.port)
        log.warning("concert_v2.transport.lost", port=self.settings.port, reason=str(exc))
        self._on_lost(error)
