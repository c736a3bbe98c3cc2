"""Start time, idle memory and CPU per payment of each process of the supervised connector.

Run from the repository root::

    .venv/bin/python benchmarks/start_cost.py [--runs N] [--idle-seconds S] [--payments N]

Each run starts ``ecr-connector run --config FILE`` exactly as tests/stack.py does, with
tp-manager on the pty of a simulator this script started beforehand (``--pay-seconds 0``,
so a payment costs milliseconds) and HiPay on the local stub, and times, from the moment
``run`` is spawned:

- ``supd``: supervisord says it started (its log);
- ``spawn``: supervisord spawned the programs (its log): ``spawn - supd`` is how long it
  waited in its first poll before starting them;
- ``tpm``, ``agent``: ``tp_manager.started`` and ``agent.started`` in their logs;
- ``health``: ``GET /v1/connector/healthcheck`` answers 200 (polled);
- ``paid``: a ``POST /`` (sent again every few ms until one succeeds) answers SUCCESS with
  ``notificationHipaySent``: the first payment possible.

Then it leaves the connector idle for ``--idle-seconds`` and reads ``VmRSS`` of
tp-manager, the supervisor agent, supervisord and the ``run`` process from
``/proc/<pid>/status``.  Last, it makes ``--payments`` more payments one after the
other and prints the CPU time each process spent per payment (``/proc/<pid>/stat``,
user + system): supervisord's share is what relaying the programs' output costs it.
Every process is stopped by pid in ``finally`` blocks.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RUNS = 3
DEFAULT_IDLE_S = 3.0
DEFAULT_PAYMENTS = 100
POLL_S = 0.005  # between two tries: finer than anything measured here
TRY_TIMEOUT_S = 2.0  # one HTTP try before the connector is up
PAY_TIMEOUT_S = 30.0
START_TIMEOUT_S = 30.0
AMOUNT_TEXT = "9.99"
PROGRAMS = ("tp-manager", "supervisor-agent")
PROCESSES = (*PROGRAMS, "supervisord", "run")
MILESTONES = ("supd", "spawn", "tpm", "agent", "health", "paid")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SUPERVISORD_TIME = "%Y-%m-%d %H:%M:%S,%f"  # local time, as supervisord.log writes it


@dataclass
class Run:
    seconds: dict[str, float] = field(default_factory=dict)  # milestone -> since `run`
    rss_kb: dict[str, int] = field(default_factory=dict)
    cpu_ms_per_payment: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def stack_helpers() -> Any:
    """tests/stack.py (not installed): the connector started as the end-to-end tests do."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("tests.stack")


def vm_rss_kb(pid: int | None) -> int | None:
    if pid is None:
        return None
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of ``pid`` so far (/proc/<pid>/stat utime, stime)."""
    if pid is None:
        return None
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return None


def paid(status: int, body: Any) -> bool:
    return (
        status == 200
        and isinstance(body, dict)
        and body.get("paymentStatus") == "SUCCESS"
        and body.get("notificationHipaySent") is True
    )


def supervisord_times(log: Path) -> dict[str, float]:
    """Wall-clock times of supervisord's start and of its first spawn, from its log."""
    found: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in log.read_text().splitlines():
            stamp = " ".join(line.split()[:2])
            with contextlib.suppress(ValueError):
                when = dt.datetime.strptime(stamp, SUPERVISORD_TIME).timestamp()
                if "supervisord started with pid" in line:
                    found.setdefault("supd", when)
                elif "spawned: 'tp-manager'" in line or "spawned: 'supervisor-agent'" in line:
                    found.setdefault("spawn", when)
    return found


def started_time(log: Path, event: str) -> float | None:
    """Wall-clock time of the first ``event`` line of a program's JSON log."""
    with contextlib.suppress(OSError):
        for line in log.read_text().splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                record = json.loads(line)
                if record["event"] == event:
                    stamp = record["timestamp"].replace("Z", "+00:00")
                    return dt.datetime.fromisoformat(stamp).timestamp()
    return None


