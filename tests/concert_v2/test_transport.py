"""SerialTransport's writes on a real pseudo-terminal.

A write the port takes at once goes straight to its descriptor; what it cannot take
yet waits in pyserial-asyncio's queue and goes out, in order and whole, when the other
end drains the line; no write ever blocks the event loop.  A write after the device
went away is ``LinkLost``, and the loss is reported once.
"""

from __future__ import annotations

import asyncio
import os
import tty

import pytest

from tp_manager.concert_v2.transport import SerialSettings, SerialTransport
from tp_manager.terminal.errors import LinkLost

# Far more than a pty holds before its writer gets EAGAIN (a few kB on Linux).
BLOCK = bytes(range(256)) * 64  # 16 kB
BLOCKS = 16
WAIT_S = 10.0


def queued(transport: SerialTransport) -> int:
    """Bytes waiting in pyserial-asyncio's queue for the port to take them."""
    assert transport._transport is not None
    return int(transport._transport.get_write_buffer_size())  # type: ignore[attr-defined]


async def test_a_frame_goes_straight_out_and_what_the_port_cannot_take_follows_in_order() -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    os.set_blocking(master, False)
    lost: list[LinkLost] = []
    transport = await SerialTransport.open(
        SerialSettings(os.ttyname(slave)), lambda data: None, lost.append
    )
    os.close(slave)  # the transport has its own descriptor
    try:
        transport.write(b"\x02frame\x03")
        assert queued(transport) == 0  # taken at once, no writer armed
        assert os.read(master, 64) == b"\x02frame\x03"

        for _ in range(BLOCKS):
            transport.write(BLOCK)  # returns at once, whatever the port holds
        assert queued(transport) > 0  # the port did not take it all: the rest waits
        received = bytearray()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while len(received) < len(BLOCK) * BLOCKS and loop.time() < deadline:
            try:
                received += os.read(master, 65536)
            except BlockingIOError:
                await asyncio.sleep(0.001)  # the loop runs the transport's writer
        assert bytes(received) == BLOCK * BLOCKS
        assert queued(transport) == 0
        assert lost == []
    finally:
        transport.close()
        os.close(master)


async def test_a_write_to_a_port_that_is_gone_is_link_lost() -> None:
    master, slave = os.openpty()
    lost: list[LinkLost] = []
    transport = await SerialTransport.open(
        SerialSettings(os.ttyname(slave)), lambda data: None, lost.append
    )
    os.close(slave)
    os.close(master)  # the device goes away: its reads and writes fail with EIO
    await asyncio.wait_for(transport.closed.wait(), WAIT_S)
    assert len(lost) == 1  # reported once, by the read that failed
    with pytest.raises(LinkLost):
        transport.write(b"\x05")
    assert len(lost) == 1
