"""The agent's figures, in Prometheus format (prometheus-client) and in the log.

Each :class:`Metrics` has its own registry (no global one to reset between tests,
two agents in one test process never mix).  Counters restart from zero with the
process, as Prometheus expects.  Facts that must survive a restart are gauges set
from the journal, the truth on disk, at each scrape and every 15 s
(status_facts.refresh_journal_gauges): the notification states and the oldest pending
notification (:meth:`Metrics.set_outbox`, one read), the journal's size and the time of
the last accepted payment (:meth:`Metrics.set_journal_facts`).  The link gauge
``ecr_terminal_link_up`` has one series per configured terminal (label ``terminal``:
``default`` or its id), read at scrape time from the agent's one record of each
terminal's link (terminal_links.py, fed by tp-manager's link events and ``check``
answers); a terminal whose link is not known yet has no series, so an alert on it never
fires on a guess.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from supervisor_agent.outbox import OutboxSummary
    from supervisor_agent.terminal_links import TerminalLinks

log = structlog.get_logger(__name__)

disable_created_metrics()  # no ``*_created`` series: they double the exposition for nothing

METRICS_LOG_INTERVAL_S = 300.0  # one "metrics.snapshot" log line every 5 minutes
# Enqueue -> acknowledged, seconds.  Fast path is < 1 s; an outage can last hours.
DELIVERY_BUCKETS_S: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
)  # fmt: skip

TRANSACTION_OUTCOMES = ("accepted", "refused", "failed", "unknown")
RECONCILED_OUTCOMES = ("accepted", "refused")
NOTIFICATION_STATES = ("pending", "delivered", "dead")
ATTEMPT_RESULTS = ("acknowledged", "retryable", "uncertain", "not_sent", "rejected")
LINK_UP_METRIC = "ecr_terminal_link_up"
TP_MANAGER_UP_METRIC = "ecr_tp_manager_up"


class LinkCollector(Collector):
    """``ecr_terminal_link_up{terminal}``, read from the links at each scrape: 1 up, 0 any
    other state (down, connecting, disconnected); no series for a link not known yet."""

    def __init__(self, links: TerminalLinks) -> None:
        self.links = links

    def collect(self) -> Iterator[GaugeMetricFamily]:
        known = [row for row in self.links.rows() if row.link is not None]
        if not known:  # not even HELP/TYPE: the metric is absent, not empty
            return
        family = GaugeMetricFamily(
            LINK_UP_METRIC,
            "1 when the terminal's link is up, 0 otherwise; per configured terminal.",
            labels=["terminal"],
        )
        for row in known:
            family.add_metric([row.terminal], 1.0 if row.up else 0.0)
        yield family


class TpManagerCollector(Collector):
    """``ecr_tp_manager_up``, read at each scrape from the agent's control channel: with
    tp-manager stopped (``GET /stop``) or down, every payment is refused while the agent
    still answers scrapes and the link gauges keep their last told state."""

    def __init__(self, connected: Callable[[], bool]) -> None:
        self.connected = connected

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            TP_MANAGER_UP_METRIC,
            "1 while the agent is connected to tp-manager (payments can reach the "
            "terminals), 0 while tp-manager is stopped or down.",
        )
        family.add_metric([], 1.0 if self.connected() else 0.0)
        yield family


class Metrics:
    """Thread-safe (prometheus-client's metrics are); the journal may run in a worker thread."""

    def __init__(self, buckets: tuple[float, ...] = DELIVERY_BUCKETS_S) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._transactions = Counter(
            "ecr_transactions_total", "Finished transactions by outcome.", ["outcome"], registry=r
        )
        self._reconciled = Counter(
            "ecr_transactions_reconciled_total",
            "Unknown outcomes the terminal's late answer settled, by verdict.",
            ["outcome"],
            registry=r,
        )
        self._states = Gauge(
            "ecr_notifications",
            "HiPay notifications in the outbox by state.",
            ["state"],
            registry=r,
        )
        self._attempts = Counter(
            "ecr_notification_attempts_total",
            "HTTP attempts to HiPay by result.",
            ["result"],
            registry=r,
        )
        self._delivery = Histogram(
            "ecr_notification_delivery_seconds",
            "Time from queueing to HiPay's 2xx.",
            buckets=tuple(sorted(buckets)),
            registry=r,
        )
        self._oldest_pending = Gauge(
            "ecr_notification_oldest_pending_timestamp_seconds",
            "When the oldest pending HiPay notification was queued (0: none pending).",
            registry=r,
        )
        self._journal_bytes = Gauge(
            "ecr_journal_size_bytes",
            "The journal's SQLite files on disk (with WAL).",
            registry=r,
        )
        # Absent until known: registered at the first value.
        self._last_accepted = Gauge(
            "ecr_last_accepted_payment_timestamp_seconds",
            "When the last accepted payment was journaled (epoch seconds).",
            registry=None,
        )
        self._late_registered: set[str] = set()
        self._last_accepted_at = 0.0
        self._guard = threading.Lock()
        # Every known series exists from the start (a 0, not an absent series); their
        # children are kept, so a payment's counts are not a labels() look-up (a lock,
        # a validation) each.
        self._by_outcome = {o: self._transactions.labels(o) for o in TRANSACTION_OUTCOMES}
        for outcome in RECONCILED_OUTCOMES:
            self._reconciled.labels(outcome)
        for state in NOTIFICATION_STATES:
            self._states.labels(state)
        self._by_result = {r: self._attempts.labels(r) for r in ATTEMPT_RESULTS}

    def _present(self, gauge: Gauge, name: str) -> Gauge:
        if name in self._late_registered:  # once registered, always: no lock to read it
            return gauge
        with self._guard:
            if name not in self._late_registered:
                self.registry.register(gauge)
                self._late_registered.add(name)
        return gauge

    # -- the hand-written version's methods ------------------------------------

    def transaction_finished(self, outcome: str) -> None:
        child = self._by_outcome.get(outcome)
        (child or self._transactions.labels(str(outcome))).inc()

    def transaction_reconciled(self, outcome: str) -> None:
        """An ``unknown`` payment given the terminal's late verdict."""
        self._reconciled.labels(str(outcome)).inc()

    def notification_attempt(self, result: str) -> None:
        child = self._by_result.get(result)
        (child or self._attempts.labels(result)).inc()

    def delivery_latency(self, seconds: float) -> None:
        self._delivery.observe(seconds)

    def set_notification_states(self, counts: Mapping[str, int]) -> None:
        for state in NOTIFICATION_STATES:
            self._states.labels(state).set(int(counts.get(state, 0)))

    def set_outbox(self, summary: OutboxSummary) -> None:
        """The outbox's states and its oldest pending notification, from one read."""
        self.set_notification_states(summary.counts)
        self._oldest_pending.set(summary.oldest_pending_at or 0)

    # -- the operator's figures ---------------------------------------------------

    def watch_links(self, links: TerminalLinks) -> None:
        """Serve ``ecr_terminal_link_up`` from ``links`` (once per agent: one owner)."""
        self.registry.register(LinkCollector(links))

    def watch_tp_manager(self, connected: Callable[[], bool]) -> None:
        """Serve ``ecr_tp_manager_up`` from the control channel's ``connected``."""
        self.registry.register(TpManagerCollector(connected))

    def payment_accepted(self, at: float) -> None:
        gauge = self._present(self._last_accepted, "last_accepted")
        with self._guard:
            self._last_accepted_at = max(self._last_accepted_at, at)
            gauge.set(self._last_accepted_at)

    def set_journal_facts(self, journal_bytes: int, last_accepted_at: float | None) -> None:
        self._journal_bytes.set(journal_bytes)
        if last_accepted_at is not None:
            self.payment_accepted(last_accepted_at)

    # -- reading ------------------------------------------------------------------

    def _values(self, name: str, label: str) -> dict[str, float]:
        values: dict[str, float] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == name and label in sample.labels:
                    values[sample.labels[label]] = sample.value
        return values

    def _value(self, name: str) -> float:
        value = self.registry.get_sample_value(name)
        return float(value) if value is not None else 0.0

    def snapshot(self) -> dict[str, Any]:
        """The same figures as :meth:`render`, as one flat-ish dict for the log line."""

        def ints(values: dict[str, float]) -> dict[str, int]:
            return {k: int(v) for k, v in values.items()}

        return {
            "transactions": ints(self._values("ecr_transactions_total", "outcome")),
            "reconciled": ints(self._values("ecr_transactions_reconciled_total", "outcome")),
            "notifications": ints(self._values("ecr_notifications", "state")),
            "attempts": ints(self._values("ecr_notification_attempts_total", "result")),
            "delivery_count": int(self._value("ecr_notification_delivery_seconds_count")),
            "delivery_seconds_sum": round(self._value("ecr_notification_delivery_seconds_sum"), 3),
        }

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        return generate_latest(self.registry).decode()

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
