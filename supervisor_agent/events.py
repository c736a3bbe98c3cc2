"""The agent's end of tp-manager's PUB socket: events it acts on.

Events are hints, never the only carrier of a fact (PUB drops what a subscriber
misses while it is away): ``transaction.result_pending`` wakes the reconciler,
which then asks tp-manager for what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog
import zmq

from common import messages
from common.loop_socket import LoopSocket
from common.messages import Event

log = structlog.get_logger(__name__)

Handler = Callable[[Event], None]


class EventSubscriber:
    def __init__(
        self,
        endpoint: str,
        handlers: dict[str, Handler],
        context: zmq.Context[Any] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.handlers = handlers
        self._ctx = context or zmq.Context.instance()
        self._sock: LoopSocket | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        sock = LoopSocket(self._ctx, zmq.SUB)
        raw = sock.sock  # options and connect before the first await
        raw.setsockopt(zmq.LINGER, 0)
        raw.setsockopt(zmq.RECONNECT_IVL, 100)
        raw.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        for topic in self.handlers:
            raw.setsockopt(zmq.SUBSCRIBE, topic.encode())
        raw.connect(self.endpoint)
        self._sock = sock
        self._task = asyncio.create_task(self._receive(), name="event-subscriber")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    async def _receive(self) -> None:
        assert self._sock is not None
        while True:
            frames = await self._sock.recv_multipart()
            try:
                event = Event.from_frames(frames)
            except (messages.MessageError, KeyError) as exc:
                log.warning("agent.event.bad", error=str(exc))
                continue
            handler = self.handlers.get(event.name)
            if handler is None:
                continue
            try:
                handler(event)
            except Exception:
                log.exception("agent.event.handler_failed", event_name=event.name)
