"""Many terminals at once: N simulated Concert V3 terminals paid concurrently through one
connector, and the latency the connector adds to each payment.

Run from the repository root::

    .venv/bin/python benchmarks/many_terminals.py                  # 50 terminals, both setups
    .venv/bin/python benchmarks/many_terminals.py --setup burst --rounds 5 --workdir /var/tmp
    .venv/bin/python benchmarks/many_terminals.py --in-process     # the old one-process layout

By default every part runs in its own process, as in a shop: ``ecr-connector run`` under
supervisord (the agent and tp-manager, each its own process), the N+1 simulators in one
helper process (``--serve-simulators``, loopback TCP, one ledger each), HiPay in its own
(hipay_standin.py: a raw HTTP/1.1 server that acknowledges each notification in a few
tens of microseconds and counts them; ``--hipay stub`` puts the product's aiohttp stub,
about 1 ms a notification, in its place), and the registers (register_http.LaneRegister:
raw HTTP/1.1, one keep-alive connection per lane, all from 127.0.0.1 as a POS backend
driving every lane) in this one.  The registers speak the desktop API by default
(``POST /`` naming the lane's ``terminal``; the answer waits for HiPay's acknowledgement,
which its ``notificationHipaySent`` reports); ``--api pos`` makes them POS API registers
(``POST /v1/connector/order``, the terminal named by ``host_information``, the API the
seeds give networked Concert V3 terminals), whose answer does not wait for HiPay: its
``OrderResponse`` shows nothing of the notification.  ``--in-process`` runs the
connector's parts, the simulators and the registers in this process's one event loop
instead (tests/terminals/conftest.py), which then measures itself as much as the
connector.

Two setups:

* ``burst``: each round posts one payment to every terminal at the same moment, the
  customer taking 0 s: the worst case, every lane's payment queued behind the others.
* ``lanes``: each terminal is a lane paying ``--rounds`` customers one after the other,
  each customer taking ``--customer-seconds`` at the terminal, the lanes starting at random
  moments within one customer time: up to N payments in flight, arriving spread as in a
  shop.  Between two customers the cashier scans the next basket: a random time, drawn
  for each customer from 0 to twice ``--scan-seconds`` (seeded, the same run after run).
  ``--scan-seconds 0`` gives *lockstep* lanes: two lanes whose start offsets fall within
  a few milliseconds of each other then meet at every round, which no shop sees (its
  customers never take exactly the same time) and which makes the slowest percentiles
  the story of those few lanes.

Before either, each lane pays one warm-up customer, all lanes at once, kept out of the
figures (``--no-warmup`` counts them): a start leaves lazy set-up to the first payments,
which fast_path.py measures as a start's cost.  ``--slowest N`` prints where the N slowest
payments' added latency went, phase by phase from the processes' log lines, and
``--phases`` each phase's percentiles over every payment.

*Added latency* is the register's round trip, timed on the wire (from just before the
request is written to the arrival of its answer's last byte), minus the driver's own
exchange with the terminal (``terminal_ms`` of tp-manager's
``tp_manager.transaction.finished`` line; the journal's ``timings.total_ms`` in-process):
the API, the journal's fsyncs, ZeroMQ both ways, tp-manager's own work and the HiPay
notification the answer waits for.  A payment is *correct* when it is accepted,
journaled on its own terminal, that terminal's simulator saw exactly one request per
customer, and (with the stand-in) HiPay acknowledged its notification exactly once.
Percentiles are nearest-rank.  Exit status 1 if any payment was not correct.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import importlib
import json
import math
import os
import random
import signal
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TERMINALS = 50
DEFAULT_ROUNDS = 5
DEFAULT_CUSTOMER_S = 2.0  # lanes: a quick customer; a real one takes 5-20 s
DEFAULT_SCAN_S = 1.0  # lanes: mean time between two customers (a quick basket)
TARGET_P99_MS = 20.0  # the target for the added latency
DEFAULT_NOTIFICATION_BUDGET_S = 3.0  # the config's default
TRANSACTION_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 30.0
LINK_UP_TIMEOUT_S = 60.0
AMOUNT_TEXT, AMOUNT_MINOR = "9.99", "999"
SEED = 15  # the lanes' start offsets: the same spread run after run
USER, PASSWORD = "register", "s3cret-pass"
HIPAY_LOGIN, HIPAY_PASSWORD = "hipay-login", "hipay-pass"


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100.0 * len(ordered))) - 1]


def imported(name: str) -> Any:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # tests/ is not installed
    return importlib.import_module(name)


def run_loop(main: Any) -> Any:
    """Run ``main`` on the connector's own event loop (uvloop where installed): the
    simulators and the registers share the machine's cores with the connector, and the
    less CPU they take, the less their own cost shows in the connector's latency."""
    return imported("common.event_loop").run(main)


