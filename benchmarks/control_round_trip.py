"""The agent -> tp-manager ``pay`` round trip over ZeroMQ, and what tp-manager spends on it.

Run from the repository root::

    .venv/bin/python benchmarks/control_round_trip.py [--calls 2000] [--in-flight 1 50]

tp-manager's side runs in its own process as in production: the real ControlServer on
an ``ipc://`` socket, the real result store (SQLite in the work directory), logging as
tp-manager logs (JSON at INFO, redacted) into a file.  Its terminal answers at once
(``InstantTerminal``, the only stand-in: the figures are the channel and tp-manager's
own work, not a driver's).  The agent's side is the real ``TerminalClient`` in this
process.  Each setup sends ``--calls`` payments, ``in-flight`` at a time (one terminal
per payment in flight, so none is refused as busy) and acks the verdicts in batches as
the agent's reconciler does.

Printed per setup: the round trip seen by the client (p50/p95/p99, ms), CPU per call of
the tp-manager process (from ``/proc``) and of this process (the client, its ZeroMQ I/O
thread included), and the payments per second.  Percentiles are nearest-rank.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import math
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CALLS = 2000
WARM_UP_CALLS = 50
CALL_TIMEOUT_S = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
THREAD_NAMES: dict[str, str] = {}  # native thread id -> Python name, from the READY line
PROFILE_ENV = "CONTROL_ROUND_TRIP_PROFILE"  # a path: cProfile tp-manager's side into it


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100.0 * len(ordered))) - 1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    return _stat_cpu(Path(f"/proc/{pid}/stat"))


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of a process, by Python thread name where it told them."""
    per_name: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            name = THREAD_NAMES.get(task.name) or (task / "comm").read_text().strip()
            per_name[name] = per_name.get(name, 0.0) + _stat_cpu(task / "stat")
    return per_name


