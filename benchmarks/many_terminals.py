"""Many terminals at once: N simulated Concert V3 terminals paid concurrently through one
connector, and the latency the connector adds to each payment.

Run from the repository root::

    .venv/bin/python benchmarks/many_terminals.py [--terminals 50] [--rounds 5]

One connector runs in this process with real parts (tests/terminals/conftest.py): the
agent's HTTP API, its SQLite journal (``synchronous=FULL``), ZeroMQ to tp-manager's
ControlServer, one Concert V3 driver per terminal named in the config, the simulators on
loopback TCP, the HiPay stub over HTTP.  Each round posts one payment to every terminal
at the same moment.  *Added latency* is the client's round trip minus the driver's own
exchange with the terminal (``timings.total_ms`` journaled with the verdict): the API,
the journal's fsyncs, ZeroMQ both ways and the HiPay notification the answer waits for.
A payment is *correct* when it is accepted, journaled on its own terminal, and that
terminal's simulator saw exactly one request for it.  Percentiles are nearest-rank.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TERMINALS = 50
DEFAULT_ROUNDS = 5
CUSTOMER_SECONDS = 0.0  # the simulated customer pays at once: the figures show the connector
TARGET_P99_MS = 20.0  # the target for the added latency
DEFAULT_NOTIFICATION_BUDGET_S = 3.0  # the config's default


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100.0 * len(ordered))) - 1]


def harness() -> Any:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # tests/ is not installed
    return importlib.import_module("tests.terminals.conftest")


def quiet_logs() -> None:
    """Warnings and above only: 50 terminals' info lines would be the figure otherwise."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


async def run(terminals: int, rounds: int, workdir: str | None, notification_budget: float) -> int:
    quiet_logs()
    h = harness()
    names = [f"t{n:02d}" for n in range(terminals)]
    totals: list[float] = []
    added: list[float] = []
    wrong: list[str] = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        async with h.connector(
            Path(tmp),
            names,
            pay_seconds=CUSTOMER_SECONDS,
            notification_budget=notification_budget,
        ) as running:

            async def one(name: str, order_id: str) -> None:
                started = time.monotonic()
                status, body = await running.pay(name, order_id)
                elapsed = (time.monotonic() - started) * 1000
                record = running.journal.get(order_id)
                ok = (
                    status == 200
                    and body["transactionState"] == "accepted"
                    and record is not None
                    and record.terminal == name
                    and running.sims[name].ledger.requests[-1]["CB"] == "999"
                )
                if not ok or record is None or record.result is None:
                    wrong.append(order_id)
                    return
                totals.append(elapsed)
                added.append(elapsed - float(record.result["timings"]["total_ms"]))

            for r in range(rounds):
                await asyncio.gather(*(one(n, f"BENCH-{r}-{n}") for n in names))
            for name in names:
                if len(running.sims[name].ledger.requests) != rounds:
                    wrong.append(f"{name}: {len(running.sims[name].ledger.requests)} requests")
    print(
        f"{'setup':34} {'ok':>4} {'bad':>4} {'p50':>7} {'p95':>7} {'p99':>7} "
        f"{'add50':>7} {'add99':>7}"
    )
    print("-" * 86)
    setup = f"{terminals} V3 x {rounds}, HiPay wait {notification_budget:g} s"
    if totals:
        print(
            f"{setup:34} {len(totals):>4} {len(wrong):>4} {percentile(totals, 50):7.1f} "
            f"{percentile(totals, 95):7.1f} {percentile(totals, 99):7.1f} "
            f"{percentile(added, 50):7.1f} {percentile(added, 99):7.1f}"
        )
    else:
        print(f"{setup:34} {0:>4} {len(wrong):>4}")
    print(
        "\nms; p50..p99: the register's round trip; add50/add99: the latency the connector "
        "adds to the terminal's own exchange (round trip minus the driver's total_ms); "
        f"target add99 < {TARGET_P99_MS:g} ms."
    )
    if wrong:
        print(f"not correct: {wrong[:10]}")
    return 0 if not wrong and totals else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terminals", type=int, default=DEFAULT_TERMINALS)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--workdir", help="where the journal goes (its filesystem sets fsync cost)")
    parser.add_argument(
        "--notification-budget",
        type=float,
        default=DEFAULT_NOTIFICATION_BUDGET_S,
        help="seconds an answer waits for HiPay (the config's notification_budget)",
    )
    args = parser.parse_args()
    return asyncio.run(run(args.terminals, args.rounds, args.workdir, args.notification_budget))


if __name__ == "__main__":
    sys.exit(main())
