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
import json
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's code first (see benchmarks/harness.py)

from benchmarks import log_phases, syscall_count  # noqa: E402
from benchmarks.fast_path_report import (  # noqa: E402
    BENCH_INSTALL,
    CONNECTOR_PROGRAMS,
    Results,
    RunSize,
    build_rows,
    print_details,
    print_table,
    to_json,
    wrap,
)
from benchmarks.harness import (  # noqa: E402
    AMOUNT_TEXT,
    CLOCK_TICKS_PER_S,
    CUSTOMER_SECONDS,
    PACED_BAUDRATE,
    exit_on_sigterm,
    filesystem_of,
    git_revision,
    load_average,
    machine_line,
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
from benchmarks.payment_setups import (  # noqa: E402
    ConnectorSetup,
    OwnClientSetup,
    Series,
    Setup,
    TeliumSetup,
    pay_many,
    take_turns,
    telium_version,
)
from benchmarks.register_http import Register  # noqa: E402

# --- timers and bounds -------------------------------------------------------------------
FIRST_PAYMENT_TIMEOUT_S: Final = 60.0  # run -> first successful POST, or the run fails
FIRST_PAYMENT_POLL_S: Final = 0.01  # between two attempts at the first payment
PACED_BLOCK: Final = 5  # payments per turn at 9600 baud

SIZES: Final = {
    "default": RunSize(300, 10, 10, 1000, 300, 60, 5, 50, 2.0),
    "quick": RunSize(60, 10, 5, 200, 100, 12, 3, 20, 1.0),
    "long": RunSize(300, 10, 10, 10_000, 300, 60, 5, 50, 2.0),
}


# --- connector processes ----------------------------------------------------------------------


def connector_pids(stack: Any) -> dict[str, int]:
    pids = {name: stack.pid_of(name) for name in CONNECTOR_PROGRAMS}
    pids["supervisord"] = supervisord_pid(stack.data_dir)
    pids["ecr-connector run"] = stack.proc.pid  # supervisord's parent, watching its start
    return pids


def cpu_of(pids: dict[str, int]) -> dict[str, float | None]:
    return {name: proc_cpu_s(pid) for name, pid in pids.items()}


def cpu_delta(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, float]:
    deltas = {}
    for name, start in before.items():
        end = after.get(name)
        if start is not None and end is not None:
            deltas[name] = end - start
    return deltas


def rss_mb(pids: dict[str, int]) -> dict[str, float | None]:
    values = {name: proc_status_kb(pid, "VmRSS") for name, pid in pids.items()}
    return {name: None if kb is None else kb / 1024 for name, kb in values.items()}


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
        results.rss_checkpoints.append({"payments": 0, **rss_mb(pids)})
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
