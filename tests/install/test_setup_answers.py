"""``ecr-connector setup --answers FILE``: the seed installer's printed JSON, no terminal."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

from common.config import load_config
from tests.backbone.test_config import DESKTOP_SEED_JSON
from tests.install.conftest import connector

SEED_PRINTED_JSON = DESKTOP_SEED_JSON  # the desktop seed installer's output, verbatim


def setup(answers: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return connector("setup", "--answers", str(answers), *extra)


def test_the_seed_json_as_printed_is_refused_only_for_its_windows_port(tmp_path: Path) -> None:
    answers = tmp_path / "answers.json"
    answers.write_text(SEED_PRINTED_JSON)
    result = setup(answers, "--install-dir", str(tmp_path / "connector"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"ecr-connector setup: config file {answers}: key 'serial_port' (line 1): COM14 is a "
        "Windows port name; on Linux the terminal is a device such as /dev/ttyUSB0 or "
        "/dev/ttyACM0 (compare `ls /dev` before and after plugging it in), or 'simulator' for "
        "the built-in simulator (got 'COM14')"
    )
    assert not (tmp_path / "connector").exists()


def test_the_seed_json_with_a_linux_port_writes_the_config(tmp_path: Path) -> None:
    seed = json.loads(SEED_PRINTED_JSON)
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({**seed, "serial_port": "simulator"}))
    folder = tmp_path / "connector"
    result = setup(answers, "--install-dir", str(folder))
    assert result.returncode == 0, result.stderr
    path = folder / "config.yml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    config = load_config(path)
    assert config.api_password.get_secret_value() == "pwd"
    assert config.hipay_password is not None
    assert config.hipay_password.get_secret_value() == seed["hipay_password"]
    assert (config.local_port, config.environment, str(config.update_time)) == (
        8888,
        "stage",
        "03:00:00",
    )
    assert len(config.contracts) == 2
    assert seed["hipay_password"] not in result.stdout + result.stderr
    assert "api_password: '********'" in result.stdout
    assert f"run --config {path}" in result.stdout


def test_every_problem_of_an_answers_file_is_reported_at_once(tmp_path: Path) -> None:
    answers = tmp_path / "answers.yml"
    answers.write_text(
        "hipay_login: 12345678.stage-secure-gateway.hipay-tpp.com\n"
        "hipay_password: Test_XXXX\n"
        "serial_port: simulator\n"
        "local_port: 99999\n"
        "api_username: log\n"
        "update_time: 3h00\n"
        "install_dir: relative/folder\n"
    )
    result = setup(answers)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"ecr-connector setup: config file {answers}: 4 problems:",
        "  - key 'local_port' (line 4): must be a TCP port number from 1 to 65535 (got '99999')",
        "  - key 'update_time' (line 6): must be a time written HH:MM (00:00 to 23:59), "
        "like \"03:00\" (got '3h00')",
        "  - key 'install_dir' (line 7): must be an absolute path (or relative to the config "
        "file's directory) (got 'relative/folder')",
        "  - key 'api_password': is required",
    ]
    assert "Test_XXXX" not in result.stderr


def test_an_existing_config_is_replaced_only_with_force(tmp_path: Path) -> None:
    folder = tmp_path / "connector"
    answers = tmp_path / "answers.json"
    seed = {**json.loads(SEED_PRINTED_JSON), "serial_port": "simulator"}
    answers.write_text(json.dumps({**seed, "install_dir": str(folder)}))
    assert setup(answers).returncode == 0
    answers.write_text(json.dumps({**seed, "install_dir": str(folder), "local_port": 9999}))
    refused = setup(answers)
    assert refused.returncode == 2
    assert f"{folder / 'config.yml'} exists; --force replaces it" in refused.stderr
    assert load_config(folder / "config.yml").local_port == 8888
    assert setup(answers, "--force").returncode == 0
    assert load_config(folder / "config.yml").local_port == 9999


def test_setup_without_a_terminal_or_answers_says_how(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(Path(connector.__globals__["CONNECTOR"])), "setup"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "without one, give --answers FILE" in result.stderr
