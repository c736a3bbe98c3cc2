"""The README's paths: ``ecr-connector run`` with no config (the demo), and the cron
watchdog ``deploy/always-up.sh``.  Real processes; every pid is killed at the end."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from common import paths
from common.supervisord import rpc
from supervisor_agent.api.examples import kiosk_seed_request
from tests.stack import REPO, Stack, alive, free_port, kill_all, wait_for

DEMO_PORTS = (8080, 8089)  # the demo's API and its HiPay stand-in
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 40.0
CLI_TIMEOUT_S = 30.0
CONNECTOR = Path(sys.executable).with_name("ecr-connector")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def read_until(proc: subprocess.Popen[bytes], marker: str, timeout_s: float) -> str:
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout_s
    while marker not in seen:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([proc.stdout], [], [], max(left, 0))
        if not ready:
            raise AssertionError(f"no {marker!r} within {timeout_s} s; got {seen!r}")
        line = proc.stdout.readline().decode(errors="replace")
        if not line:
            raise AssertionError(f"stdout closed before {marker!r}; got {seen!r}")
        seen += line
    return seen


def child_pids(data_dir: Path) -> set[int]:
    with contextlib.suppress(Exception):
        infos = rpc(paths.supervisord_socket(data_dir)).supervisor.getAllProcessInfo()
        return {int(i["pid"]) for i in infos if i["pid"]}
    return set()


def stop_demo(proc: subprocess.Popen[bytes], data_dir: Path, pids: set[int]) -> None:
    """Whatever happened: stop ``run`` as Ctrl-C would, then SIGKILL whatever is left.

    supervisord and its programs are recorded first, before anything is killed: a
    program killed under a living supervisord is restarted under a new pid, and a
    supervisord whose ``run`` was killed outlives it.
    """
    with contextlib.suppress(Exception):
        pids = pids | {int(rpc(paths.supervisord_socket(data_dir)).supervisor.getPID())}
    pids = pids | child_pids(data_dir)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait(timeout=10)
    kill_all(pids)


@pytest.mark.skipif(
    not all(port_free(p) for p in DEMO_PORTS), reason="the demo's ports 8080/8089 are taken"
)
def test_run_without_config_is_a_working_demo_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ECR_CONNECTOR_DATA_DIR"}
    proc = subprocess.Popen(
        [str(CONNECTOR), "run", "--console-logs"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    data_dir = tmp_path / "data"
    pids: set[int] = set()
    try:
        banner = read_until(proc, "Stop     : Ctrl-C", START_TIMEOUT_S)
        assert "DEMO MODE" in banner
        assert "demo / demo-password" in banner
        assert f"Data     : {data_dir}" in banner
        assert "desktop API shape; `ecr-connector run --demo kiosk` for the kiosk's" in banner
        stack = Stack(data_dir, tmp_path / "none.yml", {"local_port": 8080}, proc)
        stack.config.update(api_username="demo", api_password="demo-password")
        wait_for(
            lambda: stack.request("GET", "/v1/connector/healthcheck", auth=("", ""))[0] == 200,
            START_TIMEOUT_S,
            "the demo API",
        )
        pids = child_pids(data_dir)
        assert len(pids) == 4  # tp-manager, supervisor-agent, simulator, hipay-stub
        status, body = stack.request("POST", "/", {"amount": "9.99"})
        assert status == 200, body
        assert body["paymentStatus"] == "SUCCESS"
        assert body["notificationHipaySent"] is True  # the demo's HiPay stand-in has it

        # the README's operator commands, with no --config: the demo's, as doctor and run
        for command, exit_code, says in (
            (["status"], 0, "SIM0000000001"),
            (["pay", "1.00", "--order-id", "Newcomer_pay_1"], 0, "ACCEPTED"),
            (["outbox"], 0, "no pending or dead notifications"),
        ):
            done = subprocess.run(
                [str(CONNECTOR), *command],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=CLI_TIMEOUT_S,
                check=False,
            )
            assert (done.returncode, says in done.stdout) == (exit_code, True), (
                command,
                done.stdout,
                done.stderr,
            )

        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=STOP_TIMEOUT_S) == 0
        wait_for(lambda: not any(alive(p) for p in pids), 10, "every program to exit")
    finally:
        stop_demo(proc, data_dir, pids)


@pytest.mark.skipif(
    not all(port_free(p) for p in DEMO_PORTS), reason="the demo's ports 8080/8089 are taken"
)
def test_the_demo_in_the_kiosk_shape_takes_the_kiosk_seed_body(tmp_path: Path) -> None:
    env = {**os.environ, "ECR_CONNECTOR_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(
        [str(CONNECTOR), "run", "--demo", "kiosk"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pids: set[int] = set()
    try:
        banner = read_until(proc, "Stop     : Ctrl-C", START_TIMEOUT_S)
        assert "kiosk API shape; `ecr-connector run` (or --demo desktop) for the desktop's" in (
            banner
        )
        stack = Stack(tmp_path / "data", tmp_path / "none.yml", {"local_port": 8080}, proc)
        stack.config.update(api_username="demo", api_password="demo-password")
        wait_for(
            lambda: stack.request("GET", "/v1/connector/healthcheck", auth=("", ""))[0] == 200,
            START_TIMEOUT_S,
            "the demo API",
        )
        pids = child_pids(tmp_path / "data")
        request = kiosk_seed_request()
        request["orderId"] = f"Order_demo_{os.getpid()}"
        status, body = stack.request("POST", "/", request)
        assert status == 200, body
        assert body[0]["status"] == "Success", body  # the kiosk's answer: a list
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT_S) == 0
    finally:
        stop_demo(proc, tmp_path / "data", pids)


def test_always_up_starts_the_connector_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config = {
        "serial_port": "simulator",
        "local_port": free_port(),
        "api_username": "register",
        "api_password": "s3cret-pass",
        "hipay_login": "hipay-login",
        "hipay_password": "hipay-pass",
        "hipay_base_url": f"http://127.0.0.1:{free_port()}/",
        "data_dir": str(data_dir),
    }
    config_path = tmp_path / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "ECR_CONFIG": str(config_path), "ECR_CONNECTOR": str(CONNECTOR)}
    script = REPO / "deploy" / "always-up.sh"
    pidfile = paths.supervisord_pidfile(data_dir)
    pids: set[int] = set()
    try:
        first = subprocess.run(
            [str(script)], env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S
        )
        assert first.returncode == 0, first.stderr
        assert "started (pid" in first.stdout
        supervisord = int(pidfile.read_text())
        pids.add(supervisord)
        second = subprocess.run(
            [str(script)], env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S
        )
        assert second.returncode == 0, second.stderr
        assert f"already running (supervisord pid {supervisord})" in second.stdout
        stack = Stack(data_dir, config_path, config, subprocess.Popen(["true"]))
        wait_for(
            lambda: stack.request("GET", "/v1/connector/healthcheck", auth=("", ""))[0] == 200,
            START_TIMEOUT_S,
            "the API started by always-up",
        )
        pids |= child_pids(data_dir)
        os.kill(supervisord, signal.SIGTERM)
        wait_for(lambda: not alive(supervisord), STOP_TIMEOUT_S, "supervisord to stop")
    finally:
        pids |= child_pids(data_dir)
        kill_all(pids)
