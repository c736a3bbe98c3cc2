"""A lean HiPay for the benchmarks: acknowledges every notification on a raw loopback socket.

The register's answer waits for HiPay's acknowledgement, so whatever HiPay spends on a
notification lies on the payment's path.  The product's stub (``ecr-connector hipay-stub``:
aiohttp, on asyncio's own loop, a log line per request) spends about 1 ms of CPU on one,
on the cores the connector shares with the harness; the benchmark had no way to take
that millisecond out of the connector's added latency.  This stand-in answers from an
asyncio protocol on the connector's event loop (uvloop where installed) in a few tens of
microseconds, and counts what it acknowledged per order, so the benchmark checks that
every payment was notified exactly once.

It speaks just enough HTTP/1.1 for the connector's notifier: connections kept alive,
requests read by their Content-Length (any number per read, or one over many reads),
Basic auth checked (401), ``POST /v1/connector/order`` answered 200 with HiPay's
``{"paymentStatus": "Success"}``, a body that is not a notification 400, the healthcheck
answered, anything else 404.  Run alone, it serves until SIGTERM and then writes the
counts as JSON::

    .venv/bin/python benchmarks/hipay_standin.py --login L --password P --counts FILE
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import json
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, cast

REPO = Path(__file__).resolve().parents[1]
NOTIFY_PATH: Final = "/v1/connector/order"
HEALTH_PATH: Final = "/v1/connector/healthcheck"
HEADER_END: Final = b"\r\n\r\n"
MAX_HEADER_BYTES: Final = 64 * 1024
ACKNOWLEDGED: Final = b'{"paymentStatus":"Success"}'


def response(status: int, reason: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


OK: Final = response(200, "OK", ACKNOWLEDGED)
HEALTHY: Final = response(200, "OK", b'"Health check OK"')
UNAUTHORIZED: Final = response(401, "Unauthorized", b'{"error":"unauthorized"}')
NOT_A_NOTIFICATION: Final = response(400, "Bad Request", b'{"error":"not a notification"}')
NOT_FOUND: Final = response(404, "Not Found", b'{"error":"not found"}')


class HipayStandIn:
    """What the stand-in acknowledged (order id -> notifications), and its answers."""

    def __init__(self, login: str, password: str) -> None:
        token = base64.b64encode(f"{login}:{password}".encode()).decode()
        self._authorization = f"Basic {token}"
        self.acknowledged: Counter[str] = Counter()

    def answer(self, head: str, body: bytes) -> bytes:
        request_line, *header_lines = head.split("\r\n")
        method, _, rest = request_line.partition(" ")
        path = rest.partition(" ")[0]
        if method == "GET" and path == HEALTH_PATH:
            return HEALTHY
        if method != "POST" or path != NOTIFY_PATH:
            return NOT_FOUND
        headers = _headers(header_lines)
        if headers.get("authorization") != self._authorization:
            return UNAUTHORIZED
        try:
            order_id = json.loads(body)["order"]["order_id"]
        except (ValueError, KeyError, TypeError):
            return NOT_A_NOTIFICATION
        if not isinstance(order_id, str):
            return NOT_A_NOTIFICATION
        self.acknowledged[order_id] += 1
        return OK

    def protocol(self) -> _Connection:
        return _Connection(self)


def _headers(lines: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        found[name.strip().lower()] = value.strip()
    return found


class _Connection(asyncio.Protocol):
    """One kept-alive connection: every complete request in the buffer gets its answer."""

    def __init__(self, server: HipayStandIn) -> None:
        self._server = server
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._transport is not None:
            end = self._buffer.find(HEADER_END)
            if end < 0:
                if len(self._buffer) > MAX_HEADER_BYTES:
                    self._transport.close()
                return
            head = bytes(self._buffer[:end]).decode("latin-1")
            length = int(_headers(head.split("\r\n")[1:]).get("content-length") or 0)
            total = end + len(HEADER_END) + length
            if len(self._buffer) < total:
                return
            body = bytes(self._buffer[end + len(HEADER_END) : total])
            del self._buffer[:total]
            self._transport.write(self._server.answer(head, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def start(
    login: str, password: str, host: str = "127.0.0.1", port: int = 0
) -> tuple[HipayStandIn, asyncio.Server, int]:
    """The stand-in listening on ``host``; returns it, its server and the bound port."""
    standin = HipayStandIn(login, password)
    server = await asyncio.get_running_loop().create_server(standin.protocol, host, port)
    return standin, server, int(server.sockets[0].getsockname()[1])


async def serve(login: str, password: str) -> dict[str, int]:
    """Serve until SIGTERM, after a ``READY <port>`` line on stdout; the counts."""
    standin, server, port = await start(login, password)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"READY {port}", flush=True)
    await stop.wait()
    server.close()
    return dict(standin.acknowledged)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--login", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--counts", required=True, help="where the counts go at SIGTERM")
    args = parser.parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    event_loop: Any = importlib.import_module("common.event_loop")
    counts = event_loop.run(serve(args.login, args.password))
    Path(args.counts).write_text(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
