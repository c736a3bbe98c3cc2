"""``LoopSocket`` (common/loop_socket.py) on real ZeroMQ sockets, on both event loops.

ZeroMQ's FD is edge-triggered: it signals when libzmq has commands to process, and any
operation on the socket may process them and take the signal while a message stays
unread.  These tests make that happen on purpose (a peer's messages land, then the
socket sends before its reader runs) and check that nothing sits unread; they also
check bursts both ways, the send timeout the agent's client relies on, cancellation and
close while waiting, and the monitor socket.  Every wait is bounded (``BOUND_S``) so a
lost message fails the test instead of hanging it; no assertion is on speed.
"""

from __future__ import annotations

import asyncio
import select
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar

import pytest
import zmq
from zmq.utils.monitor import parse_monitor_message

from common.loop_socket import LoopSocket

T = TypeVar("T")

BOUND_S: Final = 10.0  # a lost message fails here rather than hanging the run
COMMAND_THROTTLE_S: Final = 0.01  # > libzmq's max_command_delay (~1 ms)
BURST: Final = 5000
SMALL_HWM: Final = 10
LOOPS: Final = ("asyncio", "uvloop")


def run_on(loop: str, main: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(BOUND_S):
            return await main()

    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop", reason="pyproject.toml leaves it off here")
        return uvloop.run(bounded())
    return asyncio.run(bounded())


@pytest.fixture(params=LOOPS)
def loop(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        yield ctx
    finally:
        ctx.destroy(linger=0)


def endpoint(tmp_path: Path) -> str:
    return f"ipc://{tmp_path}/test.sock"


def peer_socket(context: zmq.Context[Any], kind: int) -> zmq.Socket[bytes]:
    """The other end, plain and blocking (bounded): it runs in the loop's thread."""
    sock: zmq.Socket[bytes] = context.socket(kind)
    sock.setsockopt(zmq.RCVTIMEO, int(BOUND_S * 1000))
    sock.setsockopt(zmq.SNDTIMEO, int(BOUND_S * 1000))
    sock.setsockopt(zmq.LINGER, 0)
    return sock


def hold_the_loop_while_messages_land(sock: LoopSocket) -> None:
    """Block the loop (its reader is not called) until the FD signals, read without
    touching the socket, then long enough that the socket's next send processes its
    pending commands, as a send does at most once per ``max_command_delay``."""
    readable, _, _ = select.select([sock.sock.fileno()], [], [], BOUND_S)
    assert readable, "the peer's messages never reached the socket"
    time.sleep(COMMAND_THROTTLE_S)


def test_messages_that_land_before_a_send_takes_the_signal_are_all_received(
    loop: str, context: zmq.Context[Any], tmp_path: Path
) -> None:
    async def main() -> list[list[bytes]]:
        peer = peer_socket(context, zmq.DEALER)
        peer.bind(endpoint(tmp_path))
        dealer = LoopSocket(context, zmq.DEALER)
        dealer.sock.connect(endpoint(tmp_path))
        await dealer.send_multipart([b"hello"])
        assert peer.recv_multipart() == [b"hello"]
        for n in range(3):
            peer.send_multipart([b"", str(n).encode()])
        hold_the_loop_while_messages_land(dealer)
        await dealer.send_multipart([b"more"])  # processes commands: the signal is gone
        received = [await dealer.recv_multipart() for _ in range(3)]
        dealer.close()
        peer.close()
        return received

    assert run_on(loop, main) == [[b"", b"0"], [b"", b"1"], [b"", b"2"]]


def test_a_receive_waiting_when_a_send_takes_the_signal_gets_its_message(
    loop: str, context: zmq.Context[Any], tmp_path: Path
) -> None:
    async def main() -> list[bytes]:
        peer = peer_socket(context, zmq.DEALER)
        peer.bind(endpoint(tmp_path))
        dealer = LoopSocket(context, zmq.DEALER)
        dealer.sock.connect(endpoint(tmp_path))
        await dealer.send_multipart([b"hello"])
        assert peer.recv_multipart() == [b"hello"]
        waiting = asyncio.create_task(dealer.recv_multipart())
        await asyncio.sleep(0)  # the receive waits now
        peer.send_multipart([b"reply"])
        hold_the_loop_while_messages_land(dealer)
        await dealer.send_multipart([b"next"])  # before the reader runs
        frames = await waiting
        dealer.close()
        peer.close()
        return frames

    assert run_on(loop, main) == [b"reply"]


def test_a_burst_is_received_whole_and_in_order(
    loop: str, context: zmq.Context[Any], tmp_path: Path
) -> None:
    """A peer in another thread sends as fast as the queues take; the peer stays open
    to the end (libzmq may drop what is still in flight when a connection closes)."""

    async def main() -> list[int]:
        pull = LoopSocket(context, zmq.PULL)
        pull.sock.bind(endpoint(tmp_path))
        peer = peer_socket(context, zmq.PUSH)
        peer.connect(endpoint(tmp_path))

        def burst() -> None:  # the thread's own socket until it ends
            for n in range(BURST):
                peer.send_multipart([b"n", str(n).encode()])

        sender = threading.Thread(target=burst)
        sender.start()
        try:
            return [int((await pull.recv_multipart())[1]) for _ in range(BURST)]
        finally:
            await asyncio.to_thread(sender.join)
            peer.close()
            pull.close()

    assert run_on(loop, main) == list(range(BURST))


def test_sends_beyond_the_high_water_mark_wait_for_room_and_all_arrive_in_order(
    loop: str, context: zmq.Context[Any], tmp_path: Path
) -> None:
    async def main() -> list[int]:
        push = LoopSocket(context, zmq.PUSH)
        push.sock.setsockopt(zmq.SNDHWM, SMALL_HWM)
        push.sock.bind(endpoint(tmp_path))
        pull = peer_socket(context, zmq.PULL)
        pull.setsockopt(zmq.RCVHWM, SMALL_HWM)
        pull.connect(endpoint(tmp_path))
        sends = [asyncio.create_task(push.send_multipart([str(n).encode()])) for n in range(BURST)]
        await asyncio.sleep(0)
        assert not all(send.done() for send in sends)  # the queue is full: some wait
        received = await asyncio.to_thread(
            lambda: [int(pull.recv_multipart()[0]) for _ in range(BURST)]
        )
        await asyncio.gather(*sends)
        push.close()
        pull.close()
        return received

    assert run_on(loop, main) == list(range(BURST))


def test_a_send_with_no_peer_gives_up_after_the_send_timeout(
    loop: str, context: zmq.Context[Any], tmp_path: Path
) -> None:
    """The agent's client: IMMEDIATE and SNDTIMEO, so a call to a tp-manager that is not
    there fails (ChannelUnavailable) instead of waiting for it to come."""

    async def main() -> None:
        dealer = LoopSocket(context, zmq.DEALER)
        dealer.sock.setsockopt(zmq.IMMEDIATE, 1)
        dealer.sock.setsockopt(zmq.SNDTIMEO, 50)
        dealer.sock.connect(endpoint(tmp_path))
        with pytest.raises(zmq.Again):
            await dealer.send_multipart([b"nobody"])
        dealer.close()

    run_on(loop, main)


def test_an_unknown_peer_fails_a_router_send_at_once(
    loop: str, context: zmq.Context[Any], tmp_path: Path
) -> None:
    """tp-manager's ROUTER: a reply to an agent that went away is undeliverable."""

    async def main() -> int | None:
        router = LoopSocket(context, zmq.ROUTER)
        router.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.sock.bind(endpoint(tmp_path))
        try:
            await router.send_multipart([b"gone", b"", b"reply"])
        except zmq.ZMQError as exc:
            return exc.errno
        finally:
            router.close()
        return 0

    assert run_on(loop, main) == zmq.EHOSTUNREACH


def test_a_cancelled_receive_leaves_the_next_message_to_the_next_receive(
    loop: str, context: zmq.Context[Any], tmp_path: Path
) -> None:
    async def main() -> list[bytes]:
        peer = peer_socket(context, zmq.PAIR)
        peer.bind(endpoint(tmp_path))
        pair = LoopSocket(context, zmq.PAIR)
        pair.sock.connect(endpoint(tmp_path))
        waiting = asyncio.create_task(pair.recv_multipart())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        peer.send_multipart([b"after"])
        frames = await pair.recv_multipart()
        pair.close()
        peer.close()
        return frames

    assert run_on(loop, main) == [b"after"]


def test_receives_cancelled_at_every_point_lose_no_message(
    loop: str, context: zmq.Context[Any], tmp_path: Path
) -> None:
    """Some cancels land in the loop iteration that hands the waiting receive its
    message: that message goes to the next receive, never nowhere."""
    messages = 200

    async def main() -> list[int]:
        peer = peer_socket(context, zmq.PAIR)
        peer.bind(endpoint(tmp_path))
        pair = LoopSocket(context, zmq.PAIR)
        pair.sock.connect(endpoint(tmp_path))
        received: list[int] = []
        for n in range(messages):
            waiting = asyncio.create_task(pair.recv_multipart())
            await asyncio.sleep(0)
            peer.send_multipart([str(n).encode()])
            for _ in range(n % 7):  # cancel at a different point of the delivery
                await asyncio.sleep(0)
            waiting.cancel()
            try:
                received.append(int((await waiting)[0]))
            except asyncio.CancelledError:
                pass
        while len(received) < messages:
            received.append(int((await pair.recv_multipart())[0]))
        pair.close()
        peer.close()
        return received

    assert run_on(loop, main) == list(range(messages))


def test_closing_fails_the_waits_and_stops_watching_the_fd(
    loop: str, context: zmq.Context[Any], tmp_path: Path
) -> None:
    async def main() -> tuple[int | None, ...]:
        dealer = LoopSocket(context, zmq.DEALER)
        dealer.sock.setsockopt(zmq.IMMEDIATE, 1)  # no peer: a send waits
        dealer.sock.connect(endpoint(tmp_path))
        receiving = asyncio.create_task(dealer.recv_multipart())
        sending = asyncio.create_task(dealer.send_multipart([b"x"]))
        await asyncio.sleep(0)
        dealer.close(linger=0)
        errors: list[int | None] = []
        for task in (receiving, sending):
            with pytest.raises(zmq.ZMQError) as failed:
                await task
            errors.append(failed.value.errno)
        with pytest.raises(zmq.ZMQError) as again:
            await dealer.recv_multipart()
        # the loop runs on after the FD is gone (a reader left behind would fail it)
        for _ in range(3):
            await asyncio.sleep(0)
        return errors[0], errors[1], again.value.errno

    assert run_on(loop, main) == (zmq.ENOTSOCK,) * 3


def test_the_monitor_reports_the_peer_coming_and_going(
    loop: str, context: zmq.Context[Any], tmp_path: Path
) -> None:
    async def main() -> list[int]:
        dealer = LoopSocket(context, zmq.DEALER)
        monitor = dealer.open_monitor(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        dealer.sock.connect(endpoint(tmp_path))
        peer = peer_socket(context, zmq.ROUTER)
        peer.bind(endpoint(tmp_path))
        seen = [parse_monitor_message(await monitor.recv_multipart())["event"]]
        peer.close()
        seen.append(parse_monitor_message(await monitor.recv_multipart())["event"])
        dealer.sock.disable_monitor()
        dealer.close()
        monitor.close()
        return seen

    assert run_on(loop, main) == [zmq.EVENT_CONNECTED, zmq.EVENT_DISCONNECTED]
