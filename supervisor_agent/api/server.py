"""The HTTP server under the application: connections, request heads, aiohttp's own errors.

Three things happen before a request reaches the application's middlewares, so
no middleware can handle them:

- **A head that never ends.** aiohttp's server has no header-read timeout: its
  ``keepalive_timeout`` closes idle connections, but whether a connection that
  trickles header bytes is covered depends on the aiohttp version (recent ones
  arm it at connect, older ones only after a first answer), and it also decides
  how long an idle register's connection stays open.  So the connection's
  protocol arms its own deadline at connect and after every answer; the
  application disarms it when a complete head has produced a request.  A client
  that has not sent a whole head ``header_read_timeout_s`` after connecting (or
  after its previous answer) is closed.  A slow *body* is the body reader's
  business (bodies.py).
- **Too many connections from one address.** Counted at connect, before aiohttp
  allocates a request; over the cap the connection gets a canned 503 in the JSON
  error shape and is closed.  The cap is the config's ``max_connections_per_address``:
  it bounds what one misbehaving host holds, not normal use, and its default leaves
  room for a POS backend that drives many lanes from one address (each payment in
  flight holds a connection until its answer) and for loopback clients, which all
  share 127.0.0.1.
- **Bytes that are not HTTP** (a 100 KB header, a garbage request line): aiohttp
  answers them from ``RequestHandler.handle_error`` in plain text and logs a
  traceback.  Here they are answered in the JSON error shape and logged in one
  line, without the bytes (they may hold credentials).

The site (:class:`ApiSite`) is aiohttp's documented extension point for "serve
this runner on some socket": it builds :class:`GuardedRequestHandler` for each
connection instead of aiohttp's own, with the same ``Server`` behind it (so the
runner's graceful shutdown sees every connection).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.typedefs import Handler

from common.config.loader import DEFAULT_MAX_CONNECTIONS_PER_ADDRESS
from supervisor_agent.api import error_codes
from supervisor_agent.api.errors import ApiError
from supervisor_agent.api.wire_json import dumps

log = structlog.get_logger(__name__)

HEADER_READ_TIMEOUT_S = 10.0  # a register sends its whole head in milliseconds
KEEPALIVE_TIMEOUT_S = 15.0  # an idle keep-alive connection is closed after this
MAX_LINE_BYTES = 8190  # request line (aiohttp's default, named here)
MAX_FIELD_BYTES = 8190  # one header field (a Basic credential needs < 300)
REFUSAL_LOG_WINDOW_S = 60.0  # connection refusals are logged once per address per window
RETRY_AFTER_BUSY_S = 1
UNKNOWN_PEER = "unknown"


@dataclass(frozen=True, slots=True)
class ServerLimits:
    header_read_timeout_s: float = HEADER_READ_TIMEOUT_S
    keepalive_timeout_s: float = KEEPALIVE_TIMEOUT_S
    max_connections_per_address: int = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS


def _canned_response(error: ApiError) -> bytes:
    """A whole HTTP/1.1 answer, for a connection that gets no request object."""
    body = dumps(error.body()).encode()
    head = (
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in error.headers.items())
        + "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class ConnectionCounter:
    """Open connections per client address; refusals logged once per address per window."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}
        self.refusal = _canned_response(
            ApiError(
                503,
                error_codes.TOO_MANY_CONNECTIONS,
                f"at most {limit} open connections per client address",
                rule="max_connections",
                headers={"Retry-After": str(RETRY_AFTER_BUSY_S)},
            )
        )

    def admit(self, address: str) -> bool:
        if self.open[address] >= self.limit:
            self._note_refusal(address)
            return False
        self.open[address] += 1
        return True

    def release(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]

    def _note_refusal(self, address: str) -> None:
        self._refused[address] += 1
        now = time.monotonic()
        last = self._logged_at.get(address)
        if last is not None and now - last < REFUSAL_LOG_WINDOW_S:
            return
        self._logged_at[address] = now
        log.warning(
            "api.connection.limited",
            peer=address,
            open=self.open[address],
            limit=self.limit,
            refused=self._refused.pop(address),
        )


