"""Keep a terminal's link awake, and learn it is gone before a customer does.

Concert V2: terminals left idle for hours can put their USB link to sleep; a register
that sends an ENQ/EOT probe every few minutes keeps it awake and learns early that the
link is gone (OCA pos #701).  Concert V3 opens a connection per transaction, so nothing
is kept open between payments: a terminal switched off or unplugged from the network
would otherwise show only when the next customer's payment cannot connect.  The same
watch opens (and closes) a TCP connection to it after the same idle time.

As zigpy/bellows run their watchdog in the application above the radio driver, this
lives above the drivers: a driver runs its probe and owns the link state (Concert V2's
link layer frames it: ``link.Probe``, ENQ, ACK, EOT, its timers and tries; Concert V3's
is one bounded TCP connect); this module decides *when* to probe and what no answer
*means*:

* a probe goes out after ``interval_s`` seconds without an exchange with the terminal --
  every payment resets that, so a busy shop is never probed, and a probe never starts
  while the terminal is in use;
* a terminal that answers no probe is reported silent: its link is reported down
  (``link.down`` on tp-manager's PUB socket, ``check``, the status page, the link
  gauge; a Concert V2 port is reopened); it is then probed every ``retry_s``, and its
  first answer -- to a probe, or to a payment -- reports the link up again;
* a probe cut short (a payment took the line, the port went away) is no verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Final, Protocol

import structlog

from tp_manager.terminal.model import Probed

log = structlog.get_logger(__name__)

# While a terminal is reported silent it is probed this often (or every interval_s, if
# shorter): its return is seen within seconds, at 3 bytes a probe.
RETRY_INTERVAL_S: Final = 15.0
# When a probe could not run (the line got busy at that very moment), look again after.
NOT_RUN_PAUSE_S: Final = 1.0


class KeptAlive(Protocol):
    """What the keep-alive needs from a driver (ConcertV2Terminal, ConcertV3Terminal)."""

    @property
    def silent(self) -> bool: ...

    def idle_for(self) -> float | None: ...

    async def keepalive_probe(self) -> Probed | None: ...

    def silence_detail(self, verdict: Probed, idle_s: float, retry_s: float) -> str:
        """What the operator reads when ``verdict`` found the terminal silent."""
        ...

    def report_silent(self, detail: str) -> bool: ...


@dataclass
class ProbeCounts:
    """Probes since start, by outcome (tests and logs read them)."""

    answered: int = 0
    silent: int = 0  # every ENQ unanswered
    cut_short: int = 0  # a payment took the line, or the port went away: no verdict


class KeepAlive:
    """One terminal's keep-alive task; ``key`` is its terminal key (``default``, an id)."""

    def __init__(
        self,
        terminal: KeptAlive,
        key: str,
        interval_s: float,
        retry_s: float = RETRY_INTERVAL_S,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("the keep-alive interval must be positive")
        self.terminal = terminal
        self.key = key
        self.interval_s = interval_s
        self.retry_s = min(retry_s, interval_s)
        self.counts = ProbeCounts()
        self._silent_since: float | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            log.info("tp_manager.keepalive.started", terminal=self.key, interval_s=self.interval_s)
            self._task = asyncio.create_task(self._run(), name=f"keepalive.{self.key}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def due_in(self) -> float:
        """Seconds until the next probe is due (0: now).  Unknown idle time (the line in
        use, the port not open) counts as none: look again a full wait later."""
        wait = self.retry_s if self.terminal.silent else self.interval_s
        idle = self.terminal.idle_for()
        return wait if idle is None else max(0.0, wait - idle)

    async def _run(self) -> None:
        while True:
            delay = self.due_in()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            try:
                await self.probe_once()
            except Exception:  # a bug here must not stop the keep-alive for good
                log.exception("tp_manager.keepalive.crashed", terminal=self.key)
                await asyncio.sleep(self.retry_s)

    async def probe_once(self) -> Probed | None:
        """One probe and its consequence; None when the line was not free for it."""
        was_silent = self.terminal.silent
        idle = self.terminal.idle_for()
        verdict = await self.terminal.keepalive_probe()
        if verdict is None:
            await asyncio.sleep(NOT_RUN_PAUSE_S)
            return None
        if verdict.responding:
            self.counts.answered += 1
            since, self._silent_since = self._silent_since, None
            if was_silent:  # the driver has reported the link up again
                log.info(
                    "tp_manager.keepalive.recovered",
                    terminal=self.key,
                    silent_s=None if since is None else round(time.monotonic() - since, 1),
                    tries=verdict.tries,
                )
            else:
                log.debug("tp_manager.keepalive.answered", terminal=self.key, tries=verdict.tries)
        elif verdict.cut_short:
            self.counts.cut_short += 1
            log.info("tp_manager.keepalive.cut_short", terminal=self.key, tries=verdict.tries)
        else:
            self.counts.silent += 1
            self._silent(verdict, idle, was_silent)
        return verdict

    def _silent(self, verdict: Probed, idle: float | None, was_silent: bool) -> None:
        if was_silent:
            log.debug("tp_manager.keepalive.still_silent", terminal=self.key)
            return
        detail = self.terminal.silence_detail(verdict, idle or 0.0, self.retry_s)
        if not self.terminal.report_silent(detail):
            return  # a payment took the line meanwhile: its own ENQ tells
        self._silent_since = time.monotonic()
        log.warning(
            "tp_manager.keepalive.failed", terminal=self.key, tries=verdict.tries, detail=detail
        )
