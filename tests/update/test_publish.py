"""``ecr-connector publish``: a feed made and signed by the command, read by the connector's
TUF client over loopback HTTP, with and without consistent snapshots."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from supervisor_agent.update.feed import Feed, Reason, Refused
from tests.stack import REPO
from tests.update.tuf_repo import serve

ROLES = ("root", "targets", "snapshot", "timestamp")


def publish(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "common", "publish", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def fake_wheel(folder: Path, version: str) -> Path:
    wheel = folder / f"ecr_connector-{version}-py3-none-any.whl"
    wheel.write_bytes(f"wheel bytes of {version}".encode() * 40)
    return wheel


@pytest.mark.parametrize("consistent", [False, True], ids=["plain", "consistent-snapshot"])
def test_a_published_release_is_what_the_connector_reads(tmp_path: Path, consistent: bool) -> None:
    repo, keys = tmp_path / "feed", tmp_path / "keys"
    init = publish("--repo", str(repo), "--keys", str(keys), "--init")
    if consistent:
        init = publish(
            "--repo",
            str(tmp_path / "feed2"),
            "--keys",
            str(keys),
            "--init",
            "--consistent-snapshot",
        )
        repo = tmp_path / "feed2"
    assert init.returncode == 0, init.stderr
    for role in ROLES:
        key = keys / f"{role}.pem"
        assert key.stat().st_mode & 0o777 == 0o600
        assert key.read_text().splitlines()[1] not in init.stdout + init.stderr
    root = repo / "metadata" / "1.root.json"
    assert str(root) in init.stdout

    with serve(repo) as url:
        for n, version in enumerate(["1.0.0", "1.1.0"], start=1):
            wheel = fake_wheel(tmp_path, version)
            done = publish("--repo", str(repo), "--keys", str(keys), "--wheel", str(wheel))
            assert done.returncode == 0, done.stderr
            feed = Feed(url, root, tmp_path / "client")
            release = feed.latest()
            assert release.version == version
            assert feed.wheel(release).read_bytes() == wheel.read_bytes()
            assert (repo / "metadata" / "timestamp.json").exists()
            if consistent:  # versioned metadata, hash-prefixed targets
                assert (repo / "metadata" / f"{n + 1}.snapshot.json").exists()
                assert len(list((repo / "targets" / "ecr-connector").glob("*.latest.json"))) == n
        refreshed = publish("--repo", str(repo), "--keys", str(keys), "--refresh")
        assert refreshed.returncode == 0, refreshed.stderr
        assert Feed(url, root, tmp_path / "client").latest().version == "1.1.0"


def test_a_key_the_root_does_not_name_is_not_used(tmp_path: Path) -> None:
    repo, keys, other = tmp_path / "feed", tmp_path / "keys", tmp_path / "other-keys"
    assert publish("--repo", str(repo), "--keys", str(keys), "--init").returncode == 0
    assert publish("--repo", str(tmp_path / "x"), "--keys", str(other), "--init").returncode == 0
    done = publish(
        "--repo", str(repo), "--keys", str(other), "--wheel", str(fake_wheel(tmp_path, "2.0.0"))
    )
    assert done.returncode == 1
    assert "is not a targets key of the feed's root" in done.stderr
    with serve(repo) as url:  # the feed is unchanged: still no release
        with pytest.raises(Refused) as refused:
            Feed(url, repo / "metadata" / "1.root.json", tmp_path / "client").latest()
    assert refused.value.reason is Reason.BAD_RELEASE
