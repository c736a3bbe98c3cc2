"""The self-update end to end: ``ecr-connector run`` under real supervisord, a real TUF
feed over loopback HTTP, this project's own source built as a wheel at a higher version.

Each test starts the connector exactly as a user does (tests/stack.py), publishes to the
feed with python-tuf's Metadata API (tuf_repo.py), and drives the update with
``ecr-connector update --now`` in its own process, as an operator would.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common import __version__, paths, versions
from tests.e2e.test_supervised_stack import link_up
from tests.stack import REPO, HipayStub, Stack, running_stack, wait_for
from tests.update.tuf_repo import TufRepo, serve

PROGRAMS = ["tp-manager", "supervisor-agent", "simulator"]
NEVER_ANSWERS = "1000.04"  # simulator scenario never-answer: in flight until cancelled
CLI_TIMEOUT_S = 240.0
EVENT_TIMEOUT_S = 120.0


@pytest.fixture
def feed(tmp_path: Path) -> Iterator[tuple[TufRepo, str]]:
    repo = TufRepo(tmp_path / "feed")
    with serve(repo.folder) as url:
        yield repo, url


@contextlib.contextmanager
def connector_offered(
    tmp_path: Path, hipay: HipayStub, feed: tuple[TufRepo, str], release: tuple[str, Path]
) -> Iterator[Stack]:
    """The connector running, its feed offering ``release`` (signed right)."""
    repo, url = feed
    repo.add_release(*release)
    repo.sign_all()
    with running_stack(
        tmp_path / "connector",
        hipay_base_url=hipay.url + "/",
        hipay_login=hipay.login,
        hipay_password=hipay.password,
        update_url=url,
        update_root=str(repo.root_file),
    ) as stack:
        stack.wait_running(PROGRAMS)
        assert running_version(stack) == __version__
        yield stack


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "common", "update", *args, "--config", str(stack.config_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )


def running_version(stack: Stack) -> str:
    status, body = stack.request("GET", "/version", timeout_s=10)
    assert status == 200, body
    return str(body["version"]).split("-", 1)[0]


def pay(stack: Stack, order_id: str) -> dict[str, Any]:
    status, body = stack.request("POST", "/", {"amount": "9.99", "order_id": order_id})
    assert status == 200, body
    return dict(body)


def events(stack: Stack, program: str) -> list[dict[str, Any]]:
    lines = (paths.log_dir(stack.data_dir) / f"{program}.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def event_index(stack: Stack, program: str, name: str, **fields: Any) -> int:
    for i, event in enumerate(events(stack, program)):
        if event.get("event") == name and all(event.get(k) == v for k, v in fields.items()):
            return i
    return -1


def wait_event(stack: Stack, program: str, name: str) -> None:
    wait_for(
        lambda: event_index(stack, program, name) >= 0,
        EVENT_TIMEOUT_S,
        f"{name} in {program}.log",
    )


def test_an_update_waits_for_the_payment_in_flight_then_runs_the_new_version(
    tmp_path: Path,
    hipay: HipayStub,
    feed: tuple[TufRepo, str],
    good_release: tuple[str, Path],
) -> None:
    version, wheel = good_release
    with connector_offered(tmp_path, hipay, feed, good_release) as stack:
        checked = cli(stack, "--check")
        assert checked.returncode == 0, checked.stderr
        assert f"running:   {__version__}\n" in checked.stdout
        assert f"available: {version} (ecr-connector/{wheel.name})" in checked.stdout

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            payment = pool.submit(
                stack.request, "POST", "/", {"amount": NEVER_ANSWERS, "order_id": "UPD-HELD"}
            )
            wait_for(
                lambda: event_index(stack, "supervisor-agent", "api.payment.started") >= 0,
                EVENT_TIMEOUT_S,
                "the held payment at the terminal",
            )
            now = ["--now", "--config", str(stack.config_path), "--wait", str(CLI_TIMEOUT_S)]
            update = subprocess.Popen(
                [sys.executable, "-m", "common", "update", *now],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                wait_event(stack, "supervisor-agent", "update.waiting_for_payment")
                assert not payment.done()  # installed, and waiting: nothing was interrupted
                assert versions.target_of(stack.data_dir, versions.CURRENT) == versions.BASE
                stack.request("GET", "/cancel")  # the customer walks away: the payment ends
                status, body = payment.result(timeout=EVENT_TIMEOUT_S)
                assert status == 200, body  # it got its answer from the old version
                out, _ = update.communicate(timeout=CLI_TIMEOUT_S)
            finally:
                if update.poll() is None:
                    update.kill()
                    update.wait(timeout=10)
        assert update.returncode == 0, out
        assert "update: switched" in out

        assert running_version(stack) == version
        assert pay(stack, "UPD-AFTER")["paymentStatus"] == "SUCCESS"
        # the restart was asked for: run's watch over failed starts has nothing to say
        assert "died at start" not in (stack.data_dir.parent / "run.out").read_text()
        agent = "supervisor-agent"
        assert event_index(stack, agent, "api.payment.finished", order_id="UPD-HELD") < (
            event_index(stack, agent, "update.switching")
        )
        assert versions.target_of(stack.data_dir, versions.CURRENT) == version
        assert versions.target_of(stack.data_dir, versions.PREVIOUS) == versions.BASE
        switched = [e for e in events(stack, "update-switch") if e["event"] == "update.switched"]
        assert switched and switched[0]["version"] == version
        rechecked = cli(stack, "--check")
        assert f"running:   {version}\n" in rechecked.stdout


def test_a_broken_release_is_rolled_back_and_not_tried_again(
    tmp_path: Path,
    hipay: HipayStub,
    feed: tuple[TufRepo, str],
    broken_release: tuple[str, Path],
) -> None:
    version, _ = broken_release
    with connector_offered(tmp_path, hipay, feed, broken_release) as stack:
        # --wait bounds the whole update: install, switch, failed health check, rollback
        done = cli(stack, "--now", "--wait", "150")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "update: rolled_back" in done.stdout
        assert "supervisor-agent backoff at start" in done.stdout

        assert running_version(stack) == __version__
        assert pay(stack, "BROKEN-AFTER")["paymentStatus"] == "SUCCESS"
        # the switch judged the starts (and rolled back): run's watch did not stop the connector
        run_out = (stack.data_dir.parent / "run.out").read_text()
        assert "died at start" not in run_out and "giving up" not in run_out
        rolled = [e for e in events(stack, "update-switch") if e["event"] == "update.rolled_back"]
        assert len(rolled) == 1
        assert rolled[0]["level"] == "error"
        assert rolled[0]["version"] == version and rolled[0]["restored"] == __version__
        assert "backoff" in rolled[0]["reason"]
        assert versions.target_of(stack.data_dir, versions.CURRENT) == versions.BASE
        assert not (paths.versions_dir(stack.data_dir) / version).exists()  # pruned

        again = cli(stack, "--now", "--wait", "60")
        assert again.returncode == 0, again.stdout
        assert "update: skipped" in again.stdout
        assert running_version(stack) == __version__


def test_a_release_that_dies_soon_after_answering_is_rolled_back(
    tmp_path: Path,
    hipay: HipayStub,
    feed: tuple[TufRepo, str],
    late_crashing_release: tuple[str, Path],
) -> None:
    """Its agent passes supervisord's startsecs and answers the API, then dies 10 s after
    its start: judged healthy at its first answer, it would crash forever, `run` would
    give up on it, and a reboot would start it again (it is ``current``)."""
    version, _ = late_crashing_release
    with connector_offered(tmp_path, hipay, feed, late_crashing_release) as stack:
        done = cli(stack, "--now", "--wait", "200")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "update: rolled_back" in done.stdout
        assert versions.target_of(stack.data_dir, versions.CURRENT) == versions.BASE
        assert running_version(stack) == __version__
        assert pay(stack, "LATE-AFTER")["paymentStatus"] == "SUCCESS"
        rolled = [e for e in events(stack, "update-switch") if e["event"] == "update.rolled_back"]
        assert len(rolled) == 1 and rolled[0]["version"] == version


def test_a_switch_killed_mid_way_is_undone_and_the_connector_runs_on(
    tmp_path: Path,
    hipay: HipayStub,
    feed: tuple[TufRepo, str],
    good_release: tuple[str, Path],
) -> None:
    """``update-switch`` is a one-shot supervisord does not restart.  SIGKILLed while it
    stops the programs, it left the agent stopped (no API, no payment) until the next
    ``ecr-connector run``.  ``run``'s watch now undoes the switch as that next run would:
    ``current`` where it was, both programs running the old version, the switch forgotten."""
    with connector_offered(tmp_path, hipay, feed, good_release) as stack:
        now = ["--now", "--config", str(stack.config_path), "--wait", str(CLI_TIMEOUT_S)]
        update = subprocess.Popen(
            [sys.executable, "-m", "common", "update", *now],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:

            def stopping_the_agent() -> int:
                info = stack.process_info()
                switching = info["update-switch"]["statename"] == "RUNNING"
                agent_down = info["supervisor-agent"]["statename"] != "RUNNING"
                return int(info["update-switch"]["pid"]) if switching and agent_down else 0

            switcher = wait_for(stopping_the_agent, CLI_TIMEOUT_S, "the switch under way")
            os.kill(switcher, signal.SIGKILL)
            wait_for(
                lambda: not versions.pending_switch(stack.data_dir).exists(),
                EVENT_TIMEOUT_S,
                "the killed switch undone",
            )
            stack.wait_running(PROGRAMS)
            wait_for(
                lambda: stack.request("GET", "/v1/connector/healthcheck", auth=("", ""))[0] == 200,
                EVENT_TIMEOUT_S,
                "the API back",
            )
            assert running_version(stack) == __version__
            assert versions.target_of(stack.data_dir, versions.CURRENT) == versions.BASE
            wait_for(lambda: link_up(stack), EVENT_TIMEOUT_S, "the terminal link")
            assert pay(stack, "AFTER-KILLED-SWITCH")["paymentStatus"] == "SUCCESS"
            run_out = (stack.data_dir.parent / "run.out").read_text()
            assert "switch undone: running base again" in run_out
        finally:
            if update.poll() is None:
                update.kill()
            update.wait(timeout=10)
