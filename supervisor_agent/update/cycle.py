"""One update run in the supervisor agent: check the feed, install, hand over to the switcher.

The agent does everything up to the switch itself, while it keeps serving payments:
the download and the install run in threads.  The switch cannot be the agent's own
work, since the switch restarts the agent: the agent writes the pending switch
(``versions.pending_switch``) and asks supervisord to start the ``update-switch``
program (``switch.py``), which outlives the restart and can roll back.

A payment in flight is waited for, never interrupted: the agent asks the journal (the
one owner of "a payment is in flight": its open rows) and starts the switch only once
no order is open.
A payment that starts in the instant between is still safe: the switcher stops the
agent with supervisord's graceful stop, which lets a request in flight finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from packaging.version import Version

from common import paths, versions
from common.supervisord import rpc
from supervisor_agent.update import state
from supervisor_agent.update.feed import Feed, Refused
from supervisor_agent.update.install import InstallFailed, install
from supervisor_agent.update.state import State, Status

log = structlog.get_logger(__name__)

SWITCH_PROGRAM = "update-switch"
BUSY_POLL_S = 0.2


def switch_starter(data_dir: Path) -> Callable[[], None]:
    """Start the switcher through supervisord (it then outlives this agent's restart)."""

    def start() -> None:
        rpc(paths.supervisord_socket(data_dir)).supervisor.startProcess(SWITCH_PROGRAM, False)

    return start


@dataclass
class UpdateCycle:
    data_dir: Path
    url: str
    root: Path
    running: str  # this process's version
    busy: Callable[[], bool]  # a payment is in flight (the journal says; called in a thread)
    start_switch: Callable[[], None]

    def _save(self, status: Status, new_state: State, reason: str | None = None) -> Status:
        status.state = new_state
        if reason is not None:
            status.reason = reason
        state.write_status(self.data_dir, status)
        return status

    async def run(self) -> Status:
        """One run; returns the status it ended with (``switching``: the switcher goes on).

        While an earlier run's switch is under way (its marker is there until the switcher
        ends, and ``run`` clears one a stop left behind) a run does nothing and returns
        that run's status: a second hand-over would only meet the switcher already running
        (supervisord's ``ALREADY_STARTED``) and end ``switch_failed`` for no fault.  This
        happens when ``update --now`` comes during the daily run.
        """
        if versions.pending_switch(self.data_dir).exists():
            under_way = state.read_status(self.data_dir)
            log.info("update.switch_under_way", to=under_way.available, run=under_way.run)
            return under_way
        status = Status(run=state.read_status(self.data_dir).run + 1, running=self.running)
        self._save(status, "checking")
        feed = Feed.for_connector(self.url, self.root, self.data_dir)
        try:
            return await self._run(feed, status)
        finally:
            feed.clear_downloads()

    async def _run(self, feed: Feed, status: Status) -> Status:
        try:
            release = await asyncio.to_thread(feed.latest)
        except Refused as refused:
            return self._refused(status, refused)
        status.available = release.version
        if release.parsed <= Version(self.running):
            log.info("update.up_to_date", running=self.running, available=release.version)
            return self._save(status, "up_to_date")
        earlier = state.rolled_back(self.data_dir).get(release.version)
        if earlier is not None:
            log.info("update.skipped", version=release.version, rolled_back_for=earlier)
            return self._save(status, "skipped", f"rolled back before: {earlier}")
        log.info("update.available", running=self.running, available=release.version)
        self._save(status, "installing")
        try:
            wheel = await asyncio.to_thread(feed.wheel, release)
        except Refused as refused:
            return self._refused(status, refused)
        try:
            await asyncio.to_thread(install, self.data_dir, release.version, wheel)
        except InstallFailed as exc:
            log.error("update.install_failed", version=release.version, error=str(exc))
            return self._save(status, "install_failed", str(exc))
        await self._wait_idle(status)
        return await self._hand_over(status, release.version)

    def _refused(self, status: Status, refused: Refused) -> Status:
        log.warning(
            "update.refused",
            reason=str(refused.reason),
            detail=refused.detail,
            running=self.running,
        )
        return self._save(status, "refused", f"{refused.reason}: {refused.detail}")

    async def _wait_idle(self, status: Status) -> None:
        if not await asyncio.to_thread(self.busy):
            return
        log.info("update.waiting_for_payment", version=status.available)
        self._save(status, "waiting_for_payment")
        # the journal owns the busy state (rows, no event to wait on): ask it again and again
        while await asyncio.to_thread(self.busy):  # noqa: ASYNC110
            await asyncio.sleep(BUSY_POLL_S)

    async def _hand_over(self, status: Status, version: str) -> Status:
        marker = versions.pending_switch(self.data_dir)
        was = versions.target_of(self.data_dir, versions.CURRENT) or versions.BASE
        state.write_json(
            marker, {"from": was, "from_version": self.running, "to": version, "run": status.run}
        )
        self._save(status, "switching")
        log.info("update.switching", running=self.running, to=version)
        try:
            await asyncio.to_thread(self.start_switch)
        except Exception as exc:  # supervisord unreachable: stay on this version, say why
            marker.unlink(missing_ok=True)
            log.error("update.switch_failed", version=version, error=str(exc))
            return self._save(status, "switch_failed", f"cannot start the switch: {exc}")
        return status
