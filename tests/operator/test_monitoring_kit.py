"""deploy/monitoring and deploy/udev: the alert rules pass promtool and use metrics the
agent really exports; the log-shipping example and the udev rule are well formed."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from supervisor_agent.journal import TxState
from supervisor_agent.metrics import Metrics
from supervisor_agent.terminal_links import TerminalLinks
from tests.api.conftest import RecordingTpManager, settings
from tests.operator.conftest import serve_operator

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
RULES = MONITORING / "ecr-connector.rules.yml"
RULES_TESTS = MONITORING / "ecr-connector.rules.test.yml"
UDEV = REPO / "deploy" / "udev" / "99-ecr-terminal.rules"
PROMTOOL_TIMEOUT_S = 60

promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    promtool is None,
    reason="promtool not installed (Debian's 'prometheus' package; tests/run.sh installs it "
    "when apt-get can)",
)


@needs_promtool
def test_the_alert_rules_pass_promtool_check() -> None:
    assert promtool is not None
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


@needs_promtool
def test_the_alerts_fire_when_they_should_under_promtool() -> None:
    assert promtool is not None
    done = subprocess.run(
        [promtool, "test", "rules", RULES_TESTS.name],
        cwd=MONITORING,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _rule_metric_names() -> set[str]:
    return set(re.findall(r"\becr_[a-z_]+\b", RULES.read_text()))


async def test_every_metric_the_rules_use_is_served_by_the_agent(tpm: RecordingTpManager) -> None:
    async with serve_operator(tpm) as served:
        paid = await served.session.post(
            served.base_url + "/", json={"amount": "9.99", "order_id": "M-1"}
        )
        assert paid.status == 200
        await served.operator.status.refresh_metrics(served.metrics)  # checks the link
        async with served.session.get(served.base_url + "/metrics") as scraped:
            text = await scraped.text()
    exported = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    assert _rule_metric_names() <= exported, _rule_metric_names() - exported
    lines = text.splitlines()
    assert 'ecr_terminal_link_up{terminal="default"} 1.0' in lines
    assert "ecr_tp_manager_up 1.0" in lines  # the stand-in's control socket is connected
    assert any(
        line.startswith("ecr_journal_size_bytes ") and not line.endswith(" 0.0") for line in lines
    )
    assert any(line.startswith("ecr_last_accepted_payment_timestamp_seconds ") for line in lines)


def test_unknown_facts_are_absent_rather_than_zero() -> None:
    """A link nobody reported and a shop that never took a payment must not alert."""
    metrics, links = Metrics(), TerminalLinks.of(settings())
    metrics.watch_links(links)
    text = metrics.render()
    assert "ecr_terminal_link_up" not in text
    assert "ecr_last_accepted_payment_timestamp_seconds " not in text
    metrics.transaction_finished(str(TxState.ACCEPTED))
    links.told("default", "down", "cable")
    assert 'ecr_terminal_link_up{terminal="default"} 0.0' in metrics.render().splitlines()


def test_the_log_shipping_example_reads_the_connector_logs() -> None:
    config = tomllib.loads((MONITORING / "vector.toml").read_text())
    include = config["sources"]["ecr_connector"]["include"]
    assert any(p.endswith("/logs/tp-manager.log") for p in include)
    assert any(p.endswith("/logs/supervisor-agent.log") for p in include)
    assert "parse_json" in config["transforms"]["ecr_parsed"]["source"]
    for sink in config["sinks"].values():
        assert set(sink["inputs"]) <= set(config["transforms"])


def test_the_udev_rule_names_the_terminal_and_gives_it_to_dialout() -> None:
    rules = [
        line
        for line in UDEV.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert rules
    for rule in rules:
        keys = dict(re.findall(r'(\w+(?:\{\w+\})?)[=!+:]=?"([^"]*)"', rule))
        assert keys["SUBSYSTEM"] == "tty"
        assert keys["SYMLINK"] == "ecr-terminal"
        assert keys["GROUP"] == "dialout" and keys["MODE"] == "0660"
        assert re.fullmatch(r"[0-9a-f]{4}", keys["ATTRS{idVendor}"])
