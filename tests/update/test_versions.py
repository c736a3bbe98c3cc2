"""``versions/`` links as ``ecr-connector run`` leaves them, and the rendered switch program."""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
from pathlib import Path

from common import paths, switch_recovery, versions
from common.config import load_config
from common.runner import extra_programs
from common.supervisord import RenderParams, write_config
from tests.backbone.test_config import BASE_YAML, write


def fake_install(data_dir: Path, version: str) -> None:
    """A version directory that counts as installed: its python is the base's."""
    prefix = paths.versions_dir(data_dir) / version
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").symlink_to(sys.executable)
    (prefix / versions.INSTALLED_MARKER).write_text(version)


def test_a_first_run_points_current_at_the_environment_it_runs_from(tmp_path: Path) -> None:
    python = versions.prepare(tmp_path, base_prefix=Path(sys.prefix), base_version="0.1.0")
    assert python == str(tmp_path / "versions" / "current" / "bin" / "python")
    assert versions.target_of(tmp_path, versions.CURRENT) == versions.BASE
    assert versions.target_of(tmp_path, versions.BASE) == str(Path(sys.prefix).absolute())
    # the link really is an environment: Python finds the base venv's packages through it
    done = subprocess.run(
        [python, "-c", "import sys, tuf; print(sys.prefix)"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "versions" / "current")


def test_an_installed_newer_version_stays_current_and_an_older_one_yields_to_the_base(
    tmp_path: Path,
) -> None:
    fake_install(tmp_path, "0.2.0")
    versions.point(tmp_path, versions.CURRENT, "0.2.0")
    versions.prepare(tmp_path, base_prefix=Path(sys.prefix), base_version="0.1.0")
    assert versions.target_of(tmp_path, versions.CURRENT) == "0.2.0"
    versions.prepare(tmp_path, base_prefix=Path(sys.prefix), base_version="0.3.0")
    assert versions.target_of(tmp_path, versions.CURRENT) == versions.BASE


def test_a_switch_cut_short_is_undone_at_the_next_run(tmp_path: Path) -> None:
    fake_install(tmp_path, "0.2.0")
    versions.point(tmp_path, versions.CURRENT, "0.2.0")
    marker = versions.pending_switch(tmp_path)
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"from": "base", "from_version": "0.1.0", "to": "0.2.0"}))
    versions.prepare(tmp_path, base_prefix=Path(sys.prefix), base_version="0.1.0")
    assert versions.target_of(tmp_path, versions.CURRENT) == versions.BASE
    assert not marker.exists()


def test_prune_keeps_what_a_link_names_and_removes_the_rest(tmp_path: Path) -> None:
    for version in ("0.2.0", "0.3.0", "0.4.0"):
        fake_install(tmp_path, version)
    versions.point(tmp_path, versions.BASE, sys.prefix)
    versions.point(tmp_path, versions.PREVIOUS, "0.3.0")
    versions.point(tmp_path, versions.CURRENT, "0.4.0")
    assert versions.prune(tmp_path) == ["0.2.0"]
    kept = sorted(p.name for p in paths.versions_dir(tmp_path).iterdir() if not p.is_symlink())
    assert kept == ["0.3.0", "0.4.0"]


def test_with_update_url_the_switch_is_a_program_started_only_on_demand(tmp_path: Path) -> None:
    text = BASE_YAML + "update_url: https://updates.example.com/\n"
    config = load_config(write(tmp_path, text))
    path = write_config(
        RenderParams(
            data_dir=tmp_path,
            config_path=config.source_path,
            extra_programs=extra_programs(config),
            python="/data/versions/current/bin/python",
        )
    )
    conf = configparser.RawConfigParser()
    conf.read(path)
    switch = conf["program:update-switch"]
    assert switch["command"].startswith(
        "/data/versions/current/bin/python -m supervisor_agent.update.switch"
    )
    assert (switch["autostart"], switch["autorestart"], switch["startretries"]) == (
        "false",
        "false",
        "0",
    )
    assert conf["program:supervisor-agent"]["command"].startswith(
        "/data/versions/current/bin/python"
    )
    without = load_config(write(tmp_path / "plain", BASE_YAML))
    assert [p.name for p in extra_programs(without)] == []


def test_only_a_switcher_that_ended_by_itself_after_its_switch_was_asked_for_died(
    tmp_path: Path,
) -> None:
    """What run's watch undoes: killed or crashed (EXITED, FATAL, BACKOFF), started at or
    after the pending switch was written; not one still at work, one supervisord stopped
    (the connector stopping: the next run undoes it), nor an earlier update's switcher."""
    marker = versions.pending_switch(tmp_path)

    def switcher(state: str, start: int) -> list[dict[str, object]]:
        name = switch_recovery.SWITCH_PROGRAM
        return [
            {"name": "tp-manager", "statename": "RUNNING", "start": start},
            {"name": name, "statename": state, "start": start},
        ]

    assert not switch_recovery.switcher_died(tmp_path, switcher("EXITED", 10**10))  # no switch
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"from": "base", "from_version": "0.1.0", "to": "0.2.0"}))
    asked = int(marker.stat().st_mtime)
    for state in ("EXITED", "FATAL", "BACKOFF"):
        assert switch_recovery.switcher_died(tmp_path, switcher(state, asked))
    for state in ("RUNNING", "STARTING", "STOPPING", "STOPPED"):
        assert not switch_recovery.switcher_died(tmp_path, switcher(state, asked))
    assert not switch_recovery.switcher_died(tmp_path, switcher("EXITED", asked - 60))
    assert not switch_recovery.switcher_died(tmp_path, switcher("EXITED", 0))  # never started
    assert versions.switched_from(tmp_path) == "base"
