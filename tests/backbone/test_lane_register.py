"""The benchmarks' kept-alive register (benchmarks/register_http.LaneRegister) against a
real aiohttp server on loopback: the figures of many_terminals.py rest on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from benchmarks.register_http import LaneRegister

ANSWER_DELAY_S = 0.05


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, list[dict[str, object]], set[object]]]:
    orders: list[dict[str, object]] = []
    peers: set[object] = set()

    async def pay(request: web.Request) -> web.Response:
        peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        order = await request.json()
        orders.append({**order, "authorization": request.headers.get("Authorization")})
        await asyncio.sleep(ANSWER_DELAY_S)
        return web.json_response({"orderId": order["order_id"], "padding": "x" * 100_000})

    async def pos_order(request: web.Request) -> web.Response:
        order = await request.json()
        orders.append({**order, "path": request.path})
        return web.json_response({"order": order["order"], "paymentStatus": "Success"})

    app = web.Application()
    app.router.add_post("/", pay)
    app.router.add_post("/v1/connector/order", pos_order)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port, orders, peers
    finally:
        await runner.cleanup()


async def test_payments_share_one_kept_alive_connection(
    server: tuple[int, list[dict[str, object]], set[object]],
) -> None:
    port, orders, peers = server
    register = LaneRegister(port, "register", "s3cret-pass", terminal="t07")
    try:
        replies = [await register.pay(f"o{n}", "9.99", timeout_s=5.0) for n in range(3)]
    finally:
        register.close()
    assert [r.status for r in replies] == [200, 200, 200]
    assert [r.body["orderId"] for r in replies] == ["o0", "o1", "o2"]
    assert len(replies[0].body["padding"]) == 100_000  # many reads
    assert len(peers) == 1  # one connection for the lane
    assert [o["terminal"] for o in orders] == ["t07"] * 3
    assert orders[0]["amount"] == "9.99"
    assert str(orders[0]["authorization"]).startswith("Basic ")
    for reply in replies:
        assert reply.elapsed_ms >= ANSWER_DELAY_S * 1000
        assert reply.sent_at <= reply.received_at


async def test_a_refused_connection_is_a_reply_without_status() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    register = LaneRegister(port, "register", "s3cret-pass")
    reply = await register.pay("o1", "1.00", timeout_s=2.0)
    assert reply.status == 0
    assert "ConnectionRefusedError" in str(reply.body)


async def test_a_pos_register_names_its_terminal_by_host_information(
    server: tuple[int, list[dict[str, object]], set[object]],
) -> None:
    port, orders, _ = server
    register = LaneRegister(port, "register", "s3cret-pass", pos_terminal=("127.0.0.1", 40123))
    try:
        reply = await register.pay("p1", "9.99", timeout_s=5.0)
    finally:
        register.close()
    assert reply.status == 200, reply.body
    (order,) = orders
    assert order["path"] == "/v1/connector/order"
    assert order["order"] == {"order_id": "p1", "price": {"amount": 999, "currency": "EUR"}}
    assert order["pos_technical_info"] == {
        "terminal_transaction_display": {},
        "host_information": {"host": "127.0.0.1", "port": 40123},
    }
