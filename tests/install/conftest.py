"""Helpers for the install tests: config files, the CLI in a subprocess, another user.

Permission checks cannot fail for root (root opens any file), so a test of a
permission problem runs the check in a forked child that drops to ``nobody``
when the suite runs as root (a fork: nobody may not read root's Python), and as
the suite's own user otherwise, on a file it made unreadable to itself.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from common import paths
from common.config.loader import SUPERVISORD_BIND_SUFFIX_BYTES
from common.config.rules import MAX_IPC_PATH_BYTES
from tests.stack import REPO

# supervisord's socket path at its longest: supervisord binds it as "<path>.<pid>" first
DEEPEST_SOCKET_BYTES = MAX_IPC_PATH_BYTES - SUPERVISORD_BIND_SUFFIX_BYTES

CONNECTOR = Path(sys.executable).with_name("ecr-connector")
COMMAND_TIMEOUT_S = 60.0
NOBODY = 65534
IS_ROOT = os.geteuid() == 0


def data_dir_with_socket_path_of(tmp_path: Path, size: int) -> Path:
    """A data_dir under ``tmp_path`` whose supervisord socket path is ``size`` bytes long."""
    short = tmp_path / "d"
    grow = size - len(bytes(paths.supervisord_socket(short)))
    assert grow >= 0, "tmp_path is already too deep for this test"
    return tmp_path / ("d" * (1 + grow))


def write_config(directory: Path, **values: Any) -> Path:
    """A valid desktop config.yml (simulator terminal), mode 0600, with ``values`` on top."""
    config: dict[str, Any] = {
        "serial_port": "simulator",
        "serial_number": "SN-TEST-0001",
        "local_port": 18080,
        "api_username": "register",
        "api_password": "s3cret-pass",
        "hipay_login": "hipay-login",
        "hipay_password": "hipay-pass",
        "hipay_base_url": "http://127.0.0.1:18089/",
        "data_dir": str(directory / "data"),
    }
    config.update(values)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def connector(
    *args: str, user: dict[str, Any] | None = None, timeout_s: float = COMMAND_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """``ecr-connector ARGS`` as a user would type it (``user``: subprocess's user/group)."""
    return subprocess.run(
        [str(CONNECTOR), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        **(user or {}),
    )


def line_of(output: str, check: str) -> tuple[str, str]:
    """(status, the rest) of the doctor's one line for ``check`` (e.g. ``"terminal"``)."""
    found = []
    for line in output.splitlines():
        status, _, rest = line.partition(" ")
        name, _, detail = rest.strip().partition(": ")
        if name == check:
            found.append((status, detail))
    assert len(found) == 1, f"no single {check!r} line in:\n{output}"
    return found[0]


@contextlib.contextmanager
def pty_device() -> Iterator[str]:
    """A real pseudo-terminal's device: what a USB serial terminal is to tp-manager."""
    leader, follower = os.openpty()
    try:
        yield os.ttyname(follower)
    finally:
        os.close(follower)
        os.close(leader)


def as_unprivileged(check: Callable[[], Any], groups: Sequence[int] = ()) -> Any:
    """``check()`` run by a user permissions apply to (``nobody`` with ``groups`` under root;
    this user otherwise), in a forked child; its result comes back pickled over a pipe."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(reader)
            if IS_ROOT:
                os.setgroups(list(groups))
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            os.write(writer, pickle.dumps(check()))
            status = 0
        except BaseException as exc:  # shown by the parent's assertion
            with contextlib.suppress(Exception):
                os.write(writer, pickle.dumps(RuntimeError(repr(exc))))
        finally:
            os._exit(status)
    os.close(writer)
    data = b""
    try:
        while True:
            ready, _, _ = select.select([reader], [], [], COMMAND_TIMEOUT_S)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                raise TimeoutError(f"the check as another user took over {COMMAND_TIMEOUT_S} s")
            chunk = os.read(reader, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(reader)
        _, status = os.waitpid(pid, 0)
    result = pickle.loads(data) if data else None
    assert status == 0, f"the check as another user failed: {result!r} (wait status {status})"
    return result
