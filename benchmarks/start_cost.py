"""Start time and idle memory of the supervised connector.

Run from the repository root::

    .venv/bin/python benchmarks/start_cost.py [--runs N] [--idle-seconds S] [--workdir DIR]

Each run starts ``ecr-connector run --config FILE`` exactly as tests/stack.py does, with
tp-manager on the pty of a simulator this script started beforehand (``--pay-seconds 0``,
so a payment costs milliseconds) and HiPay on the local stub, and times from the moment
``run`` is spawned:

- ``socket``: supervisord's unix socket exists;
- ``health``: ``GET /v1/connector/healthcheck`` answers 200;
- ``paid``: a ``POST /`` (sent again every few ms until one succeeds) answers SUCCESS
  with ``notificationHipaySent``: the first payment possible.

Then it leaves the connector idle for ``--idle-seconds`` and reads ``VmRSS`` of
tp-manager, the supervisor agent, supervisord and the ``run`` process from
``/proc/<pid>/status``.  Every process is stopped by pid in ``finally`` blocks.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import platform
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
POLL_S = 0.005  # between two tries: finer than anything measured here
TRY_TIMEOUT_S = 2.0  # one HTTP try before the connector is up
START_TIMEOUT_S = 30.0
AMOUNT_TEXT = "9.99"
PROGRAMS = ("tp-manager", "supervisor-agent")


@dataclass
class Run:
    socket_s: float | None = None
    health_s: float | None = None
    paid_s: float | None = None
    rss_kb: dict[str, int | None] = field(default_factory=dict)
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


def measure(workdir: Path, idle_s: float) -> Run:
    helpers = stack_helpers()
    from common import paths

    run = Run()
    with terminal_and_hipay(workdir) as (pty, stub):
        began = time.monotonic()
        stack, out = helpers.launch(
            workdir / "stack",
            serial_port=pty,
            hipay_base_url=stub.url + "/",
            hipay_login=stub.login,
            hipay_password=stub.password,
        )
        try:
            socket_path = paths.supervisord_socket(stack.data_dir)
            deadline = began + START_TIMEOUT_S
            while time.monotonic() < deadline and stack.proc.poll() is None:
                now = time.monotonic() - began
                if run.socket_s is None and socket_path.exists():
                    run.socket_s = now
                if run.health_s is None:
                    with contextlib.suppress(OSError):
                        status, _ = stack.request(
                            "GET", "/v1/connector/healthcheck", auth=("", ""), timeout_s=1
                        )
                        if status == 200:
                            run.health_s = time.monotonic() - began
                if run.health_s is not None:
                    with contextlib.suppress(OSError):
                        status, body = stack.request(
                            "POST", "/", {"amount": AMOUNT_TEXT}, timeout_s=TRY_TIMEOUT_S
                        )
                        if (
                            status == 200
                            and isinstance(body, dict)
                            and body.get("paymentStatus") == "SUCCESS"
                            and body.get("notificationHipaySent") is True
                        ):
                            run.paid_s = time.monotonic() - began
                            break
                time.sleep(POLL_S)
            if run.paid_s is None:
                run.error = f"no payment within {START_TIMEOUT_S} s (see {workdir})"
                return run
            time.sleep(idle_s)
            info = stack.process_info()
            for name in PROGRAMS:
                pid = info.get(name, {}).get("pid") or None
                run.rss_kb[name] = vm_rss_kb(pid)
            supervisord_pid = None
            with contextlib.suppress(OSError, ValueError):
                pidfile = paths.supervisord_pidfile(stack.data_dir)
                supervisord_pid = int(pidfile.read_text().strip())
            run.rss_kb["supervisord"] = vm_rss_kb(supervisord_pid)
            run.rss_kb["run"] = vm_rss_kb(stack.proc.pid)
        finally:
            helpers.terminate(stack)
            out.close()
    return run


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def fmt_mb(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f}"


COLUMNS = ("run", "socket s", "health s", "paid s", "tp-mgr MB", "agent MB", "both MB",
           "supd MB", "run MB")  # fmt: skip


def row_cells(label: str, run: Run) -> list[str]:
    tp, agent = run.rss_kb.get("tp-manager"), run.rss_kb.get("supervisor-agent")
    both = tp + agent if tp is not None and agent is not None else None
    return [
        label,
        fmt_s(run.socket_s),
        fmt_s(run.health_s),
        fmt_s(run.paid_s),
        fmt_mb(tp),
        fmt_mb(agent),
        fmt_mb(both),
        fmt_mb(run.rss_kb.get("supervisord")),
        fmt_mb(run.rss_kb.get("run")),
    ]


def median_run(runs: Sequence[Run]) -> Run:
    ok = [r for r in runs if r.error is None]

    def med(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    def med_kb(name: str) -> int | None:
        values = [kb for r in ok if (kb := r.rss_kb.get(name)) is not None]
        return int(statistics.median(values)) if values else None

    return Run(
        socket_s=med([r.socket_s for r in ok if r.socket_s is not None]),
        health_s=med([r.health_s for r in ok if r.health_s is not None]),
        paid_s=med([r.paid_s for r in ok if r.paid_s is not None]),
        rss_kb={name: med_kb(name) for name in (*PROGRAMS, "supervisord", "run")},
    )


def print_table(runs: Sequence[Run]) -> None:
    widths = [max(len(c), 7) for c in COLUMNS]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    print(line(COLUMNS))
    print("-" * len(line(COLUMNS)))
    for number, run in enumerate(runs, start=1):
        print(line(row_cells(str(number), run)))
    print(line(row_cells("median", median_run(runs))))
    for number, run in enumerate(runs, start=1):
        if run.error:
            print(f"run {number}: {run.error}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, metavar="N")
    parser.add_argument("--idle-seconds", type=float, default=DEFAULT_IDLE_S, metavar="S")
    parser.add_argument("--workdir", type=Path, metavar="DIR", help="default: the temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    print(
        f"ECR connector start cost -- {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"Python {platform.python_version()}; times from `run` spawned, RSS after "
        f"{args.idle_seconds:g} s idle"
    )
    runs = []
    for index in range(args.runs):
        workdir = Path(tempfile.mkdtemp(prefix=f"ecr-start-{index}-", dir=args.workdir))
        try:
            runs.append(measure(workdir, args.idle_seconds))
        finally:
            if not args.keep and not any(r.error for r in runs):
                import shutil

                shutil.rmtree(workdir, ignore_errors=True)
    print_table(runs)
    return 1 if any(r.error for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
