"""Lean cash registers for the benchmarks: ``POST /`` on a raw loopback socket.

The request bytes are built once per payment with nothing but string formatting, and the
answer is read by its Content-Length, so the client's own time (which the benchmark counts
as connector latency, having no way to subtract it) stays a few tens of microseconds; an
``urllib`` request costs several hundred.

* :class:`Register`: one new connection per payment, as a register that pays now and
  then does, with ``Connection: close`` (blocking socket).
* :class:`LaneRegister`: one lane of a shop on the event loop, its connection kept alive
  from one customer to the next.  The round trip is timed on the wire: from just before
  the request is written to the moment its answer's last byte arrives, in the protocol's
  own callback.  An aiohttp client costs about 1 ms of the register process's CPU per
  request, and with 50 lanes in one process its turn on the loop comes late; both were
  counted as the connector's latency.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

HEADER_END: Final = b"\r\n\r\n"
RECV_BYTES: Final = 65536
MAX_HEADER_BYTES: Final = 64 * 1024
POS_ORDER_PATH: Final = "/v1/connector/order"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int  # 0: no HTTP answer (connection refused, reset, timeout)
    body: Any  # the JSON answer, or the error/text when it is not JSON
    sent_at: float  # time.time() just before connecting: to line up with the log times
    received_at: float  # time.time() once the whole answer was read
    elapsed_ms: float  # perf_counter between the two

    def paid(self, order_id: str) -> bool:
        """Approved, answered for this order, and HiPay's acknowledgement reported."""
        body = self.body
        return (
            self.status == 200
            and isinstance(body, dict)
            and body.get("paymentStatus") == "SUCCESS"
            and body.get("notificationHipaySent") is True
            and body.get("orderId") == order_id
        )


