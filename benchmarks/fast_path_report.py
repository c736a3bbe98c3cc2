"""What fast_path.py measured, and how it is shown: the targets table, the details under
it, and the JSON."""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Sequence
from typing import IO, Any, Final

from benchmarks import log_phases, syscall_count
from benchmarks.harness import PACED_BAUDRATE, percentile
from benchmarks.payment_setups import Series

# --- targets (issue 16) ------------------------------------------------------------------
TARGET_ADDED_P50_MS: Final = 2.0
TARGET_ADDED_P99_MS: Final = 4.0
TARGET_CPU_MS: Final = 1.5
TARGET_THROUGHPUT_PER_S: Final = 300.0
TARGET_PACED_ADDED_MS: Final = 3.0
TARGET_IDLE_RSS_MB: Final = 60.0
# "No growth", judged over the second half of the back-to-back run: in the first, caches
# fill (SQLite's page cache, up to 2 MB per connection) and then stay.  A leak of 1 kB per
# payment shows as 0.5 MB over the default run's second half, 5 MB over --long's.
TARGET_RSS_GROWTH_MB: Final = 0.5
TARGET_FIRST_PAYMENT_S: Final = 1.0

CONNECTOR_PROGRAMS: Final = ("tp-manager", "supervisor-agent")
WIDTH: Final = 100
BENCH_INSTALL: Final = ".venv/bin/pip install -e '.[bench]'"


@dataclasses.dataclass(frozen=True)
class RunSize:
    """How many payments each part makes."""

    interleaved: int  # measured payments per setup, unpaced, the setups taking turns
    block: int  # payments in one turn
    warmup: int  # per setup and phase, before anything is measured
    bulk: int  # connector payments back to back: throughput, CPU, RSS growth, log volume
    direct_bulk: int  # each direct client back to back: its CPU and throughput
    paced: int  # measured payments per setup at 9600 baud
    first_payment_runs: int  # launches of `run` timed to the first payment
    strace_payments: int  # connector payments counted by strace (not timed)
    idle_s: float  # idle window for the connector's idle CPU

    def describe(self) -> str:
        return (
            f"{self.interleaved} payments per setup unpaced (taking turns, {self.block} at a "
            f"time), {self.bulk} connector payments back to back, {self.direct_bulk} per "
            f"direct client back to back, {self.paced} per setup at 9600 baud, "
            f"{self.first_payment_runs} timed starts, {self.strace_payments} payments under "
            f"strace; {self.warmup} warm-up payments per setup and phase, not counted"
        )


# --- what was measured ----------------------------------------------------------------


@dataclasses.dataclass
class Results:
    """Everything measured; figures are ``None`` where a part could not run."""

    size: RunSize
    telium: str | None
    errors: list[str] = dataclasses.field(default_factory=list)
    unpaced: dict[str, Series] = dataclasses.field(default_factory=dict)
    bulk: dict[str, Series] = dataclasses.field(default_factory=dict)
    warmup: dict[str, dict[str, Series]] = dataclasses.field(default_factory=dict)
    connector_cpu_s: dict[str, float] = dataclasses.field(default_factory=dict)
    idle_cpu_ms_per_s: dict[str, float] = dataclasses.field(default_factory=dict)
    idle_rss_mb: dict[str, float | None] = dataclasses.field(default_factory=dict)
    rss_checkpoints: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    paced: dict[str, Series] = dataclasses.field(default_factory=dict)
    first_payment_s: list[float] = dataclasses.field(default_factory=list)
    start_offsets: list[dict[str, float]] = dataclasses.field(default_factory=list)
    stop_s: list[float] = dataclasses.field(default_factory=list)
    phases: list[log_phases.Phase] = dataclasses.field(default_factory=list)
    missing_events: list[str] = dataclasses.field(default_factory=list)
    log_volume: log_phases.LogVolume | None = None
    syscalls: dict[str, syscall_count.SyscallCounts] = dataclasses.field(default_factory=dict)
    pids_changed: list[str] = dataclasses.field(default_factory=list)
    filesystem: str = ""

    def rss_growth_mb(self, *, second_half: bool) -> float | None:
        """tp-manager + agent RSS growth over the back-to-back run, or its second half."""
        marks = [(m["payments"], programs_rss_mb(m)) for m in self.rss_checkpoints]
        known = [(n, v) for n, v in marks if v is not None]
        if len(known) < 2:
            return None
        end_n, end_v = known[-1]
        start_v = next(v for n, v in known if n >= end_n / 2) if second_half else known[0][1]
        return end_v - start_v

    def failures(self) -> list[str]:
        found = []
        groups = [("unpaced", self.unpaced), ("bulk", self.bulk), ("paced", self.paced)]
        groups += [(f"{part} warm-up", group) for part, group in self.warmup.items()]
        for part, group in groups:
            for key, series in group.items():
                found += [f"{part} {key}: {why}" for why in series.failures]
        return found


