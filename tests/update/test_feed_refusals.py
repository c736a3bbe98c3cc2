"""The feed against a real TUF repository over loopback HTTP: what is taken, what is refused.

Each refusal runs a whole update cycle (``UpdateCycle.run``) the way the agent does, on a
data directory whose ``current`` link names the running environment: the cycle must end
``refused`` with the reason in its status and in an ``update.refused`` log line, and the
running version must stay in place (``current`` unchanged, nothing installed).  The
switch is wired to supervisord's socket in the data directory, where nothing listens: a
cycle that wrongly got as far as switching would end ``switch_failed``, not ``refused``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from common import __version__, paths, versions
from supervisor_agent.update import state
from supervisor_agent.update.cli import followed_after
from supervisor_agent.update.cycle import UpdateCycle, switch_starter
from supervisor_agent.update.feed import Feed, Reason
from supervisor_agent.update.state import Status
from tests.stack import free_port
from tests.update.tuf_repo import TufRepo, in_days, new_signer, serve

NEWER = "99.0.0"
FAKE_WHEEL_BYTES = b"PK\x03\x04 not really a wheel, never installed " * 50


@dataclass
class Feedsite:
    repo: TufRepo
    url: str
    data_dir: Path

    def cycle(self, url: str | None = None) -> UpdateCycle:
        return UpdateCycle(
            data_dir=self.data_dir,
            url=url or self.url,
            root=self.repo.root_file,
            running=__version__,
            busy=lambda: False,
            start_switch=switch_starter(self.data_dir),
        )

    def release(self, version: str = NEWER, *, served: bytes | None = None) -> None:
        wheel = self.data_dir.parent / f"ecr_connector-{version}-py3-none-any.whl"
        wheel.write_bytes(FAKE_WHEEL_BYTES)
        self.repo.add_release(version, wheel, served=served)


@pytest.fixture(params=[False, True], ids=["plain", "consistent-snapshot"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Feedsite]:
    repo = TufRepo(tmp_path / "repo", consistent_snapshot=request.param)
    data_dir = tmp_path / "data"
    versions.prepare(data_dir, base_prefix=Path(sys.prefix))
    with serve(repo.folder) as url:
        yield Feedsite(repo, url, data_dir)


async def run_cycle(site: Feedsite, url: str | None = None) -> tuple[Status, list[dict]]:
    with capture_logs() as logs:
        status = await site.cycle(url).run()
    return status, logs


def assert_running_version_kept(site: Feedsite) -> None:
    assert versions.target_of(site.data_dir, versions.CURRENT) == versions.BASE
    installed = [p.name for p in paths.versions_dir(site.data_dir).iterdir() if not p.is_symlink()]
    assert installed == []
    assert not versions.pending_switch(site.data_dir).exists()


def assert_refused(status: Status, logs: list[dict], reason: Reason) -> None:
    assert status.state == "refused", status
    assert status.reason is not None and status.reason.startswith(f"{reason}: ")
    refusals = [e for e in logs if e["event"] == "update.refused"]
    assert len(refusals) == 1 and refusals[0]["log_level"] == "warning"
    assert refusals[0]["reason"] == str(reason)
    assert refusals[0]["detail"]


def test_a_signed_release_is_read_and_its_wheel_verified(site: Feedsite) -> None:
    site.release()
    site.repo.sign_all()
    feed = Feed.for_connector(site.url, site.repo.root_file, site.data_dir)
    release = feed.latest()
    assert (release.version, release.wheel) == (
        NEWER,
        f"ecr-connector/ecr_connector-{NEWER}-py3-none-any.whl",
    )
    assert feed.wheel(release).read_bytes() == FAKE_WHEEL_BYTES


async def test_target_bytes_that_differ_from_the_signed_hash_are_refused(site: Feedsite) -> None:
    tampered = bytes(b ^ 0x01 for b in FAKE_WHEEL_BYTES)  # same length, other bytes
    site.release(served=tampered)
    site.repo.sign_all()
    status, logs = await run_cycle(site)
    assert_refused(status, logs, Reason.HASH_MISMATCH)
    assert status.available == NEWER  # latest.json was fine, the wheel was not
    assert_running_version_kept(site)


async def test_metadata_signed_by_a_key_the_root_does_not_trust_is_refused(site: Feedsite) -> None:
    site.release()
    site.repo.sign_all(timestamp_signer=new_signer())
    status, logs = await run_cycle(site)
    assert_refused(status, logs, Reason.BAD_SIGNATURE)
    assert_running_version_kept(site)


async def test_an_expired_timestamp_is_refused(site: Feedsite) -> None:
    site.release()
    site.repo.sign_all(timestamp_expires=in_days(-1))
    status, logs = await run_cycle(site)
    assert_refused(status, logs, Reason.EXPIRED)
    assert_running_version_kept(site)


@pytest.mark.parametrize("replayed", ["all-metadata", "snapshot-and-targets"])
async def test_older_metadata_replayed_is_refused(
    site: Feedsite, tmp_path: Path, replayed: str
) -> None:
    old = tmp_path / "old-metadata"
    site.release("0.0.1")  # an old release, signed at version 2
    site.repo.sign_all()
    site.repo.save_state(old)
    site.repo.sign_all()  # version 3 of targets, snapshot, timestamp
    status, _ = await run_cycle(site)
    assert status.state == "up_to_date"  # the connector has now seen version 3
    if replayed == "all-metadata":
        site.repo.replay(old)
    else:  # a newer timestamp (version 4) with the older snapshot (version 2) behind it
        site.repo.sign_all()
        site.repo.serve_metadata("snapshot", (old / "snapshot.json").read_bytes(), version=4)
    status, logs = await run_cycle(site)
    assert_refused(status, logs, Reason.ROLLED_BACK)
    assert_running_version_kept(site)


async def test_an_unreachable_feed_is_refused(site: Feedsite) -> None:
    status, logs = await run_cycle(site, url=f"http://127.0.0.1:{free_port()}")
    assert_refused(status, logs, Reason.UNREACHABLE)
    assert_running_version_kept(site)


async def test_a_missing_trusted_root_is_refused(site: Feedsite) -> None:
    os.unlink(site.repo.root_file)
    status, logs = await run_cycle(site)
    assert_refused(status, logs, Reason.NO_TRUSTED_ROOT)
    assert_running_version_kept(site)


@pytest.mark.parametrize("version", [__version__, "0.0.1"])
async def test_a_latest_json_naming_a_version_not_newer_does_nothing(
    site: Feedsite, version: str
) -> None:
    site.release(version)
    site.repo.sign_all()
    with capture_logs() as logs:
        status = await site.cycle().run()
    assert (status.state, status.available) == ("up_to_date", version)
    assert [e["event"] for e in logs] == ["update.up_to_date"]
    assert_running_version_kept(site)
    assert state.read_status(site.data_dir).state == "up_to_date"


async def test_a_version_rolled_back_before_is_not_tried_again(site: Feedsite) -> None:
    site.release()
    site.repo.sign_all()
    state.remember_rolled_back(site.data_dir, NEWER, "supervisor-agent backoff at start")
    status, logs = await run_cycle(site)
    assert status.state == "skipped"
    assert [e["event"] for e in logs] == ["update.skipped"]
    assert_running_version_kept(site)


async def test_a_run_while_a_switch_is_under_way_does_nothing(site: Feedsite) -> None:
    """``update --now`` during the daily run: the switcher already runs; starting it again
    would end ``switch_failed`` (supervisord: ALREADY_STARTED) for no fault."""
    site.release()
    site.repo.sign_all()
    handed_over = Status(run=7, state="switching", running=__version__, available=NEWER)
    state.write_status(site.data_dir, handed_over)
    versions.pending_switch(site.data_dir).write_text('{"from": "base", "to": "99.0.0"}')
    status, logs = await run_cycle(site)
    assert (status.run, status.state, status.available) == (7, "switching", NEWER)
    assert [e["event"] for e in logs] == ["update.switch_under_way"]
    assert state.read_status(site.data_dir).run == 7  # no new run was written


def test_update_now_follows_a_run_already_under_way() -> None:
    assert followed_after(Status(run=7, state="waiting_for_payment")) == 6
    assert followed_after(Status(run=7, state="switching")) == 6
    assert followed_after(Status(run=7, state="up_to_date")) == 7
    assert followed_after(Status()) == 0  # never ran: "off"
