"""tp-manager's control server: a ZeroMQ ROUTER for commands, a PUB for events.

Each request runs in its own task so that a long ``pay`` does not block
``check`` or ``cancel``, and so a second ``pay`` can be refused with
TERMINAL_BUSY at once.  A payment verdict whose reply cannot be delivered (the
agent went away) stays in the result store, and ``transaction.result_pending``
hints the agent to collect it when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

import structlog
import zmq

from common import commands, messages
from common.commands import errors as codes
from common.commands import pay as pay_contract
from common.loop_socket import LoopSocket, send_now
from common.messages import Event, Reply, Request
from tp_manager.commands import CommandError, Handler, load_handlers
from tp_manager.context import ServerContext
from tp_manager.terminal.errors import TerminalError

log = structlog.get_logger(__name__)

REPLY_LINGER_MS = 2000
REPLY_READ_GRACE_S = 1.0  # after the last replies of a drain, before the socket closes


def prepare_ipc_endpoint(endpoint: str) -> None:
    """For ``ipc://`` endpoints, make the socket's directory private (0700) before binding."""
    if not endpoint.startswith("ipc://"):
        return
    path = Path(endpoint.removeprefix("ipc://"))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a stale socket from a killed process


class ControlServer:
    def __init__(
        self,
        ctx: ServerContext,
        control_endpoint: str,
        events_endpoint: str,
        zmq_context: zmq.Context[Any] | None = None,
    ) -> None:
        self.ctx = ctx
        self.control_endpoint = control_endpoint
        self.events_endpoint = events_endpoint
        self._zctx = zmq_context or zmq.Context.instance()
        self._handlers: dict[str, Handler] = load_handlers()
        self._router: LoopSocket | None = None
        self._pub: zmq.Socket[bytes] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for endpoint in (self.control_endpoint, self.events_endpoint):
            prepare_ipc_endpoint(endpoint)
        # PUB is never awaited (publish is synchronous and a PUB never blocks): a plain
        # socket, not even on the event loop
        pub = zmq.Socket(self._zctx, zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.bind(self.events_endpoint)
        router = LoopSocket(self._zctx, zmq.ROUTER)
        router.sock.setsockopt(zmq.LINGER, REPLY_LINGER_MS)
        router.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.sock.bind(self.control_endpoint)
        for endpoint in (self.control_endpoint, self.events_endpoint):
            if endpoint.startswith("ipc://"):
                os.chmod(endpoint.removeprefix("ipc://"), 0o600)
        self._pub, self._router = pub, router
        self.ctx.publish = self.publish
        self._loop_task = asyncio.create_task(self._serve(), name="control-server")
        log.info(
            "tp_manager.control.listening",
            control=self.control_endpoint,
            events=self.events_endpoint,
        )

    def publish(self, name: str, data: dict[str, Any]) -> None:
        if self._pub is None:
            return
        try:
            send_now(self._pub, Event(name, data).frames())
        except zmq.ZMQError as exc:  # events are best effort; commands are not
            log.warning("tp_manager.event.dropped", event_name=name, error=str(exc))

    async def drain(self, timeout_s: float) -> bool:
        """Wait for commands in flight (a payment) to finish and reply; False on timeout.

        The socket then stays open for REPLY_READ_GRACE_S: the agent's DEALER connects
        with ``IMMEDIATE``, and libzmq drops what a peer has not read yet when its
        connection closes, so closing right after a payment's reply can lose it.
        """
        pending = [t for t in self._tasks if not t.done()]
        if not pending:
            return True
        _, still = await asyncio.wait(pending, timeout=timeout_s)
        await asyncio.sleep(REPLY_READ_GRACE_S)
        return not still

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for task in list(self._tasks):
            task.cancel()
        # The last replies (a payment's answer, after a drain) may still sit in the
        # router's queue: give them REPLY_LINGER_MS to leave.  The owner of the
        # ZeroMQ context terminates it after this, which waits for that linger.
        if self._router is not None:
            self._router.close(linger=REPLY_LINGER_MS)
        if self._pub is not None:
            self._pub.close(linger=0)
        self._router = self._pub = None

    async def _serve(self) -> None:
        assert self._router is not None
        while True:
            frames = await self._router.recv_multipart()
            if len(frames) < 2:
                continue
            identity, body = frames[0], frames[-1]
            task = asyncio.create_task(self._handle(identity, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _handle(self, identity: bytes, body: bytes) -> None:
        try:
            request = Request.decode(body)
        except messages.MessageError as exc:
            log.warning("tp_manager.control.bad_message", error=str(exc))
            await self._reply(identity, Reply.failure("", codes.BAD_MESSAGE, str(exc)))
            return
        handler = self._handlers.get(request.command)
        if handler is None:
            reply = Reply.failure(
                request.id,
                codes.UNKNOWN_COMMAND,
                f"unknown command {request.command!r}; known: {', '.join(commands.COMMANDS)}",
            )
        else:
            order_id = request.properties.get("order_id")
            with structlog.contextvars.bound_contextvars(
                command=request.command, **({"order_id": order_id} if order_id else {})
            ):
                reply = await self._run(handler, request)
                delivered = await self._reply(identity, reply)
                if not delivered and reply.ok and request.command == pay_contract.NAME:
                    self.publish(messages.EVENT_RESULT_PENDING, {"order_id": order_id})
            return
        await self._reply(identity, reply)

    async def _run(self, handler: Handler, request: Request) -> Reply:
        try:
            return Reply.success(request.id, await handler(self.ctx, request.properties))
        except TerminalError as exc:
            log.info("tp_manager.command.failed", code=exc.code, message=exc.message)
            return Reply.failure(request.id, exc.code, exc.message, exc.money_may_have_moved)
        except CommandError as exc:
            return Reply.failure(request.id, exc.code, exc.message)
        except Exception as exc:  # a bug must not kill the server; it is logged in full
            log.exception("tp_manager.command.crashed")
            return Reply.failure(request.id, codes.INTERNAL_ERROR, type(exc).__name__)

    async def _reply(self, identity: bytes, reply: Reply) -> bool:
        """Whether the reply left; False when the agent went away."""
        if self._router is None:
            return False
        try:
            await self._router.send_multipart([identity, b"", reply.encode()])
        except zmq.ZMQError as exc:  # the client went away (EHOSTUNREACH with ROUTER_MANDATORY)
            log.warning(
                "tp_manager.control.reply_undeliverable", request_id=reply.id, error=str(exc)
            )
            return False
        return True
