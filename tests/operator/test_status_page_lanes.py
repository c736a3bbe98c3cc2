"""The status page with several terminals, in a real headless Chromium: what each one is
doing now is shown on its own (the configured terminal's section, each named terminal's
row), so a payment on one lane never hides, or stands for, a payment on another.

The payments go through the API, the real journal and a real ZeroMQ peer standing in for
tp-manager (tests/api/conftest.py); tp-manager's hints (``terminal.busy``, its
``transaction.started``, ``terminal.idle``) are handed to the agent's subscriber handlers
as its PUB socket would: without their terminal (the page then finds it from the order's
journal row), and with it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from common import messages
from common.config.model import CONCERT_V3
from common.messages import Event, Reply, Request
from common.terminals import TerminalSpec
from supervisor_agent import event_log
from tests.api.conftest import RecordingTpManager, basic, default_responder
from tests.operator.browser import headless_chromium
from tests.operator.conftest import Served, serve_operator
from tests.operator.test_status_page import (
    KIOSK,
    PAGE_TIMEOUT_S,
    PHONE,
    _row_state,
    needs_chromium,
)

LANE2 = TerminalSpec("lane2", CONCERT_V3, host="127.0.0.1", port=8888)
SLOW = "SLOW-DEFAULT-1"  # the configured terminal's customer takes their time
QUICK = "QUICK-LANE2-1"  # lane2's pays at once meanwhile


def hint(served: Served, name: str, order_id: str) -> None:
    """tp-manager's event about an order, as the agent's subscriber hands it over."""
    data = {"order_id": order_id, "amount": 100}
    served.operator.feed.tp_manager_handlers()[name](Event(name, data))


CURRENT = "document.getElementById('current').textContent"


def now_of(terminal: str) -> str:
    cell = f"document.querySelector('tr[data-terminal=\"{terminal}\"] [data-now]')"
    return f"({cell} || {{}}).textContent"


@needs_chromium
async def test_a_payment_on_another_lane_neither_hides_nor_stands_for_the_configured_ones(
    tpm: RecordingTpManager, tmp_path: Path
) -> None:
    customer_done = asyncio.Event()

    async def pay(request: Request) -> Reply:
        if request.properties["order_id"] == SLOW:
            await customer_done.wait()
        return await default_responder(request)

    tpm.responders["pay"] = pay
    async with serve_operator(tpm, terminals=(LANE2,)) as served:
        async with headless_chromium(tmp_path) as browser:
            await browser.open(served.base_url + "/status", {"Authorization": basic()}, *KIOSK)
            await browser.wait_for(
                "document.getElementById('live').className === 'on'",
                PAGE_TIMEOUT_S,
                "the page's event stream to connect",
            )
            slow = asyncio.create_task(
                served.session.post(served.base_url + "/", json={"amount": "1", "order_id": SLOW})
            )
            await browser.wait_for(f"{CURRENT}.includes('{SLOW}')", PAGE_TIMEOUT_S, "paying")
            hint(served, messages.EVENT_TERMINAL_BUSY, SLOW)
            hint(served, messages.EVENT_TRANSACTION_STARTED, SLOW)
            await browser.wait_for(
                f"{CURRENT}.startsWith('Waiting for the card')", PAGE_TIMEOUT_S, "the card"
            )

            quick = await served.session.post(
                served.base_url + "/", json={"amount": "2", "order_id": QUICK, "terminal": "lane2"}
            )
            assert quick.status == 200
            hint(served, messages.EVENT_TERMINAL_BUSY, QUICK)
            hint(served, messages.EVENT_TRANSACTION_STARTED, QUICK)
            hint(served, messages.EVENT_TERMINAL_IDLE, QUICK)
            await browser.wait_for(f"{_row_state(QUICK)} === 'accepted'", PAGE_TIMEOUT_S, "lane2")
            # the configured terminal's customer is still at it: its line says so
            assert await browser.evaluate(CURRENT) == f"Waiting for the card — order {SLOW}"
            assert await browser.evaluate(now_of("lane2")) == ""  # lane2 is done
            assert SLOW in await browser.evaluate(now_of("default"))

            customer_done.set()
            assert (await slow).status == 200
            hint(served, messages.EVENT_TERMINAL_IDLE, SLOW)
            await browser.wait_for(f"{_row_state(SLOW)} === 'accepted'", PAGE_TIMEOUT_S, "paid")
            await browser.wait_for(f"{CURRENT} === ''", PAGE_TIMEOUT_S, "the line cleared")
            assert await browser.evaluate(now_of("default")) == ""


@needs_chromium
async def test_the_current_line_keeps_a_busy_terminal_when_another_goes_idle(
    tpm: RecordingTpManager, tmp_path: Path
) -> None:
    """Several terminals pay at once: one terminal's end must not blank another's line.
    tp-manager's busy/idle hints carry the terminal's key, and the page keeps each
    terminal's own (its row's Now cell)."""
    lanes = tuple(
        TerminalSpec(name, CONCERT_V3, host="127.0.0.1", port=port)
        for name, port in (("lane1", 9001), ("lane2", 9002))
    )
    async with serve_operator(tpm, terminals=lanes) as served:
        handle = served.operator.feed.tp_manager_handlers()

        def tell(name: str, order_id: str, terminal: str) -> None:
            handle[name](Event(name, {"order_id": order_id, "terminal": terminal}))

        async with headless_chromium(tmp_path) as browser:
            await browser.open(served.base_url + "/status", {"Authorization": basic()}, *PHONE)
            await browser.wait_for(
                "document.getElementById('live').className === 'on'",
                PAGE_TIMEOUT_S,
                "the page's event stream to connect",
            )
            tell(messages.EVENT_TERMINAL_BUSY, "ORD-A", "lane1")
            tell(messages.EVENT_TERMINAL_BUSY, "ORD-B", "lane2")
            await browser.wait_for(
                f"({now_of('lane2')} || '').includes('ORD-B')",
                PAGE_TIMEOUT_S,
                "both terminals busy",
            )
            tell(messages.EVENT_TERMINAL_IDLE, "ORD-B", "lane2")
            await browser.wait_for(f"{now_of('lane2')} === ''", PAGE_TIMEOUT_S, "lane2 idle")
            line = await browser.evaluate(now_of("lane1"))
    assert line == "Terminal busy: order ORD-A"
    busy = served.operator.feed.events.latest(event_log.TERMINAL_BUSY)
    assert busy is not None and busy.data == {"order_id": "ORD-B", "terminal": "lane2"}
