"""HiPay notifications through an outage, at the product's own timers.

Run from the repository root::

    .venv/bin/python benchmarks/notify_outage.py [--notifications N] [--outage-s S]

HiPay (the local stub) refuses connections while N payments finish: each is journaled
(real SQLite journal) and gets its answer through ``Notifier.deliver_now`` with the
3 s budget, as the API does.  After the outage the stub listens again on the same
loopback port and the script times how long the backlog takes to reach it.  It prints
what the register's answer cost while HiPay refused, the drain time, how many copies
of each notification HiPay acknowledged, the attempts made during the outage and the
notifier's log lines by level.  The run itself is tests/durability/outage.py, which the
durability test runs with its timers scaled down.  Exit status 1 if a notification was
not delivered within the drain limit or reached HiPay more than twice.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import math
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

DEFAULT_NOTIFICATIONS = 500  # issue 12's figures
DEFAULT_OUTAGE_S = 60.0
DRAIN_LIMIT_S = 120.0  # twice the backoff cap: past it, something is broken
MAX_COPIES = 2  # at least once, reconciled: once or twice


def outage_helpers() -> Any:
    """tests/durability/outage.py, imported by name (tests/ is not installed)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("tests.durability.outage")


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100.0 * len(ordered))) - 1]


def report(run: Any, notifications: int) -> list[str]:
    answers_ms = [s * 1000.0 for s in run.answers_s]
    drain = "not within the limit" if run.drain_s is None else _seconds(run.drain_s)
    rate = "" if not run.drain_s else f" ({notifications / run.drain_s:.0f}/s)"
    return [
        f"answers while HiPay refused (deliver_now, budget 3 s): p50 "
        f"{percentile(answers_ms, 50):.1f} ms, p95 {percentile(answers_ms, 95):.1f} ms, "
        f"max {max(answers_ms):.1f} ms",
        f"outage: {run.outage_s:.1f} s, {run.attempts_in_outage} HTTP attempts in it",
        f"HiPay's return noticed (first delivery) after {_seconds(run.first_s)}",
        f"drain after HiPay's return: {drain}{rate}",
        "acknowledged copies per notification: "
        + ", ".join(f"{k}x: {v}" for k, v in sorted(Counter(run.copies.values()).items())),
        "numberOfNotificationSent: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(run.counts.items())),
        f"undelivered: {run.undelivered}",
        f"notifier log lines: {sum(run.lines.values())}, of which warnings {run.warnings}: "
        + ", ".join(f"{event} ({level}) {n}" for (level, event), n in sorted(run.lines.items())),
    ]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notifications", type=int, default=DEFAULT_NOTIFICATIONS)
    parser.add_argument("--outage-s", type=float, default=DEFAULT_OUTAGE_S)
    parser.add_argument("--workdir", default=None, help="where the journal goes")
    args = parser.parse_args(argv)
    from supervisor_agent.retry_policy import RetryPolicy

    helpers = outage_helpers()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="notify-outage-") as tmp:
        run = asyncio.run(
            helpers.run_outage(
                Path(tmp),
                policy=RetryPolicy(),
                notifications=args.notifications,
                outage_s=args.outage_s,
                drain_limit_s=DRAIN_LIMIT_S,
            )
        )
    for line in report(run, args.notifications):
        print(line)
    print(f"run took {time.monotonic() - started:.1f} s")
    ok = (
        run.drain_s is not None
        and run.undelivered == 0
        and len(run.copies) == args.notifications
        and max(run.copies.values(), default=0) <= MAX_COPIES
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