def programs_rss_mb(rss: dict[str, float | None]) -> float | None:
    values = [rss.get(name) for name in CONNECTOR_PROGRAMS]
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


# --- the table ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    figure: str
    measured: str
    target: str = ""
    verdict: str = ""
    value: float | None = None
    unit: str = ""
    limit: float | None = None


def judged(
    figure: str,
    value: float | None,
    unit: str,
    limit: float,
    *,
    at_least: bool = False,
    shown: str | None = None,
    digits: int = 2,
) -> Row:
    """A target row: PASS if ``value`` is within ``limit`` (below it, or above it when
    ``at_least``), MISS if not, n/a if it could not be measured."""
    sign = ">=" if at_least else "<="
    target = f"{sign} {limit:g} {unit}"
    if value is None:
        return Row(figure, "n/a", target, "n/a", None, unit, limit)
    passed = value >= limit if at_least else value <= limit
    text = shown if shown is not None else f"{value:.{digits}f} {unit}"
    return Row(figure, text, target, "PASS" if passed else "MISS", value, unit, limit)


def info(figure: str, measured: str, value: float | None = None, unit: str = "") -> Row:
    return Row("  " + figure, measured, value=value, unit=unit)


def sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def ratio(a: float | None, b: float | None, of: str = "floor") -> str:
    """`` (x12.3 floor)``: how many times ``b`` (the direct client's figure) ``a`` is."""
    return "" if a is None or b is None or b <= 0 else f" (x{a / b:.1f} {of})"


