"""Real parts for the API tests: the aiohttp server on 127.0.0.1, a real TerminalClient,
and a real ZeroMQ ROUTER peer on the control channel that records every request it
receives (so a test can prove a rejected request never reached tp-manager) and
answers with the channel's real message types (common/messages.py) and
tp-manager's real result type (PaymentResult.to_dict()).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import zmq
import zmq.asyncio

from common.messages import Reply, Request
from supervisor_agent.api import create_app, start_server
from supervisor_agent.api.app import bound_port
from supervisor_agent.api.settings import ApiSettings
from supervisor_agent.api.wire_json import dumps, loads
from supervisor_agent.client import TerminalClient
from supervisor_agent.journal import Journal
from supervisor_agent.notifier import HipayEndpoint, Notifier
from tp_manager.terminal.model import (
    FailureReason,
    PaymentResult,
    PaymentStatus,
    TransactionType,
)

USER, PASSWORD = "register", "s3cret-pass"
NO_HIPAY = "http://127.0.0.1:9"
HTTP_TIMEOUT_S = 10.0

Responder = Callable[[Request], Awaitable[Reply]]


def payment_result(props: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """What tp-manager answers for ``pay``: a real PaymentResult, accepted unless told."""
    fields: dict[str, Any] = {
        "status": PaymentStatus.ACCEPTED,
        "amount": props["amount"],
        "currency_numeric": props["currency_numeric"],
        "transaction_type": TransactionType(props["transaction_type"]),
        "protocol": "concert-v2",
        "masked_pan": "497010######1234",
        "authorization_number": "136967",
        "payment_application": "001",
        "aid": "A0000000041010",
        "card_expiry": "2210",
        "reading_mode": "1",
    }
    fields.update(overrides)
    if isinstance(fields.get("failure_reason"), str):
        fields["failure_reason"] = FailureReason(fields["failure_reason"])
    return PaymentResult(**fields).to_dict()


class RecordingTpManager:
    """A ROUTER on tcp://127.0.0.1 speaking the control channel; records what it receives."""

    def __init__(self) -> None:
        self.ctx = zmq.asyncio.Context()
        self.received: list[Request] = []
        self.responders: dict[str, Responder] = {}
        self.sock: zmq.asyncio.Socket | None = None
        self.endpoint = ""
        self._task: asyncio.Task[None] | None = None
        self._replies: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind("tcp://127.0.0.1:*")
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.sock = sock
        self._task = asyncio.create_task(self._serve())

    def commands(self) -> list[str]:
        return [r.command for r in self.received]

    async def _serve(self) -> None:
        assert self.sock is not None
        while True:
            frames = await self.sock.recv_multipart()
            request = Request.decode(frames[-1])
            self.received.append(request)
            task = asyncio.create_task(self._answer(frames[0], request))
            self._replies.add(task)
            task.add_done_callback(self._replies.discard)

    async def _answer(self, identity: bytes, request: Request) -> None:
        responder = self.responders.get(request.command, default_responder)
        reply = await responder(request)
        if self.sock is not None:
            await self.sock.send_multipart([identity, b"", reply.encode()])

    async def stop(self) -> None:
        """Close the socket: for the client, tp-manager has gone away."""
        for task in [self._task, *self._replies]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = None
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None

    async def close(self) -> None:
        await self.stop()
        self.ctx.term()


async def default_responder(request: Request) -> Reply:
    props = request.properties
    if request.command == "pay":
        return Reply.success(request.id, payment_result(props))
    if request.command == "check":
        return Reply.success(
            request.id,
            {
                "protocol": "concert-v2",
                "link": "up",
                "busy": False,
                "responding": True,
                "detail": "",
            },
        )
    if request.command == "cancel":
        return Reply.success(request.id, {"cancelled": False})
    if request.command in ("reset", "telecollect"):
        return Reply.failure(request.id, "NOT_SUPPORTED", f"concert-v2 has no {request.command}")
    return Reply.failure(request.id, "UNKNOWN_COMMAND", request.command)


