"""``ecr-connector hipay-stub``: a stand-in for HiPay's notification endpoint, for tests and demos.

It does what the notifier needs to be tested against, over real HTTP:

* ``POST /v1/connector/order`` checks Basic auth (401 otherwise) and records
  every request it reads, with its ``Idempotency-Key`` and JSON body;
* ``GET /received`` lists what it recorded, ``DELETE /received`` forgets it;
* ``POST /control`` makes the next requests misbehave, e.g.
  ``{"fail_next": 3, "status": 503, "retry_after": 1}`` (answer 503 three times),
  ``{"delay_next": 1, "delay_s": 5}`` (answer 200 only after 5 s),
  ``{"drop_next": 1}`` (read the request, then drop the connection unanswered),
  ``{"reject_next": 1}`` (answer 400).  Precedence per request: drop, delay,
  reject, fail.  A delayed request still gets the answer the other counters
  give.  ``GET /control`` shows the counters left.

Every recorded entry has ``connection`` (the client's source port: requests kept alive
on one connection share it) and ``outcome``: ``acknowledged`` (2xx sent), ``failed``,
``rejected``, ``dropped``, ``unauthorized``, or ``pending`` while delayed.  An
``acknowledged`` entry of a delayed request may never have reached a client
that gave up waiting: that is exactly the uncertainty the notifier reconciles.

The control and listing routes are unauthenticated: the stub is a loopback test tool.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from common.logging import configure_logging

log = structlog.get_logger(__name__)

NOTIFY_PATH = "/v1/connector/order"
DEFAULT_LOGIN = "stub-login"
DEFAULT_PASSWORD = "stub-password"  # noqa: S105 (a test tool's default, not a secret)
DEFAULT_FAIL_STATUS = 503
REJECT_STATUS = 400


@dataclass
class StubState:
    login: str
    password: str
    received: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    fail_status: int = DEFAULT_FAIL_STATUS
    retry_after: float | None = None
    delay_next: int = 0
    delay_s: float = 0.0
    drop_next: int = 0
    reject_next: int = 0
    seq: int = 0

    def control(self) -> dict[str, Any]:
        return {
            "fail_next": self.fail_next,
            "status": self.fail_status,
            "retry_after": self.retry_after,
            "delay_next": self.delay_next,
            "delay_s": self.delay_s,
            "drop_next": self.drop_next,
            "reject_next": self.reject_next,
        }


STATE_KEY = web.AppKey("stub_state", StubState)


def _auth_ok(header: str | None, state: StubState) -> bool:
    if not header or not header.startswith("Basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    login, _, password = decoded.partition(":")
    return login == state.login and password == state.password


def _client_port(request: web.Request) -> int | None:
    """The client's source port: one per TCP connection, so kept-alive requests share it."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return int(peer[1]) if isinstance(peer, tuple) and len(peer) >= 2 else None


def _error(status: int, code: str, message: str) -> web.Response:
    """The POS API's ``ErrorResponse`` shape."""
    return web.json_response(
        {"error": {"status": status, "code": code, "message": message}}, status=status
    )


