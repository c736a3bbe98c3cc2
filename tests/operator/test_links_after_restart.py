"""A terminal's link as the agent shows it after tp-manager restarts.

tp-manager's link events are hints on a PUB socket: those a new tp-manager publishes
before the agent's subscriber has reconnected are lost.  Under real supervisord, the
configured terminal's port disappears while tp-manager is stopped; the new tp-manager
finds it missing at once and publishes ``link.down`` only then (its state never changes
after, so it never says it again).  The agent must learn it all the same: the link gauge
(what the shop's alert reads) and the status facts say down, as ``/check`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import Stack, running_stack, wait_for

LINK_TIMEOUT_S = 60.0
RELEARN_TIMEOUT_S = 30.0  # the agent re-asks within a metrics round (15 s)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path) as running:
        yield running


def link_gauge(stack: Stack) -> str | None:
    status, text = stack.request("GET", "/metrics")
    assert status == 200
    prefix = 'ecr_terminal_link_up{terminal="default"} '
    return next(
        (line[len(prefix) :] for line in str(text).splitlines() if line.startswith(prefix)), None
    )


def test_a_link_lost_while_tp_manager_restarted_is_shown_down(stack: Stack) -> None:
    wait_for(lambda: link_gauge(stack) == "1.0", LINK_TIMEOUT_S, "the link gauge at 1")
    supervisor = stack.supervisor().supervisor
    stack.process_info()
    supervisor.stopProcess("tp-manager")
    supervisor.stopProcess("simulator")  # the terminal is unplugged meanwhile
    supervisor.startProcess("tp-manager")
    stack.process_info()
    status, check = stack.request("GET", "/check", timeout_s=10)
    assert status == 200 and check["link"] == "down", check  # what tp-manager knows

    wait_for(lambda: link_gauge(stack) == "0.0", RELEARN_TIMEOUT_S, "the link gauge at 0")
    status, facts = stack.request("GET", "/status.json", timeout_s=15)
    assert status == 200
    rows = {row["terminal"]: row for row in facts["terminals"]}
    assert rows["default"]["link"] == "down" and facts["terminal"]["link"] == "down", facts

    supervisor.startProcess("simulator")  # plugged in again: told by tp-manager's event
    stack.process_info()
    wait_for(lambda: link_gauge(stack) == "1.0", LINK_TIMEOUT_S, "the link gauge at 1 again")