@dataclass(frozen=True, slots=True)
class Trip:
    """One payment as its register saw it."""

    ok: bool  # accepted, and (in-process) journaled on its own terminal
    ms: float  # the round trip
    sent_at: float  # epoch s, to line up with the log times
    received_at: float


@dataclass
class Setup:
    name: str  # "burst" | "lanes"
    terminals: int
    rounds: int
    customer_s: float
    budget_s: float
    scan_s: float = 0.0  # lanes: mean time between two customers; 0 = lockstep
    warmup: bool = True  # each lane pays one customer first, not counted
    api: str = "desktop"  # "desktop" (POST /, waits for HiPay) | "pos" (/v1/connector/order)
    warmup_trips: dict[str, float] = field(default_factory=dict)  # order id -> ms
    round_trips: dict[str, float] = field(default_factory=dict)  # order id -> ms
    terminal_ms: dict[str, float] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU s, measured phase
    wall_s: float = 0.0
    sent: dict[str, tuple[float, float]] = field(default_factory=dict)  # id -> epoch s out, back
    slowest: list[str] = field(default_factory=list)  # where the slowest payments' time went
    phases: list[str] = field(default_factory=list)  # each phase's percentiles (--phases)

    @property
    def names(self) -> list[str]:
        return [f"t{n:02d}" for n in range(self.terminals)]

    def orders(self, name: str) -> list[str]:
        """The counted payments of one lane."""
        return [f"{self.name.upper()}-{r}-{name}" for r in range(self.rounds)]

    def all_orders(self, name: str) -> list[str]:
        """Every payment of one lane, its warm-up first."""
        warmup = [f"{self.name.upper()}-WARMUP-{name}"] if self.warmup else []
        return warmup + self.orders(name)

    @property
    def label(self) -> str:
        text = f"{self.terminals} V3 {self.name} x{self.rounds}, cust {self.customer_s:g} s"
        text += f", scan {self.scan_s:g} s" if self.name == "lanes" else ""
        return text + (", POS API" if self.api == "pos" else "")


# --- the simulators' process --------------------------------------------------------


async def serve_simulators(count: int, pay_seconds: float) -> list[list[str]]:
    """``count`` Concert V3 simulators in one loop until SIGTERM; the amounts each saw."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import logging

    import structlog

    from tp_manager.simulator.concert_v3 import run_tcp_simulator
    from tp_manager.simulator.concert_v3_family import Family, Ledger
    from tp_manager.simulator.scenarios import Scenario

    structlog.configure(  # warnings only, and never on stdout (the READY line's)
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    loop = asyncio.get_running_loop()
    ledgers = [Ledger() for _ in range(count)]

    def announcer(ready: asyncio.Future[int]) -> Callable[[str, int], None]:
        return lambda _host, port: ready.set_result(port)

    ports: list[asyncio.Future[int]] = [loop.create_future() for _ in range(count)]
    tasks = [
        asyncio.create_task(
            run_tcp_simulator(
                "127.0.0.1",
                0,
                Scenario.APPROVE,
                0.5,
                announcer(ready),
                pay_seconds=pay_seconds,
                family=Family.named(),
                ledger=ledger,
            )
        )
        for ready, ledger in zip(ports, ledgers, strict=True)
    ]
    async with asyncio.timeout(READY_TIMEOUT_S):
        bound = [await ready for ready in ports]
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("READY " + " ".join(str(port) for port in bound), flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return [[request.get("CB", "") for request in ledger.requests] for ledger in ledgers]


@dataclass(frozen=True)
class Hipay:
    """Where HiPay listens, with the credentials the connector sends it; ``counts``: the
    stand-in's acknowledgements per order, written when it stops (None for the stub)."""

    url: str
    login: str
    password: str
    counts: Path | None


