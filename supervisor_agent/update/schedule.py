"""When the agent updates: daily at ``update_time`` (local time) plus jitter, or on demand.

The jitter (up to :data:`JITTER_S`, drawn once per agent start) spreads a fleet that
shares one ``update_time`` over a few minutes, so the feed is not hit by all at once.
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


def next_run(now: dt.datetime, at: dt.time, jitter_s: float) -> dt.datetime:
    """The next ``at`` (plus jitter) strictly after ``now``; ``now`` is local and naive."""
    candidate = dt.datetime.combine(now.date(), at) + dt.timedelta(seconds=jitter_s)
    if candidate <= now:
        candidate += dt.timedelta(days=1)
    return candidate


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
    def __init__(self, make_cycle: Callable[[], UpdateCycle], at: dt.time, jitter_s: float) -> None:
        self.make_cycle = make_cycle  # called at the first run: see the module's docstring
        self.cycle: UpdateCycle | None = None
        self.at = at
        self.jitter_s = jitter_s
        self.wanted = asyncio.Event()

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(RUN_NOW_SIGNAL, self.wanted.set)
        try:
            while True:
                when = next_run(dt.datetime.now(), self.at, self.jitter_s)
                log.info("update.scheduled", at=when.isoformat(timespec="seconds"))
                delay = (when - dt.datetime.now()).total_seconds()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(delay, 0.0)):
                        await self.wanted.wait()
                self.wanted.clear()
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
    scheduler = Scheduler(make_cycle, at, random.uniform(0, JITTER_S))
    return asyncio.create_task(scheduler.run_forever(), name="self-update")
