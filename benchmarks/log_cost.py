"""What one log line costs: the connector's logging pipeline, timed line by line.

Run from the repository root::

    .venv/bin/python benchmarks/log_cost.py [--lines N]

The lines are the five a payment writes (one in tp-manager, four in the agent; their
fields as logged, with a masked PAN and an order id), logged through
``common.logging.configure_logging`` exactly as the processes log: structlog, the stdlib
root handler, the redaction, the JSON rendering, a write to a file in a temporary
directory.  Printed: CPU time per line (``time.process_time``, so the write's syscall
counts but the disk does not), for the whole pipeline and for its two costly steps alone
(the redaction, the JSON rendering), and for a debug line below the level.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's code first (see benchmarks/harness.py)

import structlog  # noqa: E402

from benchmarks.harness import git_revision, load_average, machine_line  # noqa: E402
from common import logging as connector_logging  # noqa: E402
from common.logging import Redactor, configure_logging  # noqa: E402

DEFAULT_LINES = 20_000
REPEATS = 5  # the median of these is printed
SECRETS = ("api-Secret-42", "hipay-Secret-99")
ORDER_ID = "ECR_20261129_230109526_866a43"

# (logger name, event, fields): the five lines of one payment, as the processes log them
PAYMENT_LINES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "supervisor_agent.api.payment",
        "api.payment.started",
        {
            "order_id": ORDER_ID,
            "amount": 999,
            "currency": "EUR",
            "transaction_type": "debit",
            "force_authorization": False,
            "target": None,
        },
    ),
    (
        "tp_manager.commands.pay",
        "tp_manager.transaction.finished",
        {
            "duration_ms": 9.1,
            "order_id": ORDER_ID,
            "status": "accepted",
            "amount": 999,
            "currency": "978",
            "transaction_type": "debit",
            "failure_reason": None,
            "payment_application": None,
            "masked_pan": "497010XXXXXX1234",
            "terminal_ms": 4.3,
        },
    ),
    (
        "supervisor_agent.api.payment",
        "api.payment.finished",
        {"order_id": ORDER_ID, "state": "accepted", "error_code": None, "duration_ms": 45.5},
    ),
    (
        "supervisor_agent.notifier",
        "hipay.notify.delivered",
        {
            "order_id": ORDER_ID,
            "notification_id": 1,
            "status": 200,
            "attempts": 1,
            "count": 1,
            "latency_s": 0.012,
        },
    ),
    (
        "supervisor_agent.api.app",
        "api.request",
        {"method": "POST", "path": "/", "status": 200, "duration_ms": 70.3},
    ),
]


def cpu_us_per_call(call: Callable[[], object], calls: int) -> float:
    """Median over REPEATS of the CPU microseconds one call takes."""
    samples = []
    for _ in range(REPEATS):
        start = time.process_time()
        for _ in range(calls):
            call()
        samples.append((time.process_time() - start) * 1e6 / calls)
    return statistics.median(samples)


def event_dicts() -> list[dict[str, Any]]:
    """The lines as the formatter's processors see them (the head fields added)."""
    stamp = "2026-11-29T23:01:09.577005Z"
    return [
        {
            "event": event,
            **fields,
            "process": "tp-manager",
            "level": "info",
            "logger": name,
            "timestamp": stamp,
        }
        for name, event, fields in PAYMENT_LINES
    ]


def renderer() -> Callable[..., Any]:
    """The JSON renderer the pipeline ends with (whichever this version uses: the script
    runs on an older checkout too, for a before/after on one machine)."""
    made: Callable[..., Any] | None = getattr(connector_logging, "render_json", None)
    return made or structlog.processors.JSONRenderer(default=str, sort_keys=False)


def configure_to_file(path: Path, level: str) -> None:
    """The pipeline writing to ``path``: the rotating file of this version when it has one."""
    spec = getattr(connector_logging, "LogFileSpec", None)
    where: dict[str, Any]
    if spec is not None:  # the file the programs write themselves (10 MB, 10 kept)
        where = {"log_file": spec(path, max_mb=10, backups=10)}
    else:  # an older checkout: its stdout handler, into a file
        where = {"stream": path.open("a", encoding="utf-8")}
    configure_logging("tp-manager", level, secrets=SECRETS, **where)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=DEFAULT_LINES, metavar="N")
    args = parser.parse_args(argv)
    calls = max(1, args.lines // len(PAYMENT_LINES))
    rows: list[tuple[str, float]] = []

    dicts = event_dicts()
    redactor = Redactor(SECRETS)
    render = renderer()

    def redact_all() -> None:
        for d in dicts:
            redactor(None, "info", dict(d))

    def render_all() -> None:
        for d in dicts:
            render(None, "info", dict(d))

    with tempfile.TemporaryDirectory(prefix="ecr-logcost-") as tmp:
        path = Path(tmp) / "tp-manager.log"
        configure_to_file(path, "info")
        loggers = [
            (structlog.get_logger(name), event, fields) for name, event, fields in PAYMENT_LINES
        ]

        def log_all() -> None:
            for logger, event, fields in loggers:
                logger.info(event, **fields)

        def debug_all() -> None:
            for logger, event, fields in loggers:
                logger.debug(event, **fields)

        n = len(PAYMENT_LINES)
        rows.append(
            ("whole line: structlog -> redact -> JSON -> file", cpu_us_per_call(log_all, calls) / n)
        )
        rows.append(("  of which the redaction alone", cpu_us_per_call(redact_all, calls) / n))
        rows.append(("  of which the JSON rendering alone", cpu_us_per_call(render_all, calls) / n))
        rows.append(("a debug line (below the level)", cpu_us_per_call(debug_all, calls) / n))
        size = sum(p.stat().st_size for p in path.parent.iterdir())
        written = REPEATS * calls * n
        logging.getLogger().handlers.clear()
    print(machine_line("ECR connector log line cost"))
    print(
        f"code: {REPO} at {git_revision()}; load average {load_average()[0]:.2f}; "
        f"{calls * n} lines x {REPEATS} runs (median), {size / written:.0f} B per line"
    )
    width = max(len(name) for name, _ in rows)
    print(f"{'step':<{width}}  {'µs/line':>8}  {f'µs/payment ({n} lines)':>20}")
    print("-" * (width + 32))
    for name, us in rows:
        print(f"{name:<{width}}  {us:>8.1f}  {us * n:>20.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
