"""Throttling of wrong credentials: after a few failures, 429 until a lockout ends.

Without it a guesser could try thousands of passwords a second (measured: 2000
in half a second).  The key is the client address *and* the username tried:

- a register on another address, or a client with another username, is never
  slowed by someone else's failures;
- a locked key is answered 429 **before** its password is compared, so a locked
  guesser learns nothing (letting a right password through would keep the
  oracle open at full speed);
- the price: a guesser on the same host as the register (both 127.0.0.1) who
  guesses the register's own username delays it by one lockout at a time; the
  lockout is logged at warning so the operator sees it.

Missing credentials are not counted (a browser's first request has none); a
success clears the key.  The table is bounded: a flood of invented usernames
evicts the oldest keys instead of growing memory.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)

FAILURES_BEFORE_LOCKOUT = 10  # a register with a typo'd password fails a few times, not 10
FAILURE_WINDOW_S = 60.0  # ... within this long
LOCKOUT_S = 60.0  # then the key gets 429 for this long
MAX_TRACKED_KEYS = 4096

ThrottleKey = tuple[str, str | None]  # (client address, username tried; None: unreadable)


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    failures: int = FAILURES_BEFORE_LOCKOUT
    window_s: float = FAILURE_WINDOW_S
    lockout_s: float = LOCKOUT_S


class AuthThrottle:
    def __init__(
        self,
        policy: ThrottlePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or ThrottlePolicy()
        self._clock = clock
        self._failures: dict[ThrottleKey, deque[float]] = {}
        self._locked_until: dict[ThrottleKey, float] = {}

    def retry_after_s(self, key: ThrottleKey) -> int | None:
        """Whole seconds until ``key`` may try again, or None if it is not locked."""
        until = self._locked_until.get(key)
        if until is None:
            return None
        left = until - self._clock()
        if left <= 0:
            del self._locked_until[key]
            return None
        return max(1, math.ceil(left))

    def failed(self, key: ThrottleKey) -> None:
        now = self._clock()
        times = self._failures.pop(key, None) or deque(maxlen=self.policy.failures)
        times.append(now)
        self._failures[key] = times  # re-inserted: the dict's order is oldest first
        if len(times) == self.policy.failures and now - times[0] <= self.policy.window_s:
            self._locked_until[key] = now + self.policy.lockout_s
            del self._failures[key]
            log.warning(
                "api.auth.throttled",
                peer=key[0],
                failures=self.policy.failures,
                window_s=self.policy.window_s,
                retry_after_s=self.policy.lockout_s,
            )
        self._bound()

    def succeeded(self, key: ThrottleKey) -> None:
        self._failures.pop(key, None)

    def _bound(self) -> None:
        for table in (self._failures, self._locked_until):
            while len(table) > MAX_TRACKED_KEYS:
                del table[next(iter(table))]