def _stat_cpu(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# --- tp-manager's side (the child process) ------------------------------------------


async def serve(workdir: Path, log_path: Path) -> None:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from common.logging import configure_logging
    from common.payment import PaymentResult, PaymentStatus
    from tp_manager.context import ServerContext
    from tp_manager.result_store import ResultStore
    from tp_manager.server import ControlServer
    from tp_manager.terminal.base import KeepAnswer
    from tp_manager.terminal.model import LinkState, PaymentRequest, Timings

    class InstantTerminal:
        """Answers every payment at once, accepted: the channel without a driver."""

        protocol = "concert-v3"
        link_state = LinkState.UP
        busy = False

        def busy_reason(self) -> str:
            return "never busy"

        async def pay(
            self, request: PaymentRequest, keep: KeepAnswer | None = None
        ) -> PaymentResult:
            return PaymentResult(
                status=PaymentStatus.ACCEPTED,
                amount=request.amount,
                currency_numeric=request.currency_numeric,
                transaction_type=request.transaction_type,
                protocol=self.protocol,
                masked_pan="497010######1234",
                authorization_number="136967",
                payment_application="001",
                timings=Timings(total_ms=0.0),
            )

    class Terminals:
        """One InstantTerminal per terminal id an order names."""

        def __init__(self) -> None:
            self.each: dict[str, InstantTerminal] = {}

        def by_id(self, terminal_id: str) -> tuple[str, InstantTerminal]:
            return terminal_id, self.each.setdefault(terminal_id, InstantTerminal())

        def all(self) -> list[InstantTerminal]:
            return list(self.each.values())

    log_file = log_path.open("a")
    configure_logging("tp-manager", "info", stream=log_file)
    ctx = ServerContext(
        terminal=InstantTerminal(),  # type: ignore[arg-type]
        publish=lambda name, data: None,
        results=ResultStore.in_data_dir(workdir),
        terminal_factory=Terminals(),  # type: ignore[arg-type]
    )
    server = ControlServer(ctx, f"ipc://{workdir}/control.sock", f"ipc://{workdir}/events.sock")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    names = " ".join(f"{t.native_id}={t.name}" for t in threading.enumerate())
    print(f"READY {names}", flush=True)  # Python's thread names, for the /proc figures
    await stop.wait()
    await server.close()
    ctx.results.close()
    log_file.close()


# --- the agent's side (this process) -------------------------------------------------


@contextlib.contextmanager
def tp_manager(workdir: Path) -> Iterator[int]:
    """The tp-manager side in its own process (``--serve``); yields its pid."""
    stack_helpers = importlib.import_module("tests.stack")  # main() put the repo on sys.path
    with stack_helpers.ready_command(
        [sys.executable, __file__, "--serve", str(workdir)], workdir / "tp-manager.err"
    ) as (pid, announced):
        THREAD_NAMES.clear()
        THREAD_NAMES.update(dict(pair.split("=", 1) for pair in announced.split()))
        yield pid


def pay_properties(order_id: str, terminal: str) -> dict[str, Any]:
    from common.commands import pay as pay_contract
    from common.payment import PaymentRequest

    request = PaymentRequest(
        amount=999, currency_numeric="978", order_id=order_id, terminal=terminal
    )
    return pay_contract.to_properties(request)


async def measure(workdir: Path, calls: int, in_flight: int) -> dict[str, Any]:
    from supervisor_agent.client import TerminalClient

    with tp_manager(workdir) as pid:
        client = TerminalClient(f"ipc://{workdir}/control.sock")
        await client.start()
        try:
            times: list[float] = []
            to_ack: set[str] = set()
            wake = asyncio.Event()

            async def acker() -> None:
                """As the agent's reconciler: every verdict journaled is acked, in batches."""
                while True:
                    await wake.wait()
                    wake.clear()
                    batch = sorted(to_ack)
                    to_ack.difference_update(batch)
                    await client.call("ack", {"order_ids": batch}, timeout=CALL_TIMEOUT_S)

            async def lane(lane_no: int, count: int, record: bool) -> None:
                for n in range(count):
                    order_id = f"L{lane_no}-{n}-{record}"
                    props = pay_properties(order_id, f"t{lane_no}")
                    started = time.perf_counter()
                    await client.call("pay", props, timeout=CALL_TIMEOUT_S)
                    if record:
                        times.append((time.perf_counter() - started) * 1000)
                    to_ack.add(order_id)
                    wake.set()

            acking = asyncio.create_task(acker())

            per_lane = max(1, calls // in_flight)
            await asyncio.gather(*(lane(k, WARM_UP_CALLS, False) for k in range(in_flight)))
            server_cpu, client_cpu = cpu_seconds(pid), time.process_time()
            threads = thread_cpu(pid)
            wall = time.perf_counter()
            await asyncio.gather(*(lane(k, per_lane, True) for k in range(in_flight)))
            wall = time.perf_counter() - wall
            server_cpu = cpu_seconds(pid) - server_cpu
            client_cpu = time.process_time() - client_cpu
            threads = {name: cpu - threads.get(name, 0.0) for name, cpu in thread_cpu(pid).items()}
        finally:
            acking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await acking
            await client.close()
    n = len(times)
    return {
        "calls": n,
        "p50": percentile(times, 50),
        "p95": percentile(times, 95),
        "p99": percentile(times, 99),
        "server_cpu_ms": server_cpu * 1000 / n,
        "client_cpu_ms": client_cpu * 1000 / n,
        "per_s": n / wall,
        "threads": ", ".join(
            f"{name} {cpu * 1000 / n:.3f}" for name, cpu in sorted(threads.items()) if cpu > 0
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=DEFAULT_CALLS)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--workdir", help="where the result store goes (its fsyncs cost)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        profile = os.environ.get(PROFILE_ENV)
        if profile:  # cProfile of tp-manager's side, written when it stops
            import cProfile

            with cProfile.Profile() as prof:
                asyncio.run(serve(Path(args.serve), Path(args.serve) / "tp-manager.log"))
            prof.dump_stats(profile)
        else:
            asyncio.run(serve(Path(args.serve), Path(args.serve) / "tp-manager.log"))
        return 0
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    print(
        f"{'in flight':>9} {'calls':>6} {'p50':>7} {'p95':>7} {'p99':>7} "
        f"{'tpm cpu':>8} {'cli cpu':>8} {'pay/s':>7}"
    )
    print("-" * 64)
    threads: list[str] = []
    for in_flight in args.in_flight:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            row = asyncio.run(measure(Path(tmp), args.calls, in_flight))
        print(
            f"{in_flight:>9} {row['calls']:>6.0f} {row['p50']:7.3f} {row['p95']:7.3f} "
            f"{row['p99']:7.3f} {row['server_cpu_ms']:8.3f} {row['client_cpu_ms']:8.3f} "
            f"{row['per_s']:7.0f}"
        )
        threads.append(f"{in_flight} in flight: {row['threads']}")
    print(
        "\nms; p50..p99: the client's round trip of one pay; tpm cpu / cli cpu: CPU ms per "
        "call of the tp-manager process and of the client process (ZeroMQ I/O threads "
        "included); the terminal answers at once."
    )
    print("tp-manager's CPU ms per call by thread:")
    for line in threads:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
