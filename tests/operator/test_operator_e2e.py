"""The operator's view against the whole connector under supervisord (real tp-manager,
simulator on a pty, agent, journal, a HiPay stand-in): the live events of a payment in
order and resumable; ``ecr-connector pay`` and ``status`` on a real pty."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from supervisor_agent.sse_client import SseEvent
from tests.api.conftest import basic
from tests.operator.conftest import collect, for_order, names
from tests.operator.terminal import ecr_connector
from tests.stack import Stack, hipay_stub, running_stack, wait_for

SLOW_CUSTOMER = "1000.03"  # simulator: accepted after 5 s at the terminal
REFUSED = "1000.01"
CLI_TIMEOUT_S = 90.0
STREAM_READ_S = 60.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("operator-e2e")
    with hipay_stub(tmp) as stub:
        with running_stack(
            tmp,
            hipay_base_url=stub.url + "/",
            hipay_login=stub.login,
            hipay_password=stub.password,
        ) as running:
            wait_for(
                lambda: running.request("GET", "/check", timeout_s=10)[1].get("link") == "up",
                60,
                "the terminal link",
            )
            yield running


def _session(stack: Stack) -> aiohttp.ClientSession:
    auth = basic(stack.config["api_username"], stack.config["api_password"])
    return aiohttp.ClientSession(
        headers={"Authorization": auth},
        timeout=aiohttp.ClientTimeout(total=None, sock_read=STREAM_READ_S),
    )


def _delivered(order_id: str) -> Callable[[SseEvent], bool]:
    return lambda e: e.name == "notification.delivered" and e.payload().get("order_id") == order_id


async def test_a_payments_live_events_come_in_order_and_resume(stack: Stack) -> None:
    order = "E2E-SSE-1"
    async with _session(stack) as session:
        async with session.get(stack.base_url + "/events") as stream:
            paying = asyncio.create_task(
                session.post(
                    stack.base_url + "/", json={"amount": SLOW_CUSTOMER, "order_id": order}
                )
            )
            events = await collect(stream, _delivered(order))
            answer = await (await paying).json()
        ours = for_order(events, order)
        seen = names(ours)
        for earlier, later in [
            ("transaction.started", "terminal.busy"),
            ("terminal.busy", "transaction.waiting_for_card"),
            ("transaction.waiting_for_card", "transaction.finished"),
            ("transaction.finished", "notification.delivered"),
            ("terminal.busy", "terminal.idle"),
        ]:
            assert seen.index(earlier) < seen.index(later), seen
        finished: SseEvent = next(e for e in ours if e.name == "transaction.finished")
        _, journaled = stack.request("GET", f"/transactions/{order}")
        assert finished.payload()["state"] == answer["transactionState"] == "accepted"
        assert journaled["transactionState"] == "accepted"
        assert finished.payload()["amount_text"] == "1000.03 EUR"

        started = ours[0]
        assert started.name == "transaction.started" and started.id
        async with session.get(
            stack.base_url + "/events", headers={"Last-Event-ID": started.id}
        ) as resumed:
            again = await collect(resumed, _delivered(order))
        after_started = events[events.index(started) + 1 :]
        assert [(e.id, e.name) for e in again] == [(e.id, e.name) for e in after_started]


def test_pay_shows_live_progress_and_one_clear_line(stack: Stack) -> None:
    config = str(stack.config_path)
    run = ecr_connector(
        ["pay", SLOW_CUSTOMER, "--order-id", "E2E-CLI-1", "--config", config], CLI_TIMEOUT_S
    )
    assert run.returncode == 0, run.text
    assert "waiting for the card" in run.text  # the live line, while the customer paid
    assert " s " in run.text  # with its elapsed time
    assert run.last_line.startswith("✔ ACCEPTED 1000.03 EUR, order E2E-CLI-1")

    refused = ecr_connector(["pay", REFUSED, "--config", config], CLI_TIMEOUT_S)
    assert refused.returncode == 1, refused.text
    assert refused.last_line.startswith("✘ REFUSED 1000.01 EUR, order CLI_")
    assert "nothing was paid" in refused.last_line

    bad = ecr_connector(["pay", "9.999", "--config", config], CLI_TIMEOUT_S)
    assert bad.returncode == 2, bad.text
    assert "✘ NOT PAID" in bad.last_line and "HTTP 400" in bad.text


def test_status_shows_the_pages_facts(stack: Stack) -> None:
    ecr_connector(
        ["pay", "2.50", "--order-id", "E2E-ST-1", "--config", str(stack.config_path)], CLI_TIMEOUT_S
    )
    run = ecr_connector(["status", "--config", str(stack.config_path)], CLI_TIMEOUT_S)
    assert run.returncode == 0, run.text
    text = run.text
    assert "Terminal link" in text and " up " in f" {text} ".replace("\n", " ")
    assert "SN-TEST-0001" in text and "concert-v2" in text
    assert "E2E-ST-1" in text and "2.50 EUR" in text and "accepted" in text


def test_commands_say_clearly_when_the_connector_is_not_there(tmp_path: Path, stack: Stack) -> None:
    config = tmp_path / "config.yml"
    text = stack.config_path.read_text().replace(
        f"local_port: {stack.config['local_port']}", "local_port: 9"
    )
    config.write_text(text)
    run = ecr_connector(["status", "--config", str(config)], CLI_TIMEOUT_S)
    assert run.returncode == 2
    assert "does not answer" in run.text and "ecr-connector run" in run.text
