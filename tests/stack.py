"""Start the real connector (supervisord + tp-manager + agent + simulator) for a test.

Used by the end-to-end tests: ``ecr-connector run --config FILE`` is started
exactly as a user would, in its own session; every pid it starts is recorded
from supervisord and killed at the end, whatever happened.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xmlrpc.client
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common import paths
from common.supervisord import rpc
from supervisor_agent.api import wire_json

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
POLL_S = 0.1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(FileNotFoundError):
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    return False


def kill_all(pids: set[int]) -> None:
    """SIGKILL each of these pids (the ones a test started), whatever state they are in."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def wait_for(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:
            last_exc = exc
        time.sleep(POLL_S)
    raise TimeoutError(f"timed out after {timeout_s} s waiting for {what} (last error: {last_exc})")


@dataclass
class Stack:
    data_dir: Path
    config_path: Path
    config: dict[str, Any]
    proc: subprocess.Popen[bytes]
    pids: set[int] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.config['local_port']}"

    def supervisor(self) -> xmlrpc.client.ServerProxy:
        return rpc(paths.supervisord_socket(self.data_dir))

    def process_info(self) -> dict[str, dict[str, Any]]:
        infos = self.supervisor().supervisor.getAllProcessInfo()
        for info in infos:
            if info["pid"]:
                self.pids.add(int(info["pid"]))
        return {info["name"]: info for info in infos}

    def pid_of(self, name: str) -> int:
        return int(self.process_info()[name]["pid"])

    def wait_running(self, names: list[str], timeout_s: float = START_TIMEOUT_S) -> None:
        def all_running() -> bool:
            info = self.process_info()
            return all(info.get(n, {}).get("statename") == "RUNNING" for n in names)

        wait_for(all_running, timeout_s, f"programs {names} RUNNING")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        auth: tuple[str, str] | None = None,
        timeout_s: float = 30.0,
    ) -> tuple[int, Any]:
        data = None if body is None else wire_json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if auth is None:
            auth = (self.config["api_username"], self.config["api_password"])
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                status, raw = resp.status, resp.read() or b"null"
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw)
        except json.JSONDecodeError:  # /metrics, or an error page
            return status, raw.decode(errors="replace")

    def logs(self, name: str) -> str:
        """What a program wrote, stdout then stderr (the simulator logs on stderr)."""
        text = ""
        for suffix in (".log", ".err.log"):
            path = paths.log_dir(self.data_dir) / f"{name}{suffix}"
            text += path.read_text() if path.exists() else ""
        return text

    def logged(self, name: str, key: str) -> list[Any]:
        """The values of ``key`` in a program's JSON log lines that have it."""
        values = []
        for line in self.logs(name).splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and key in record:
                    values.append(record[key])
        return values


def _terminate(stack: Stack) -> None:
    with contextlib.suppress(Exception):
        stack.process_info()  # record the newest child pids before stopping
    if stack.proc.poll() is None:
        stack.proc.send_signal(signal.SIGTERM)
        try:
            stack.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            stack.proc.kill()
            stack.proc.wait(timeout=5)
    for pid in stack.pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class HipayStub:
    """``ecr-connector hipay-stub`` in its own process: HiPay's stand-in, over real HTTP."""

    url: str
    login: str = "hipay-login"
    password: str = "hipay-pass"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def received(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/received")["notifications"])

    def acknowledged(self, order_id: str) -> list[dict[str, Any]]:
        return [
            n
            for n in self.received()
            if n.get("outcome") == "acknowledged" and n.get("order_id") == order_id
        ]

    def states_told(self, order_id: str) -> list[str]:
        """The journal states HiPay acknowledged for ``order_id``, in order."""
        return [n["body"]["terminal_result"]["state"] for n in self.acknowledged(order_id)]

    def control(self, **settings: Any) -> Any:
        return self._call("POST", "/control", settings)


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM this one pid, wait a bounded time, SIGKILL it if it is still there."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=timeout_s)
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def ready_process(args: list[str], err_path: Path) -> Iterator[str]:
    """``python -m common ARGS`` (simulate, hipay-stub) in its own process, stderr to
    ``err_path``; yields what its ``READY ...`` line announced; stopped by pid after."""
    with ready_command([sys.executable, "-m", "common", *args], err_path) as (_pid, announced):
        yield announced


@contextlib.contextmanager
def ready_command(argv: list[str], err_path: Path) -> Iterator[tuple[int, str]]:
    """``argv`` in its own process (session), stderr to ``err_path``, until it prints a
    ``READY [...]`` line; yields its pid and what that line announced; stopped by pid."""
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
            line = proc.stdout.readline().decode().strip() if ready else ""
            if line != "READY" and not line.startswith("READY "):
                raise RuntimeError(
                    f"{' '.join(argv)} gave no READY line within {START_TIMEOUT_S} s "
                    f"(got {line!r}); its stderr:\n{err_path.read_text(errors='replace')[-2000:]}"
                )
            yield proc.pid, line.removeprefix("READY").strip()
        finally:
            stop_process(proc)
            if proc.stdout is not None:
                proc.stdout.close()


@contextlib.contextmanager
def hipay_stub(tmp_path: Path) -> Iterator[HipayStub]:
    credentials = ["--login", "hipay-login", "--password", "hipay-pass"]
    args = ["hipay-stub", "--port", "0", *credentials]
    with ready_process(args, tmp_path / "hipay-stub.err") as announced:
        yield HipayStub("http://" + announced.removeprefix("http="))


@contextlib.contextmanager
def running_stack(tmp_path: Path, **overrides: Any) -> Iterator[Stack]:
    """A connector on a simulator terminal, with API on a free loopback port, once
    supervisord's socket is there and the API answers its healthcheck."""
    with launched_stack(tmp_path, **overrides) as stack:
        wait_for(
            lambda: paths.supervisord_socket(stack.data_dir).exists(),
            START_TIMEOUT_S,
            "supervisord",
        )
        wait_for(
            lambda: stack.request("GET", "/v1/connector/healthcheck", auth=("", ""))[0] == 200,
            START_TIMEOUT_S,
            "the API healthcheck",
        )
        yield stack


def far_from_now() -> str:
    """An ``update_time`` 12 hours away: the daily run (plus its jitter of up to 10 min)
    never fires during a test, whatever the hour; update tests ask with ``--now``."""
    return (dt.datetime.now() + dt.timedelta(hours=12)).strftime("%H:%M")


@contextlib.contextmanager
def launched_stack(tmp_path: Path, **overrides: Any) -> Iterator[Stack]:
    """``ecr-connector run`` just launched, nothing waited for: the benchmarks time the
    start themselves.  Stopped, with every pid it started, whatever happened."""
    data_dir = Path(overrides.get("data_dir", tmp_path / "data"))
    config: dict[str, Any] = {
        "serial_port": "simulator",
        "serial_number": "SN-TEST-0001",
        "local_port": free_port(),
        "api_username": "register",
        "api_password": "s3cret-pass",
        "hipay_login": "hipay-login",
        "hipay_password": "hipay-pass",
        "environment": "stage",
        "authorization_threshold": 100,
        "update_time": far_from_now(),
        "data_dir": str(data_dir),
        "transaction_timeout": 20,
    }
    config.update(overrides)
    tmp_path.mkdir(parents=True, exist_ok=True)
    config_path = tmp_path / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    log_file = open(tmp_path / "run.out", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "common", "run", "--config", str(config_path)],
        cwd=REPO,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack = Stack(data_dir=data_dir, config_path=config_path, config=config, proc=proc)
    try:
        yield stack
    finally:
        _terminate(stack)
        log_file.close()
