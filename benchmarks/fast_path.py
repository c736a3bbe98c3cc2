"""Fast path of the ECR connector (issue 16): what a payment costs the connector, measured
side by side with direct Concert V2 clients on the same simulator, in one run.

Run from the repository root::

    .venv/bin/pip install -e '.[bench]'        # pyTeliumManager, the public direct client
    .venv/bin/python benchmarks/fast_path.py [--quick | --long] [--json FILE] [--workdir DIR]

Setups, all against ``simulate --protocol concert-v2 --pty --pay-seconds 0``:

* the minimal direct client of benchmarks/concert_v2_client.py (the reference floor);
* pyTeliumManager from PyPI (skipped, with a message, when it is not installed);
* the whole connector: ``POST /`` to ``ecr-connector run --config FILE`` under real
  supervisord, Concert V2 driver on the simulator's pty, HiPay = the local stub.

It prints one table, each of the issue's targets as a figure or ratio measured in this run
with PASS/MISS, then where the connector's milliseconds go (from its own log times), its
system calls per payment (strace, if installed) and log volume.  benchmarks/README.md says
how each figure is made.  Exit status 1 if any payment failed or a part could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import json
import math
import signal
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's code first (see benchmarks/harness.py)

from benchmarks import log_phases, syscall_count  # noqa: E402
from benchmarks.concert_v2_client import ConcertV2Client  # noqa: E402
from benchmarks.harness import (  # noqa: E402
    AMOUNT_MINOR,
    AMOUNT_TEXT,
    CLOCK_TICKS_PER_S,
    CURRENCY_NUMERIC,
    CUSTOMER_SECONDS,
    PACED_BAUDRATE,
    exit_on_sigterm,
    filesystem_of,
    git_revision,
    load_average,
    machine_line,
    percentile,
    proc_cpu_s,
    proc_status_kb,
    proc_threads_cpu_s,
    runs_this_repo,
    simulator,
    stack_helpers,
    supervisord_pid,
    use_this_repo,
    v2_simulator_args,
)
from benchmarks.register_http import Register  # noqa: E402

# --- targets (issue 16) ------------------------------------------------------------------
TARGET_ADDED_P50_MS: Final = 2.0
TARGET_ADDED_P99_MS: Final = 4.0
TARGET_CPU_MS: Final = 1.5
TARGET_THROUGHPUT_PER_S: Final = 300.0
TARGET_PACED_ADDED_MS: Final = 3.0
TARGET_IDLE_RSS_MB: Final = 60.0
# "No growth": a little is allowed for caches that fill once (SQLite's page cache is up to
# 2 MB per connection), a leak of 1 kB per payment shows as 10 MB over --long.
TARGET_RSS_GROWTH_MB: Final = 2.0
TARGET_FIRST_PAYMENT_S: Final = 1.0

# --- timers and bounds -------------------------------------------------------------------
HTTP_TIMEOUT_S: Final = 30.0  # one payment through the connector
DIRECT_CONTROL_TIMEOUT_S: Final = 3.0  # pyTeliumManager's wait for a control byte
DIRECT_ANSWER_TIMEOUT_S: Final = 30.0  # pyTeliumManager's wait for the terminal's answer
FIRST_PAYMENT_TIMEOUT_S: Final = 60.0  # run -> first successful POST, or the run fails
FIRST_PAYMENT_POLL_S: Final = 0.01  # between two attempts at the first payment
MAX_CONSECUTIVE_FAILURES: Final = 3  # the connector setup stops after so many in a row
PACED_BLOCK: Final = 5

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


SIZES: Final = {
    "default": RunSize(300, 10, 10, 1000, 300, 60, 5, 50, 2.0),
    "quick": RunSize(60, 10, 5, 200, 100, 12, 3, 20, 1.0),
    "long": RunSize(300, 10, 10, 10_000, 300, 60, 5, 50, 2.0),
}


# --- setups ---------------------------------------------------------------------------------


class PaymentFailed(Exception):
    """A payment that did not come back approved for its order."""


class SetupBroken(Exception):
    """A direct client failed: its serial exchange is in an unknown state, it stops."""


class OwnClientSetup:
    key = "own"
    label = "minimal direct client"
    stops_on_failure = True

    def __init__(self, pty: str) -> None:
        self.client = ConcertV2Client(pty)

    def pay(self, order_id: str) -> None:
        answer = self.client.pay(AMOUNT_MINOR, CURRENCY_NUMERIC)
        if not answer.accepted or answer.amount != AMOUNT_MINOR:
            raise PaymentFailed(f"status {answer.status}, amount {answer.amount}")

    def close(self) -> None:
        self.client.close()


def telium_version() -> str | None:
    try:
        return importlib.metadata.version("pyTeliumManager")
    except importlib.metadata.PackageNotFoundError:
        return None


class TeliumSetup:
    """pyTeliumManager as its README uses it: new_payment, ask, verify."""

    key = "telium"
    label = "pyTeliumManager"
    stops_on_failure = True

    def __init__(self, pty: str) -> None:
        import telium

        self.telium = telium
        self.device = telium.Telium(pty, baudrate=PACED_BAUDRATE, timeout=DIRECT_CONTROL_TIMEOUT_S)
        self.amount = float(AMOUNT_TEXT)  # the library's amounts are floats

    def pay(self, order_id: str) -> None:
        ask = self.telium.TeliumAsk.new_payment(
            self.amount, payment_mode="debit", target_currency=CURRENCY_NUMERIC
        )
        if not self.device.ask(ask):
            raise PaymentFailed("request not acknowledged")
        answer = self.device.verify(ask, waiting_timeout=DIRECT_ANSWER_TIMEOUT_S)
        if answer is None:
            raise PaymentFailed("no answer")
        if not answer.has_succeeded or round(answer.amount * 100) != AMOUNT_MINOR:
            raise PaymentFailed(f"status {answer.transaction_result}, amount {answer.amount}")

    def close(self) -> None:
        self.device.close()


class ConnectorSetup:
    key = "connector"
    label = "connector, POST /"
    stops_on_failure = False

    def __init__(self, register: Register) -> None:
        self.register = register
        self.payments: list[log_phases.Payment] = []

    def pay(self, order_id: str) -> None:
        reply = self.register.pay(order_id, AMOUNT_TEXT, HTTP_TIMEOUT_S)
        if not reply.paid(order_id):
            raise PaymentFailed(f"HTTP {reply.status}: {str(reply.body)[:200]}")
        self.payments.append(log_phases.Payment(order_id, reply.sent_at, reply.received_at))

    def close(self) -> None:
        pass


Setup = OwnClientSetup | TeliumSetup | ConnectorSetup


@dataclasses.dataclass
class Series:
    """Payments of one setup in one part of the run."""

    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    failures: list[str] = dataclasses.field(default_factory=list)
    cpu_s: float = 0.0  # this process's CPU during the payments (the direct clients')
    wall_s: float = 0.0
    broken: bool = False
    in_a_row: int = 0

    def p(self, pct: float) -> float | None:
        return percentile(self.latencies_ms, pct) if self.latencies_ms else None


def pay_many(setup: Setup, series: Series, count: int, prefix: str) -> None:
    """``count`` payments one after the other, each timed alone; failures counted."""
    if series.broken:
        return
    for _ in range(count):
        order_id = f"{prefix}-{len(series.latencies_ms) + len(series.failures)}"
        c0, t0 = time.process_time(), time.perf_counter()
        try:
            setup.pay(order_id)
            why = None
        except Exception as exc:  # every failure is counted and shown, never dropped
            why = f"{type(exc).__name__}: {exc}"
        t1, c1 = time.perf_counter(), time.process_time()
        series.wall_s += t1 - t0
        series.cpu_s += c1 - c0
        if why is None:
            series.latencies_ms.append((t1 - t0) * 1000.0)
            series.in_a_row = 0
            continue
        series.failures.append(why)
        series.in_a_row += 1
        if setup.stops_on_failure or series.in_a_row >= MAX_CONSECUTIVE_FAILURES:
            series.broken = True
            return


def take_turns(setups: Sequence[Setup], per_setup: int, block: int, tag: str) -> dict[str, Series]:
    """Each setup pays ``per_setup`` times, ``block`` at a time, the order rotating every
    round: a machine that slows down for a while slows every setup alike."""
    series = {setup.key: Series() for setup in setups}
    rounds = math.ceil(per_setup / block)
    for round_no in range(rounds):
        count = min(block, per_setup - round_no * block)
        shift = round_no % len(setups)
        for setup in [*setups[shift:], *setups[:shift]]:
            pay_many(setup, series[setup.key], count, f"{tag}-{setup.key}")
    return series


# --- connector processes ----------------------------------------------------------------------


def connector_pids(stack: Any) -> dict[str, int]:
    pids = {name: stack.pid_of(name) for name in CONNECTOR_PROGRAMS}
    pids["supervisord"] = supervisord_pid(stack.data_dir)
    pids["ecr-connector run"] = stack.proc.pid  # supervisord's parent, watching its start
    return pids


def cpu_of(pids: dict[str, int]) -> dict[str, float | None]:
    return {name: proc_cpu_s(pid) for name, pid in pids.items()}


def cpu_delta(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, float]:
    return {
        name: after[name] - start  # type: ignore[operator]
        for name, start in before.items()
        if start is not None and after.get(name) is not None
    }


def rss_mb(pids: dict[str, int]) -> dict[str, float | None]:
    values = {name: proc_status_kb(pid, "VmRSS") for name, pid in pids.items()}
    return {name: None if kb is None else kb / 1024 for name, kb in values.items()}


def programs_rss_mb(rss: dict[str, float | None]) -> float | None:
    values = [rss.get(name) for name in CONNECTOR_PROGRAMS]
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


@dataclasses.dataclass(frozen=True)
class Started:
    """A connector launched by :func:`connector`, its first payment paid."""

    stack: Any  # tests.stack.Stack
    register: Register
    launched_at: float  # time.time() just before `run` was launched
    first_payment_s: float  # from the launch to the first paid answer

    @property
    def log_dir(self) -> Path:
        from common import paths

        return Path(paths.log_dir(self.stack.data_dir))

    def start_offsets(self) -> dict[str, float]:
        offsets = log_phases.start_offsets(self.log_dir, self.launched_at)
        offsets["first payment answered"] = self.first_payment_s
        return offsets


@contextlib.contextmanager
def connector(workdir: Path, name: str, pty: str, stub: Any) -> Iterator[Started]:
    """``ecr-connector run`` launched now; yields once a first ``POST /`` was paid, with the
    seconds from the launch to that answer (attempts every 10 ms, connection refused or
    not yet paid alike).  Stopped by pid, with every program, after the block."""
    helpers = stack_helpers()
    launched_at = time.time()
    t0 = time.perf_counter()
    with helpers.launched_stack(
        workdir / name,
        serial_port=pty,
        hipay_base_url=stub.url + "/",
        hipay_login=stub.login,
        hipay_password=stub.password,
    ) as stack:
        config = stack.config
        register = Register(config["local_port"], config["api_username"], config["api_password"])
        attempt = 0
        while True:
            order_id = f"{name}-first-{attempt}"
            left = FIRST_PAYMENT_TIMEOUT_S - (time.perf_counter() - t0)
            reply = register.pay(order_id, AMOUNT_TEXT, max(left, 0.1))
            if reply.paid(order_id):
                break
            if time.perf_counter() - t0 > FIRST_PAYMENT_TIMEOUT_S:
                raise RuntimeError(
                    f"no payment within {FIRST_PAYMENT_TIMEOUT_S:g} s of `run`: "
                    f"last answer {reply.status} {str(reply.body)[:300]}; run.out: "
                    f"{(workdir / name / 'run.out').read_text(errors='replace')[-1000:]}"
                )
            attempt += 1
            time.sleep(FIRST_PAYMENT_POLL_S)
        yield Started(stack, register, launched_at, time.perf_counter() - t0)


# --- the parts of the run ---------------------------------------------------------------------


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
    rss_growth_mb: float | None = None
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

    def failures(self) -> list[str]:
        found = []
        groups = [("unpaced", self.unpaced), ("bulk", self.bulk), ("paced", self.paced)]
        groups += [(f"{part} warm-up", group) for part, group in self.warmup.items()]
        for part, group in groups:
            for key, series in group.items():
                found += [f"{part} {key}: {why}" for why in series.failures]
        return found


def direct_setups(pty: str, results: Results, stack: contextlib.ExitStack) -> list[Setup]:
    setups: list[Setup] = [OwnClientSetup(pty)]
    stack.callback(setups[0].close)
    if results.telium is not None:
        telium = TeliumSetup(pty)
        stack.callback(telium.close)
        setups.append(telium)
    return setups


def unpaced_part(workdir: Path, stub: Any, results: Results, say: Callable[[str], None]) -> None:
    size = results.size
    with contextlib.ExitStack() as resources:
        direct_pty = resources.enter_context(
            simulator(workdir, "sim-direct", v2_simulator_args(paced=False))
        ).removeprefix("pty=")
        connector_pty = resources.enter_context(
            simulator(workdir, "sim-connector", v2_simulator_args(paced=False))
        ).removeprefix("pty=")
        setups = direct_setups(direct_pty, results, resources)
        started = resources.enter_context(connector(workdir, "stack-unpaced", connector_pty, stub))
        stack = started.stack
        results.first_payment_s.append(started.first_payment_s)
        results.filesystem = filesystem_of(stack.data_dir.resolve())
        connector_setup = ConnectorSetup(started.register)
        setups.append(connector_setup)
        pids = connector_pids(stack)
        elsewhere = [name for name in CONNECTOR_PROGRAMS if not runs_this_repo(pids[name])]
        if elsewhere:
            raise RuntimeError(f"{elsewhere} do not run {REPO}'s code (PYTHONPATH)")
        say(f"connector up, first payment {started.first_payment_s:.2f} s after `run`")
        results.warmup["unpaced"] = take_turns(setups, size.warmup, size.warmup, "warm")

        before = {name: proc_threads_cpu_s(pid) for name, pid in pids.items()}
        time.sleep(size.idle_s)
        after = {name: proc_threads_cpu_s(pid) for name, pid in pids.items()}
        results.idle_cpu_ms_per_s = {
            name: delta / size.idle_s * 1000.0 for name, delta in cpu_delta(before, after).items()
        }
        results.idle_rss_mb = rss_mb(pids)

        say(f"unpaced: {size.interleaved} payments per setup, taking turns")
        connector_setup.payments.clear()
        results.unpaced = take_turns(setups, size.interleaved, size.block, "fp")
        timed_payments = list(connector_setup.payments)

        say(f"unpaced: {size.bulk} connector payments back to back")
        bulk = Series()
        rss_start = rss_mb(pids)
        results.rss_checkpoints.append({"payments": 0, **rss_start})
        cpu_start = cpu_of(pids)
        wall_start = time.time()
        step = max(1, size.bulk // 10)
        done = 0
        while done < size.bulk and not bulk.broken:
            count = min(step, size.bulk - done)
            pay_many(connector_setup, bulk, count, "bulk")
            done += count
            results.rss_checkpoints.append({"payments": done, **rss_mb(pids)})
        wall_end = time.time()
        results.connector_cpu_s = cpu_delta(cpu_start, cpu_of(pids))
        start_total = programs_rss_mb(rss_start)
        end_total = programs_rss_mb(rss_mb(pids))
        if start_total is not None and end_total is not None:
            results.rss_growth_mb = end_total - start_total
        results.bulk["connector"] = bulk
        for setup in setups[:-1]:
            say(f"unpaced: {size.direct_bulk} {setup.label} payments back to back")
            direct = Series()
            pay_many(setup, direct, size.direct_bulk, f"bulk-{setup.key}")
            results.bulk[setup.key] = direct

        if syscall_count.strace_path() is not None:
            say(f"strace: {size.strace_payments} connector payments (not timed)")
            traced = {name: pids[name] for name in (*CONNECTOR_PROGRAMS, "supervisord")}
            with syscall_count.counting(traced, workdir) as counts:
                strace_series = Series()
                pay_many(connector_setup, strace_series, size.strace_payments, "strace")
            results.syscalls = counts
            results.bulk["strace"] = strace_series

        now = connector_pids(stack)
        results.pids_changed = [name for name in pids if now.get(name) != pids[name]]
        results.start_offsets.append(started.start_offsets())
        index = log_phases.LogIndex.load(started.log_dir)
        results.phases, results.missing_events = log_phases.phases(index, timed_payments)
        results.log_volume = log_phases.volume_between(index.timed, wall_start, wall_end)


def first_payment_part(
    workdir: Path, stub: Any, results: Results, say: Callable[[str], None]
) -> None:
    runs = results.size.first_payment_runs - len(results.first_payment_s)
    if runs <= 0:
        return
    say(f"`run` -> first payment: {runs} more starts")
    with simulator(workdir, "sim-starts", v2_simulator_args(paced=False)) as where:
        for run_no in range(runs):
            pty = where.removeprefix("pty=")
            with connector(workdir, f"stack-start-{run_no}", pty, stub) as started:
                results.first_payment_s.append(started.first_payment_s)
                stopping = time.perf_counter()
            results.stop_s.append(time.perf_counter() - stopping)
            results.start_offsets.append(started.start_offsets())  # the logs stay on disk


def paced_part(workdir: Path, stub: Any, results: Results, say: Callable[[str], None]) -> None:
    size = results.size
    with contextlib.ExitStack() as resources:
        direct_pty = resources.enter_context(
            simulator(workdir, "sim-direct-paced", v2_simulator_args(paced=True))
        ).removeprefix("pty=")
        connector_pty = resources.enter_context(
            simulator(workdir, "sim-connector-paced", v2_simulator_args(paced=True))
        ).removeprefix("pty=")
        setups = direct_setups(direct_pty, results, resources)
        started = resources.enter_context(connector(workdir, "stack-paced", connector_pty, stub))
        setups.append(ConnectorSetup(started.register))
        say(f"paced {PACED_BAUDRATE} baud: {size.paced} payments per setup, taking turns")
        warmup = min(size.warmup, PACED_BLOCK)
        results.warmup["paced"] = take_turns(setups, warmup, PACED_BLOCK, "warm-paced")
        results.paced = take_turns(setups, size.paced, PACED_BLOCK, "paced")


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
            shown=f"+{ms(added50)} ms{ratio(con.p(50), own.p(50))}",
        )
    )
    rows.append(
        judged(
            "added latency p99 (connector - floor)",
            added99,
            "ms",
            TARGET_ADDED_P99_MS,
            shown=f"+{ms(added99)} ms",
        )
    )
    if r.telium is not None:
        rows.append(
            info(
                "added vs pyTeliumManager p50 / p99",
                f"+{ms(sub(con.p(50), tel.p(50)))} / +{ms(sub(con.p(99), tel.p(99)))} ms"
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
    direct_tp = [f"{throughput.get('own') or 0:.0f}/s"]
    if "telium" in b:
        direct_tp.append(f"{throughput.get('telium') or 0:.0f}/s")
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
            shown=f"+{ms(paced_added)} ms",
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
    rows.append(
        judged(
            f"RSS growth over {r.size.bulk} payments (tp + agent)",
            r.rss_growth_mb,
            "MB",
            TARGET_RSS_GROWTH_MB,
            shown=None if r.rss_growth_mb is None else f"{r.rss_growth_mb:+.1f} MB",
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
        "rss_growth_mb": r.rss_growth_mb,
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


# --- main -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="a short run (about 30 s)")
    group.add_argument(
        "--long",
        action="store_true",
        help="10,000 back-to-back connector payments for the RSS growth",
    )
    parser.add_argument("--json", metavar="FILE", type=Path, help="also write the figures as JSON")
    parser.add_argument(
        "--workdir",
        metavar="DIR",
        type=Path,
        help="where the temporary files go, the journal included (default: the system temp "
        "dir; its filesystem decides what an fsync costs)",
    )
    args = parser.parse_args(argv)
    use_this_repo()
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    size = SIZES["quick" if args.quick else "long" if args.long else "default"]
    out = sys.stdout
    began = time.monotonic()
    load_start = load_average()
    results = Results(size=size, telium=telium_version())

    def say(text: str) -> None:
        print(f"  [{time.monotonic() - began:5.1f} s] {text}", file=sys.stderr, flush=True)

    print(machine_line("ECR connector fast path"), file=out)
    print(
        wrap(
            f"code: {REPO} at {git_revision()}; load average at start "
            f"{load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f} (1/5/15 min)"
        ),
        file=out,
    )
    print(
        wrap(
            f"run: {size.describe()}. Payment {AMOUNT_TEXT} EUR debit, approved, full "
            f"answer; simulator customer {CUSTOMER_SECONDS:g} s, logging at WARNING."
        ),
        file=out,
    )
    if results.telium is None:
        print(
            wrap(f"pyTeliumManager is not installed: its column is skipped ({BENCH_INSTALL})"),
            file=out,
        )
    out.flush()
    parts = (("unpaced", unpaced_part), ("starts", first_payment_part), ("paced", paced_part))
    with tempfile.TemporaryDirectory(prefix="ecr-fast-path-", dir=args.workdir) as tmp:
        workdir = Path(tmp)
        with stack_helpers().hipay_stub(workdir) as stub:
            for name, part in parts:
                try:
                    part(workdir, stub, results, say)
                except Exception as exc:  # shown, the other parts still run
                    results.errors.append(f"{name} part: {type(exc).__name__}: {exc}")
    load_end = load_average()
    rows = build_rows(results)
    print(file=out)
    print_table(rows, out)
    print_details(results, out)
    print(file=out)
    print(
        wrap(
            f"journal and logs on {results.filesystem or 'n/a'}; load average at end "
            f"{load_end[0]:.2f} / {load_end[1]:.2f} / {load_end[2]:.2f}; CPU from "
            f"/proc/<pid>/stat in ticks of {1000 / CLOCK_TICKS_PER_S:g} ms; "
            f"wall time {time.monotonic() - began:.0f} s"
        ),
        file=out,
    )
    if args.json is not None:
        context = {
            "machine": machine_line("ECR connector fast path"),
            "code": f"{REPO} at {git_revision()}",
            "load_average_start": load_start,
            "load_average_end": load_end,
            "filesystem": results.filesystem,
            "pyteliummanager": results.telium,
            "wall_s": time.monotonic() - began,
        }
        args.json.write_text(json.dumps(to_json(results, rows, context), indent=2) + "\n")
    return 1 if results.errors or results.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