def signed(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def ms(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def build_rows(r: Results) -> list[Row]:
    u = r.unpaced
    own, tel, con = (u.get(k, Series()) for k in ("own", "telium", "connector"))
    rows: list[Row] = []
    n = r.size.interleaved
    rows.append(Row(f"latency p50 / p99 (ms), unpaced, {n} payments per setup", ""))
    rows.append(info("minimal direct client (floor)", f"{ms(own.p(50))} / {ms(own.p(99))}"))
    if r.telium is None:
        rows.append(info("pyTeliumManager", f"not installed: {BENCH_INSTALL}"))
    else:
        rows.append(info(f"pyTeliumManager {r.telium}", f"{ms(tel.p(50))} / {ms(tel.p(99))}"))
    rows.append(info("connector, POST / (run, supervisord)", f"{ms(con.p(50))} / {ms(con.p(99))}"))
    added50, added99 = sub(con.p(50), own.p(50)), sub(con.p(99), own.p(99))
    rows.append(
        judged(
            "added latency p50 (connector - floor)",
            added50,
            "ms",
            TARGET_ADDED_P50_MS,
            shown=f"{signed(added50)} ms{ratio(con.p(50), own.p(50))}",
        )
    )
    rows.append(
        judged(
            "added latency p99 (connector - floor)",
            added99,
            "ms",
            TARGET_ADDED_P99_MS,
            shown=f"{signed(added99)} ms",
        )
    )
    if r.telium is not None:
        rows.append(
            info(
                "added vs pyTeliumManager p50 / p99",
                f"{signed(sub(con.p(50), tel.p(50)))} / {signed(sub(con.p(99), tel.p(99)))} ms"
                f"{ratio(con.p(50), tel.p(50), 'lib')}",
            )
        )
    b = r.bulk
    throughput = {k: (len(s.latencies_ms) / s.wall_s if s.wall_s else None) for k, s in b.items()}
    rows.append(
        judged(
            f"throughput, {r.size.bulk} payments back to back",
            throughput.get("connector"),
            "/s",
            TARGET_THROUGHPUT_PER_S,
            at_least=True,
            digits=0,
        )
    )
    direct_tp = [f"{ms(throughput.get('own'), 0)}/s"]
    if "telium" in b:
        direct_tp.append(f"{ms(throughput.get('telium'), 0)}/s")
    rows.append(
        info(
            "minimal client" + (" / pyTeliumManager" if "telium" in b else ""),
            " / ".join(direct_tp),
        )
    )
    bulk_ok = len(b["connector"].latencies_ms) if "connector" in b else 0
    per_payment = {k: v / bulk_ok * 1000.0 for k, v in r.connector_cpu_s.items()} if bulk_ok else {}
    connector_cpu = sum(per_payment.values()) if per_payment else None
    own_cpu = _direct_cpu_ms(b.get("own"))
    rows.append(
        judged(
            "CPU per payment, all connector processes",
            connector_cpu,
            "ms",
            TARGET_CPU_MS,
            shown=f"{ms(connector_cpu)} ms{ratio(connector_cpu, own_cpu)}",
        )
    )
    if per_payment:
        rows.append(
            info(
                " / ".join(_short(k) for k in per_payment),
                " / ".join(ms(v) for v in per_payment.values()) + " ms",
            )
        )
    direct_cpu = [ms(own_cpu, 3)]
    if "telium" in b:
        direct_cpu.append(ms(_direct_cpu_ms(b["telium"]), 3))
    rows.append(
        info(
            "direct: minimal client" + (" / pyTeliumManager" if "telium" in b else ""),
            " / ".join(direct_cpu) + " ms",
        )
    )
    p = r.paced
    pown, ptel, pcon = (p.get(k, Series()) for k in ("own", "telium", "connector"))
    paced_added = sub(pcon.p(50), pown.p(50))
    rows.append(
        judged(
            f"added latency p50 at {PACED_BAUDRATE} baud (paced)",
            paced_added,
            "ms",
            TARGET_PACED_ADDED_MS,
            shown=f"{signed(paced_added)} ms",
        )
    )
    paced_names = ["floor"] + (["pyTelium"] if r.telium else []) + ["connector"]
    paced_values = [pown.p(50)] + ([ptel.p(50)] if r.telium else []) + [pcon.p(50)]
    rows.append(
        info(
            f"p50 {' / '.join(paced_names)}, {r.size.paced} each",
            " / ".join(ms(v, 1) for v in paced_values) + " ms",
        )
    )
    idle = programs_rss_mb(r.idle_rss_mb)
    rows.append(
        judged("idle RSS, tp-manager + agent (warm)", idle, "MB", TARGET_IDLE_RSS_MB, digits=1)
    )
    if r.idle_rss_mb:
        rows.append(
            info(
                " / ".join(_short(k) for k in r.idle_rss_mb),
                " / ".join(ms(v, 1) for v in r.idle_rss_mb.values()) + " MB",
            )
        )
    half, whole = r.rss_growth_mb(second_half=True), r.rss_growth_mb(second_half=False)
    rows.append(
        judged(
            f"RSS growth, 2nd half of {r.size.bulk} (tp + agent)",
            half,
            "MB",
            TARGET_RSS_GROWTH_MB,
            shown=None if half is None or whole is None else f"{half:+.1f} MB ({whole:+.1f} all)",
        )
    )
    first = percentile(r.first_payment_s, 50) if r.first_payment_s else None
    rows.append(
        judged(
            f"`run` -> first payment, median of {len(r.first_payment_s)}",
            first,
            "s",
            TARGET_FIRST_PAYMENT_S,
        )
    )
    if r.first_payment_s:
        rows.append(info("each start", " / ".join(f"{s:.2f}" for s in r.first_payment_s) + " s"))
    return rows


def _direct_cpu_ms(series: Series | None) -> float | None:
    if series is None or not series.latencies_ms:
        return None
    return series.cpu_s / len(series.latencies_ms) * 1000.0


SHORT_NAMES: Final = {
    "tp-manager": "tp",
    "supervisor-agent": "agent",
    "supervisord": "supervisord",
    "ecr-connector run": "run",
}


def _short(name: str) -> str:
    return SHORT_NAMES.get(name, name)


def print_table(rows: Sequence[Row], out: IO[str]) -> None:
    head = f"{'figure':<48} {'measured':<24} {'target':<10} verdict"
    print(head, file=out)
    print("-" * WIDTH, file=out)
    for row in rows:
        line = f"{row.figure:<48} {row.measured:<24} {row.target:<10} {row.verdict}"
        print(line.rstrip(), file=out)


def print_details(r: Results, out: IO[str]) -> None:
    if r.phases:
        counted = max((phase.count for phase in r.phases), default=0)
        print(
            "\n"
            + wrap(
                f"Where a connector payment's time goes (medians over {counted} payments, "
                "from the processes' log times; they do not add up to the p50):"
            ),
            file=out,
        )
        for phase in r.phases:
            line = f"{ms(phase.median_ms):>6} ms  {phase.name} [{phase.start} -> {phase.end}]"
            print(
                textwrap.fill(line, WIDTH, initial_indent="  ", subsequent_indent=" " * 12),
                file=out,
            )
        if r.missing_events:
            print(
                wrap(
                    "events not found in the logs (their phases are blank): "
                    + ", ".join(r.missing_events)
                ),
                file=out,
            )
    if r.syscalls:
        print(
            f"\nSystem calls per payment (strace -f -c, {r.size.strace_payments} payments):",
            file=out,
        )
        paid = len(r.bulk.get("strace", Series()).latencies_ms) or 1
        for name, counts in r.syscalls.items():
            if counts.error:
                print(f"  {name}: {counts.error}", file=out)
                continue
            top = sorted(counts.calls.items(), key=lambda kv: -kv[1])[:6]
            tops = ", ".join(f"{k} {v / paid:.1f}" for k, v in top)
            print(
                wrap(
                    f"{name}: fsync+fdatasync {counts.fsyncs / paid:.1f}, all "
                    f"{counts.total / paid:.0f} ({tops})"
                ),
                file=out,
            )
    elif syscall_count.strace_path() is None:
        print(
            "\nSystem calls: strace not installed (apt-get install strace), not counted", file=out
        )
    volume = r.log_volume
    paid = len(r.bulk.get("connector", Series()).latencies_ms)
    if volume is not None and paid:
        by_source = ", ".join(f"{k} {v / paid:.1f}" for k, v in volume.by_source.items())
        events = ", ".join(f"{k} {v / paid:.1f}" for k, v in list(volume.by_event.items())[:8])
        print(
            wrap(
                f"Log lines per payment (back-to-back run): {volume.lines / paid:.1f} "
                f"({volume.bytes / max(volume.lines, 1):.0f} B each; {by_source}); "
                f"by event: {events}"
            ),
            file=out,
        )
    if r.idle_cpu_ms_per_s:
        idle = " / ".join(f"{_short(k)} {v:.1f}" for k, v in r.idle_cpu_ms_per_s.items())
        print(
            wrap(f"Idle CPU of the connector, ms per second ({r.size.idle_s:g} s window): {idle}"),
            file=out,
        )
    if r.rss_checkpoints:
        marks = []
        for mark in r.rss_checkpoints:
            total = programs_rss_mb(mark)
            marks.append(f"{mark['payments']}: {ms(total, 1)}")
        print(
            wrap(
                "RSS tp-manager + agent (MB) by payments in the back-to-back run: "
                + ", ".join(marks)
            ),
            file=out,
        )
    if r.start_offsets:
        labels = list(dict.fromkeys(k for offsets in r.start_offsets for k in offsets))
        marks = []
        for label in labels:
            values = [o[label] for o in r.start_offsets if label in o]
            marks.append(f"{label} {percentile(values, 50):.2f}")
        print(
            wrap(
                f"Start, seconds after `run` was launched (medians of {len(r.start_offsets)}, "
                f"from the logs): {', '.join(marks)}"
            ),
            file=out,
        )
    if r.stop_s:
        print(
            wrap(
                "connector stop (SIGTERM to run until every process is gone): "
                + " / ".join(f"{s:.2f}" for s in r.stop_s)
                + " s"
            ),
            file=out,
        )
    if r.pids_changed:
        print(
            wrap(f"WARNING: these processes restarted during the run: {r.pids_changed}"), file=out
        )
    for error in r.errors:
        print(wrap(f"ERROR: {error}"), file=out)
    failures = r.failures()
    if failures:
        shown = "; ".join(sorted(set(failures))[:5])
        print(wrap(f"FAILED payments: {len(failures)}: {shown}"), file=out)


def wrap(text: str) -> str:
    return textwrap.fill(
        text,
        WIDTH,
        initial_indent="",
        subsequent_indent="    ",
        break_on_hyphens=False,
        break_long_words=False,
    )


def to_json(r: Results, rows: Sequence[Row], context: dict[str, Any]) -> dict[str, Any]:
    def series(group: dict[str, Series]) -> dict[str, Any]:
        return {
            key: {
                "ok": len(s.latencies_ms),
                "failed": len(s.failures),
                "p50_ms": s.p(50),
                "p99_ms": s.p(99),
                "max_ms": max(s.latencies_ms) if s.latencies_ms else None,
                "wall_s": s.wall_s,
                "cpu_s_this_process": s.cpu_s,
                "failures": s.failures[:20],
            }
            for key, s in group.items()
        }

    return {
        "context": context,
        "size": dataclasses.asdict(r.size),
        "targets": [dataclasses.asdict(row) for row in rows],
        "unpaced": series(r.unpaced),
        "bulk": series(r.bulk),
        "paced": series(r.paced),
        "connector_cpu_s_bulk": r.connector_cpu_s,
        "idle_cpu_ms_per_s": r.idle_cpu_ms_per_s,
        "idle_rss_mb": r.idle_rss_mb,
        "rss_checkpoints_mb": r.rss_checkpoints,
        "rss_growth_mb": r.rss_growth_mb(second_half=False),
        "rss_growth_second_half_mb": r.rss_growth_mb(second_half=True),
        "first_payment_s": r.first_payment_s,
        "stop_s": r.stop_s,
        "phases_ms": [dataclasses.asdict(p) for p in r.phases],
        "missing_events": r.missing_events,
        "log_volume": None if r.log_volume is None else dataclasses.asdict(r.log_volume),
        "syscalls": {k: dataclasses.asdict(v) for k, v in r.syscalls.items()},
        "pids_changed": r.pids_changed,
        "errors": r.errors,
        "failed_payments": len(r.failures()),
    }
