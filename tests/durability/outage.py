"""A HiPay outage over loopback, met the way the agent meets one.

Payments finish while HiPay refuses connections (a bound loopback port nobody listens
on); each is journaled and gets its answer through ``deliver_now``, as
api/payment.py does.  After ``outage_s`` the real stub starts on that port and the
run measures how long the backlog takes to reach it.  Shared by the durability test
(timers scaled down) and benchmarks/notify_outage.py (the product's timers).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import structlog

from supervisor_agent.hipay_stub import DEFAULT_LOGIN, DEFAULT_PASSWORD, start_stub
from supervisor_agent.journal import Journal
from supervisor_agent.notifier import HipayEndpoint, Notifier
from supervisor_agent.outbox import NotificationState
from supervisor_agent.retry_policy import RetryPolicy
from tests.durability.conftest import CONTEXT, finish_order

REGISTER_BUDGET_S = 3.0  # the API's default notification budget
DRAIN_CHECK_S = 0.05  # how often the run looks whether the backlog is gone


@dataclass
class OutageRun:
    """What one outage showed."""

    answers_s: list[float] = field(default_factory=list)  # deliver_now while HiPay refused
    outage_s: float = 0.0  # first payment -> HiPay listening again
    first_s: float | None = None  # HiPay listening -> the first row delivered (noticed back)
    drain_s: float | None = None  # HiPay listening -> every row delivered; None: not in time
    attempts_in_outage: int = 0  # HTTP attempts the outbox recorded while HiPay was away
    copies: Counter[str] = field(default_factory=Counter)  # acknowledged requests per key
    counts: Counter[int] = field(default_factory=Counter)  # rows per numberOfNotificationSent
    undelivered: int = 0  # rows not delivered at the end
    lines: Counter[tuple[str, str]] = field(default_factory=Counter)  # (level, event)

    @property
    def warnings(self) -> int:
        return sum(n for (level, _), n in self.lines.items() if level == "warning")


def _refusing_port() -> socket.socket:
    """A loopback port held by a bound socket that never listens: connections are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def _attempts(journal: Journal) -> int:
    return sum(note.attempts for note in journal.outbox.list())


async def run_outage(
    data_dir: Path,
    *,
    policy: RetryPolicy,
    notifications: int,
    outage_s: float,
    drain_limit_s: float,
) -> OutageRun:
    """Queue ``notifications`` during an outage of at least ``outage_s``, then end it."""
    run = OutageRun()
    holder = _refusing_port()
    port = holder.getsockname()[1]
    journal = Journal.open(data_dir, context=CONTEXT)
    endpoint = HipayEndpoint(f"http://127.0.0.1:{port}", DEFAULT_LOGIN, DEFAULT_PASSWORD)
    notifier = Notifier(journal.outbox, endpoint, policy=policy)
    runner = None
    with structlog.testing.capture_logs() as logs:
        try:
            await notifier.start()
            started = time.monotonic()
            for index in range(notifications):
                order_id = f"OUTAGE-{index}"
                await finish_order(journal, order_id)
                notifier.kick()
                t0 = time.monotonic()
                status = await notifier.deliver_now(order_id, REGISTER_BUDGET_S)
                run.answers_s.append(time.monotonic() - t0)
                assert not status.sent, status
            await asyncio.sleep(max(0.0, outage_s - (time.monotonic() - started)))
            run.attempts_in_outage = await asyncio.to_thread(_attempts, journal)
            holder.close()
            runner, url = await start_stub("127.0.0.1", port)
            back = time.monotonic()
            run.outage_s = back - started
            while time.monotonic() - back < drain_limit_s:
                counts = await asyncio.to_thread(journal.outbox.counts)
                delivered = counts[str(NotificationState.DELIVERED)]
                if delivered and run.first_s is None:
                    run.first_s = time.monotonic() - back
                if delivered == notifications:
                    run.drain_s = time.monotonic() - back
                    break
                await asyncio.sleep(DRAIN_CHECK_S)
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{url}/received") as resp,
            ):
                received = (await resp.json())["notifications"]
            run.copies.update(
                r["idempotency_key"] for r in received if r["outcome"] == "acknowledged"
            )
            notes = await asyncio.to_thread(journal.outbox.list)
            run.counts.update(n.attempts_received for n in notes)
            run.undelivered = sum(1 for n in notes if n.state is not NotificationState.DELIVERED)
        finally:
            await notifier.stop()
            if runner is not None:
                await runner.cleanup()
            holder.close()
            with contextlib.suppress(Exception):
                journal.close()
    run.lines.update(
        (entry["log_level"], entry["event"])
        for entry in logs
        if str(entry.get("event", "")).startswith("hipay.notify.")
    )
    return run
