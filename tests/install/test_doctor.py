"""``ecr-connector doctor``: each check, failing and passing, on the real thing.

Real files and modes, a real pseudo-terminal as the serial device, real loopback
sockets for the ports, supervisord's socket and the Concert V3 terminal, the
real resolver.  Permission cases run the command as a user permissions apply to
(see conftest.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import grp
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from common import paths
from common.checks import (
    CheckStatus,
    check_data_dir,
    check_ports,
    check_serial_device,
    check_supervisord_sockets,
)
from common.config.loader import demo_config, socket_room_problem
from common.config.rules import MAX_IPC_PATH_BYTES
from tests.install.conftest import (
    DEEPEST_SOCKET_BYTES,
    IS_ROOT,
    as_unprivileged,
    connector,
    data_dir_with_socket_path_of,
    line_of,
    pty_device,
    write_config,
)
from tests.stack import free_port


def doctor(config: Path) -> tuple[int, str]:
    result = connector("doctor", "--config", str(config))
    return result.returncode, result.stdout + result.stderr


def failed(config: Path, check: str) -> str:
    """The detail of ``check``'s line, which must have failed and made doctor exit 1."""
    code, out = doctor(config)
    status, detail = line_of(out, check)
    assert (code, status) == (1, "failed"), out
    return detail


@contextlib.contextmanager
def listening(port: int = 0) -> Iterator[int]:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def test_a_sound_install_passes_every_check(tmp_path: Path) -> None:
    config = write_config(tmp_path, local_port=free_port())
    code, out = doctor(config)
    assert code == 0, out
    for check in ("config", "config file mode", "terminal", "API port", "data directory",
                  "supervisord socket", "HiPay address"):  # fmt: skip
        assert line_of(out, check)[0] == "ok", out
    assert "nothing blocks a start" in out


def test_an_invalid_config_fails_naming_the_key_and_the_rule(tmp_path: Path) -> None:
    config = write_config(tmp_path, local_port=99999)
    detail = failed(config, "config")
    assert "key 'local_port'" in detail and "from 1 to 65535" in detail


def test_a_config_others_can_read_is_a_warning_with_the_chmod(tmp_path: Path) -> None:
    config = write_config(tmp_path, local_port=free_port())
    config.chmod(0o644)
    code, out = doctor(config)
    assert code == 0, out  # a warning does not block
    assert line_of(out, "config file mode") == (
        "warning",
        f"{config} is mode 0644: other users can read the passwords in it; fix: chmod 600 {config}",
    )


def test_a_serial_device_that_is_not_there_fails_with_the_ls_dev_advice(tmp_path: Path) -> None:
    config = write_config(tmp_path, serial_port=str(tmp_path / "ttyUSB9"))
    detail = failed(config, "terminal")
    assert f"{tmp_path / 'ttyUSB9'} is not there" in detail
    assert "`ls /dev` before and after" in detail


def test_a_serial_device_this_user_may_open_passes(tmp_path: Path) -> None:
    with pty_device() as device:
        code, out = doctor(write_config(tmp_path, serial_port=device, local_port=free_port()))
    assert line_of(out, "terminal") == ("ok", f"serial device {device} opens read-write")
    assert code == 0, out


def test_a_serial_device_of_another_group_fails_with_the_dialout_advice() -> None:
    dialout = grp.getgrnam("dialout").gr_gid
    with pty_device() as device:
        if IS_ROOT:
            os.chown(device, 0, dialout)
            os.chmod(device, 0o660)
        else:
            os.chmod(device, 0o000)
        result = as_unprivileged(lambda: check_serial_device(device))
        assert result.status is CheckStatus.FAILED
        assert f"{device} (" in result.detail and "cannot be opened by user" in result.detail
        assert "sudo usermod -a -G" in result.fix and "then log in again" in result.fix
        if IS_ROOT:
            assert "root:dialout, mode 0660" in result.detail
            assert result.fix.startswith("sudo usermod -a -G dialout nobody")
            # the same user, once in the group, opens it
            in_group = as_unprivileged(lambda: check_serial_device(device), groups=[dialout])
            assert in_group.status is CheckStatus.OK, in_group


def test_a_concert_v3_terminal_that_answers_passes_and_one_that_does_not_warns(
    tmp_path: Path,
) -> None:
    with listening() as port:
        config = write_config(
            tmp_path,
            terminal_protocol="concert-v3",
            terminal_host="127.0.0.1",
            terminal_port=port,
            local_port=free_port(),
        )
        code, out = doctor(config)
        assert code == 0, out
        assert line_of(out, "terminal") == (
            "ok",
            f"Concert V3 terminal 127.0.0.1:{port} accepts a connection",
        )
    closed = free_port()
    config = write_config(
        tmp_path, terminal_protocol="concert-v3", terminal_host="127.0.0.1", terminal_port=closed
    )
    code, out = doctor(config)
    status, detail = line_of(out, "terminal")
    assert status == "warning"
    assert f"127.0.0.1:{closed} does not answer" in detail and "terminal_host" in detail


def test_a_taken_api_port_fails_naming_the_port(tmp_path: Path) -> None:
    with listening() as port:
        detail = failed(write_config(tmp_path, local_port=port), "API port")
    assert f"port {port} on 127.0.0.1 is already in use" in detail
    assert "set local_port to a free port" in detail


