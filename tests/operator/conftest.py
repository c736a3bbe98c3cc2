"""The API with its operator view wired as the agent wires it: a real aiohttp server on
127.0.0.1, the real journal and its live event feed, a real ZeroMQ peer standing in
for tp-manager's control channel (tests/api/conftest.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from supervisor_agent.api import create_app, start_server
from supervisor_agent.api.app import bound_port
from supervisor_agent.api.operator import OperatorView
from supervisor_agent.client import TerminalClient
from supervisor_agent.metrics import Metrics
from supervisor_agent.sse_client import SseEvent, read_events
from tests.api.conftest import RecordingTpManager, basic, own_journal, settings

READ_TIMEOUT_S = 20.0


@dataclass
class Served:
    base_url: str
    session: aiohttp.ClientSession
    operator: OperatorView
    metrics: Metrics


@contextlib.asynccontextmanager
async def serve_operator(
    tpm: RecordingTpManager, heartbeat_s: float = 15.0, **overrides: Any
) -> AsyncIterator[Served]:
    """``overrides``: ApiSettings fields (``terminals``...)."""
    async with own_journal() as (journal, notifier):
        client = TerminalClient(tpm.endpoint)
        await client.start()
        metrics = Metrics()
        api_settings = settings(**overrides)
        operator = OperatorView.for_app(
            api_settings, client, journal, metrics=metrics, heartbeat_s=heartbeat_s
        )
        app = create_app(
            api_settings,
            client,
            _no_stop,
            journal=journal,
            notifier=notifier,
            metrics=metrics,
            operator=operator,
        )
        runner = await start_server(app, "127.0.0.1", 0, shutdown_timeout_s=5.0)
        try:
            timeout = aiohttp.ClientTimeout(total=None, sock_read=READ_TIMEOUT_S)
            async with aiohttp.ClientSession(
                timeout=timeout, headers={"Authorization": basic()}
            ) as session:
                yield Served(f"http://127.0.0.1:{bound_port(runner)}", session, operator, metrics)
        finally:
            await runner.cleanup()
            await client.close()


async def _no_stop() -> bool:
    return False


async def collect(
    response: aiohttp.ClientResponse, until: Callable[[SseEvent], bool], limit: int = 100
) -> list[SseEvent]:
    """Events from an open stream up to and including the first that ``until`` accepts."""
    seen: list[SseEvent] = []
    async for event in read_events(response):
        seen.append(event)
        if until(event) or len(seen) >= limit:
            return seen
    return seen


def names(events: list[SseEvent]) -> list[str]:
    return [e.name for e in events]


def for_order(events: list[SseEvent], order_id: str) -> list[SseEvent]:
    return [e for e in events if e.payload().get("order_id") == order_id]
