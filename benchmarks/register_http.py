"""A lean cash register for the benchmarks: ``POST /`` on a raw loopback socket.

The request bytes are built once per payment with nothing but string formatting, and the
answer is read by its Content-Length, so the client's own time (which the benchmark counts
as connector latency, having no way to subtract it) stays a few tens of microseconds; an
``urllib`` request costs several hundred.  One new connection per payment, as a register
that pays now and then does, with ``Connection: close``.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from dataclasses import dataclass
from typing import Any, Final

HEADER_END: Final = b"\r\n\r\n"
RECV_BYTES: Final = 65536
MAX_HEADER_BYTES: Final = 64 * 1024


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
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length = None
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
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
