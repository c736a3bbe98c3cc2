"""A terminal's link as the agent shows it after tp-manager restarts.

tp-manager's link events are hints on a PUB socket: those a new tp-manager publishes
before the agent's subscriber has reconnected are lost.  Under real supervisord, the
configured terminal's port disappears while tp-manager is stopped; the new tp-manager
finds it missing at once and publishes ``link.down`` only then (its state never changes
after, so it never says it again).  The agent must learn it all the same: the link gauge
(what the shop's alert reads), the status facts and the status page open in a real
headless Chromium (live, without a reload) say down, as ``/check`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import basic
from tests.operator.browser import headless_chromium
from tests.operator.test_status_page import KIOSK, PAGE_TIMEOUT_S, needs_chromium
from tests.stack import Stack, running_stack, wait_for

LINK_TIMEOUT_S = 60.0
RELEARN_TIMEOUT_S = 30.0  # the agent re-asks within a metrics round (15 s)
BADGE = "document.getElementById('link').textContent"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path) as running:
        yield running


def link_gauge(stack: Stack) -> str | None:
    status, text = stack.request("GET", "/metrics")
    assert status == 200
    prefix = 'ecr_terminal_link_up{terminal="default"} '
    lines = str(text).splitlines()
    return next((line[len(prefix) :] for line in lines if line.startswith(prefix)), None)


def restart_tp_manager_with_the_terminal_gone(stack: Stack) -> None:
    supervisor = stack.supervisor().supervisor
    stack.process_info()
    supervisor.stopProcess("tp-manager")
    supervisor.stopProcess("simulator")  # the terminal is unplugged meanwhile
    supervisor.startProcess("tp-manager")
    stack.process_info()
    status, check = stack.request("GET", "/check", timeout_s=10)
    assert status == 200 and check["link"] == "down", check  # what tp-manager knows


@needs_chromium
async def test_a_link_lost_while_tp_manager_restarted_is_shown_down(
    stack: Stack, tmp_path: Path
) -> None:
    await asyncio.to_thread(
        wait_for, lambda: link_gauge(stack) == "1.0", LINK_TIMEOUT_S, "the link gauge at 1"
    )
    auth = {"Authorization": basic(stack.config["api_username"], stack.config["api_password"])}
    async with headless_chromium(tmp_path) as browser:
        await browser.open(stack.base_url + "/status", auth, *KIOSK)
        await browser.wait_for(
            "document.getElementById('live').className === 'on'", PAGE_TIMEOUT_S, "the stream"
        )
        assert await browser.evaluate(BADGE) == "up"
        await browser.evaluate("window.__sameDocument = 'yes'")

        await asyncio.to_thread(restart_tp_manager_with_the_terminal_gone, stack)

        await asyncio.to_thread(
            wait_for, lambda: link_gauge(stack) == "0.0", RELEARN_TIMEOUT_S, "the gauge at 0"
        )
        await browser.wait_for(f"{BADGE} === 'down'", PAGE_TIMEOUT_S, "the page's link down")
        assert await browser.evaluate("window.__sameDocument") == "yes"  # live, no reload
        status, facts = await asyncio.to_thread(stack.request, "GET", "/status.json")
        assert status == 200
        rows = {row["terminal"]: row for row in facts["terminals"]}
        assert rows["default"]["link"] == "down" and facts["terminal"]["link"] == "down", facts

        stack.supervisor().supervisor.startProcess("simulator")  # plugged in again
        stack.process_info()
        await asyncio.to_thread(
            wait_for, lambda: link_gauge(stack) == "1.0", LINK_TIMEOUT_S, "the gauge at 1 again"
        )
        await browser.wait_for(f"{BADGE} === 'up'", PAGE_TIMEOUT_S, "the page's link up again")