class Register:
    """Posts payments to one connector API with its Basic credentials."""

    def __init__(self, port: int, username: str, password: str, host: str = "127.0.0.1") -> None:
        self.address = (host, port)
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._head = (
            f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Basic {token}\r\n"
            "Content-Type: application/json\r\nConnection: close\r\n"
        )

    def pay(self, order_id: str, amount_text: str, timeout_s: float) -> Reply:
        body = json.dumps({"amount": amount_text, "order_id": order_id}).encode()
        request = (self._head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        sent_at = time.time()
        t0 = time.perf_counter()
        try:
            status, answer = self._exchange(request, timeout_s)
        except OSError as exc:
            status, answer = 0, f"{type(exc).__name__}: {exc}"
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
        return Reply(status, answer, sent_at, time.time(), elapsed_ms)

    def _exchange(self, request: bytes, timeout_s: float) -> tuple[int, Any]:
        with socket.create_connection(self.address, timeout=timeout_s) as sock:
            sock.sendall(request)
            data = b""
            while HEADER_END not in data:
                chunk = sock.recv(RECV_BYTES)
                if not chunk:
                    raise ConnectionError(f"closed after {len(data)} bytes of headers")
                data += chunk
                if len(data) > MAX_HEADER_BYTES:
                    raise ConnectionError("headers too long")
            head, _, rest = data.partition(HEADER_END)
            status, length = _status_and_length(head)
            while length is None or len(rest) < length:
                chunk = sock.recv(RECV_BYTES)
                if not chunk:
                    break  # no Content-Length: the answer ends with the connection
                rest += chunk
        text = rest.decode("utf-8", errors="replace")
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, text


def _status_and_length(head: bytes) -> tuple[int, int | None]:
    """An answer's status and Content-Length (None: none given) from its head."""
    lines = head.decode("latin-1").split("\r\n")
    status, length = int(lines[0].split()[1]), None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return status, length


def _head_of(data: bytes | bytearray) -> tuple[int, int, int] | None:
    """(status, where the body starts, its length) once a whole head is in ``data``."""
    end = data.find(HEADER_END)
    if end < 0:
        if len(data) > MAX_HEADER_BYTES:
            raise ConnectionError("headers too long")
        return None
    status, length = _status_and_length(bytes(data[:end]))
    if length is None:
        raise ConnectionError("an answer without Content-Length on a kept-alive connection")
    return status, end + len(HEADER_END), length


class _LaneProtocol(asyncio.Protocol):
    """One kept-alive connection: one request at a time, the answer's end time-stamped."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes, float]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a TCP connection's

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            head = _head_of(self._buffer)
        except (ConnectionError, ValueError, IndexError) as exc:
            waiter.set_exception(ConnectionError(str(exc)))
            return
        if head is None:
            return
        status, start, length = head
        if len(self._buffer) >= start + length:
            done = time.perf_counter()
            body = bytes(self._buffer[start : start + length])
            del self._buffer[: start + length]
            waiter.set_result((status, body, done))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def exchange(self, request: bytes) -> asyncio.Future[tuple[int, bytes, float]]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._buffer.clear()
        self.transport.write(request)
        return self._waiter


class LaneRegister:
    """One lane's register on the event loop: payments one after the other on one
    kept-alive connection (opened by the first, again after a failure)."""

    def __init__(
        self,
        port: int,
        username: str,
        password: str,
        terminal: str | None = None,
        host: str = "127.0.0.1",
        pos_terminal: tuple[str, int] | None = None,
    ) -> None:
        """A desktop register (``POST /``, naming ``terminal`` if given), or with
        ``pos_terminal`` (host, port) a POS API one: ``POST /v1/connector/order``, the
        terminal named by its ``host_information``."""
        self.address = (host, port)
        self.terminal = terminal
        self.pos_terminal = pos_terminal
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        path = "/" if pos_terminal is None else POS_ORDER_PATH
        self._head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Basic {token}\r\nContent-Type: application/json\r\n"
        )
        self._protocol: _LaneProtocol | None = None

    def _order(self, order_id: str, amount_text: str) -> dict[str, Any]:
        """The body in this register's API shape (EUR: the POS API takes cents)."""
        if self.pos_terminal is None:
            order: dict[str, Any] = {"amount": amount_text, "order_id": order_id}
            if self.terminal is not None:
                order["terminal"] = self.terminal
            return order
        cents = Decimal(amount_text).scaleb(2)
        if cents != cents.to_integral_value():
            raise ValueError(f"{amount_text} EUR is not a whole number of cents")
        host, port = self.pos_terminal
        return {
            "order": {"order_id": order_id, "price": {"amount": int(cents), "currency": "EUR"}},
            "pos_technical_info": {
                "terminal_transaction_display": {},
                "host_information": {"host": host, "port": port},
            },
        }

    async def pay(self, order_id: str, amount_text: str, timeout_s: float) -> Reply:
        body = json.dumps(self._order(order_id, amount_text)).encode()
        request = (self._head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        sent_at = time.time()
        try:
            async with asyncio.timeout(timeout_s):
                protocol = await self._connected()
                t0 = time.perf_counter()
                status, raw, done = await protocol.exchange(request)
        except (OSError, TimeoutError) as exc:
            self.close()
            return Reply(0, f"{type(exc).__name__}: {exc}", sent_at, time.time(), 0.0)
        elapsed_ms = (done - t0) * 1000.0
        text = raw.decode("utf-8", errors="replace")
        try:
            answer: Any = json.loads(text)
        except json.JSONDecodeError:
            answer = text
        return Reply(status, answer, sent_at, time.time(), elapsed_ms)

    async def _connected(self) -> _LaneProtocol:
        if self._protocol is None or self._protocol.transport is None:
            loop = asyncio.get_running_loop()
            transport, protocol = await loop.create_connection(_LaneProtocol, *self.address)
            protocol.transport = transport  # uvloop calls connection_made on a later turn
            self._protocol = protocol
        return self._protocol

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None
