"""The agent's end of tp-manager's PUB socket: events it acts on.

Events are hints, never the only carrier of a fact (PUB drops what a subscriber
misses while it is away): ``transaction.result_pending`` wakes the reconciler,
which then asks tp-manager for what it holds, and each time the subscriber
(re)connects (``on_connected``: tp-manager started or restarted), whatever it
published before then is lost, so the agent asks again what the events would have
told (the terminals' links: status_facts.py).
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
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        """``on_connected`` runs at each (re)connection to tp-manager's PUB socket."""
        self.endpoint = endpoint
        self.handlers = handlers
        self.on_connected = on_connected
        self._ctx = context or zmq.Context.instance()
        self._sock: LoopSocket | None = None
        self._monitor: LoopSocket | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        sock = LoopSocket(self._ctx, zmq.SUB)
        raw = sock.sock  # options and connect before the first await
        raw.setsockopt(zmq.LINGER, 0)
        raw.setsockopt(zmq.RECONNECT_IVL, 100)
        raw.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        for topic in self.handlers:
            raw.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self._monitor = sock.open_monitor(zmq.EVENT_CONNECTED)
        raw.connect(self.endpoint)
        self._sock = sock
        self._tasks = [
            asyncio.create_task(self._receive(), name="event-subscriber"),
            asyncio.create_task(self._watch_connections(), name="event-subscriber-monitor"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._sock is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._sock.sock.disable_monitor()
            self._sock.close(linger=0)
            self._sock = None
        if self._monitor is not None:
            self._monitor.close(linger=0)
            self._monitor = None

    async def _watch_connections(self) -> None:
        assert self._monitor is not None
        while True:
            event = parse_monitor_message(await self._monitor.recv_multipart())
            if event["event"] == zmq.EVENT_CONNECTED and self.on_connected is not None:
                try:
                    self.on_connected()
                except Exception:
                    log.exception("agent.event.handler_failed", event_name="connected")

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