def settings(**overrides: Any) -> ApiSettings:
    base: dict[str, Any] = {
        "api_username": USER,
        "api_password": PASSWORD,
        "api_flavour": "desktop",
        "authorization_threshold": Decimal("100"),
        "serial_number": "SN-TEST-0001",
        "payment_timeout_s": 5.0,
        "notification_budget_s": 0.0,  # HiPay is not there: do not wait for it
        "maintenance_timeout_s": 2.0,
        "version": "0.1.0",
        "version_type": "concertv2",
        "version_os": "linux",
    }
    base.update(overrides)
    return ApiSettings(**base)


def basic(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Api:
    """A real HTTP client against the real server; bodies parsed with Decimals."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession, tpm: RecordingTpManager):
        self.base_url = base_url
        self.session = session
        self.tpm = tpm
        self.stop_calls = 0
        self.stop_result: bool | Exception = True

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        auth: str | None = "default",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, aiohttp.typedefs.CIMultiDictProxy[str]]:
        hdrs = dict(headers or {})
        if auth == "default":
            hdrs.setdefault("Authorization", basic())
        elif auth is not None:
            hdrs["Authorization"] = auth
        data = raw
        if body is not None:
            data = (body if isinstance(body, str) else dumps(body)).encode()
            hdrs.setdefault("Content-Type", "application/json")
        async with self.session.request(
            method, self.base_url + path, data=data, headers=hdrs
        ) as resp:
            text = await resp.text()
            try:
                parsed = loads(text) if text else None
            except ValueError:
                parsed = text
            return resp.status, parsed, resp.headers

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any, Any]:
        return await self.request("POST", path, body, **kw)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any, Any]:
        return await self.request("GET", path, **kw)


@contextlib.asynccontextmanager
async def own_journal() -> AsyncIterator[tuple[Journal, Notifier]]:
    """A real journal in a temporary directory, and a real notifier whose HiPay is not
    there (nothing listens on port 9): every answer says notificationHipaySent false."""
    with tempfile.TemporaryDirectory() as data_dir:
        journal = Journal.open(data_dir)
        notifier = Notifier(journal.outbox, HipayEndpoint(NO_HIPAY, "login", "password"))
        await notifier.start()
        try:
            yield journal, notifier
        finally:
            await notifier.stop()
            journal.close()


@contextlib.asynccontextmanager
async def serve_api(tpm: RecordingTpManager, **overrides: Any) -> AsyncIterator[Api]:
    """The whole API on 127.0.0.1:<free port>, its client connected to ``tpm``; its own
    journal unless the test gives ``journal`` and ``notifier``."""
    if "journal" not in overrides:
        async with own_journal() as (journal, notifier):
            async with serve_api(tpm, journal=journal, notifier=notifier, **overrides) as api:
                yield api
        return
    journal = overrides.pop("journal")
    notifier = overrides.pop("notifier")
    metrics = overrides.pop("metrics", None)
    limits = overrides.pop("limits", None)
    client_ctx = zmq.asyncio.Context()
    client = TerminalClient(tpm.endpoint, context=client_ctx)
    await client.start()
    api_box: list[Api] = []

    async def stop_tp_manager() -> bool:
        api = api_box[0]
        api.stop_calls += 1
        if isinstance(api.stop_result, Exception):
            raise api.stop_result
        return api.stop_result

    app = create_app(
        settings(**overrides),
        client,
        stop_tp_manager,
        journal=journal,
        notifier=notifier,
        metrics=metrics,
    )
    runner = await start_server(app, "127.0.0.1", 0, limits=limits)
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            api = Api(f"http://127.0.0.1:{bound_port(runner)}", session, tpm)
            api_box.append(api)
            yield api
    finally:
        await runner.cleanup()
        await client.close()
        client_ctx.term()


@pytest.fixture
async def api(tpm: RecordingTpManager) -> AsyncIterator[Api]:
    async with serve_api(tpm) as a:
        yield a


@pytest.fixture
async def kiosk(tpm: RecordingTpManager) -> AsyncIterator[Api]:
    async with serve_api(tpm, api_flavour="kiosk") as a:
        yield a