@contextlib.contextmanager
def terminal_and_hipay(workdir: Path) -> Iterator[tuple[str, Any]]:
    """The simulator's pty and the HiPay stub, up before the clock starts."""
    helpers = stack_helpers()
    sim = ["simulate", "--protocol", "concert-v2", "--pty", "--pay-seconds", "0"]
    with (
        helpers.ready_process([*sim, "--log-level", "WARNING"], workdir / "sim.err") as where,
        helpers.hipay_stub(workdir) as stub,
    ):
        yield where.removeprefix("pty="), stub


def first_payment(stack: Any, began: float, run: Run) -> None:
    """Poll health, then POST until a payment succeeds; the milestones into ``run``."""
    deadline = began + START_TIMEOUT_S
    while time.monotonic() < deadline and stack.proc.poll() is None:
        if "health" not in run.seconds:
            with contextlib.suppress(OSError):
                status, _ = stack.request(
                    "GET", "/v1/connector/healthcheck", auth=("", ""), timeout_s=1
                )
                if status == 200:
                    run.seconds["health"] = time.monotonic() - began
        if "health" in run.seconds:
            with contextlib.suppress(OSError):
                status, body = stack.request(
                    "POST", "/", {"amount": AMOUNT_TEXT}, timeout_s=TRY_TIMEOUT_S
                )
                if paid(status, body):
                    run.seconds["paid"] = time.monotonic() - began
                    return
        time.sleep(POLL_S)


def from_logs(stack: Any, began_wall: float, run: Run) -> None:
    from common import paths

    logs = paths.log_dir(stack.data_dir)
    for name, when in supervisord_times(logs / "supervisord.log").items():
        run.seconds[name] = when - began_wall
    for key, program, event in (
        ("tpm", "tp-manager", "tp_manager.started"),
        ("agent", "supervisor-agent", "agent.started"),
    ):
        started = started_time(logs / f"{program}.log", event)
        if started is not None:
            run.seconds[key] = started - began_wall


def measure(workdir: Path, idle_s: float, payments: int) -> Run:
    helpers = stack_helpers()
    from common import paths

    run = Run()
    with terminal_and_hipay(workdir) as (pty, stub):
        began, began_wall = time.monotonic(), time.time()
        stack, out = helpers.launch(
            workdir / "stack",
            serial_port=pty,
            hipay_base_url=stub.url + "/",
            hipay_login=stub.login,
            hipay_password=stub.password,
        )
        try:
            first_payment(stack, began, run)
            if "paid" not in run.seconds:
                run.error = f"no payment within {START_TIMEOUT_S} s (see {workdir})"
                return run
            from_logs(stack, began_wall, run)
            time.sleep(idle_s)
            info = stack.process_info()
            pids: dict[str, int | None] = {
                name: info.get(name, {}).get("pid") or None for name in PROGRAMS
            }
            with contextlib.suppress(OSError, ValueError):
                pidfile = paths.supervisord_pidfile(stack.data_dir)
                pids["supervisord"] = int(pidfile.read_text().strip())
            pids["run"] = stack.proc.pid
            for name, pid in pids.items():
                if (kb := vm_rss_kb(pid)) is not None:
                    run.rss_kb[name] = kb
            before = {name: cpu_s(pid) for name, pid in pids.items()}
            for _ in range(payments):
                status, body = stack.request(
                    "POST", "/", {"amount": AMOUNT_TEXT}, timeout_s=PAY_TIMEOUT_S
                )
                if not paid(status, body):
                    run.error = f"a payment failed: HTTP {status} {str(body)[:200]}"
                    return run
            for name, pid in pids.items():
                start, end = before[name], cpu_s(pid)
                if payments and start is not None and end is not None:
                    run.cpu_ms_per_payment[name] = (end - start) * 1000.0 / payments
        finally:
            helpers.terminate(stack)
            out.close()
    return run


# What each process imports before it can work, run alone in a fresh interpreter: CPU
# time (user + system of the child), steadier than wall time on a busy machine.
IMPORTS = {
    "tp-manager": "from common.lean import leave_out_console_libraries as l; l(); "
    "import tp_manager.main",
    "supervisor-agent": "from common.lean import leave_out_console_libraries as l; l(); "
    "import supervisor_agent.main",
    "supervisord": "import supervisor.supervisord",
    "run": "import common.runner, common.config, common.checks",
}
IMPORT_REPEATS = 5


