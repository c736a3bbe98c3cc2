"""Several terminals' links through the whole connector: which lane is down, and which not.

``ecr-connector run`` under real supervisord (tp-manager, the agent, the Concert V2
simulator on a pty as the configured terminal), plus two Concert V3 terminals named in
the config (``lane2``, ``lane3``), each a ``simulate --protocol concert-v3`` process on
its own loopback port.  ``lane3``'s simulator is killed by its pid; the status page, open
in a real headless Chromium, shows ``lane3`` down and the others up, live and after a
reload, ``GET /metrics`` has one ``ecr_terminal_link_up`` series per terminal and
``ecr-connector status`` one row per terminal, saying the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common import paths
from tests.api.conftest import basic
from tests.operator.browser import chromium_path, headless_chromium
from tests.operator.terminal import ecr_connector
from tests.stack import Stack, alive, hipay_stub, ready_command, running_stack, wait_for

LINK_TIMEOUT_S = 60.0
PAGE_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 90.0
KIOSK = (1024, 600)
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

needs_chromium = pytest.mark.skipif(
    chromium_path() is None,
    reason="chromium not installed (Debian's 'chromium' package; tests/run.sh installs it "
    "when apt-get can)",
)


@contextlib.contextmanager
def v3_simulator(tmp_path: Path, name: str) -> Iterator[tuple[int, int]]:
    """A Concert V3 simulator process on a free loopback port: its pid and port."""
    argv = [sys.executable, "-m", "common", "simulate", "--protocol", "concert-v3"]
    argv += ["--listen", "127.0.0.1:0"]
    with ready_command(argv, tmp_path / f"{name}-simulator.err") as (pid, announced):
        yield pid, int(announced.rpartition(":")[2])  # "tcp=127.0.0.1:PORT"


def links_of(stack: Stack) -> dict[str, Any]:
    """Each terminal's row of ``/status.json`` (reading it asks every terminal ``check``)."""
    status, body = stack.request("GET", "/status.json", timeout_s=15)
    assert status == 200, body
    return {row["terminal"]: row for row in body["terminals"]}


def link_gauges(stack: Stack) -> dict[str, str]:
    status, text = stack.request("GET", "/metrics")
    assert status == 200
    prefix = 'ecr_terminal_link_up{terminal="'
    return {
        line[len(prefix) :].split('"')[0]: line.rpartition(" ")[2]
        for line in str(text).splitlines()
        if line.startswith(prefix)
    }


def row_of(text: str, terminal: str) -> str:
    """The line of ``ecr-connector status``'s Terminals table for ``terminal``."""
    return next(line for line in text.splitlines() if f" {terminal} " in line)


def _link_in_page(terminal: str) -> str:
    cell = f"document.querySelector('tr[data-terminal=\"{terminal}\"] [data-link]')"
    return f"({cell} || {{}}).textContent"


@needs_chromium
async def test_a_lane_whose_terminal_is_gone_shows_down_beside_the_lanes_that_are_up(
    tmp_path: Path,
) -> None:
    with (
        hipay_stub(tmp_path) as stub,
        v3_simulator(tmp_path, "lane2") as (_, lane2_port),
        v3_simulator(tmp_path, "lane3") as (lane3_pid, lane3_port),
    ):
        named = {"lane2": lane2_port, "lane3": lane3_port}
        terminals = {
            name: {"protocol": "concert-v3", "host": "127.0.0.1", "port": port}
            for name, port in named.items()
        }
        with running_stack(
            tmp_path,
            hipay_base_url=stub.url + "/",
            hipay_login=stub.login,
            hipay_password=stub.password,
            terminals=terminals,
        ) as stack:
            await asyncio.to_thread(
                wait_for,
                lambda: all(row["link"] == "up" for row in links_of(stack).values()),
                LINK_TIMEOUT_S,
                "every terminal's link up",
            )
            rows = await asyncio.to_thread(links_of, stack)
            assert list(rows) == ["default", "lane2", "lane3"]  # configured ones, no other
            assert rows["lane3"]["protocol"] == "concert-v3"
            assert rows["lane3"]["location"] == f"127.0.0.1:{lane3_port}"
            assert rows["default"]["protocol"] == "concert-v2"
            assert rows["default"]["location"] == str(paths.simulator_tty(stack.data_dir))
            assert all(isinstance(row["since"], float) for row in rows.values())
            up = await asyncio.to_thread(link_gauges, stack)
            assert up == {"default": "1.0", "lane2": "1.0", "lane3": "1.0"}

            auth = {
                "Authorization": basic(stack.config["api_username"], stack.config["api_password"])
            }
            async with headless_chromium(tmp_path) as browser:
                await browser.open(stack.base_url + "/status", auth, *KIOSK)
                await browser.wait_for(
                    "document.getElementById('live').className === 'on'",
                    PAGE_TIMEOUT_S,
                    "the page's event stream to connect",
                )
                for terminal in ("default", "lane2", "lane3"):
                    assert await browser.evaluate(_link_in_page(terminal)) == "up", terminal
                await browser.evaluate("window.__sameDocument = 'yes'")

                os.kill(lane3_pid, signal.SIGKILL)  # lane3's terminal is gone
                await asyncio.to_thread(
                    wait_for, lambda: not alive(lane3_pid), 10.0, "lane3's simulator to die"
                )
                # the next attempt on lane3 (here the operator's check) finds out
                status, check = await asyncio.to_thread(
                    stack.request, "GET", "/check?terminal=lane3"
                )
                assert status == 200 and check["link"] == "down", check

                await browser.wait_for(
                    f"{_link_in_page('lane3')} === 'down'", PAGE_TIMEOUT_S, "lane3 down, live"
                )
                assert await browser.evaluate("window.__sameDocument") == "yes"  # no reload
                assert await browser.evaluate(_link_in_page("lane2")) == "up"
                assert await browser.evaluate(_link_in_page("default")) == "up"
                assert await browser.evaluate("document.getElementById('link').textContent") == (
                    "up"  # the configured terminal's own badge does not follow lane3
                )
                live = await browser.screenshot(tmp_path / "status-lanes-live.png")

                await browser.open(stack.base_url + "/status", auth, *KIOSK)  # a fresh load
                await browser.wait_for(
                    f"{_link_in_page('lane3')} === 'down'", PAGE_TIMEOUT_S, "lane3 down, loaded"
                )
                assert await browser.evaluate(_link_in_page("lane2")) == "up"
                assert await browser.evaluate(_link_in_page("default")) == "up"
                row = await browser.evaluate(
                    "document.querySelector('tr[data-terminal=\"lane3\"]').textContent"
                )
                assert f"127.0.0.1:{lane3_port}" in row and "concert-v3" in row
                loaded = await browser.screenshot(tmp_path / "status-lanes-loaded.png")

            down = await asyncio.to_thread(link_gauges, stack)
            assert down == {"default": "1.0", "lane2": "1.0", "lane3": "0.0"}
            rows = await asyncio.to_thread(links_of, stack)
            assert rows["lane3"]["link"] == "down" and rows["lane2"]["link"] == "up"
            run = await asyncio.to_thread(
                ecr_connector, ["status", "--config", str(stack.config_path)], CLI_TIMEOUT_S
            )
            assert run.returncode == 1, run.text  # lane3 is down, whatever the default's link
            assert " down " in row_of(run.text, "lane3"), run.text
            assert " up " in row_of(run.text, "lane2"), run.text
    ARTIFACTS.mkdir(exist_ok=True)
    for shot in (live, loaded):
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        ARTIFACTS.joinpath(shot.name).write_bytes(shot.read_bytes())