@contextlib.contextmanager
def hipay(workdir: Path, which: str) -> Iterator[Hipay]:
    """HiPay in its own process: the lean stand-in (benchmarks/hipay_standin.py), or the
    product's aiohttp stub (``ecr-connector hipay-stub``) for comparison."""
    if which == "stub":
        with imported("tests.stack").hipay_stub(workdir) as stub:
            yield Hipay(stub.url, stub.login, stub.password, None)
        return
    counts = workdir / "hipay-counts.json"
    argv = [sys.executable, str(REPO / "benchmarks" / "hipay_standin.py")]
    argv += ["--login", HIPAY_LOGIN, "--password", HIPAY_PASSWORD, "--counts", str(counts)]
    with imported("tests.stack").ready_command(argv, workdir / "hipay.err") as (_, port):
        yield Hipay(f"http://127.0.0.1:{port}", HIPAY_LOGIN, HIPAY_PASSWORD, counts)


@contextlib.contextmanager
def simulators(workdir: Path, count: int, pay_seconds: float) -> Iterator[tuple[list[int], Path]]:
    """The simulators' process; yields their ports and where their ledgers will be."""
    ledger_path = workdir / "ledgers.json"
    argv = [sys.executable, __file__, "--serve-simulators", str(count)]
    argv += ["--customer-seconds", str(pay_seconds), "--ledgers", str(ledger_path)]
    with imported("tests.stack").ready_command(argv, workdir / "simulators.err") as (_, ports):
        yield [int(port) for port in ports.split()], ledger_path


# --- the registers ------------------------------------------------------------------


async def warm_up(setup: Setup, pay: Any) -> None:
    """Each lane's first payment after the start, all lanes at once, kept out of the
    figures: a start leaves lazy set-up to the first payments (the register's connection
    to the API, tp-manager's to each terminal, the agent's to HiPay, code paths run for
    the first time), which would otherwise stand as the slowest percentiles of a run of
    250.  benchmarks/fast_path.py measures a start's cost (``run`` -> first payment)."""

    async def one(name: str) -> None:
        order_id = setup.all_orders(name)[0]
        trip = await pay(name, order_id)
        if trip.ok:
            setup.warmup_trips[order_id] = trip.ms
        else:
            setup.wrong.append(order_id)

    if setup.warmup:
        await asyncio.gather(*(one(n) for n in setup.names))


async def drive(setup: Setup, pay: Any) -> None:
    """Post every payment of the setup through ``pay(terminal, order_id) -> Trip``."""

    async def one(name: str, order_id: str) -> None:
        trip = await pay(name, order_id)
        if trip.ok:
            setup.round_trips[order_id] = trip.ms
            setup.sent[order_id] = (trip.sent_at, trip.received_at)
        else:
            setup.wrong.append(order_id)

    started = time.perf_counter()
    if setup.name == "burst":
        for r in range(setup.rounds):
            await asyncio.gather(*(one(n, setup.orders(n)[r]) for n in setup.names))
    else:
        spread = random.Random(SEED)

        async def lane(name: str) -> None:
            scans = random.Random(f"{SEED}-{name}")  # its own: draws independent of timing
            await asyncio.sleep(spread.uniform(0, setup.customer_s))
            for r, order_id in enumerate(setup.orders(name)):
                if r and setup.scan_s:
                    await asyncio.sleep(scans.uniform(0, 2 * setup.scan_s))
                await one(name, order_id)

        await asyncio.gather(*(lane(n) for n in setup.names))
    setup.wall_s = time.perf_counter() - started


