"""Whether HiPay is down right now, as the notifier's attempts see it.

An outage starts with the first attempt that fails in a way that says "HiPay is not
taking notifications" (no connection, no answer, 5xx/429/408, a redirect) and ends with
the first attempt HiPay answers otherwise (2xx, or a 4xx about that one notification).  The
notifier logs one line at each end instead of one per attempt, probes HiPay at its own
pace while the outage lasts, and releases the whole backlog when it ends.

Pure state, no I/O and no logging: the notifier decides what to do with each transition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OutageEnded:
    """What the "reachable again" line reports."""

    duration_s: float
    failed_attempts: int


class HipayOutage:
    def __init__(self) -> None:
        self.started_at: float | None = None
        self.failed_attempts = 0
        self.probe_at = math.inf  # when to try HiPay again if no row falls due before
        self._ended_at = -math.inf

    @property
    def active(self) -> bool:
        return self.started_at is not None

    def failed(self, *, attempt_started_at: float, now: float, probe_wait_s: float) -> bool:
        """Record a failed attempt; true when it starts an outage (log it then).

        An attempt that left before the last outage ended and fails afterwards (the
        drain's stragglers) does not start a new one: HiPay answered since it left.
        """
        if self.started_at is None and attempt_started_at < self._ended_at:
            return False
        started = self.started_at is None
        if started:
            self.started_at = now
            self.failed_attempts = 0
        self.failed_attempts += 1
        self.probe_at = now + probe_wait_s
        return started

    def answered(self, now: float) -> OutageEnded | None:
        """HiPay answered an attempt; what ended, if an outage was on."""
        if self.started_at is None:
            return None
        ended = OutageEnded(duration_s=now - self.started_at, failed_attempts=self.failed_attempts)
        self.started_at = None
        self.failed_attempts = 0
        self.probe_at = math.inf
        self._ended_at = now
        return ended
