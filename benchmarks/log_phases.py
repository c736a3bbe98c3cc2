"""Where a connector payment's time goes, read from the processes' own JSON log lines.

Every line carries an ISO timestamp taken when it was logged (one clock for all processes
of the machine).  A payment's events, in the order they happen, cut its round trip into
phases; the benchmark prints the median of each gap.  An event a process no longer logs
(renamed, or below the log level) leaves its two neighbouring phases blank, and the
benchmark says which event was missing.  Medians of phases do not add up to the median of
the round trip.

tp-manager logs one line per payment, ``tp_manager.transaction.finished``, at its end, just
after the reply left (the drivers' start and done lines are at debug, off the measured
path): the points derived from it lie a little late, by the reply's send.  Two points inside
tp-manager are derived from that line: :data:`DRIVER_CALLED` is its timestamp less its
``duration_ms`` (tp-manager calls the driver, after the result store's begin), and
:data:`DRIVER_ANSWERED` adds the driver's ``terminal_ms`` to that (the answer is read and
decoded).  Both use tp-manager's monotonic clock for the gaps, the line's wall clock for
the point.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

# The events of one payment, in order; ``None`` as the event: the client's send/receive.
CLIENT_SENT: Final = "client.sent"
CLIENT_RECEIVED: Final = "client.received"
ACCESS_LOG: Final = "api.request"  # logged without order_id: matched by time
TP_MANAGER_FINISHED: Final = "tp_manager.transaction.finished"
DRIVER_CALLED: Final = "driver.called"  # derived from TP_MANAGER_FINISHED: less duration_ms
DRIVER_ANSWERED: Final = "driver.answered"  # DRIVER_CALLED + terminal_ms
CHAIN: Final[tuple[str, ...]] = (
    CLIENT_SENT,
    "api.payment.started",
    DRIVER_CALLED,
    DRIVER_ANSWERED,
    TP_MANAGER_FINISHED,
    "api.payment.finished",
    "hipay.notify.delivered",
    ACCESS_LOG,
    CLIENT_RECEIVED,
)
PHASE_NAMES: Final[dict[tuple[str, str], str]] = {
    (CLIENT_SENT, "api.payment.started"): (
        "HTTP in, auth, validation, journal begin + at_terminal"
    ),
    ("api.payment.started", DRIVER_CALLED): (
        "ZeroMQ to tp-manager, pay dispatch, result store begin"
    ),
    (DRIVER_CALLED, DRIVER_ANSWERED): "V2 driver, pty, simulator",
    (DRIVER_ANSWERED, TP_MANAGER_FINISHED): "tp-manager after the answer",
    (TP_MANAGER_FINISHED, "api.payment.finished"): "ZeroMQ back, journal finish",
    ("api.payment.finished", "hipay.notify.delivered"): "HiPay notification (stub)",
    ("hipay.notify.delivered", ACCESS_LOG): "after HiPay: answer built",
    (ACCESS_LOG, CLIENT_RECEIVED): "HTTP out to the register",
}


@dataclass(frozen=True, slots=True)
class LogLine:
    at: float  # epoch seconds
    event: str
    fields: dict[str, Any]
    size: int  # bytes, newline included
    source: str  # program (file name without .log)


@dataclass(frozen=True, slots=True)
class Payment:
    order_id: str
    sent_at: float
    received_at: float


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


def read_lines(log_dir: Path) -> Iterator[LogLine | tuple[str, int]]:
    """Every line of the log files (rotated ones too): a :class:`LogLine` for a JSON line
    with a timestamp, else ``(source, size)``."""
    for path in sorted(log_dir.glob("*.log*")):
        source = path.name.partition(".log")[0]
        with path.open("rb") as handle:
            for raw in handle:
                try:
                    entry = json.loads(raw)
                except ValueError:
                    yield source, len(raw)
                    continue
                at = _epoch(entry.get("timestamp")) if isinstance(entry, dict) else None
                if at is None or not isinstance(entry, dict):
                    yield source, len(raw)
                    continue
                yield LogLine(at, str(entry.get("event", "")), entry, len(raw), source)


def _driver_points(finished: LogLine) -> dict[str, float]:
    """:data:`DRIVER_CALLED` and :data:`DRIVER_ANSWERED` of a tp-manager finished line, where
    it has the durations (``terminal_ms`` only with a verdict)."""
    points: dict[str, float] = {}
    duration = finished.fields.get("duration_ms")
    if not isinstance(duration, int | float):
        return points
    called = finished.at - duration / 1000.0
    points[DRIVER_CALLED] = called
    terminal = finished.fields.get("terminal_ms")
    if isinstance(terminal, int | float):
        points[DRIVER_ANSWERED] = called + terminal / 1000.0
    return points


@dataclass
class LogIndex:
    """The log lines of a run, by order id and by time."""

    by_order: dict[str, dict[str, float]] = field(default_factory=dict)
    access_times: list[float] = field(default_factory=list)  # POST / access lines, sorted
    timed: list[LogLine] = field(default_factory=list)

    @classmethod
    def load(cls, log_dir: Path) -> LogIndex:
        index = cls()
        for line in read_lines(log_dir):
            if not isinstance(line, LogLine):
                continue
            index.timed.append(line)
            order_id = line.fields.get("order_id")
            if isinstance(order_id, str) and line.event in CHAIN:
                events = index.by_order.setdefault(order_id, {})
                events.setdefault(line.event, line.at)
                if line.event == TP_MANAGER_FINISHED:
                    for event, at in _driver_points(line).items():
                        events.setdefault(event, at)
            if line.event == ACCESS_LOG and line.fields.get("path") == "/":
                index.access_times.append(line.at)
        index.access_times.sort()
        index.timed.sort(key=lambda line: line.at)
        return index

    def events_of(self, payment: Payment) -> dict[str, float]:
        events = dict(self.by_order.get(payment.order_id, {}))
        events[CLIENT_SENT] = payment.sent_at
        events[CLIENT_RECEIVED] = payment.received_at
        i = bisect.bisect_left(self.access_times, payment.sent_at)
        if i < len(self.access_times) and self.access_times[i] <= payment.received_at:
            events[ACCESS_LOG] = self.access_times[i]
        return events


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    start: str
    end: str
    median_ms: float | None
    count: int


def phases(index: LogIndex, payments: Sequence[Payment]) -> tuple[list[Phase], list[str]]:
    """Median of each gap of :data:`CHAIN` over ``payments``; and the events never seen."""
    gaps: dict[tuple[str, str], list[float]] = {pair: [] for pair in PHASE_NAMES}
    seen: Counter[str] = Counter()
    for payment in payments:
        events = index.events_of(payment)
        seen.update(events)
        for start, end in gaps:
            if start in events and end in events:
                gaps[(start, end)].append((events[end] - events[start]) * 1000.0)
    result = []
    for (start, end), values in gaps.items():
        ordered = sorted(values)
        median = ordered[(len(ordered) - 1) // 2] if ordered else None
        result.append(Phase(PHASE_NAMES[(start, end)], start, end, median, len(values)))
    missing = [event for event in CHAIN if payments and seen[event] == 0]
    return result, missing


@dataclass(frozen=True, slots=True)
class LogVolume:
    lines: int
    bytes: int
    by_source: dict[str, int]  # lines
    by_event: dict[str, int]


def volume_between(lines: Iterable[LogLine], start: float, end: float) -> LogVolume:
    """Log lines (timestamped JSON ones) written between two wall-clock times."""
    count = size = 0
    sources: Counter[str] = Counter()
    events: Counter[str] = Counter()
    for line in lines:
        if start <= line.at <= end:
            count += 1
            size += line.size
            sources[line.source] += 1
            events[line.event] += 1
    return LogVolume(count, size, dict(sources), dict(events.most_common()))


# --- a start of the connector -------------------------------------------------------------

SUPERVISORD_LOG: Final = "supervisord.log"
SUPERVISORD_TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S,%f"  # local time
# Milestones of a start, in the order they usually come: (label, where, what to find).
START_MILESTONES: Final[tuple[tuple[str, str, str], ...]] = (
    ("supervisord started", SUPERVISORD_LOG, "supervisord started with pid"),
    ("tp-manager spawned", SUPERVISORD_LOG, "spawned: 'tp-manager'"),
    ("agent spawned", SUPERVISORD_LOG, "spawned: 'supervisor-agent'"),
    ("tp-manager first log line", "tp-manager", ""),
    ("tp-manager started (link opened)", "tp-manager", "tp_manager.started"),
    ("agent first log line", "supervisor-agent", ""),
    ("agent API listening", "supervisor-agent", "api.listening"),
)


def _supervisord_times(path: Path) -> list[tuple[float, str]]:
    found = []
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                at = dt.datetime.strptime(line[:23], SUPERVISORD_TIME_FORMAT).timestamp()
                found.append((at, line[24:]))
    return found


def start_offsets(log_dir: Path, launched_at: float) -> dict[str, float]:
    """Seconds from the launch of ``ecr-connector run`` to each milestone of
    :data:`START_MILESTONES` seen in this start's logs (the first occurrence)."""
    supervisord = _supervisord_times(log_dir / SUPERVISORD_LOG)
    first: dict[str, list[LogLine]] = {}
    for line in read_lines(log_dir):
        if isinstance(line, LogLine):
            first.setdefault(line.source, []).append(line)
    offsets: dict[str, float] = {}
    for label, where, what in START_MILESTONES:
        times: list[float]
        if where == SUPERVISORD_LOG:
            times = [at for at, text in supervisord if what in text]
        else:
            times = [line.at for line in first.get(where, []) if not what or line.event == what]
        if times:
            offsets[label] = min(times) - launched_at
    return offsets