def check_notifications(setup: Setup, counts: dict[str, int]) -> None:
    """HiPay acknowledged each payment's notification exactly once."""
    for name in setup.names:
        for order_id in setup.all_orders(name):
            if counts.get(order_id) != 1:
                setup.wrong.append(f"{order_id}: HiPay acknowledged {counts.get(order_id, 0)}")


def check_ledgers(setup: Setup, ledgers: list[list[str]]) -> None:
    """One request per customer on each terminal, each for the amount asked (index 0 is the
    configured terminal, which no order names)."""
    for name, amounts in zip(setup.names, ledgers[1:], strict=True):
        if amounts != [AMOUNT_MINOR] * len(setup.all_orders(name)):
            setup.wrong.append(f"{name}: the terminal saw {amounts}")


def terminal_ms_from_log(text: str) -> dict[str, float]:
    """Each order's ``terminal_ms`` from tp-manager's JSON log (before it carried one: the
    ``total_ms`` of the driver's ``concert_v3.transaction.done``, then at info)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if '"tp_manager.transaction.finished"' in line:
            key = "terminal_ms"
        elif '"concert_v3.transaction.done"' in line:
            key = "total_ms"
        else:
            continue
        with contextlib.suppress(ValueError, KeyError, TypeError):
            entry = json.loads(line)
            found.setdefault(str(entry["order_id"]), float(entry[key]))
    return found


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The gaps between a payment's log lines (benchmarks/log_phases.py), the terminal's own
# exchange left out: (from, to, label).
SLOW_GAPS: tuple[tuple[str, str, str], ...] = (
    ("client.sent", "api.payment.started", "in"),
    ("api.payment.started", "driver.called", "to driver"),
    ("driver.answered", "tp_manager.transaction.finished", "tp after"),
    ("tp_manager.transaction.finished", "api.payment.finished", "back+journal"),
    ("api.payment.finished", "hipay.notify.delivered", "HiPay"),
    ("hipay.notify.delivered", "client.received", "out"),
)
# A POS API answer does not wait for HiPay: it leaves after the journal's outcome.
POS_GAPS: tuple[tuple[str, str, str], ...] = (
    *SLOW_GAPS[:4],
    ("api.payment.finished", "client.received", "out"),
)


def gaps_of(setup: Setup) -> tuple[tuple[str, str, str], ...]:
    return POS_GAPS if setup.api == "pos" else SLOW_GAPS


NEIGHBOUR_S = 0.02  # another payment sent this close to one meets it in the connector


def phase_gaps(setup: Setup, log_dir: Path) -> dict[str, dict[str, float]]:
    """Each counted payment's :data:`SLOW_GAPS` in ms (label -> ms), from the processes'
    log lines; a gap whose line is missing is left out."""
    log_phases = imported("benchmarks.log_phases")
    index = log_phases.LogIndex.load(Path(log_dir))
    gaps: dict[str, dict[str, float]] = {}
    for order_id, (sent_at, received_at) in setup.sent.items():
        events = index.events_of(log_phases.Payment(order_id, sent_at, received_at))
        gaps[order_id] = {
            label: (events[end] - events[start]) * 1000
            for start, end, label in gaps_of(setup)
            if start in events and end in events
        }
    return gaps


def added_ms(setup: Setup) -> dict[str, float]:
    return {
        order_id: ms - setup.terminal_ms[order_id]
        for order_id, ms in setup.round_trips.items()
        if order_id in setup.terminal_ms and order_id in setup.sent
    }


def slowest_payments(setup: Setup, gaps: dict[str, dict[str, float]], count: int) -> list[str]:
    """Where the ``count`` slowest payments' added latency went, phase by phase; and how
    many other payments were sent within :data:`NEIGHBOUR_S` of each (the ones whose CPU
    it shared)."""
    added = added_ms(setup)
    sent_times = sorted(sent for sent, _ in setup.sent.values())
    lines = []
    for order_id in sorted(added, key=added.__getitem__, reverse=True)[:count]:
        sent_at, _ = setup.sent[order_id]
        phases = " ".join(f"{label} {ms:.1f}" for label, ms in gaps[order_id].items())
        lo = bisect.bisect_left(sent_times, sent_at - NEIGHBOUR_S)
        hi = bisect.bisect_right(sent_times, sent_at + NEIGHBOUR_S)
        lines.append(
            f"{order_id}: added {added[order_id]:.1f} ms = {phases}; "
            f"{hi - lo - 1} other payments sent within {NEIGHBOUR_S * 1000:g} ms"
        )
    return lines


def phase_table(setup: Setup, gaps: dict[str, dict[str, float]]) -> list[str]:
    """Each phase's p50/p90/p99 over every counted payment, and its mean over the payments
    at or above the added p95: which phases the slow ones lost their time in."""
    added = added_ms(setup)
    if not added:
        return []
    p95 = percentile(list(added.values()), 95)
    top = [order_id for order_id, ms in added.items() if ms >= p95]
    lines = [f"{'phase':14} {'p50':>6} {'p90':>6} {'p99':>6} {'max':>6}  mean of the >= p95"]
    for _, _, label in gaps_of(setup):
        values = [g[label] for g in gaps.values() if label in g]
        if not values:
            continue
        in_top = [gaps[o][label] for o in top if label in gaps[o]]
        mean_top = sum(in_top) / len(in_top) if in_top else math.nan
        lines.append(
            f"{label:14} {percentile(values, 50):6.2f} {percentile(values, 90):6.2f} "
            f"{percentile(values, 99):6.2f} {max(values):6.2f}  {mean_top:6.2f}"
        )
    return lines


async def run_processes(
    setup: Setup,
    workdir: Path,
    slowest: int = 0,
    which_hipay: str = "standin",
    phases: bool = False,
) -> None:
    LaneRegister = imported("benchmarks.register_http").LaneRegister
    stack_helper = imported("tests.stack")
    journal_module = imported("supervisor_agent.journal")
    with (
        simulators(workdir, setup.terminals + 1, setup.customer_s) as (ports, ledger_path),
        hipay(workdir, which_hipay) as notified,
    ):
        named = {
            name: {"protocol": "concert-v3", "host": "127.0.0.1", "port": port}
            for name, port in zip(setup.names, ports[1:], strict=True)
        }
        with stack_helper.running_stack(
            workdir / "stack",
            serial_port=None,
            terminal_protocol="concert-v3",
            terminal_host="127.0.0.1",
            terminal_port=ports[0],
            terminals=named,
            api_username=USER,
            api_password=PASSWORD,
            hipay_base_url=notified.url + "/",
            hipay_login=notified.login,
            hipay_password=notified.password,
            notification_budget=setup.budget_s,
            transaction_timeout=TRANSACTION_TIMEOUT_S,
        ) as stack:
            stack.wait_running(["tp-manager", "supervisor-agent"])
            stack_helper.wait_for(
                lambda: stack.request("GET", "/check")[1].get("link") == "up",
                LINK_UP_TIMEOUT_S,
                "the terminal link",
            )
            pids = {
                "tp-manager": stack.pid_of("tp-manager"),
                "agent": stack.pid_of("supervisor-agent"),
                "supervisord": stack.proc.pid,
            }
            port = urllib.parse.urlsplit(stack.base_url).port
            assert port is not None
            registers = {
                name: LaneRegister(port, USER, PASSWORD, name)
                if setup.api == "desktop"
                else LaneRegister(port, USER, PASSWORD, pos_terminal=("127.0.0.1", where["port"]))
                for name, where in named.items()
            }

            async def pay(name: str, order_id: str) -> Trip:
                reply = await registers[name].pay(order_id, AMOUNT_TEXT, HTTP_TIMEOUT_S)
                ok = reply.status == 200 and isinstance(reply.body, dict)
                ok = ok and reply.body.get("transactionState") == "accepted"
                return Trip(ok, reply.elapsed_ms, reply.sent_at, reply.received_at)

            try:
                await warm_up(setup, pay)
                before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                await drive(setup, pay)
                setup.cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
            finally:
                for register in registers.values():
                    register.close()
        data_dir = stack.data_dir
        setup.terminal_ms = terminal_ms_from_log(stack.logs("tp-manager"))
    if slowest or phases:
        gaps = phase_gaps(setup, imported("common.paths").log_dir(data_dir))
        setup.slowest = slowest_payments(setup, gaps, slowest)
        setup.phases = phase_table(setup, gaps) if phases else []
    check_ledgers(setup, json.loads(ledger_path.read_text()))
    if notified.counts is not None:
        check_notifications(setup, json.loads(notified.counts.read_text()))
    journal = journal_module.Journal.open(data_dir)
    try:
        for name in setup.names:
            for order_id in setup.all_orders(name):
                record = journal.get(order_id)
                if record is None or record.terminal != name:
                    setup.wrong.append(f"{order_id}: journaled {record and record.terminal}")
    finally:
        journal.close()


async def run_in_process(setup: Setup, workdir: Path) -> None:
    """The former layout: everything in this process's loop (tests/terminals/conftest.py)."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    h = imported("tests.terminals.conftest")
    async with h.connector(
        workdir,
        setup.names,
        pay_seconds=setup.customer_s,
        notification_budget=setup.budget_s,
        transaction_timeout=TRANSACTION_TIMEOUT_S,
    ) as running:

        async def pay(name: str, order_id: str) -> Trip:
            started, sent_at = time.perf_counter(), time.time()
            status, body = await running.pay(name, order_id)
            ms, received_at = (time.perf_counter() - started) * 1000, time.time()
            record = running.journal.get(order_id)
            if status != 200 or body.get("transactionState") != "accepted" or record is None:
                return Trip(False, ms, sent_at, received_at)
            setup.terminal_ms[order_id] = float(record.result["timings"]["total_ms"])
            return Trip(record.terminal == name, ms, sent_at, received_at)

        await warm_up(setup, pay)
        before = time.process_time()
        await drive(setup, pay)
        setup.cpu = {"this process": time.process_time() - before}
        check_ledgers(
            setup,
            [
                [r.get("CB", "") for r in running.sims[name].ledger.requests]
                for name in ["default", *setup.names]
            ],
        )


