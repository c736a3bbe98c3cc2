"""When the agent updates: daily at ``update_time`` (local time) plus jitter, or on demand.

The jitter (up to :data:`JITTER_S`, drawn once per agent start) spreads a fleet that
shares one ``update_time`` over a few minutes, so the feed is not hit by all at once.

The run time is read on the wall clock, in the box's local zone, on the day it falls:
across a DST change the wait is 23 or 25 hours of real time, and the wait is cut into
steps of at most :data:`MAX_SLEEP_S` with the clock read again after each, so a clock
set by NTP (a box without a real-time clock boots at its last saved time) moves the run
with it.  A day's window runs once: the last run's time (``status.json``) says which day
it served, so an agent restarted in the window (by the update it ran, with a new
jitter) or a clock set back after the run does not run it again.  A window the clock
jumped over by more than :data:`LATE_S` is not run late, in business hours: the next
day's is.
``ecr-connector update --now`` asks for a run at once by sending the agent SIGUSR1
through supervisord.  Runs never overlap; a run that fails for any reason is logged and
the schedule goes on.

The update machinery (TUF, securesystemslib, cryptography: ~10 MB) is imported at the
first run, not when the agent starts: an agent that serves payments all day and checks
the feed once a night holds none of it until then (tests/backbone/test_lean_imports.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from common import versions
from common.config import ConnectorConfig
from supervisor_agent.update import state
from supervisor_agent.update.state import Status

if TYPE_CHECKING:
    from supervisor_agent.update.cycle import UpdateCycle

log = structlog.get_logger(__name__)

JITTER_S = 10 * 60.0
DEFAULT_TIME = dt.time(3, 0)  # the seeds' default when update_time is not given
RUN_NOW_SIGNAL = signal.SIGUSR1
MAX_SLEEP_S = 60.0  # the wall clock is read again at least this often while waiting
LATE_S = 15 * 60.0  # a window found this far behind the clock was jumped over: not run


def local_now() -> dt.datetime:
    """Now, aware, in the box's local zone."""
    return dt.datetime.now().astimezone()


def window(day: dt.date, at: dt.time, jitter_s: float) -> dt.datetime:
    """``day``'s run time: ``at`` plus jitter on the local wall clock, with the offset in
    force then (aware)."""
    return (dt.datetime.combine(day, at) + dt.timedelta(seconds=jitter_s)).astimezone()


def next_run(
    now: dt.datetime, at: dt.time, jitter_s: float, served: dt.date | None = None
) -> dt.datetime:
    """The first day's window strictly after ``now`` (aware) on a day after ``served``."""
    day = now.astimezone().date() - dt.timedelta(days=1)  # a window may cross midnight
    while True:
        when = window(day, at, jitter_s)
        if when > now and (served is None or day > served):
            return when
        day += dt.timedelta(days=1)


def served_day(status: Status, at: dt.time) -> dt.date | None:
    """The day whose window the last run served: a run at or after a day's ``at`` serves
    that day (and, before it, the day before); None before any run."""
    if status.run == 0:
        return None
    try:
        last = dt.datetime.fromisoformat(status.at).astimezone()
    except ValueError:
        return None
    day = last.date()
    return day if last >= window(day, at, 0) else day - dt.timedelta(days=1)


def too_late(when: dt.datetime, now: dt.datetime) -> bool:
    """The clock jumped over ``when``: running now would not be running at ``update_time``."""
    return (now - when).total_seconds() > LATE_S


def disabled_reason(config: ConnectorConfig) -> str | None:
    """Why this connector cannot update itself, or None when it can."""
    if not config.update_url:
        return "no update_url in the config"
    if versions.target_of(config.data_dir, versions.CURRENT) is None:
        return (
            "the connector was not started by `ecr-connector run` from a virtual environment "
            "(no versions/current link)"
        )
    return None


class Scheduler:
    def __init__(
        self,
        make_cycle: Callable[[], UpdateCycle],
        data_dir: Path,
        at: dt.time,
        jitter_s: float,
    ) -> None:
        self.make_cycle = make_cycle  # called at the first run: see the module's docstring
        self.cycle: UpdateCycle | None = None
        self.data_dir = data_dir
        self.at = at
        self.jitter_s = jitter_s
        self.wanted = asyncio.Event()

    async def _until(self, when: dt.datetime) -> bool:
        """Wait for ``when`` on the wall clock, or a run asked for (True)."""
        while (left := (when - local_now()).total_seconds()) > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, MAX_SLEEP_S)):
                    await self.wanted.wait()
            if self.wanted.is_set():
                return True
        return False

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(RUN_NOW_SIGNAL, self.wanted.set)
        try:
            while True:
                served = served_day(state.read_status(self.data_dir), self.at)
                when = next_run(local_now(), self.at, self.jitter_s, served)
                log.info("update.scheduled", at=when.isoformat(timespec="seconds"))
                asked = await self._until(when)
                self.wanted.clear()
                if not asked and too_late(when, now := local_now()):
                    log.info(
                        "update.window_missed",
                        at=when.isoformat(timespec="seconds"),
                        now=now.isoformat(timespec="seconds"),
                    )
                    continue
                await self.run_once()
        finally:
            loop.remove_signal_handler(RUN_NOW_SIGNAL)

    async def run_once(self) -> Status | None:
        try:
            if self.cycle is None:  # its imports take a moment: not on the payments' loop
                self.cycle = await asyncio.to_thread(self.make_cycle)
            return await self.cycle.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # never let an update bug take the payment API down
            log.exception("update.crashed")
            return None


def _answer_off(data_dir: Path, running: str, reason: str) -> None:
    """``update --now`` while updates are off: say so where the command looks."""
    previous = state.read_status(data_dir).run
    state.write_status(
        data_dir, Status(run=previous + 1, state="off", running=running, reason=reason)
    )


def start(
    config: ConnectorConfig, running: str, busy: Callable[[], bool]
) -> asyncio.Task[None] | None:
    """The agent's update task, or None (and one log line saying why) when updates are off."""
    reason = disabled_reason(config)
    if reason is not None:
        log.info("update.disabled", reason=reason)
        asyncio.get_running_loop().add_signal_handler(
            RUN_NOW_SIGNAL, _answer_off, config.data_dir, running, reason
        )
        return None

    def make_cycle() -> UpdateCycle:
        from supervisor_agent.update.cycle import UpdateCycle, switch_starter

        return UpdateCycle(
            data_dir=config.data_dir,
            url=str(config.update_url),
            root=config.update_root,
            running=running,
            busy=busy,
            start_switch=switch_starter(config.data_dir),
        )

    at = config.update_time or DEFAULT_TIME
    scheduler = Scheduler(make_cycle, config.data_dir, at, random.uniform(0, JITTER_S))
    return asyncio.create_task(scheduler.run_forever(), name="self-update")
