"""``update_url`` and ``update_root`` in the config: defaults, relative paths, the https rule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from common.config import ConfigError, load_config
from supervisor_agent.update.schedule import next_run
from tests.backbone.test_config import BASE_YAML, write


def test_without_update_url_self_update_is_off_and_the_root_defaults_under_data_dir(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, BASE_YAML))
    assert config.update_url is None
    assert config.update_root == tmp_path / "update" / "root.json"


def test_update_url_and_a_relative_update_root_from_the_config_directory(tmp_path: Path) -> None:
    text = BASE_YAML + "update_url: https://updates.example.com/ecr\nupdate_root: keys/root.json\n"
    config = load_config(write(tmp_path, text))
    assert config.update_url == "https://updates.example.com/ecr/"
    assert config.update_root == tmp_path / "keys" / "root.json"


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("http://updates.example.com/", "must use https://"),
        ("ftp://updates.example.com/", "must be a URL like https://updates.example.com/"),
    ],
)
def test_a_bad_update_url_is_one_clear_problem(tmp_path: Path, value: str, rule: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, BASE_YAML + f"update_url: {value}\n"))
    assert "key 'update_url' (line 6)" in str(caught.value)
    assert rule in str(caught.value)


def test_plain_http_is_allowed_for_a_feed_on_loopback(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE_YAML + "update_url: http://127.0.0.1:8000\n"))
    assert config.update_url == "http://127.0.0.1:8000/"


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (dt.datetime(2026, 5, 1, 2, 0), dt.datetime(2026, 5, 1, 3, 5)),
        (dt.datetime(2026, 5, 1, 3, 5), dt.datetime(2026, 5, 2, 3, 5)),
        (dt.datetime(2026, 5, 1, 23, 0), dt.datetime(2026, 5, 2, 3, 5)),
    ],
)
def test_the_next_run_is_update_time_plus_jitter_strictly_ahead(
    now: dt.datetime, expected: dt.datetime
) -> None:
    # local wall-clock times, aware (tests/update/test_schedule.py: DST, clock jumps)
    assert next_run(now.astimezone(), dt.time(3, 0), jitter_s=300) == expected.astimezone()