# --- output -------------------------------------------------------------------------


def print_row(setup: Setup, layout: str) -> None:
    added = [
        ms - setup.terminal_ms[order_id]
        for order_id, ms in setup.round_trips.items()
        if order_id in setup.terminal_ms
    ]
    totals = list(setup.round_trips.values())
    cells = f"{setup.label:40} {len(totals):>4} {len(setup.wrong):>4}"
    if totals and added:
        cells += (
            f" {percentile(totals, 50):7.1f} {percentile(totals, 99):7.1f}"
            f" {percentile(added, 50):7.1f} {percentile(added, 95):7.1f}"
            f" {percentile(added, 99):7.1f} {len(totals) / setup.wall_s:6.1f}"
        )
    print(cells)
    cpu = ", ".join(f"{name} {s * 1000 / max(1, len(totals)):.2f}" for name, s in setup.cpu.items())
    waits = f"HiPay wait {setup.budget_s:g} s" if setup.api == "desktop" else "HiPay not awaited"
    print(f"    {layout}; {waits}; CPU ms per payment: {cpu}")
    if len(added) < len(totals):
        print(f"    {len(totals) - len(added)} payments without the driver's terminal_ms")
    warm = [
        ms - setup.terminal_ms[order_id]
        for order_id, ms in setup.warmup_trips.items()
        if order_id in setup.terminal_ms
    ]
    if warm:
        print(
            f"    warm-up, each lane's first payment after the start (not in the row): added "
            f"p50 {percentile(warm, 50):.1f} ms, max {max(warm):.1f} ms"
        )
    if setup.wrong:
        print(f"    not correct: {setup.wrong[:10]}")
    if setup.phases:
        print("    phases (ms, from the log lines; the terminal's own exchange left out):")
        for line in setup.phases:
            print(f"      {line}")
    if setup.slowest:
        print("    slowest (ms):")
        for line in setup.slowest:
            print(f"      {line}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terminals", type=int, default=DEFAULT_TERMINALS)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--setup", choices=["burst", "lanes", "both"], default="both")
    parser.add_argument(
        "--customer-seconds",
        type=float,
        default=DEFAULT_CUSTOMER_S,
        help="lanes: each customer's time at the terminal (burst: always 0)",
    )
    parser.add_argument(
        "--scan-seconds",
        type=float,
        default=DEFAULT_SCAN_S,
        help="lanes: mean time between two customers, each drawn from 0 to twice this "
        "(0: lockstep lanes)",
    )
    parser.add_argument(
        "--notification-budget",
        type=float,
        default=DEFAULT_NOTIFICATION_BUDGET_S,
        help="seconds an answer waits for HiPay (the config's notification_budget)",
    )
    parser.add_argument(
        "--api",
        choices=["desktop", "pos"],
        default="desktop",
        help="the registers' API: desktop (POST / naming its terminal; the answer waits for "
        "HiPay, as notificationHipaySent requires) or pos (POST /v1/connector/order naming "
        "its terminal by host_information; the answer does not wait for HiPay)",
    )
    parser.add_argument("--in-process", action="store_true", help="the one-process layout")
    parser.add_argument(
        "--hipay",
        choices=["standin", "stub"],
        default="standin",
        help="separate processes: HiPay is the lean stand-in (benchmarks/hipay_standin.py, "
        "the default) or the product's aiohttp stub (ecr-connector hipay-stub)",
    )
    parser.add_argument(
        "--warmup",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="each lane pays one customer first, all at once, not counted (default: yes)",
    )
    parser.add_argument(
        "--slowest",
        type=int,
        default=0,
        metavar="N",
        help="also print where the N slowest payments' added latency went (from the logs)",
    )
    parser.add_argument(
        "--phases",
        action="store_true",
        help="also print each phase's percentiles over every payment (from the logs)",
    )
    parser.add_argument("--workdir", help="where the journal goes (its filesystem sets fsync cost)")
    parser.add_argument("--serve-simulators", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ledgers", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.in_process and args.api != "desktop":
        parser.error("--in-process pays through the desktop API only")
    if args.serve_simulators:
        seen = run_loop(serve_simulators(args.serve_simulators, args.customer_seconds))
        Path(args.ledgers).write_text(json.dumps(seen))
        return 0
    names = ["burst", "lanes"] if args.setup == "both" else [args.setup]
    setups = [
        Setup(
            name,
            args.terminals,
            args.rounds,
            0.0 if name == "burst" else args.customer_seconds,
            args.notification_budget,
            0.0 if name == "burst" else args.scan_seconds,
            args.warmup,
            args.api,
        )
        for name in names
    ]
    layout = "one process" if args.in_process else "separate processes"
    harness = imported("benchmarks.harness")
    print(harness.machine_line("ECR connector many terminals"))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{'setup':40} {'ok':>4} {'bad':>4} {'rt50':>7} {'rt99':>7} "
        f"{'add50':>7} {'add95':>7} {'add99':>7} {'pay/s':>6}"
    )
    print("-" * 97)
    for setup in setups:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            if args.in_process:
                run_loop(run_in_process(setup, Path(tmp)))
            else:
                run_loop(run_processes(setup, Path(tmp), args.slowest, args.hipay, args.phases))
        print_row(setup, layout)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        "reference loop after: {:.1f} us best, {:.1f} us median".format(
            *harness.reference_loop_us()
        )
    )
    print(
        "\nms; rt50/rt99: the register's round trip; add50..add99: the latency the connector "
        "adds to the terminal's own exchange (round trip minus the driver's terminal_ms); "
        f"target add99 < {TARGET_P99_MS:g} ms; pay/s: payments answered per second of the run; "
        "reference loop: how fast Python ran on this machine before and after (a VM's slow "
        "spell raises every figure, the unchanged code's CPU per payment with it)."
    )
    return 0 if all(not s.wrong and s.round_trips for s in setups) else 1


if __name__ == "__main__":
    sys.exit(main())