async def _notify(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    raw = await request.read()
    state.seq += 1
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", errors="replace")
    entry: dict[str, Any] = {
        "seq": state.seq,
        "received_at": time.time(),
        "idempotency_key": request.headers.get("Idempotency-Key"),
        "content_type": request.headers.get("Content-Type"),
        "order_id": body.get("order", {}).get("order_id") if isinstance(body, dict) else None,
        "body": body,
        "outcome": "pending",
        "status": None,
        "connection": _client_port(request),
    }
    state.received.append(entry)
    log.info("hipay_stub.request", seq=state.seq, order_id=entry["order_id"])
    if not _auth_ok(request.headers.get("Authorization"), state):
        entry.update(outcome="unauthorized", status=401)
        return _error(401, "401", "Unauthorized")
    if state.drop_next > 0:
        state.drop_next -= 1
        entry.update(outcome="dropped")
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # nothing more to do for a connection we dropped
    if state.delay_next > 0:
        state.delay_next -= 1
        await asyncio.sleep(state.delay_s)
    if state.reject_next > 0:
        state.reject_next -= 1
        entry.update(outcome="rejected", status=REJECT_STATUS)
        return _error(REJECT_STATUS, "400", "Bad request: rejected by the stub")
    if state.fail_next > 0:
        state.fail_next -= 1
        entry.update(outcome="failed", status=state.fail_status)
        resp = _error(state.fail_status, str(state.fail_status), "Failing on purpose")
        if state.retry_after is not None:
            resp.headers["Retry-After"] = str(int(state.retry_after))
        return resp
    entry.update(outcome="acknowledged", status=200)
    echo = body.get("order", {}) if isinstance(body, dict) else {}
    return web.json_response({"paymentStatus": "Success", "order": echo})


async def _list(request: web.Request) -> web.Response:
    return web.json_response({"notifications": request.app[STATE_KEY].received})


async def _clear(request: web.Request) -> web.Response:
    request.app[STATE_KEY].received.clear()
    return web.json_response({"cleared": True})


async def _get_control(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].control())


async def _set_control(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        data = await request.json()
        if not isinstance(data, dict):
            raise ValueError("control body must be an object")
        if "fail_next" in data:
            state.fail_next = int(data["fail_next"])
        if "status" in data:
            state.fail_status = int(data["status"])
        if "retry_after" in data:
            state.retry_after = None if data["retry_after"] is None else float(data["retry_after"])
        if "delay_s" in data:
            state.delay_s = float(data["delay_s"])
            state.delay_next = int(data.get("delay_next", 1))
        elif "delay_next" in data:
            state.delay_next = int(data["delay_next"])
        if "drop_next" in data:
            state.drop_next = int(data["drop_next"])
        if "reject_next" in data:
            state.reject_next = int(data["reject_next"])
    except (ValueError, TypeError) as exc:
        return _error(400, "BAD_CONTROL", str(exc))
    return web.json_response(state.control())


async def _health(_request: web.Request) -> web.Response:
    return web.Response(text="Health check OK")


def build_app(login: str = DEFAULT_LOGIN, password: str = DEFAULT_PASSWORD) -> web.Application:
    app = web.Application()
    app[STATE_KEY] = StubState(login=login, password=password)
    app.router.add_post(NOTIFY_PATH, _notify)
    app.router.add_get("/v1/connector/healthcheck", _health)
    app.router.add_get("/received", _list)
    app.router.add_delete("/received", _clear)
    app.router.add_get("/control", _get_control)
    app.router.add_post("/control", _set_control)
    return app


async def start_stub(
    host: str = "127.0.0.1",
    port: int = 0,
    login: str = DEFAULT_LOGIN,
    password: str = DEFAULT_PASSWORD,
) -> tuple[web.AppRunner, str]:
    """Start the stub in this loop; returns its runner (``await runner.cleanup()``) and URL."""
    runner = web.AppRunner(build_app(login, password), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # aiohttp exposes no public accessor for the bound port
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    bound_host, bound_port = sockets[0].getsockname()[:2]
    return runner, f"http://{bound_host}:{bound_port}"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, required=True, help="port (0: any free port)")
    parser.add_argument("--login", default=DEFAULT_LOGIN, help="Basic auth login to accept")
    parser.add_argument("--password", default=DEFAULT_PASSWORD, help="Basic auth password")


async def _serve(args: argparse.Namespace) -> int:
    runner, url = await start_stub(args.host, args.port, args.login, args.password)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY http={url.removeprefix('http://')}", flush=True)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await runner.cleanup()
    return 0


def main(args: argparse.Namespace) -> int:
    # the product's JSON lines, on stderr: stdout carries only the READY line
    configure_logging("hipay-stub", "info", secrets=[args.password], stream=sys.stderr)
    try:
        return asyncio.run(_serve(args))
    except OSError as exc:
        print(f"hipay-stub: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
