"""The rendered supervisord configuration: what runs, how it restarts, how it stops."""

from __future__ import annotations

import configparser
from pathlib import Path

from common.supervisord import ExtraProgram, RenderParams, write_config


def _parse(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read(path)
    return parser


def test_rendered_config_has_both_programs_with_restart_and_stop_policy(tmp_path: Path) -> None:
    params = RenderParams(
        data_dir=tmp_path,
        config_path=tmp_path / "config.yml",
        transaction_timeout_s=120,
        extra_programs=[ExtraProgram("simulator", ["-m", "common", "simulate", "--pty"])],
    )
    path = write_config(params)
    conf = _parse(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert ((tmp_path / "run").stat().st_mode & 0o777) == 0o700
    tp = conf["program:tp-manager"]
    assert tp["autorestart"] == "true"
    assert int(tp["stopwaitsecs"]) > 120  # a payment in flight finishes before SIGKILL
    assert "-m tp_manager --config" in tp["command"]
    # tp-manager writes its log itself; supervisord keeps what it prints outside it
    assert tp["environment"] == f'ECR_CONNECTOR_LOG_FILE="{tmp_path}/logs/tp-manager.log"'
    assert tp["redirect_stderr"] == "true"
    assert tp["stdout_logfile"].endswith("logs/tp-manager.err.log")
    assert tp["stdout_logfile_maxbytes"] == "10MB"
    agent = conf["program:supervisor-agent"]
    assert "-m supervisor_agent" in agent["command"]
    # stopped first (reverse priority) and waits for the payment's answer, journal and
    # HiPay budget: longer than tp-manager's wait
    assert int(agent["priority"]) > int(tp["priority"])
    assert int(agent["stopwaitsecs"]) > int(tp["stopwaitsecs"])
    sim = conf["program:simulator"]
    assert int(sim["priority"]) < int(tp["priority"])  # the terminal is up before its driver
    assert conf["unix_http_server"]["chmod"] == "0700"


def test_console_logs_go_to_stdout(tmp_path: Path) -> None:
    path = write_config(RenderParams(data_dir=tmp_path, config_path=None, console_logs=True))
    conf = _parse(path)
    assert conf["program:tp-manager"]["stdout_logfile"] == "/dev/stdout"
    assert conf["program:tp-manager"]["stdout_logfile_maxbytes"] == "0"
    assert "environment" not in conf["program:tp-manager"]  # so it logs to stdout
