"""Whether tp-manager is there, as the metrics (``ecr_tp_manager_up``), the status facts
and ``ecr-connector status`` say it.

With tp-manager stopped (the seeds' ``GET /stop``, which supervisord honours until
someone starts it again) every payment is refused ``TP_MANAGER_UNAVAILABLE``, while the
agent still answers scrapes and each terminal's link gauge keeps its last told state:
without this gauge nothing a monitoring system reads says that the shop cannot take a
card.  Real supervisord, tp-manager, agent and simulator (tests/stack.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.operator.terminal import ecr_connector
from tests.stack import Stack, running_stack, wait_for

GAUGE_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 90.0


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path) as running:
        yield running


def gauge(stack: Stack, name: str) -> str | None:
    status, text = stack.request("GET", "/metrics")
    assert status == 200
    lines = str(text).splitlines()
    return next((line.rpartition(" ")[2] for line in lines if line.startswith(name + " ")), None)


def test_a_stopped_tp_manager_shows_in_the_metrics(stack: Stack) -> None:
    wait_for(lambda: gauge(stack, "ecr_tp_manager_up") == "1.0", GAUGE_TIMEOUT_S, "up at 1")
    status, stopped = stack.request("GET", "/stop")
    assert status == 200 and stopped["stopped"] is True, stopped
    status, refused = stack.request("POST", "/", {"amount": "1.00", "order_id": "WHILE-STOPPED"})
    assert refused["transactionState"] == "failed", refused  # nothing can be paid now
    wait_for(lambda: gauge(stack, "ecr_tp_manager_up") == "0.0", GAUGE_TIMEOUT_S, "up at 0")
    status, facts = stack.request("GET", "/status.json", timeout_s=15)
    assert status == 200 and facts["tp_manager"]["connected"] is False, facts
    run = ecr_connector(["status", "--config", str(stack.config_path)], CLI_TIMEOUT_S)
    line = next(row for row in run.text.splitlines() if row.startswith("tp-manager"))
    assert "not reachable" in line, run.text
    assert run.returncode == 1, run.text  # whatever the link's last told state

    stack.supervisor().supervisor.startProcess("tp-manager")
    stack.process_info()
    wait_for(lambda: gauge(stack, "ecr_tp_manager_up") == "1.0", GAUGE_TIMEOUT_S, "up again")
    status, facts = stack.request("GET", "/status.json", timeout_s=15)
    assert status == 200 and facts["tp_manager"]["connected"] is True, facts
