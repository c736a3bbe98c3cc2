"""The server under the application, with raw sockets: slow heads are closed, one address
cannot hold every connection, and bytes that are not HTTP get the JSON error shape and a
one-line log without a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from common.config import load_config
from common.config.loader import DEFAULT_MAX_CONNECTIONS_PER_ADDRESS
from supervisor_agent.api import bodies
from supervisor_agent.api.server import MAX_FIELD_BYTES, ServerLimits
from supervisor_agent.api.settings import api_settings
from supervisor_agent.api.wire_json import loads
from tests.api.conftest import Api, RecordingTpManager, basic, serve_api
from tests.api.test_api_transport import assert_error

SHORT_HEAD_TIMEOUT_S = 0.5
CLOSED_WITHIN_S = 10.0  # generous bound for "eventually closed"
TRICKLE_EVERY_S = 0.1
TRICKLE_MAX = int(CLOSED_WITHIN_S / TRICKLE_EVERY_S)
CAP = 3
FIFTY_LANES = 50
HEALTHCHECK = b"GET /v1/connector/healthcheck HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
LONG_LINE = b"GET /" + b"a" * (MAX_FIELD_BYTES + 10) + b" HTTP/1.1\r\n\r\n"


def port_of(api: Api) -> int:
    return int(api.base_url.rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def raw(api: Api) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(api))
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def trickle_until_closed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """Send one header byte at a time; the number sent when the server closed (or fail)."""
    sent = 0
    for _ in range(TRICKLE_MAX):
        try:
            writer.write(b"X")
            await writer.drain()
        except ConnectionError:
            return sent
        sent += 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TRICKLE_EVERY_S):
                if await reader.read(1024) == b"":
                    return sent
    raise AssertionError(f"still open after {CLOSED_WITHIN_S} s of trickled header bytes")


async def http_status(reader: asyncio.StreamReader) -> int:
    async with asyncio.timeout(CLOSED_WITHIN_S):
        data = await reader.read()  # Connection: close
    return int(data.split(b" ", 2)[1])


async def http_answer(reader: asyncio.StreamReader) -> tuple[int, dict]:
    async with asyncio.timeout(CLOSED_WITHIN_S):
        data = await reader.read()  # the server closes after an error answer
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    return status, loads(body)


@pytest.fixture
async def short(tpm: RecordingTpManager) -> AsyncIterator[Api]:
    limits = ServerLimits(
        header_read_timeout_s=SHORT_HEAD_TIMEOUT_S, max_connections_per_address=CAP
    )
    async with serve_api(tpm, limits=limits) as api:
        yield api


# --- slow heads


async def test_clients_trickling_a_head_are_closed(short: Api) -> None:
    async with contextlib.AsyncExitStack() as stack:
        conns = [await stack.enter_async_context(raw(short)) for _ in range(CAP)]
        for _, writer in conns:
            writer.write(b"GET /version HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        closed = await asyncio.gather(*(trickle_until_closed(r, w) for r, w in conns))
    assert all(n >= 1 for n in closed)  # data kept arriving; the server closed anyway
    # a correct client is served meanwhile and after
    status, _, _ = await short.get("/version")
    assert status == 200


async def test_a_second_head_trickled_on_a_kept_alive_connection_is_closed(short: Api) -> None:
    async with raw(short) as (reader, writer):
        writer.write(
            b"GET /version HTTP/1.1\r\nHost: x\r\nAuthorization: " + basic().encode() + b"\r\n\r\n"
        )
        async with asyncio.timeout(CLOSED_WITHIN_S):
            first = await reader.readuntil(b'"}')
        assert first.startswith(b"HTTP/1.1 200")
        writer.write(b"GET /version HTTP/1.1\r\nX-Slow: ")
        await trickle_until_closed(reader, writer)


async def test_a_slow_handler_is_not_a_slow_head(tpm: RecordingTpManager) -> None:
    """The deadline stops once the head is in: a payment longer than it still answers."""

    async def slow_pay(request):
        await asyncio.sleep(SHORT_HEAD_TIMEOUT_S * 3)
        from tests.api.conftest import default_responder

        return await default_responder(request)

    tpm.responders["pay"] = slow_pay
    limits = ServerLimits(header_read_timeout_s=SHORT_HEAD_TIMEOUT_S)
    async with serve_api(tpm, limits=limits) as api:
        status, body, _ = await api.post("/", {"amount": "1.00"})
        assert status == 200 and body["paymentStatus"] == "SUCCESS"


# --- connections per address


async def test_connections_over_the_cap_get_a_json_503(tpm: RecordingTpManager) -> None:
    limits = ServerLimits(max_connections_per_address=CAP)
    async with serve_api(tpm, limits=limits) as api, contextlib.AsyncExitStack() as stack:
        held = [await stack.enter_async_context(raw(api)) for _ in range(CAP)]
        with capture_logs() as logs:
            for _ in range(2):
                async with raw(api) as (reader, _):
                    status, body = await http_answer(reader)
                assert status == 503
                err = assert_error(body, 503, "TOO_MANY_CONNECTIONS")
                assert str(CAP) in err["message"]
        limited = [e for e in logs if e["event"] == "api.connection.limited"]
        assert len(limited) == 1 and limited[0]["peer"] == "127.0.0.1"  # once per window
        # one held connection goes away: a new one is served (eventually: the server must
        # first see the close)
        _, writer = held.pop()
        writer.close()
        for _ in range(100):
            async with raw(api) as (reader, writer):
                writer.write(HEALTHCHECK)
                async with asyncio.timeout(CLOSED_WITHIN_S):
                    answer = await reader.read()
            if answer.startswith(b"HTTP/1.1 200"):
                break
            await asyncio.sleep(0.05)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]


async def test_the_cap_is_the_settings_and_its_default_holds_fifty_lanes_of_one_backend(
    tpm: RecordingTpManager,
) -> None:
    """A POS backend driving 50 lanes from one address holds one connection per payment
    in flight: the default cap admits them all at once; a configured cap is obeyed."""
    async with serve_api(tpm) as api, contextlib.AsyncExitStack() as stack:
        held = [await stack.enter_async_context(raw(api)) for _ in range(FIFTY_LANES)]
        for _, writer in held:  # every connection is open before the first is answered
            writer.write(HEALTHCHECK)
        answers = await asyncio.gather(*(http_status(reader) for reader, _ in held))
        assert answers == [200] * FIFTY_LANES
    async with serve_api(tpm, max_connections_per_address=CAP) as api:
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(CAP):
                await stack.enter_async_context(raw(api))
            async with raw(api) as (reader, _):
                status, body = await http_answer(reader)
            assert status == 503
            assert str(CAP) in assert_error(body, 503, "TOO_MANY_CONNECTIONS")["message"]


def test_the_api_takes_the_cap_from_the_config(tmp_path: Path) -> None:
    required = (
        "api_username: register\napi_password: s3cret-pass\nserial_port: simulator\n"
        "hipay_login: login\nhipay_password: secret\n"
    )
    config_path = tmp_path / "config.yml"
    config_path.write_text(required + "max_connections_per_address: 60\n")
    assert api_settings(load_config(config_path)).max_connections_per_address == 60
    config_path.write_text(required)
    default = api_settings(load_config(config_path)).max_connections_per_address
    assert default == DEFAULT_MAX_CONNECTIONS_PER_ADDRESS >= FIFTY_LANES


# --- what is not HTTP


@pytest.mark.parametrize(
    ("name", "request_bytes", "rule"),
    [
        (
            "100 KB Authorization header",
            b"GET /version HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
            + b"A" * 100_000
            + b"\r\n\r\n",
            "max_header_size",
        ),
        (
            "long request line",
            b"GET /" + b"a" * (MAX_FIELD_BYTES + 10) + b" HTTP/1.1\r\n\r\n",
            None,
        ),
        ("garbage request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", "http"),
        ("bad header", b"GET / HTTP/1.1\r\nHost x\r\n\r\n", "http"),
        ("bad content-length", b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", "http"),
    ],
)
async def test_malformed_http_is_json_and_one_log_line(
    api: Api, caplog: pytest.LogCaptureFixture, name: str, request_bytes: bytes, rule: str | None
) -> None:
    with capture_logs() as logs, caplog.at_level(logging.DEBUG, logger="aiohttp"):
        async with raw(api) as (reader, writer):
            writer.write(request_bytes)
            status, body = await http_answer(reader)
    assert status == 400, name
    err = assert_error(body, 400, "MALFORMED_HTTP")
    if rule is not None:
        assert err["details"]["rule"] == rule
    assert "AAAA" not in str(body)
    malformed = [e for e in logs if e["event"] == "api.request.malformed"]
    assert len(malformed) == 1, logs
    assert malformed[0]["log_level"] == "info"
    assert "exc_info" not in malformed[0] and "AAAA" not in str(malformed[0])
    assert [e for e in logs if e["log_level"] in ("warning", "error")] == []
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING] == []
    assert api.tpm.received == []


# --- slow bodies

SHORT_BODY_TIMEOUT_S = 0.3


async def test_a_body_that_stops_short_gets_a_json_408_and_nothing_is_paid(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bodies, "BODY_READ_TIMEOUT_S", SHORT_BODY_TIMEOUT_S)
    body = b'{"amount": "9.99", "order_id": "half-sent"}'
    head = (
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: {basic()}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    async with raw(api) as (reader, writer):
        writer.write(head + body[:10])  # the rest never comes
        await writer.drain()
        async with asyncio.timeout(CLOSED_WITHIN_S):
            answer_head = await reader.readuntil(b"\r\n\r\n")
            length = int(answer_head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            answer = loads(await reader.readexactly(length))
    status = int(answer_head.split(b" ", 2)[1])
    assert b"connection: close" in answer_head.lower()  # closed once aiohttp stops lingering
    err = assert_error(answer, 408, "BODY_TIMEOUT")
    assert err["details"] == {"path": "(body)", "rule": "read_timeout"}
    assert "10 of 43 bytes" in err["message"]
    assert status == 408
    assert api.tpm.received == []  # the terminal was never asked
    status, _, _ = await api.get("/transactions/half-sent")
    assert status == 404  # and nothing was journaled