def import_cpu_s() -> dict[str, float]:
    """Median CPU seconds of ``python -c IMPORTS[name]`` (the interpreter's own start
    included), each after one warm-up run."""
    import resource
    import subprocess

    out = {}
    for name, code in IMPORTS.items():
        if "common.lean" in code and not (REPO / "common" / "lean.py").exists():
            code = code.split("; ", 2)[2]  # an older checkout: plain import
        samples = []
        for index in range(IMPORT_REPEATS + 1):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if index:
                samples.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        out[name] = statistics.median(samples)
    return out


def median_run(runs: Sequence[Run]) -> Run:
    ok = [r for r in runs if r.error is None]

    def med(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    out = Run()
    for name in MILESTONES:
        if (value := med([r.seconds[name] for r in ok if name in r.seconds])) is not None:
            out.seconds[name] = value
    for name in PROCESSES:
        if (kb := med([float(r.rss_kb[name]) for r in ok if name in r.rss_kb])) is not None:
            out.rss_kb[name] = int(kb)
        values = [r.cpu_ms_per_payment[name] for r in ok if name in r.cpu_ms_per_payment]
        if (ms := med(values)) is not None:
            out.cpu_ms_per_payment[name] = ms
    return out


def table(title: str, columns: Sequence[str], rows: Sequence[tuple[str, list[str]]]) -> None:
    widths = [max(8, len(c)) for c in ("run", *columns)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    print(title)
    print(line(("run", *columns)))
    print("-" * len(line(("run", *columns))))
    for label, cells in rows:
        print(line((label, *cells)))
    print()


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_tables(runs: Sequence[Run]) -> None:
    labelled = [(str(n), r) for n, r in enumerate(runs, start=1)]
    labelled.append(("median", median_run(runs)))
    table(
        "Seconds from `run` spawned (supd/spawn: supervisord.log; tpm/agent: their *.started)",
        (*MILESTONES, "spawn-supd"),
        [
            (
                label,
                [fmt(r.seconds.get(m)) for m in MILESTONES]
                + [
                    fmt(r.seconds["spawn"] - r.seconds["supd"])
                    if {"spawn", "supd"} <= r.seconds.keys()
                    else "-"
                ],
            )
            for label, r in labelled
        ],
    )

    def rss(r: Run, name: str) -> float | None:
        return r.rss_kb[name] / 1024 if name in r.rss_kb else None

    table(
        "VmRSS at idle, MB",
        (*PROCESSES, "tpm+agent"),
        [
            (
                label,
                [fmt(rss(r, n), 1) for n in PROCESSES]
                + [
                    fmt(sum(r.rss_kb[n] for n in PROGRAMS) / 1024, 1)
                    if set(PROGRAMS) <= r.rss_kb.keys()
                    else "-"
                ],
            )
            for label, r in labelled
        ],
    )
    table(
        "CPU ms per payment (user+system, the payments after the first)",
        PROCESSES,
        [(label, [fmt(r.cpu_ms_per_payment.get(n)) for n in PROCESSES]) for label, r in labelled],
    )
    for label, r in labelled:
        if r.error:
            print(f"run {label}: {r.error}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, metavar="N")
    parser.add_argument("--idle-seconds", type=float, default=DEFAULT_IDLE_S, metavar="S")
    parser.add_argument("--payments", type=int, default=DEFAULT_PAYMENTS, metavar="N")
    parser.add_argument("--workdir", type=Path, metavar="DIR", help="default: the temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    print(
        f"ECR connector start cost -- {os.cpu_count()} CPUs (load {load:.1f}), Linux "
        f"{platform.release()}, Python {platform.python_version()}; RSS after "
        f"{args.idle_seconds:g} s idle, then {args.payments} payments\n"
    )
    runs = []
    for index in range(args.runs):
        workdir = Path(tempfile.mkdtemp(prefix=f"ecr-start-{index}-", dir=args.workdir))
        try:
            runs.append(measure(workdir, args.idle_seconds, args.payments))
        finally:
            if not args.keep and runs and runs[-1].error is None:
                shutil.rmtree(workdir, ignore_errors=True)
    print_tables(runs)
    cpu = import_cpu_s()
    table(
        f"CPU s to import, fresh interpreter, median of {IMPORT_REPEATS}",
        list(cpu),
        [("import", [fmt(v) for v in cpu.values()])],
    )
    return 1 if any(r.error for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
