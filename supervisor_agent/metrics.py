"""In-process figures for the durability layer, in Prometheus text format and in the log.

Written by hand rather than with ``prometheus_client``: three families, no
labels beyond one, and no global registry to reset between tests.  Counters
restart from zero with the process, as Prometheus expects; the notification
*states* are gauges read from the outbox (the truth survives restarts), through
the ``refresh`` callable given to :meth:`Metrics.log_periodically` / the API.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

import structlog

log = structlog.get_logger(__name__)

METRICS_LOG_INTERVAL_S = 300.0  # one "metrics.snapshot" log line every 5 minutes
# Enqueue -> acknowledged, seconds.  Fast path is < 1 s; an outage can last hours.
DELIVERY_BUCKETS_S: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
)  # fmt: skip

TRANSACTION_OUTCOMES = ("accepted", "refused", "failed", "unknown")
RECONCILED_OUTCOMES = ("accepted", "refused")
NOTIFICATION_STATES = ("pending", "delivered", "dead")
ATTEMPT_RESULTS = ("acknowledged", "retryable", "uncertain", "not_sent", "rejected")


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "+Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Metrics:
    """Thread-safe counters; the journal may run in a worker thread."""

    def __init__(self, buckets: tuple[float, ...] = DELIVERY_BUCKETS_S) -> None:
        self._lock = threading.Lock()
        self._transactions = dict.fromkeys(TRANSACTION_OUTCOMES, 0)
        self._reconciled = dict.fromkeys(RECONCILED_OUTCOMES, 0)
        self._attempts = dict.fromkeys(ATTEMPT_RESULTS, 0)
        self._states = dict.fromkeys(NOTIFICATION_STATES, 0)
        self._buckets = tuple(sorted(buckets))
        self._bucket_counts = [0] * len(self._buckets)
        self._latency_sum = 0.0
        self._latency_count = 0

    def transaction_finished(self, outcome: str) -> None:
        with self._lock:
            self._transactions[str(outcome)] = self._transactions.get(str(outcome), 0) + 1

    def transaction_reconciled(self, outcome: str) -> None:
        """An ``unknown`` payment given the terminal's late verdict."""
        with self._lock:
            self._reconciled[str(outcome)] = self._reconciled.get(str(outcome), 0) + 1

    def notification_attempt(self, result: str) -> None:
        with self._lock:
            self._attempts[result] = self._attempts.get(result, 0) + 1

    def delivery_latency(self, seconds: float) -> None:
        with self._lock:
            i = bisect.bisect_left(self._buckets, seconds)
            if i < len(self._bucket_counts):
                self._bucket_counts[i] += 1
            self._latency_sum += seconds
            self._latency_count += 1

    def set_notification_states(self, counts: Mapping[str, int]) -> None:
        with self._lock:
            for state in NOTIFICATION_STATES:
                self._states[state] = int(counts.get(state, 0))

    def snapshot(self) -> dict[str, Any]:
        """The same figures as :meth:`render`, as one flat-ish dict for the log line."""
        with self._lock:
            return {
                "transactions": dict(self._transactions),
                "reconciled": dict(self._reconciled),
                "notifications": dict(self._states),
                "attempts": dict(self._attempts),
                "delivery_count": self._latency_count,
                "delivery_seconds_sum": round(self._latency_sum, 3),
            }

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        with self._lock:
            lines = [
                "# HELP ecr_transactions_total Finished transactions by outcome.",
                "# TYPE ecr_transactions_total counter",
            ]
            lines += [
                f'ecr_transactions_total{{outcome="{k}"}} {v}'
                for k, v in sorted(self._transactions.items())
            ]
            lines += [
                "# HELP ecr_transactions_reconciled_total Unknown outcomes the terminal's late "
                "answer settled, by verdict.",
                "# TYPE ecr_transactions_reconciled_total counter",
            ]
            lines += [
                f'ecr_transactions_reconciled_total{{outcome="{k}"}} {v}'
                for k, v in sorted(self._reconciled.items())
            ]
            lines += [
                "# HELP ecr_notifications HiPay notifications in the outbox by state.",
                "# TYPE ecr_notifications gauge",
            ]
            lines += [f'ecr_notifications{{state="{k}"}} {v}' for k, v in self._states.items()]
            lines += [
                "# HELP ecr_notification_attempts_total HTTP attempts to HiPay by result.",
                "# TYPE ecr_notification_attempts_total counter",
            ]
            lines += [
                f'ecr_notification_attempts_total{{result="{k}"}} {v}'
                for k, v in sorted(self._attempts.items())
            ]
            lines += [
                "# HELP ecr_notification_delivery_seconds Time from queueing to HiPay's 2xx.",
                "# TYPE ecr_notification_delivery_seconds histogram",
            ]
            cumulative = 0
            for bound, count in zip(self._buckets, self._bucket_counts, strict=True):
                cumulative += count
                lines.append(
                    f'ecr_notification_delivery_seconds_bucket{{le="{_fmt(bound)}"}} {cumulative}'
                )
            lines.append(
                f'ecr_notification_delivery_seconds_bucket{{le="+Inf"}} {self._latency_count}'
            )
            lines.append(f"ecr_notification_delivery_seconds_sum {_fmt(self._latency_sum)}")
            lines.append(f"ecr_notification_delivery_seconds_count {self._latency_count}")
        return "\n".join(lines) + "\n"

    async def log_periodically(
        self,
        interval_s: float = METRICS_LOG_INTERVAL_S,
        refresh: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        """Log ``metrics.snapshot`` every ``interval_s`` until cancelled.

        ``refresh`` returns the outbox's counts per state (e.g. ``outbox.counts``);
        it runs in a thread because it reads SQLite.
        """
        while True:
            await asyncio.sleep(interval_s)
            if refresh is not None:
                try:
                    self.set_notification_states(await asyncio.to_thread(refresh))
                except Exception as exc:  # a metrics hiccup must not kill the agent
                    log.warning("metrics.refresh_failed", error=repr(exc))
            log.info("metrics.snapshot", **self.snapshot())