def _malformed(exc: BaseException | None) -> ApiError:
    if isinstance(exc, LineTooLong):
        return ApiError(
            400,
            error_codes.MALFORMED_HTTP,
            f"the request line or a header is longer than {MAX_FIELD_BYTES} bytes",
            rule="max_header_size",
        )
    kind = type(exc).__name__ if exc is not None else "unknown"
    return ApiError(
        400, error_codes.MALFORMED_HTTP, f"the request is not valid HTTP/1.1 ({kind})", rule="http"
    )


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's per-connection protocol with a head deadline, a per-address cap and JSON errors."""

    def __init__(
        self,
        manager: web.Server,
        *,
        loop: asyncio.AbstractEventLoop,
        counter: ConnectionCounter,
        limits: ServerLimits,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self._counter = counter
        self._limits = limits
        self._address: str | None = None  # set once admitted
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else UNKNOWN_PEER
        if not self._counter.admit(address):
            assert isinstance(transport, asyncio.Transport)
            transport.write(self._counter.refusal)
            transport.close()
            return
        self._address = address
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._address is None:  # refused at connect: aiohttp never knew it
            return
        self._counter.release(self._address)
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._address is not None:
            super().data_received(data)

    def head_received(self) -> None:
        """A whole request head was parsed: the deadline stops until the answer is sent."""
        self._disarm_head_deadline()

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        answered = await super().finish_response(request, resp, start_time)
        if self.transport is not None:
            self._arm_head_deadline()  # the next head on this keep-alive connection
        return answered

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_deadline = self._loop.call_later(
            self._limits.header_read_timeout_s, self._head_deadline_passed
        )

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_deadline_passed(self) -> None:
        self._head_deadline = None
        if self.transport is None:
            return
        log.info(
            "api.connection.header_timeout",
            peer=self._address,
            timeout_s=self._limits.header_read_timeout_s,
        )
        self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to what never became a request, or escaped the middlewares.

        Unparseable HTTP is ordinary noise from anyone on the network: one info
        line naming the parser's complaint by class, never the bytes.  Anything
        else is a bug and keeps its traceback.
        """
        if isinstance(exc, HttpProcessingError) or status == 400:
            log.info(
                "api.request.malformed",
                peer=request.remote,
                status=status,
                reason=type(exc).__name__ if exc is not None else "unknown",
            )
            error = _malformed(exc)
        else:
            log.error("api.server.error", peer=request.remote, status=status, exc_info=exc)
            error = ApiError(500, error_codes.INTERNAL_ERROR, "internal error")
        if request.writer.output_size > 0:  # as aiohttp: too late for another answer
            raise ConnectionError("an answer was already being sent; the connection is closed")
        response = error.response()
        response.force_close()
        return response


@web.middleware
async def head_received_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: a request exists, so its head is complete; stop the connection's clock."""
    protocol = request.protocol
    if isinstance(protocol, GuardedRequestHandler):
        protocol.head_received()
    return await handler(request)


class ApiSite(web.BaseSite):
    """A TCP site whose connections are :class:`GuardedRequestHandler` (see the module doc)."""

    __slots__ = ("_counter", "_host", "_limits", "_port")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: ServerLimits) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._limits = limits
        self._counter = ConnectionCounter(limits.max_connections_per_address)

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        options: dict[str, Any] = {
            "access_log": None,  # the error middleware logs each request once
            "keepalive_timeout": self._limits.keepalive_timeout_s,
            "max_line_size": MAX_LINE_BYTES,
            "max_field_size": MAX_FIELD_BYTES,
        }

        def protocol() -> GuardedRequestHandler:
            return GuardedRequestHandler(
                server, loop=loop, counter=self._counter, limits=self._limits, **options
            )

        self._server = await loop.create_server(
            protocol, self._host, self._port, backlog=self._backlog, reuse_address=True
        )
