"""``ecr-connector run``: a start that fails says why at once, a clean stop leaves nothing.

Real supervisord and programs, real loopback sockets; every pid a test starts is
killed at the end (tests/stack.py and the supervisord log's ``spawned`` lines).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

from common import paths
from common.config.loader import socket_room_problem
from common.start_watch import FAST_DEATH_S
from common.supervisord import START_RETRIES
from tests.install.conftest import (
    CONNECTOR,
    DEEPEST_SOCKET_BYTES,
    connector,
    data_dir_with_socket_path_of,
    write_config,
)
from tests.stack import (
    REPO,
    START_TIMEOUT_S,
    alive,
    free_port,
    kill_all,
    running_stack,
    wait_for,
)

GIVE_UP_TIMEOUT_S = 90.0  # generous: four start attempts with supervisord's back-off


def spawned_pids(data_dir: Path) -> set[int]:
    log = paths.log_dir(data_dir) / "supervisord.log"
    text = log.read_text() if log.exists() else ""
    return {int(pid) for pid in re.findall(r"spawned: '[^']+' with pid (\d+)", text)}


def test_run_with_the_api_port_taken_exits_at_once_naming_the_port(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        config = write_config(tmp_path, local_port=port)
        result = connector("run", "--config", str(config))
    assert result.returncode == 1
    assert f"failed   API port: port {port} on 127.0.0.1 is already in use" in result.stderr
    assert f"doctor --config {config}" in result.stderr
    # the command it names runs as typed: the ecr-connector installed with the connector,
    # which is not on PATH after deploy/quickstart.sh (it lives in .venv/bin)
    doctor = re.search(r"`(\S+) doctor --config ", result.stderr)
    assert doctor is not None and shutil.which(doctor.group(1)) is not None, result.stderr
    # nothing was started: no supervisord, no rendered config
    assert not paths.run_dir(tmp_path / "data").exists() or not list(
        paths.run_dir(tmp_path / "data").glob("supervisord.*")
    )


def test_a_program_that_dies_at_start_is_named_with_its_reason_and_run_gives_up(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    # the journal's place is taken by a folder: the agent dies opening it, every time;
    # nothing the checks look at, so supervisord starts and the watcher must say it
    (data_dir / "journal.sqlite3").mkdir(parents=True)
    config = write_config(
        tmp_path, local_port=free_port(), hipay_base_url=f"http://127.0.0.1:{free_port()}/"
    )
    try:
        result = connector("run", "--config", str(config), timeout_s=GIVE_UP_TIMEOUT_S)
    finally:
        pids = spawned_pids(data_dir)
        kill_all({pid for pid in pids if alive(pid)})
    assert result.returncode == 1, result.stderr
    reason = "sqlite3.OperationalError: unable to open database file"
    first = re.search(r"supervisor-agent died at start (\d+) s after its start \((.*)\); "
                      r"trying again \(try 1 of (\d+)\)", result.stderr)  # fmt: skip
    assert first is not None, result.stderr
    assert int(first.group(1)) < FAST_DEATH_S
    assert (first.group(2), int(first.group(3))) == (reason, START_RETRIES + 1)
    assert (
        f"supervisor-agent died at start {START_RETRIES + 1} times in a row; giving up: {reason}"
        in result.stderr
    )
    assert "stopping the connector" in result.stderr
    assert pids and not any(alive(pid) for pid in pids)  # the others were stopped too
    log = (paths.log_dir(data_dir) / "supervisord.log").read_text()
    # once given up, supervisord may already have spawned one more try (then stopped it)
    assert log.count("spawned: 'supervisor-agent'") >= START_RETRIES + 1


def test_the_deepest_data_dir_the_config_takes_runs(tmp_path: Path) -> None:
    """supervisord binds its socket as "<path>.<pid>" first: the config's limit on data_dir
    leaves it that room (a deeper data_dir passed the config, then supervisord refused to
    start: "AF_UNIX path too long")."""
    data_dir = data_dir_with_socket_path_of(tmp_path, DEEPEST_SOCKET_BYTES)
    assert socket_room_problem(data_dir) is None
    deeper = data_dir_with_socket_path_of(tmp_path, DEEPEST_SOCKET_BYTES + 1)
    assert socket_room_problem(deeper) is not None
    with running_stack(tmp_path, data_dir=str(data_dir)) as stack:
        stack.wait_running(["tp-manager", "supervisor-agent"])
        assert paths.supervisord_socket(data_dir).exists()


def test_a_clean_stop_leaves_no_socket_or_link_and_supervisord_asks_a_password(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    run_dir = paths.run_dir(data_dir)
    made = ["control.sock", "events.sock", "simulator.tty", "supervisor.sock"]
    with running_stack(tmp_path) as stack:
        # the API answers as soon as the agent is up: the others may still be starting
        wait_for(
            lambda: all((run_dir / name).exists() for name in made),
            START_TIMEOUT_S,
            "the sockets and the simulator's link",
        )
        stack.wait_running(["tp-manager"])
        conf = run_dir / "supervisord.conf"
        status = subprocess.run(
            [str(CONNECTOR.with_name("supervisorctl")), "-c", str(conf), "status"],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
        )
        assert "tp-manager" in status.stdout and "RUNNING" in status.stdout, status
        # without the rendered config's password, supervisord answers nothing
        anonymous = subprocess.run(
            [str(CONNECTOR.with_name("supervisorctl")), "-s", f"unix://{run_dir}/supervisor.sock",
             "status"],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
        )  # fmt: skip
        assert "RUNNING" not in anonymous.stdout
        assert stack.proc.poll() is None
    assert stack.proc.returncode == 0
    assert [name for name in made if os.path.lexists(run_dir / name)] == []
    log = (paths.log_dir(data_dir) / "supervisord.log").read_text()
    assert "supervisord started" in log
    assert "without any HTTP authentication" not in log
