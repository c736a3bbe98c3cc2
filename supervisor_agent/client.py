"""``TerminalClient``: the supervisor agent's end of the control channel.

A DEALER socket with one pending future per request id.  Three things make it
survive a tp-manager restart without ever replaying a stale command:

* ``IMMEDIATE`` is set, so a request is never queued for a peer that is not
  connected: with tp-manager down, a call fails at once with
  ``TP_MANAGER_UNAVAILABLE`` instead of waking the terminal minutes later.
* A socket monitor watches for the peer disconnecting; every call in flight
  then fails with ``TP_MANAGER_RESTARTED`` (a payment's outcome is unknown and
  the layers above journal it so), instead of waiting for its timeout.  With
  ``IMMEDIATE``, libzmq drops inbound messages not yet read when the connection
  closes, so tp-manager keeps its socket open a moment after its last replies
  (``ControlServer.drain``).
* Replies whose id is no longer pending (timed out, failed) are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog
import zmq
from zmq.utils.monitor import parse_monitor_message

from common import messages
from common.commands import errors as codes
from common.loop_socket import LoopSocket
from common.messages import Reply, Request

log = structlog.get_logger(__name__)

DEFAULT_CALL_TIMEOUT_S = 10.0  # maintenance commands; pay passes its own
SEND_TIMEOUT_MS = 1000  # how long a send may wait for a connected peer


class CommandFailed(Exception):
    """tp-manager (or the channel) answered a command with an error."""

    def __init__(self, code: str, message: str, money_may_have_moved: bool | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.money_may_have_moved = (
            codes.money_may_have_moved(code)
            if money_may_have_moved is None
            else money_may_have_moved
        )


class ChannelUnavailable(CommandFailed):
    def __init__(self, message: str = "tp-manager is not reachable") -> None:
        super().__init__(codes.TP_MANAGER_UNAVAILABLE, message)


class ChannelTimeout(CommandFailed):
    def __init__(self, message: str) -> None:
        super().__init__(codes.TP_MANAGER_TIMEOUT, message)


class PeerRestarted(CommandFailed):
    def __init__(
        self, message: str = "tp-manager went away while the command was in flight"
    ) -> None:
        super().__init__(codes.TP_MANAGER_RESTARTED, message)


class TerminalClient:
    def __init__(
        self,
        endpoint: str,
        context: zmq.Context[Any] | None = None,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        """``on_connected`` runs each time tp-manager (re)appears: a new process may hold
        verdicts the agent has not collected (reconciler.py)."""
        self.endpoint = endpoint
        self.on_connected = on_connected
        self._ctx = context or zmq.Context.instance()
        self._sock: LoopSocket | None = None
        self._monitor: LoopSocket | None = None
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # tp-manager's control socket is connected now (the socket monitor's word): what
        # ``ecr_tp_manager_up`` says, since a stopped tp-manager refuses every payment
        self.connected = False

    async def start(self) -> None:
        sock = LoopSocket(self._ctx, zmq.DEALER)
        raw = sock.sock  # options, monitor and connect before the first await
        raw.setsockopt(zmq.LINGER, 0)
        raw.setsockopt(zmq.IMMEDIATE, 1)
        raw.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
        raw.setsockopt(zmq.RECONNECT_IVL, 100)
        raw.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        self._monitor = sock.open_monitor(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        raw.connect(self.endpoint)
        self._sock = sock
        self._tasks = [
            asyncio.create_task(self._receive_loop(), name="terminal-client-recv"),
            asyncio.create_task(self._monitor_loop(), name="terminal-client-monitor"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._fail_pending(ChannelUnavailable("client closed"))
        if self._sock is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._sock.sock.disable_monitor()
            self._sock.close(linger=0)
            self._sock = None
        if self._monitor is not None:
            self._monitor.close(linger=0)
            self._monitor = None

    async def call(
        self,
        command: str,
        properties: dict[str, Any] | None = None,
        timeout: float = DEFAULT_CALL_TIMEOUT_S,
    ) -> dict[str, Any]:
        """Send one command and wait for its reply; raise CommandFailed on any error."""
        if self._sock is None:
            raise ChannelUnavailable("client not started")
        request = Request(command=command, properties=properties or {})
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = future
        try:
            try:
                await self._sock.send_multipart([b"", request.encode()])
            except zmq.Again:
                raise ChannelUnavailable() from None
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancel
                # that lands as the reply arrives, and the cancelled caller runs on (a
                # reconciler whose stop() never returned: tests/tp_manager/test_control_cancel.py)
                async with asyncio.timeout(timeout):
                    reply = await future
            except TimeoutError:
                raise ChannelTimeout(f"no answer to {command!r} within {timeout:g} s") from None
        finally:
            self._pending.pop(request.id, None)
        if not reply.ok:
            raise CommandFailed(
                reply.error_code or codes.INTERNAL_ERROR,
                reply.error_message or "",
                reply.money_may_have_moved,
            )
        return reply.result or {}

    async def _receive_loop(self) -> None:
        assert self._sock is not None
        while True:
            frames = await self._sock.recv_multipart()
            try:
                reply = Reply.decode(frames[-1])
            except messages.MessageError as exc:
                log.warning("client.bad_reply", error=str(exc))
                continue
            future = self._pending.get(reply.id)
            if future is None or future.done():
                log.info("client.late_reply_dropped", request_id=reply.id)
                continue
            future.set_result(reply)

    async def _monitor_loop(self) -> None:
        assert self._monitor is not None
        while True:
            frames = await self._monitor.recv_multipart()
            event = parse_monitor_message(frames)
            if event["event"] == zmq.EVENT_CONNECTED:
                self.connected = True
                log.info("client.peer_connected")
                if self.on_connected is not None:
                    self.on_connected()
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                self.connected = False
                log.warning("client.peer_disconnected", pending=len(self._pending))
                self._fail_pending(PeerRestarted())

    def _fail_pending(self, exc: CommandFailed) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
