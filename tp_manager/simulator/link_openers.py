"""Open the simulator's end of the line: a fresh pseudo-terminal or a real serial device."""

from __future__ import annotations

import contextlib
import os
import tty

from tp_manager.simulator.byte_link import ByteLink, LineSettings


def open_pty_link(settings: LineSettings, pace: bool) -> tuple[ByteLink, str]:
    """A new pty pair; the register opens the returned path to the slave.

    The slave is put in raw mode (no echo, no line discipline, no CR/LF
    translation) so protocol bytes cross unchanged.  The simulator keeps its own
    slave descriptor open: the master then never sees EIO when a register closes
    and reopens the path between transactions.

    The path is ``/proc/<pid>/fd/<slave>``, not ``/dev/pts/N``: it exists only
    while this simulator holds the pty.  The kernel hands a freed pty number to
    the next ``openpty`` at once, so a register still reconnecting to a dead
    simulator's ``/dev/pts/N`` (its driver retries with backoff) would open the
    *next* simulator's line and read half its bytes -- an ENQ ACKed by the
    stranger, the answer frame landing in our driver while it waits for ENQ.
    """
    master, slave = os.openpty()
    tty.setraw(slave)
    path = f"/proc/{os.getpid()}/fd/{slave}"

    def close() -> None:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    link = ByteLink(master, close, f"pty {path}", settings if pace else None)
    return link, path


def open_serial_link(path: str, settings: LineSettings, pace: bool) -> ByteLink:
    """An existing serial device, configured through pyserial."""
    import serial  # imported here: only --device needs pyserial

    port = serial.Serial(
        port=path,
        baudrate=settings.baudrate,
        bytesize=settings.bytesize,
        parity=settings.parity,
        stopbits=settings.stopbits,
        timeout=0,
        write_timeout=0,
    )
    return ByteLink(port.fileno(), port.close, f"serial {path}", settings if pace else None)
