"""The backoff a failed row gets and the outage bookkeeping: pure functions, no clock."""

from __future__ import annotations

import math

from supervisor_agent.hipay_outage import HipayOutage
from supervisor_agent.retry_policy import RetryPolicy

NO_JITTER = RetryPolicy(backoff_jitter_s=0.0)


def test_backoff_doubles_per_attempt_and_is_capped_at_a_minute() -> None:
    waits = [NO_JITTER.backoff_s(n) for n in range(1, 10)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert NO_JITTER.backoff_s(10_000) == 60.0  # a row tried for days: no overflow


def test_jitter_only_adds() -> None:
    policy = RetryPolicy(backoff_jitter_s=1.0)
    for _ in range(100):
        assert 4.0 <= policy.backoff_s(3) <= 5.0


def test_retry_after_lengthens_a_wait_within_its_own_cap() -> None:
    assert NO_JITTER.backoff_s(1, retry_after=30.0) == 30.0
    assert NO_JITTER.backoff_s(8, retry_after=5.0) == 60.0  # never shortens
    assert NO_JITTER.backoff_s(1, retry_after=10_000.0) == NO_JITTER.retry_after_max_s
    assert NO_JITTER.probe_wait_s() == NO_JITTER.probe_interval_s
    assert NO_JITTER.probe_wait_s(retry_after=120.0) == 120.0


def test_an_outage_starts_once_and_ends_once() -> None:
    outage = HipayOutage()
    assert not outage.active and outage.answered(5.0) is None
    assert outage.failed(attempt_started_at=10.0, now=10.0, probe_wait_s=2.0)  # log it
    assert not outage.failed(attempt_started_at=11.0, now=11.0, probe_wait_s=2.0)
    assert not outage.failed(attempt_started_at=12.0, now=12.5, probe_wait_s=2.0)
    assert outage.active and outage.probe_at == 14.5
    ended = outage.answered(40.0)
    assert ended is not None
    assert (ended.duration_s, ended.failed_attempts) == (30.0, 3)
    assert not outage.active and outage.probe_at == math.inf
    assert outage.answered(41.0) is None  # one "reachable again" per outage


def test_a_straggler_from_before_the_return_does_not_start_a_new_outage() -> None:
    outage = HipayOutage()
    outage.failed(attempt_started_at=1.0, now=1.0, probe_wait_s=1.0)
    outage.answered(10.0)
    # left at 9.5 (HiPay still down), failed at 10.2: HiPay has answered since
    assert not outage.failed(attempt_started_at=9.5, now=10.2, probe_wait_s=1.0)
    assert not outage.active
    assert outage.failed(attempt_started_at=10.5, now=10.6, probe_wait_s=1.0)  # a new one
