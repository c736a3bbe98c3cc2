"""When the notifier tries a notification again: the timers, and the backoff they make.

Each notification carries its own schedule: after its n-th failed attempt it waits
``backoff_initial_s * 2**(n-1)``, capped at ``backoff_max_s``, plus a little random
jitter so that rows queued together do not all come back at the same instant.  The
wait is tenacity's (``wait_exponential`` + ``wait_random``); the notifier persists it
in the outbox row instead of sleeping in a retry loop, so a restart keeps each row's
schedule and an outage never holds a register's answer.  HiPay's
``Retry-After`` lengthens a wait (up to ``retry_after_max_s``), never shortens it.
There is no rest between "series": the cap is the longest a row ever waits.

Every timer is a field of :class:`RetryPolicy` so that tests and benchmarks can run a
scaled-down outage (seconds instead of minutes) that exercises the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from tenacity import RetryCallState, wait_exponential, wait_random

REQUEST_TIMEOUT_S = 15.0  # one attempt, connect to last byte of the answer
CONNECT_TIMEOUT_S = 5.0
BACKOFF_INITIAL_S = 1.0  # wait after a row's first failed attempt; doubles per attempt
BACKOFF_MAX_S = 60.0  # cap of one wait: the longest a pending row ever waits
BACKOFF_JITTER_S = 1.0  # uniform 0..jitter added to each wait
RETRY_AFTER_MAX_S = 900.0  # we honour Retry-After up to this
# During an outage, HiPay is tried at least this often (the earliest pending row goes
# early if none falls due): its return is noticed within this, not within the cap.
PROBE_INTERVAL_S = 10.0
# Safety net for rows another process changed (``ecr-connector outbox retry``): the
# worker cannot be woken from there, so it rereads the outbox at least this often.
RESCAN_INTERVAL_S = 60.0
READ_RETRY_S = 1.0  # after a failed read of the outbox (database busy)
MAX_CONCURRENT = 8  # attempts in flight at once: how fast a backlog drains
KEEPALIVE_S = 10.0  # idle keep-alive connections are closed after this


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Every timer of the notifier; tests and benchmarks pass scaled-down ones."""

    request_timeout_s: float = REQUEST_TIMEOUT_S
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    backoff_initial_s: float = BACKOFF_INITIAL_S
    backoff_max_s: float = BACKOFF_MAX_S
    backoff_jitter_s: float = BACKOFF_JITTER_S
    retry_after_max_s: float = RETRY_AFTER_MAX_S
    probe_interval_s: float = PROBE_INTERVAL_S
    rescan_interval_s: float = RESCAN_INTERVAL_S
    read_retry_s: float = READ_RETRY_S
    max_concurrent: int = MAX_CONCURRENT
    keepalive_s: float = KEEPALIVE_S

    def backoff_s(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after a row's ``attempts``-th attempt failed."""
        strategy = wait_exponential(
            multiplier=self.backoff_initial_s, max=self.backoff_max_s
        ) + wait_random(0.0, self.backoff_jitter_s)
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = max(1, attempts)
        wait = float(strategy(state))
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.retry_after_max_s))
        return wait

    def probe_wait_s(self, retry_after: float | None = None) -> float:
        """How long after a failed attempt HiPay is tried again, whichever row is due."""
        if retry_after is None:
            return self.probe_interval_s
        return max(self.probe_interval_s, min(retry_after, self.retry_after_max_s))


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or HTTP-date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
