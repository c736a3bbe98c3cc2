"""The floor of the connector's shape: what a payment costs with its parts and no logic.

Issue 16 asks a payment through the connector to cost at most 1.5 ms of CPU and to add
at most 2 ms to a direct client's exchange.  The product owner fixed the shape: two
processes (an aiohttp API, a terminal process) talking over ZeroMQ, a journal on SQLite
fsynced before the terminal is woken and before the register is answered, and a HiPay
notification the answer waits for (``notificationHipaySent``).  This script builds that
shape with nothing else in it, and measures it the way ``fast_path.py`` measures the
connector:

* *api*: an aiohttp server; ``POST /`` reads the JSON order, commits a row (WAL,
  ``synchronous=FULL``: one fsync), asks the terminal process over a ZeroMQ DEALER,
  commits the outcome (one fsync), posts it to HiPay on a kept-alive aiohttp session,
  and answers JSON.  No auth, validation, logging, events, metrics or thread hand-offs.
* *terminal*: a ZeroMQ ROUTER that answers each request at once (no terminal: the
  direct client's own exchange, the floor of ``fast_path.py``, is left out, so this
  figure compares with the connector's *added* latency).
* *hipay*: an aiohttp server answering ``{}``.

Both ZeroMQ ends are the connector's own asyncio adapter (``common/loop_socket.py``),
so the floor carries what the connector's channel costs and nothing of its logic.

Each runs in its own process, on uvloop or on asyncio's loop (``--loop``), and the
table gives the client-side latency and the CPU per payment of *api* + *terminal*
(``/proc/<pid>/stat``), the figures the targets name.  Run:
``.venv/bin/python benchmarks/architecture_floor.py [--payments N] [--loop both]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.harness import (  # noqa: E402
    fmt,
    load_average,
    machine_line,
    percentile,
    proc_cpu_s,
    stack_helpers,
    use_this_repo,
)
from benchmarks.register_http import Register  # noqa: E402

DEFAULT_PAYMENTS: Final = 1000
WARMUP: Final = 50
PAY_TIMEOUT_S: Final = 10.0
LOOPS: Final = ("uvloop", "asyncio")
PARTS: Final = ("hipay", "journal", "zeromq")  # what --parts leaves out, one at a time
SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS payments (order_id TEXT PRIMARY KEY, amount TEXT,"
    " state TEXT, result TEXT)"
)


# --- the three roles, each in its own process ----------------------------------------


def ready(announce: str = "") -> None:
    print(f"READY {announce}".strip(), flush=True)


async def serve_post(handler: Any) -> int:
    """``POST /`` answered by ``handler`` on a free loopback port, without an access log."""
    from aiohttp import web

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return int(runner.addresses[0][1])


async def api_role(control: str, hipay_url: str, db_path: str, without: frozenset[str]) -> None:
    import aiohttp
    import zmq
    from aiohttp import web

    from common.loop_socket import LoopSocket

    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(SCHEMA)
    dealer = LoopSocket(zmq.Context(), zmq.DEALER)  # the connector's own adapter
    dealer.sock.connect(control)
    session = aiohttp.ClientSession()
    lock = asyncio.Lock()  # one request at a time on the DEALER, as the client's ids would

    async def pay(request: web.Request) -> web.Response:
        order = await request.json()
        order_id, amount = order["order_id"], order["amount"]
        if "journal" not in without:
            db.execute(
                "INSERT INTO payments VALUES (?, ?, 'at_terminal', NULL)", (order_id, amount)
            )
        if "zeromq" in without:
            result = {"order_id": order_id, "status": "accepted", "amount": 999}
        else:
            async with lock:
                ask = json.dumps({"command": "pay", "order_id": order_id}).encode()
                await dealer.send_multipart([ask])
                result = json.loads((await dealer.recv_multipart())[-1])
        if "journal" not in without:
            db.execute(
                "UPDATE payments SET state = ?, result = ? WHERE order_id = ?",
                (result["status"], json.dumps(result), order_id),
            )
        delivered = True
        if "hipay" not in without:
            async with session.post(hipay_url, json={"order_id": order_id, **result}) as sent:
                await sent.read()
                delivered = sent.status == 200
        return web.json_response(
            {
                "paymentStatus": "SUCCESS",
                "notificationHipaySent": delivered,
                "orderId": order_id,
                "amount": amount,
            }
        )

    port = await serve_post(pay)
    ready(f"port={port}")
    await asyncio.Event().wait()  # until the benchmark stops this process


async def terminal_role(control: str) -> None:
    import zmq

    from common.loop_socket import LoopSocket

    router = LoopSocket(zmq.Context(), zmq.ROUTER)
    router.sock.bind(control)
    ready()
    while True:  # until the benchmark stops this process
        identity, payload = await router.recv_multipart()
        request = json.loads(payload)
        reply = {"order_id": request["order_id"], "status": "accepted", "amount": 999}
        await router.send_multipart([identity, json.dumps(reply).encode()])


async def hipay_role() -> None:
    from aiohttp import web

    async def order(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({})

    port = await serve_post(order)
    ready(f"url=http://127.0.0.1:{port}/")
    await asyncio.Event().wait()  # until the benchmark stops this process


def run_role(args: argparse.Namespace) -> None:
    if args.role == "api":
        main = api_role(args.control, args.hipay, args.db, frozenset(args.without))
    elif args.role == "terminal":
        main = terminal_role(args.control)
    else:
        main = hipay_role()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


# --- the measurement ----------------------------------------------------------------


@contextlib.contextmanager
def role(name: str, loop: str, workdir: Path, *extra: str) -> Iterator[tuple[int, str]]:
    argv = [sys.executable, __file__, "--role", name, "--loop", loop, *extra]
    with stack_helpers().ready_command(argv, workdir / f"{name}-{loop}.err") as started:
        yield started


def measure(
    loop: str, payments: int, workdir: Path, without: tuple[str, ...] = ()
) -> dict[str, Any]:
    label = "-".join((loop, *without))
    control = f"ipc://{workdir}/control-{label}.sock"
    with (
        role("hipay", loop, workdir) as (_, hipay),
        role("terminal", loop, workdir, "--control", control) as (terminal_pid, _),
        role(
            "api",
            loop,
            workdir,
            "--control",
            control,
            "--hipay",
            hipay.removeprefix("url="),
            "--db",
            str(workdir / f"journal-{label}.sqlite3"),
            *(f"--without={part}" for part in without),
        ) as (api_pid, announced),
    ):
        register = Register(int(announced.removeprefix("port=")), "", "")
        for n in range(WARMUP):
            register.pay(f"{label}-warm-{n}", "9.99", PAY_TIMEOUT_S)
        pids = {"api": api_pid, "terminal": terminal_pid}
        cpu_before = {name: proc_cpu_s(pid) or 0.0 for name, pid in pids.items()}
        latencies, failed = [], 0
        wall = time.perf_counter()
        for n in range(payments):
            reply = register.pay(f"{label}-{n}", "9.99", PAY_TIMEOUT_S)
            failed += not reply.paid(f"{label}-{n}")
            latencies.append(reply.elapsed_ms)
        wall = time.perf_counter() - wall
        cpu = {
            name: ((proc_cpu_s(pid) or 0.0) - cpu_before[name]) / payments * 1000
            for name, pid in pids.items()
        }
    return {
        "setup": " ".join((loop, *(f"-{part}" for part in without))),
        "payments": payments,
        "failed": failed,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "per_s": payments / wall,
        "cpu_ms": cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=DEFAULT_PAYMENTS)
    parser.add_argument("--loop", choices=[*LOOPS, "both"], default="both")
    parser.add_argument("--role", choices=["api", "terminal", "hipay"], help=argparse.SUPPRESS)
    parser.add_argument("--control", help=argparse.SUPPRESS)
    parser.add_argument("--hipay", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument(
        "--without", action="append", default=[], choices=PARTS, help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--parts",
        action="store_true",
        help="also run the uvloop setup without each part in turn (what each costs)",
    )
    args = parser.parse_args(argv)
    if args.role:
        run_role(args)
        return 0
    use_this_repo()
    print(machine_line("ECR connector architecture floor"))
    print("load average at start {:.2f} / {:.2f} / {:.2f}".format(*load_average()))
    rows = []
    with tempfile.TemporaryDirectory(prefix="floor-") as tmp:
        for loop in LOOPS if args.loop == "both" else (args.loop,):
            rows.append(measure(loop, args.payments, Path(tmp)))
        if args.parts:
            for part in PARTS:
                rows.append(measure("uvloop", args.payments, Path(tmp), (part,)))
    print(
        f"\n{'setup':18} {'payments':>8} {'failed':>6} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'pay/s':>6} {'CPU ms: api':>12} {'terminal':>8} {'both':>6}"
    )
    for row in rows:
        cpu = row["cpu_ms"]
        print(
            f"{row['setup']:18} {row['payments']:>8} {row['failed']:>6} {fmt(row['p50_ms'], 2):>7} "
            f"{fmt(row['p99_ms'], 2):>7} {row['per_s']:>6.0f} {cpu['api']:>12.2f} "
            f"{cpu['terminal']:>8.2f} {cpu['api'] + cpu['terminal']:>6.2f}"
        )
    print("load average at end {:.2f} / {:.2f} / {:.2f}".format(*load_average()))
    return 1 if any(row["failed"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