def test_a_taken_demo_port_says_the_demo_s_ports_are_fixed(tmp_path: Path) -> None:
    # the demo has no file: no key to set (its HiPay stand-in has no key at all)
    with listening() as taken:
        demo = dataclasses.replace(
            demo_config(), demo_hipay_stub_port=taken, local_port=free_port(), data_dir=tmp_path
        )
        results = {result.name: result for result in check_ports(demo)}
    stand_in = results["demo HiPay stand-in port"]
    assert stand_in.status is CheckStatus.FAILED
    assert f"port {taken} on 127.0.0.1 is already in use" in stand_in.detail
    assert "the demo's ports are fixed" in stand_in.fix and "setup" in stand_in.fix
    assert "set " not in stand_in.fix
    assert results["API port"].status is CheckStatus.OK


def test_a_data_directory_this_user_may_not_write_fails(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755 if IS_ROOT else 0o500)  # root's: nobody may not write it
    tmp_path.chmod(0o755)
    try:
        result = as_unprivileged(lambda: check_data_dir(data_dir))
    finally:
        data_dir.chmod(0o755)
    assert result.status is CheckStatus.FAILED
    assert f"{data_dir} is not writable by user" in result.detail
    assert "set data_dir to a folder it owns" in result.fix


def test_a_data_directory_short_of_space_fails_and_one_with_room_passes(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    roomy = check_data_dir(tmp_path, min_free_bytes=1)
    assert roomy.status is CheckStatus.OK and "MiB free" in roomy.detail
    short = check_data_dir(tmp_path, min_free_bytes=free + 2**40)
    assert short.status is CheckStatus.FAILED
    assert "MiB the journal and the logs need" in short.detail
    assert "free some disk space" in short.fix


def test_a_connector_already_running_on_the_data_dir_fails(tmp_path: Path) -> None:
    config = write_config(tmp_path, local_port=free_port())
    sock_path = paths.supervisord_socket(tmp_path / "data")
    sock_path.parent.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        sock.listen(1)
        detail = failed(config, "supervisord socket")
    assert f"a connector already runs on {tmp_path / 'data'}" in detail
    # the command it names runs as shown: the supervisorctl installed with the connector,
    # which is not on PATH after deploy/quickstart.sh (it lives in .venv/bin)
    command = detail.split("`")[1]
    assert command.endswith(f"-c {paths.run_dir(tmp_path / 'data') / 'supervisord.conf'} shutdown")
    assert shutil.which(command.split()[0]) is not None, command


def test_a_run_folder_this_user_may_not_write_fails(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    run_dir = paths.run_dir(data_dir)
    run_dir.mkdir(parents=True)
    for folder in (tmp_path, data_dir):
        folder.chmod(0o777)  # the data directory itself is the other user's too...
    run_dir.chmod(0o755 if IS_ROOT else 0o500)  # ...its run/ is not
    try:
        result = as_unprivileged(lambda: check_supervisord_sockets(data_dir))
    finally:
        run_dir.chmod(0o755)
    assert result.status is CheckStatus.FAILED
    assert f"cannot make a socket in {run_dir}" in result.detail


def test_a_data_dir_whose_sockets_just_fit_passes(tmp_path: Path) -> None:
    """The check's own probe socket must fit wherever the real sockets fit: a probe with
    a longer name refused such a data_dir ("cannot make a socket ... (None)")."""
    data_dir = data_dir_with_socket_path_of(tmp_path, DEEPEST_SOCKET_BYTES)
    assert socket_room_problem(data_dir) is None  # the config takes it
    result = check_supervisord_sockets(data_dir)
    assert result.status is CheckStatus.OK, result
    assert not list(paths.run_dir(data_dir).iterdir())


def test_a_data_dir_too_deep_for_its_sockets_fails_naming_the_rule(tmp_path: Path) -> None:
    data_dir = data_dir_with_socket_path_of(tmp_path, DEEPEST_SOCKET_BYTES + 1)
    result = check_supervisord_sockets(data_dir)
    assert result.status is CheckStatus.FAILED
    assert f"({MAX_IPC_PATH_BYTES + 1} bytes with the longest pid)" in result.detail
    assert f"over the {MAX_IPC_PATH_BYTES} a unix socket path allows" in result.detail
    assert "shorter" in result.detail
    assert "None" not in result.detail


def test_a_run_folder_this_user_may_write_passes(tmp_path: Path) -> None:
    result = check_supervisord_sockets(tmp_path / "data")
    assert result.status is CheckStatus.OK, result
    assert not list(paths.run_dir(tmp_path / "data").iterdir())  # its probe socket is gone


@pytest.mark.parametrize("url", ["https://ecr-doctor-test.invalid/"])
def test_a_hipay_address_that_does_not_resolve_is_only_a_warning(tmp_path: Path, url: str) -> None:
    code, out = doctor(write_config(tmp_path, hipay_base_url=url, local_port=free_port()))
    assert code == 0, out
    status, detail = line_of(out, "HiPay address")
    assert status == "warning"
    assert "ecr-doctor-test.invalid does not resolve" in detail


def test_a_hipay_address_that_resolves_passes(tmp_path: Path) -> None:
    code, out = doctor(
        write_config(tmp_path, hipay_base_url="http://localhost:18089/", local_port=free_port())
    )
    assert code == 0, out
    status, detail = line_of(out, "HiPay address")
    assert status == "ok" and detail.startswith("localhost resolves to ")
