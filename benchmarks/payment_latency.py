"""Payment latency of the ECR connector, measured against the built-in terminal simulator.

Run from the repository root::

    .venv/bin/python benchmarks/payment_latency.py [--payments N] [--quick]

Four setups, one table row each (see benchmarks/README.md for what each row covers):

1. the Concert V2 driver, in this process, on a pty to the simulator, unpaced;
2. the same with the simulator pacing its bytes at 9600 baud 8N1 (``--pace``);
3. the Concert V3 driver, in this process, over loopback TCP to the simulator;
4. an HTTP POST through the whole supervised connector (supervisord, supervisor agent,
   journal, ZeroMQ, tp-manager, Concert V2 on a pty, HiPay notification to the stub).

The simulated customer takes 0 s (``--pay-seconds 0``); every fixed wait that remains in
a figure (pacing, protocol settle timers) is printed under the table, nothing is subtracted.
Each setup runs one warm-up payment first: it is shown in the ``1st`` column and kept out
of the statistics.  Percentiles are nearest-rank.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import resource
import signal
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's code first (benchmarks/harness.py)

from benchmarks.harness import (  # noqa: E402
    AMOUNT_MINOR,
    AMOUNT_TEXT,
    BITS_PER_BYTE_8N1,
    CURRENCY_NUMERIC,
    CUSTOMER_SECONDS,
    PACED_BAUDRATE,
    exit_on_sigterm,
    filesystem_of,
    fmt,
    machine_line,
    mb,
    p50,
    percentile,
    proc_status_kb,
    simulator,
    stack_helpers,
    supervisord_pid,
    use_this_repo,
    v2_simulator_args,
)

DEFAULT_PAYMENTS = 200  # about a minute in all
QUICK_PAYMENTS = 30  # about 15 s

DRIVER_START_TIMEOUT_S = 10.0
DRIVER_CLOSE_TIMEOUT_S = 5.0
PAY_TIMEOUT_S = 15.0  # one payment, driver rows (the driver's own timeout is below it)
DRIVER_TRANSACTION_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 30.0  # one payment, end-to-end row
LINK_UP_TIMEOUT_S = 30.0
MAX_CONSECUTIVE_FAILURES = 3  # a broken setup stops early instead of timing out N times

# For the theoretical wire time of a Concert V2 payment.
V2_FRAME_OVERHEAD = 3  # STX + ETX + LRC


@dataclasses.dataclass
class Row:
    """What one setup measured."""

    setup: str
    totals_ms: list[float] = dataclasses.field(default_factory=list)
    connect_ms: list[float] = dataclasses.field(default_factory=list)
    request_ms: list[float] = dataclasses.field(default_factory=list)
    wait_ms: list[float] = dataclasses.field(default_factory=list)
    first_ms: float | None = None
    failures: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    in_a_row: int = 0  # failures since the last success

    def failed(self, why: str) -> bool:
        """Count a failed payment; True when so many came in a row that the setup stops."""
        self.failures.append(why)
        self.in_a_row += 1
        if self.in_a_row < MAX_CONSECUTIVE_FAILURES:
            return False
        self.notes.append(f"stopped after {self.in_a_row} failures in a row")
        return True

    def succeeded(self) -> None:
        self.in_a_row = 0


# --- driver rows -------------------------------------------------------------------------


async def measure_driver(
    row: Row, pay: Callable[[Any], Awaitable[Any]], payments: int, prefix: str
) -> None:
    """One warm-up payment, then ``payments`` more, one after the other."""
    from tp_manager.terminal.model import PaymentRequest

    for index in range(payments + 1):
        request = PaymentRequest(
            amount=AMOUNT_MINOR, currency_numeric=CURRENCY_NUMERIC, order_id=f"{prefix}-{index}"
        )
        try:
            result = await asyncio.wait_for(pay(request), PAY_TIMEOUT_S)
        except Exception as exc:  # a failed payment is counted and shown, never dropped
            if row.failed(f"{type(exc).__name__}: {exc}"):
                return
            continue
        row.succeeded()
        if not result.accepted:
            row.failures.append(f"status {result.status}")
            continue
        t = result.timings
        if index == 0:
            row.first_ms = t.total_ms
            continue
        row.totals_ms.append(t.total_ms)
        row.connect_ms.append(t.connect_ms)
        row.request_ms.append(t.request_ms)
        row.wait_ms.append(t.wait_ms)


async def bench_v2(row: Row, port: str, payments: int, prefix: str) -> None:
    from tp_manager.concert_v2.terminal import ConcertV2Terminal
    from tp_manager.terminal.model import LinkState

    terminal = ConcertV2Terminal(
        port,
        baudrate=PACED_BAUDRATE,
        bytesize=8,
        parity="none",
        stopbits=1,
        transaction_timeout=DRIVER_TRANSACTION_TIMEOUT_S,
    )
    try:
        await asyncio.wait_for(terminal.start(), DRIVER_START_TIMEOUT_S)
        if terminal.link_state is not LinkState.UP:
            raise RuntimeError(f"Concert V2 link to {port} is {terminal.link_state}")
        await measure_driver(row, terminal.pay, payments, prefix)
    finally:
        await asyncio.wait_for(terminal.close(), DRIVER_CLOSE_TIMEOUT_S)


async def bench_v3(row: Row, host: str, port: int, payments: int) -> None:
    from tp_manager.concert_v3.terminal import ConcertV3Terminal

    terminal = ConcertV3Terminal(host, port, transaction_timeout=DRIVER_TRANSACTION_TIMEOUT_S)
    try:
        await asyncio.wait_for(terminal.start(), DRIVER_START_TIMEOUT_S)
        await measure_driver(row, terminal.pay, payments, "BENCH-V3")
    finally:
        await asyncio.wait_for(terminal.close(), DRIVER_CLOSE_TIMEOUT_S)


def v2_wire_bytes() -> tuple[int, int, int]:
    """Bytes of one Concert V2 payment on the line: (request exchange, answer exchange,
    of which the terminal sends).  Request exchange: ENQ, ACK, frame, ACK, EOT; answer
    exchange: ENQ, ACK, full-answer frame, ACK, EOT."""
    from tp_manager.concert_v2 import constants as c

    request_frame = c.REQUEST_LENGTH + V2_FRAME_OVERHEAD
    answer_frame = c.FULL_ANSWER_LENGTH + V2_FRAME_OVERHEAD
    assert (request_frame, answer_frame) == (37, 83)
    request_exchange = 1 + 1 + request_frame + 1 + 1
    answer_exchange = 1 + 1 + answer_frame + 1 + 1
    from_terminal = 2 + (1 + answer_frame + 1)  # its two ACKs; its ENQ, frame and EOT
    return request_exchange, answer_exchange, from_terminal


def run_v2(workdir: Path, payments: int, *, paced: bool) -> Row:
    name = "v2-paced" if paced else "v2-unpaced"
    label = "V2 driver, pty, paced 9600 8N1" if paced else "V2 driver, pty, unpaced"
    row = Row(label)
    with simulator(workdir, name, v2_simulator_args(paced=paced)) as where:
        asyncio.run(bench_v2(row, where.removeprefix("pty="), payments, f"BENCH-{name}"))
    if paced:
        byte_ms = BITS_PER_BYTE_8N1 / PACED_BAUDRATE * 1000.0
        req, ans, from_terminal = v2_wire_bytes()
        row.notes.append(
            f"wire time at {PACED_BAUDRATE} baud, {BITS_PER_BYTE_8N1} bits/byte "
            f"({byte_ms:.4f} ms/byte): request exchange {req} B = {req * byte_ms:.1f} ms, "
            f"answer exchange {ans} B = {ans * byte_ms:.1f} ms, "
            f"one payment {req + ans} B = {(req + ans) * byte_ms:.1f} ms"
        )
        total_p50 = p50(row.totals_ms)
        paced_ms = from_terminal * byte_ms
        over = "-" if total_p50 is None else f"{total_p50 - paced_ms:.1f}"
        row.notes.append(
            f"--pace paces only the simulator's {from_terminal} B ({paced_ms:.1f} ms); the "
            f"driver's {req + ans - from_terminal} B cross the pty at once (a pty has no baud "
            f"rate). p50 minus the paced {paced_ms:.1f} ms = {over} ms; on a real cable expect "
            f"about the unpaced p50 + {(req + ans) * byte_ms:.1f} ms"
        )
    return row


def run_v3(workdir: Path, payments: int) -> Row:
    from tp_manager.concert_v3 import transport
    from tp_manager.simulator import concert_v3 as sim_v3

    row = Row("V3 driver, loopback TCP")
    args = ["--protocol", "concert-v3", "--listen", "127.0.0.1:0"]
    args += ["--pay-seconds", f"{CUSTOMER_SECONDS:g}"]
    with simulator(workdir, "v3", args) as where:
        host, _, port = where.removeprefix("tcp=").rpartition(":")
        asyncio.run(bench_v3(row, host, int(port), payments))
    settle_sim = sim_v3.REQUEST_SETTLE_S * 1000
    settle_drv = transport.ANSWER_SETTLE_S * 1000
    row.notes.append(
        f"includes {settle_sim + settle_drv:.0f} ms of protocol timers: the simulator waits "
        f"{settle_sim:.0f} ms after a complete request for more fields (in wait), the driver "
        f"{settle_drv:.0f} ms after a complete answer for trailing fields (ANSWER_SETTLE_S)"
    )
    return row


# --- end-to-end row ------------------------------------------------------------------------


def run_stack(workdir: Path, payments: int) -> tuple[Row, list[str]]:
    """HTTP POSTs through the supervised connector; returns the row and RSS lines."""
    stack_helper = stack_helpers()
    hipay_stub, running_stack, wait_for = (
        stack_helper.hipay_stub,
        stack_helper.running_stack,
        stack_helper.wait_for,
    )

    row = Row("HTTP POST, supervised connector")
    rss: list[str] = []
    sim_args = v2_simulator_args(paced=False)
    prefix = "BENCH-E2E"
    with simulator(workdir, "e2e", sim_args) as where:
        pty = where.removeprefix("pty=")
        row.notes.append(
            f"simulator started by this script (--pay-seconds {CUSTOMER_SECONDS:g}, unpaced) "
            f"and tp-manager pointed at its pty (serial_port: {pty}): the supervised one of "
            "serial_port: simulator always takes the default 1 s customer time. One new HTTP "
            "connection per payment (urllib, Basic auth); the reply waits for the journal and "
            "the HiPay stub's acknowledgement (notificationHipaySent checked)"
        )
        started = time.monotonic()
        with (
            hipay_stub(workdir) as stub,
            running_stack(
                workdir / "stack",
                serial_port=pty,
                hipay_base_url=stub.url + "/",
                hipay_login=stub.login,
                hipay_password=stub.password,
            ) as stack,
        ):
            stack.wait_running(["tp-manager", "supervisor-agent"])

            def link_up() -> bool:
                status, body = stack.request("GET", "/check", timeout_s=10)
                return bool(status == 200 and body.get("link") == "up")

            wait_for(link_up, LINK_UP_TIMEOUT_S, "the terminal link")
            journal_dir = stack.data_dir.resolve()
            row.notes.append(
                f"journal (SQLite, synchronous=FULL) in {journal_dir}, on "
                f"{filesystem_of(journal_dir)}"
            )
            row.notes.append(
                f"connector start (supervisord up, API healthy, link up): "
                f"{time.monotonic() - started:.1f} s"
            )
            for index in range(payments + 1):
                order_id = f"{prefix}-{index}"
                body_in = {"amount": AMOUNT_TEXT, "order_id": order_id}
                t0 = time.perf_counter()
                try:
                    status, body = stack.request("POST", "/", body_in, timeout_s=HTTP_TIMEOUT_S)
                except Exception as exc:  # counted and shown
                    status, body = 0, f"{type(exc).__name__}: {exc}"
                elapsed = (time.perf_counter() - t0) * 1000.0
                ok = (
                    status == 200
                    and isinstance(body, dict)
                    and body.get("paymentStatus") == "SUCCESS"
                    and body.get("notificationHipaySent") is True
                )
                if not ok:
                    if row.failed(f"HTTP {status}: {str(body)[:200]}"):
                        break
                    continue
                row.succeeded()
                if index == 0:
                    row.first_ms = elapsed
                else:
                    row.totals_ms.append(elapsed)
            driver_totals = driver_totals_from_log(stack.logs("tp-manager"), prefix)
            if driver_totals:
                row.notes.append(
                    "of which the V2 driver inside tp-manager (terminal_ms of its "
                    "tp_manager.transaction.finished): "
                    f"p50 {percentile(driver_totals, 50):.1f} ms, "
                    f"p95 {percentile(driver_totals, 95):.1f} ms"
                )
            for name in ("tp-manager", "supervisor-agent"):
                pid = stack.pid_of(name)
                rss.append(
                    f"{name} (pid {pid}): VmRSS {mb(proc_status_kb(pid, 'VmRSS'))}, "
                    f"peak VmHWM {mb(proc_status_kb(pid, 'VmHWM'))}"
                )
            pid = supervisord_pid(stack.data_dir)
            rss.append(
                f"supervisord (pid {pid}): VmRSS {mb(proc_status_kb(pid, 'VmRSS'))}, "
                f"peak VmHWM {mb(proc_status_kb(pid, 'VmHWM'))}"
            )
    return row, rss


def run_setup(label: str, setup: Callable[[], Row]) -> Row:
    """Run one setup; a setup that cannot run at all is a row with its error, not a crash."""
    try:
        return setup()
    except Exception as exc:
        return Row(label, failures=[f"setup failed: {type(exc).__name__}: {exc}"])


def driver_totals_from_log(text: str, prefix: str) -> list[float]:
    """The driver's total_ms (``terminal_ms`` of tp-manager's one line per payment) of the
    measured payments (the warm-up, ``-0``, left out), from the JSON log."""
    totals = []
    for line in text.splitlines():
        if '"tp_manager.transaction.finished"' not in line:
            continue
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            order_id = str(entry.get("order_id", ""))
            terminal_ms = entry.get("terminal_ms")  # absent when the payment failed
            measured = order_id.startswith(prefix + "-") and order_id != f"{prefix}-0"
            if measured and isinstance(terminal_ms, int | float):
                totals.append(float(terminal_ms))
    return totals


# --- output --------------------------------------------------------------------------------

WIDTH = 100

COLUMNS = (
    ("setup", 33),
    ("ok", 4),
    ("fail", 4),
    ("p50", 7),
    ("p95", 7),
    ("max", 7),
    ("1st", 7),
    ("conn50", 7),
    ("req50", 7),
    ("wait50", 7),
)


def table_line(cells: Sequence[str]) -> str:
    parts = []
    for (_, width), cell in zip(COLUMNS, cells, strict=True):
        parts.append(cell.ljust(width) if width == COLUMNS[0][1] else cell.rjust(width))
    return " ".join(parts).rstrip()


def print_table(rows: Sequence[Row], out: IO[str]) -> None:
    print(table_line([name for name, _ in COLUMNS]), file=out)
    print("-" * len(table_line([name for name, _ in COLUMNS])), file=out)
    for number, row in enumerate(rows, start=1):
        values = row.totals_ms
        cells = [
            f"{number} {row.setup}",
            str(len(values)),
            str(len(row.failures)),
            fmt(p50(values)),
            fmt(percentile(values, 95) if values else None),
            fmt(max(values) if values else None),
            fmt(row.first_ms),
            fmt(p50(row.connect_ms)),
            fmt(p50(row.request_ms)),
            fmt(p50(row.wait_ms)),
        ]
        print(table_line(cells), file=out)


def print_notes(rows: Sequence[Row], out: IO[str]) -> None:
    for number, row in enumerate(rows, start=1):
        lines = list(row.notes)
        if row.failures:
            shown = sorted(set(row.failures))[:3]
            lines.append(f"{len(row.failures)} failed: {'; '.join(shown)}")
        for line in lines:
            print(wrap(f"row {number}: {line}"), file=out)


def wrap(text: str) -> str:
    return textwrap.fill(
        text, WIDTH, initial_indent="  ", subsequent_indent="    ", break_on_hyphens=False
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--payments",
        type=int,
        metavar="N",
        help=f"measured payments per setup (default {DEFAULT_PAYMENTS}, "
        f"{QUICK_PAYMENTS} with --quick), after one warm-up payment",
    )
    parser.add_argument("--quick", action="store_true", help="fewer payments (under ~30 s)")
    parser.add_argument(
        "--workdir",
        metavar="DIR",
        type=Path,
        help="where the temporary files go, the connector's journal included (default: the "
        "system temp dir; its filesystem decides what the journal's fsync costs)",
    )
    args = parser.parse_args(argv)
    payments = args.payments
    if payments is None:
        payments = QUICK_PAYMENTS if args.quick else DEFAULT_PAYMENTS
    if payments < 1:
        parser.error("--payments must be at least 1")

    use_this_repo()
    from common.logging import configure_logging

    signal.signal(signal.SIGTERM, exit_on_sigterm)
    out = sys.stdout
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ecr-bench-", dir=args.workdir) as tmp:
        workdir = Path(tmp)
        with open(workdir / "drivers.log", "w") as driver_log:
            # The in-process drivers log exactly as tp-manager does (JSON, redacted, INFO),
            # into a file: logging is part of their real cost.
            configure_logging("benchmark", "info", stream=driver_log)
            print(machine_line("ECR connector payment latency"), file=out)
            header = (
                f"Simulated customer time: {CUSTOMER_SECONDS:g} s (--pay-seconds "
                f"{CUSTOMER_SECONDS:g}, the simulator's smallest; simulators log at WARNING). "
                f"Payment: {AMOUNT_TEXT} EUR debit, approved, full answer. {payments} measured "
                "payments per setup, one after the other, after 1 warm-up payment (column 1st, "
                "not in the statistics). Times in ms, p50/p95 nearest-rank. Rows 1-3: the "
                "driver's own PaymentResult.timings (driver in this process, logging JSON at "
                "INFO to a file as tp-manager does). Row 4: HTTP round trip seen by the client."
            )
            print(textwrap.fill(header, WIDTH, break_on_hyphens=False), file=out, flush=True)
            setups: list[tuple[str, Callable[[], Row]]] = [
                ("V2 driver, pty, unpaced", lambda: run_v2(workdir, payments, paced=False)),
                ("V2 driver, pty, paced 9600 8N1", lambda: run_v2(workdir, payments, paced=True)),
                ("V3 driver, loopback TCP", lambda: run_v3(workdir, payments)),
            ]
            rows = [run_setup(label, setup) for label, setup in setups]
            rss: list[str] = []

            def stack_setup() -> Row:
                row, rss_lines = run_stack(workdir, payments)
                rss.extend(rss_lines)
                return row

            rows.append(run_setup("HTTP POST, supervised connector", stack_setup))
    print(file=out)
    print_table(rows, out)
    print(file=out)
    print_notes(rows, out)
    print(file=out)
    print("Memory:", file=out)
    self_peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    print(
        f"  benchmark process (drivers of rows 1-3 run in it): peak RSS {mb(self_peak_kb)}",
        file=out,
    )
    for line in rss:
        print(f"  row 4 {line}", file=out)
    print(f"\nWall time: {time.monotonic() - began:.1f} s", file=out)
    failed = any(row.failures or not row.totals_ms for row in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
