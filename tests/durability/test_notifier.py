"""The notifier against the real HiPay stub over loopback.

Vocabulary of the assertions: the stub's ``outcome`` per request it read
(``acknowledged`` = it answered 2xx), the outbox's ``attempts`` (HTTP attempts
made) and ``attempts_received`` (= ``numberOfNotificationSent``: 2xx answers plus
attempts that went out and got no answer).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from supervisor_agent.hipay_stub import DEFAULT_LOGIN, DEFAULT_PASSWORD, start_stub
from supervisor_agent.journal import DEFAULT_TERMINAL, Journal, ReconcileKind, TxError, TxState
from supervisor_agent.metrics import Metrics
from supervisor_agent.notifier import (
    IDEMPOTENCY_HEADER,
    HipayEndpoint,
    Notifier,
    NotifierAlreadyRunning,
)
from supervisor_agent.outbox import NotificationState
from supervisor_agent.retry_policy import RetryPolicy

from .conftest import FAST, Stub, accepted_result, canonical_request, finish_order
from .outage import run_outage

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 10.0  # upper bound of every "eventually" below


async def eventually(check: Callable[[], Awaitable[bool]], within: float = WAIT_S) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {within} s")


def delivered(journal: Journal, order_id: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        note = journal.outbox.get_by_order(order_id)
        return note is not None and note.state is NotificationState.DELIVERED

    return check


async def test_delivers_once_with_auth_key_and_payload(journal: Journal, stub: Stub) -> None:
    await finish_order(journal, "ORDER_1")
    metrics = Metrics()
    notifier = Notifier(journal.outbox, stub.endpoint(), policy=FAST, metrics=metrics)
    try:
        status = await notifier.deliver_now("ORDER_1", budget_s=5)
    finally:
        await notifier.stop()
    assert (status.sent, status.count, status.state) == (True, 1, "delivered")
    received = await stub.received()
    assert [r["outcome"] for r in received] == ["acknowledged"]
    note = journal.outbox.get_by_order("ORDER_1")
    assert note is not None
    assert received[0]["idempotency_key"] == note.idempotency_key
    assert received[0]["body"] == note.payload
    assert received[0]["content_type"] == "application/json"
    assert note.delivered_at is not None and note.last_status == 200
    assert metrics.snapshot()["attempts"]["acknowledged"] == 1
    assert metrics.snapshot()["delivery_count"] == 1


async def test_outage_then_recovery_delivers_exactly_one_acknowledged(
    journal: Journal, stub: Stub
) -> None:
    """503 three times, then 200: four requests read, one acknowledged, count 1."""
    await stub.control(fail_next=3, status=503)
    await finish_order(journal, "ORDER_1")
    notifier = Notifier(journal.outbox, stub.endpoint(), policy=FAST)
    await notifier.start()
    try:
        notifier.kick()
        await eventually(delivered(journal, "ORDER_1"))
        status = await notifier.deliver_now("ORDER_1", budget_s=1)
    finally:
        await notifier.stop()
    received = await stub.received()
    assert [r["outcome"] for r in received] == ["failed"] * 3 + ["acknowledged"]
    assert len({r["idempotency_key"] for r in received}) == 1
    note = journal.outbox.get_by_order("ORDER_1")
    assert note is not None
    assert (note.attempts, note.attempts_received) == (4, 1)
    assert (status.sent, status.count) == (True, 1)


async def test_retry_after_is_honoured(journal: Journal, stub: Stub) -> None:
    await stub.control(fail_next=1, status=429, retry_after=1)
    await finish_order(journal, "ORDER_1")
    notifier = Notifier(journal.outbox, stub.endpoint(), policy=FAST)
    await notifier.start()
    try:
        status = await notifier.deliver_now("ORDER_1", budget_s=5)
        assert (status.sent, status.count, status.state) == (False, 0, "pending")  # one attempt
        await eventually(delivered(journal, "ORDER_1"))
    finally:
        await notifier.stop()
    first, second = await stub.received()
    assert (first["status"], second["status"]) == (429, 200)
    # FAST backs off 0.05..0.2 s; only Retry-After explains a 1 s gap.
    assert second["received_at"] - first["received_at"] >= 0.95


async def test_slow_answer_past_the_timeout_is_reconciled_with_count_2(
    journal: Journal, stub: Stub
) -> None:
    """First answer comes after the client gave up: uncertain, sent again, count 2."""
    await stub.control(delay_next=1, delay_s=FAST.request_timeout_s + 1.0)
    await finish_order(journal, "ORDER_1")
    notifier = Notifier(journal.outbox, stub.endpoint(), policy=FAST)
    await notifier.start()
    try:
        first = await notifier.deliver_now("ORDER_1", budget_s=5)
        assert (first.sent, first.count) == (False, 1)  # timed out: HiPay may have it
        await eventually(delivered(journal, "ORDER_1"))
        status = await notifier.deliver_now("ORDER_1", budget_s=1)
    finally:
        await notifier.stop()
    assert (status.sent, status.count) == (True, 2)
    await eventually(lambda: _settled(stub))  # the delayed handler finishes on its own time
    received = await stub.received()
    assert len(received) == 2
    assert received[0]["idempotency_key"] == received[1]["idempotency_key"]
    note = journal.outbox.get_by_order("ORDER_1")
    assert note is not None and note.attempts == 2


async def _settled(stub: Stub) -> bool:
    return all(r["outcome"] != "pending" for r in await stub.received())


async def test_dropped_connection_counts_as_possibly_received(journal: Journal, stub: Stub) -> None:
    await stub.control(drop_next=1)
    await finish_order(journal, "ORDER_1")
    notifier = Notifier(journal.outbox, stub.endpoint(), policy=FAST)
    await notifier.start()
    try:
        first = await notifier.deliver_now("ORDER_1", budget_s=5)
        assert (first.sent, first.count) == (False, 1)
        await eventually(delivered(journal, "ORDER_1"))
        status = await notifier.deliver_now("ORDER_1", budget_s=1)
    finally:
        await notifier.stop()
    assert (status.sent, status.count) == (True, 2)
    assert [r["outcome"] for r in await stub.received()] == ["dropped", "acknowledged"]


async def test_client_error_is_dead_lettered_and_not_retried(journal: Journal, stub: Stub) -> None:
    await stub.control(reject_next=1)
    await finish_order(journal, "ORDER_1")
    notifier = Notifier(journal.outbox, stub.endpoint(), policy=FAST)
    await notifier.start()
    try:
        status = await notifier.deliver_now("ORDER_1", budget_s=5)
        assert (status.sent, status.count, status.state) == (False, 0, "dead")
        await asyncio.sleep(FAST.rescan_interval_s * 2)  # two rescans: nothing more goes out
        assert len(await stub.received()) == 1
        note = journal.outbox.get_by_order("ORDER_1")
        assert note is not None
        assert note.state is NotificationState.DEAD
        assert note.last_status == 400
        assert note.last_error is not None and "rejected by the stub" in note.last_error

        # the operator requeues it (ecr-connector outbox retry ID, another process: no
        # kick reaches the worker): the worker's rescan finds it and delivers it
        assert journal.outbox.retry_dead(note.id)
        await eventually(delivered(journal, "ORDER_1"))
    finally:
        await notifier.stop()
    assert [r["outcome"] for r in await stub.received()] == ["rejected", "acknowledged"]


async def test_wrong_credentials_are_dead_lettered(journal: Journal, stub: Stub) -> None:
    await finish_order(journal, "ORDER_1")
    notifier = Notifier(journal.outbox, stub.endpoint(password="wrong"), policy=FAST)
    try:
        status = await notifier.deliver_now("ORDER_1", budget_s=5)
    finally:
        await notifier.stop()
    assert (status.sent, status.state) == (False, "dead")
    note = journal.outbox.get_by_order("ORDER_1")
    assert note is not None and note.last_status == 401
    assert note.last_error is not None and "wrong" not in note.last_error


def closed_port() -> int:
    """A loopback port that was free a moment ago: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# Issue 12: with HiPay refusing connections, the answer waited the whole 3 s budget.
# A refused connection takes well under a millisecond on loopback and the attempt's
# journal write a few; the bound is 0.5 s (a sixth of the budget) so that a loaded
# CI machine cannot fail it, and still fails the old behaviour by seconds.  The
# issue's 50 ms target is measured by benchmarks/notify_outage.py.
REFUSED_ANSWER_BOUND_S = 0.5
REGISTER_BUDGET_S = 3.0


async def test_hipay_refusing_costs_the_answer_one_attempt_not_the_budget(
    journal: Journal,
) -> None:
    await finish_order(journal, "ORDER_1")
    endpoint = HipayEndpoint(f"http://127.0.0.1:{closed_port()}", "l", "p")
    notifier = Notifier(journal.outbox, endpoint, policy=FAST)
    await notifier.start()
    try:
        notifier.kick()  # as api/payment.py does, so the worker may race deliver_now
        started = time.monotonic()
        status = await notifier.deliver_now("ORDER_1", budget_s=REGISTER_BUDGET_S)
        took = time.monotonic() - started
        assert took < REFUSED_ANSWER_BOUND_S, f"deliver_now took {took:.3f} s"
        assert (status.sent, status.count, status.state) == (False, 0, "pending")
        note = journal.outbox.get_by_order("ORDER_1")
        assert note is not None and note.attempts == 1
        assert note.next_attempt_at > time.time() - 1  # the row's backoff is in the outbox
        await eventually(_attempted(journal, "ORDER_1", 3))  # retries go on in the background
    finally:
        await notifier.stop()
    note = journal.outbox.get_by_order("ORDER_1")
    assert note is not None
    assert note.state is NotificationState.PENDING  # refusals never dead-letter
    assert note.attempts_received == 0  # a connection that never opened counts 0


def _attempted(journal: Journal, order_id: str, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        note = journal.outbox.get_by_order(order_id)
        return note is not None and note.attempts >= n

    return check


async def test_deliver_now_returns_within_budget_and_the_worker_carries_on(
    journal: Journal, stub: Stub
) -> None:
    await stub.control(delay_next=1, delay_s=0.9)  # under FAST's 1 s request timeout
    await finish_order(journal, "ORDER_1")
    notifier = Notifier(journal.outbox, stub.endpoint(), policy=FAST)
    await notifier.start()
    try:
        status = await notifier.deliver_now("ORDER_1", budget_s=0.2)
        assert (status.sent, status.count, status.state) == (False, 0, "pending")
        # deliver_now came back while the stub still held the request unanswered
        assert [r["outcome"] for r in await stub.received()] == ["pending"]
        await eventually(delivered(journal, "ORDER_1"))
        final = await notifier.deliver_now("ORDER_1", budget_s=1)
    finally:
        await notifier.stop()
    assert (final.sent, final.count) == (True, 1)
    assert [r["outcome"] for r in await stub.received()] == ["acknowledged"]


async def test_deliver_now_of_an_unknown_order(journal: Journal, stub: Stub) -> None:
    notifier = Notifier(journal.outbox, stub.endpoint(), policy=FAST)
    try:
        status = await notifier.deliver_now("NOPE", budget_s=0.1)
    finally:
        await notifier.stop()
    assert (status.sent, status.count, status.state) == (False, 0, None)


async def test_stop_mid_request_records_an_uncertain_attempt(journal: Journal, stub: Stub) -> None:
    await stub.control(delay_next=1, delay_s=1.5)
    await finish_order(journal, "ORDER_1")
    first = Notifier(journal.outbox, stub.endpoint(), policy=FAST)
    await first.deliver_now("ORDER_1", budget_s=0.3)
    await first.stop()  # shutdown while the request waits for its answer
    note = journal.outbox.get_by_order("ORDER_1")
    assert note is not None and note.state is NotificationState.PENDING
    assert (note.attempts, note.attempts_received) == (1, 1)

    second = Notifier(journal.outbox, stub.endpoint(), policy=FAST)
    await second.start()
    try:
        await eventually(delivered(journal, "ORDER_1"))
        status = await second.deliver_now("ORDER_1", budget_s=1)
    finally:
        await second.stop()
    assert (status.sent, status.count) == (True, 2)


async def test_one_worker_per_data_dir(journal: Journal, stub: Stub, tmp_path: Path) -> None:
    lock = tmp_path / "notifier.lock"
    first = Notifier(journal.outbox, stub.endpoint(), policy=FAST, lock_path=lock)
    second = Notifier(journal.outbox, stub.endpoint(), policy=FAST, lock_path=lock)
    await first.start()
    try:
        with pytest.raises(NotifierAlreadyRunning):
            await second.start()
    finally:
        await first.stop()
    await second.start()  # free again once the first stopped
    await second.stop()


WORKER = r"""
import asyncio, sys
from pathlib import Path
from supervisor_agent.journal import Journal
from supervisor_agent.notifier import HipayEndpoint, Notifier
from supervisor_agent.retry_policy import RetryPolicy

async def main():
    data_dir, url = Path(sys.argv[1]), sys.argv[2]
    journal = Journal.open(data_dir)
    policy = RetryPolicy(request_timeout_s=1, connect_timeout_s=0.5, backoff_initial_s=0.05,
                         backoff_max_s=0.2, backoff_jitter_s=0.02, probe_interval_s=0.1,
                         rescan_interval_s=0.5)
    notifier = Notifier(journal.outbox, HipayEndpoint(url, "stub-login", "stub-password"),
                        policy=policy, lock_path=data_dir / "notifier.lock")
    await notifier.start()
    print("WORKER READY", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _read(path: Path) -> bytes:
    return path.read_bytes()


async def _start_worker(data_dir: Path, url: str, log_path: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log_path.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            str(data_dir),
            url,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )

    async def ready() -> bool:
        assert proc.returncode is None, _read(log_path).decode(errors="replace")
        return b"WORKER READY" in _read(log_path)

    try:
        await eventually(ready)
    except BaseException:
        await _kill(proc)
        raise
    return proc


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
    await asyncio.wait_for(proc.wait(), 10)


async def test_sigkilled_worker_then_new_worker_delivers_everything(
    journal: Journal, stub: Stub, tmp_path: Path
) -> None:
    orders = [f"ORDER_{i}" for i in range(5)]
    await stub.control(fail_next=10_000, status=503)
    for order_id in orders:
        await finish_order(journal, order_id)

    first = await _start_worker(tmp_path, stub.url, tmp_path / "worker1.log")
    try:

        async def every_order_tried() -> bool:
            # the worker's record of its attempts, not the stub's: the stub logs a request
            # as it reads it, before the worker has written the attempt down
            notes = [journal.outbox.get_by_order(o) for o in orders]
            return all(n is not None and n.attempts >= 1 for n in notes)

        await eventually(every_order_tried)
    finally:
        await _kill(first)
    assert first.returncode == -signal.SIGKILL
    for order_id in orders:
        note = journal.outbox.get_by_order(order_id)
        assert note is not None and note.state is NotificationState.PENDING
        assert note.attempts >= 1
    assert all(r["outcome"] == "failed" for r in await stub.received())

    await stub.control(fail_next=0)
    second = await _start_worker(tmp_path, stub.url, tmp_path / "worker2.log")
    try:

        async def all_delivered() -> bool:
            notes = [journal.outbox.get_by_order(o) for o in orders]
            return all(n is not None and n.state is NotificationState.DELIVERED for n in notes)

        await eventually(all_delivered)
    finally:
        await _kill(second)
    received = await stub.received()
    for order_id in orders:
        note = journal.outbox.get_by_order(order_id)
        assert note is not None and note.attempts_received == 1
        acks = [r for r in received if r["order_id"] == order_id and r["outcome"] == "acknowledged"]
        assert len(acks) == 1, order_id
        assert acks[0]["idempotency_key"] == note.idempotency_key


async def test_basic_auth_header_is_the_configured_pair(journal: Journal, stub: Stub) -> None:
    """Checked from the stub's side: a request with the pair is accepted, another is not."""
    await finish_order(journal, "ORDER_1")
    note = journal.outbox.get_by_order("ORDER_1")
    assert note is not None
    headers = {
        "Authorization": "Basic " + base64.b64encode(b"stub-login:nope").decode(),
        IDEMPOTENCY_HEADER: note.idempotency_key,
    }
    async with stub.session.post(
        f"{stub.url}/v1/connector/order", data=note.payload_json, headers=headers
    ) as resp:
        assert resp.status == 401
    notifier = Notifier(journal.outbox, stub.endpoint(), policy=FAST)
    try:
        assert (await notifier.deliver_now("ORDER_1", budget_s=5)).sent
    finally:
        await notifier.stop()


# Issue 12's outage (500 notifications, 60 s, all delivered within 30 s of HiPay's
# return), its timers scaled down 30 times so that it runs in seconds: backoff cap 2 s
# instead of 60 s, probe every 1/3 s instead of 10 s, an outage of at least 6 s instead
# of 60 s (longer when queueing the 500 payments takes longer, as it does here: each is
# three fsynced journal writes).  The drain proper is bound by the journal's writes and
# the HTTP attempts, not by the timers (1 to 2 s for 500 rows on the 2-vCPU test VM),
# so the bound is 5 s rather than a scaled 1 s: generous for a loaded CI machine, and
# still far below what the old code's scaled 10 s rest after a series would give.  The
# full-scale run is benchmarks/notify_outage.py (figures in benchmarks/README.md).
SCALED = RetryPolicy(
    request_timeout_s=2.0,
    connect_timeout_s=1.0,
    backoff_initial_s=0.1,
    backoff_max_s=2.0,
    backoff_jitter_s=0.1,
    probe_interval_s=1 / 3,
    rescan_interval_s=2.0,
)
OUTAGE_NOTIFICATIONS = 500
SCALED_OUTAGE_S = 6.0
SCALED_DRAIN_BOUND_S = 5.0


async def test_a_backlog_queued_during_an_outage_drains_soon_after_hipay_returns(
    tmp_path: Path,
) -> None:
    run = await run_outage(
        tmp_path,
        policy=SCALED,
        notifications=OUTAGE_NOTIFICATIONS,
        outage_s=SCALED_OUTAGE_S,
        drain_limit_s=SCALED_DRAIN_BOUND_S * 2,  # to report how late it was, if it was
    )
    assert run.drain_s is not None and run.undelivered == 0, run
    assert run.drain_s < SCALED_DRAIN_BOUND_S, f"drained in {run.drain_s:.2f} s"
    # each notification reached HiPay once or twice, never zero times
    assert len(run.copies) == OUTAGE_NOTIFICATIONS
    assert set(run.copies.values()) <= {1, 2}
    assert set(run.counts) <= {1, 2}
    # one warning for the whole outage, one line for its end; attempts logged at info
    assert run.warnings == 1, run.lines
    assert run.lines[("warning", "hipay.notify.unreachable")] == 1
    assert run.lines[("info", "hipay.notify.reachable_again")] == 1
    assert run.lines[("info", "hipay.notify.delivered")] == OUTAGE_NOTIFICATIONS


STOP_BOUND_S = 5.0
STOP_ROUNDS = 30


async def test_stop_ends_the_worker_even_as_attempts_end(journal: Journal) -> None:
    """stop() cancels the worker while attempts end and wake it: the cancel must not be
    lost (Python 3.11's wait_for lost it, and the worker outlived stop() for ever)."""
    for i in range(10):
        await finish_order(journal, f"ORDER_{i}")
    endpoint = HipayEndpoint(f"http://127.0.0.1:{closed_port()}", "l", "p")
    for round_ in range(STOP_ROUNDS):
        notifier = Notifier(journal.outbox, endpoint, policy=FAST)
        await notifier.start()
        journal.outbox.expedite()  # every row due: attempts in flight as stop() comes
        notifier.kick()
        await asyncio.sleep((round_ % 10) * 0.002)
        await asyncio.wait_for(notifier.stop(), STOP_BOUND_S)


async def test_payments_in_a_row_are_notified_over_one_kept_alive_connection(
    journal: Journal, stub: Stub
) -> None:
    notifier = Notifier(journal.outbox, stub.endpoint(), policy=FAST)
    await notifier.start()
    try:
        for i in range(3):
            await finish_order(journal, f"ORDER_{i}")
            status = await notifier.deliver_now(f"ORDER_{i}", budget_s=5)
            assert (status.sent, status.count) == (True, 1)
    finally:
        await notifier.stop()
    received = await stub.received()
    assert [r["outcome"] for r in received] == ["acknowledged"] * 3
    assert len({r["connection"] for r in received}) == 1


async def test_a_kept_alive_connection_dying_under_the_request_is_retried_at_once(
    journal: Journal, stub: Stub
) -> None:
    """HiPay closes the kept-alive connection as the next request goes out: that try
    is uncertain (+1), the POST goes again at once on a new connection, the register's
    answer says sent, and it is not an outage."""
    metrics = Metrics()
    notifier = Notifier(journal.outbox, stub.endpoint(), policy=FAST, metrics=metrics)
    await notifier.start()
    try:
        await finish_order(journal, "ORDER_1")
        assert (await notifier.deliver_now("ORDER_1", budget_s=5)).sent
        await stub.control(drop_next=1)  # the next request: read, then the connection dies
        await finish_order(journal, "ORDER_2")
        with capture_logs() as logs:
            status = await notifier.deliver_now("ORDER_2", budget_s=5)
    finally:
        await notifier.stop()
    assert (status.sent, status.count, status.state) == (True, 2, "delivered")
    received = await stub.received()
    assert [r["outcome"] for r in received] == ["acknowledged", "dropped", "acknowledged"]
    assert received[1]["connection"] == received[0]["connection"]  # the kept-alive one
    assert received[2]["connection"] != received[1]["connection"]  # a new one
    assert received[1]["idempotency_key"] == received[2]["idempotency_key"]
    note = journal.outbox.get_by_order("ORDER_2")
    assert note is not None and (note.attempts, note.attempts_received) == (2, 2)
    events = [e["event"] for e in logs]
    assert "hipay.notify.stale_connection" in events
    assert "hipay.notify.unreachable" not in events and "hipay.notify.attempt_failed" not in events
    assert metrics.snapshot()["attempts"]["uncertain"] == 1


async def test_hipay_restarted_between_two_payments_costs_the_second_nothing(
    journal: Journal,
) -> None:
    runner, url = await start_stub("127.0.0.1", 0)
    port = int(url.rsplit(":", 1)[1])
    notifier = Notifier(
        journal.outbox, HipayEndpoint(url, DEFAULT_LOGIN, DEFAULT_PASSWORD), policy=FAST
    )
    await notifier.start()
    try:
        await finish_order(journal, "ORDER_1")
        assert (await notifier.deliver_now("ORDER_1", budget_s=5)).sent
        await runner.cleanup()  # HiPay restarts: the pooled connection is closed
        runner, _ = await start_stub("127.0.0.1", port)
        await finish_order(journal, "ORDER_2")
        status = await notifier.deliver_now("ORDER_2", budget_s=5)
    finally:
        await notifier.stop()
        await runner.cleanup()
    assert (status.sent, status.state) == (True, "delivered")
    note = journal.outbox.get_by_order("ORDER_2")
    assert note is not None and note.state is NotificationState.DELIVERED


async def test_a_dropped_connection_that_was_new_is_not_sent_again_at_once(
    journal: Journal, stub: Stub
) -> None:
    """Only a *kept-alive* connection dying is retried on the spot: a new one that dies
    is HiPay failing, retried on the row's schedule (and the start of an outage)."""
    await stub.control(drop_next=1)
    await finish_order(journal, "ORDER_1")
    notifier = Notifier(journal.outbox, stub.endpoint(), policy=FAST)
    try:
        with capture_logs() as logs:
            status = await notifier.deliver_now("ORDER_1", budget_s=5)
    finally:
        await notifier.stop()
    assert (status.sent, status.count, status.state) == (False, 1, "pending")
    assert [r["outcome"] for r in await stub.received()] == ["dropped"]
    events = [e["event"] for e in logs]
    assert "hipay.notify.stale_connection" not in events
    assert "hipay.notify.unreachable" in events


async def _on_loopback(runner: web.AppRunner) -> tuple[web.AppRunner, str]:
    """``runner``'s app serving on a free loopback port: the runner and its base URL."""
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def _redirecting_hipay(status: int) -> tuple[web.AppRunner, str, list[str]]:
    """A HiPay front that answers the notification with a redirect to a page that answers
    200 to anything (a maintenance or login page): what it was asked, in ``seen``."""
    seen: list[str] = []

    async def notify(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        raise (
            web.HTTPFound("/maintenance")
            if status == 302
            else web.HTTPTemporaryRedirect("/maintenance")
        )

    async def maintenance(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        return web.Response(text="down for maintenance")

    app = web.Application()
    app.router.add_post("/v1/connector/order", notify)
    app.router.add_route("*", "/maintenance", maintenance)
    runner, url = await _on_loopback(web.AppRunner(app, access_log=None))
    return runner, url, seen


@pytest.mark.parametrize("status", [302, 307])
async def test_a_redirect_is_not_a_delivery(journal: Journal, status: int) -> None:
    """HiPay's notification endpoint answering 3xx has not taken the notification, even if
    the page it points to answers 200: the redirect is not followed (a 302 would turn the
    POST into a bodiless GET, a 307 would send the order elsewhere) and the row is not
    marked delivered.  It is retried later (maintenance), the Location kept for a human."""
    runner, url, seen = await _redirecting_hipay(status)
    await finish_order(journal, "ORDER_1")
    notifier = Notifier(journal.outbox, HipayEndpoint(url, "l", "p"), policy=FAST)
    try:
        result = await notifier.deliver_now("ORDER_1", budget_s=5)
    finally:
        await notifier.stop()
        await runner.cleanup()
    assert seen == ["POST /v1/connector/order"]
    assert (result.sent, result.count) == (False, 0)
    note = journal.outbox.get_by_order("ORDER_1")
    assert note is not None
    assert (note.state, note.last_status) == (NotificationState.PENDING, status)
    assert note.last_error is not None and "redirected to /maintenance" in note.last_error


# Backoff after an attempt that could not be written down: long enough that a second
# POST inside the observation window can only come from a loop that ignores it.
UNWRITABLE = dataclasses.replace(FAST, backoff_initial_s=3.0, backoff_max_s=3.0)
UNWRITABLE_WINDOW_S = UNWRITABLE.rescan_interval_s * 2


async def test_an_attempt_the_journal_cannot_write_down_is_not_sent_again_at_once(
    journal: Journal, stub: Stub
) -> None:
    """HiPay answers but the journal refuses the write (read-only or full disk, a lock
    held past the busy timeout): the row stays pending, and it is tried again after a
    backoff, not at once in a loop (it was: some 500 POSTs a second to HiPay)."""
    await finish_order(journal, "ORDER_1")
    notifier = Notifier(journal.outbox, stub.endpoint(), policy=UNWRITABLE)
    with journal._db.read() as conn:
        conn.execute("PRAGMA query_only = 1")  # every write fails as on a read-only disk
    try:
        with capture_logs() as logs:
            await notifier.start()
            notifier.kick()
            await eventually(_crashed(logs))
            await asyncio.sleep(UNWRITABLE_WINDOW_S)  # two rescans: nothing more goes out
        assert len(await stub.received()) == 1
    finally:
        with journal._db.read() as conn:
            conn.execute("PRAGMA query_only = 0")
    try:
        await eventually(delivered(journal, "ORDER_1"))  # the disk is back: it goes
    finally:
        await notifier.stop()
    assert [r["outcome"] for r in await stub.received()] == ["acknowledged"] * 2


def _crashed(logs: list[dict[str, object]]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return any(e["event"] == "hipay.notify.delivery_crashed" for e in logs)

    return check


# The unknown notification's first attempt fails and waits this long: the late verdict
# is reconciled meanwhile, and its corrected notification is due at once.
SUPERSEDED_BACKOFF = dataclasses.replace(FAST, backoff_initial_s=0.5, backoff_max_s=0.5)


async def test_the_corrected_notification_never_reaches_hipay_before_the_one_it_corrects(
    journal: Journal, stub: Stub
) -> None:
    """unknown, then a late verdict: HiPay must get ``unknown`` then ``accepted``, so
    that the verdict is its last word.  The unknown one failed once (503) and waited its
    backoff while the corrected one, due at once, went ahead: HiPay's last word was
    ``unknown``."""
    await journal.begin(
        "LATE-1", canonical_request("LATE-1"), flavour="pos-api", terminal=DEFAULT_TERMINAL
    )
    await journal.finish(
        "LATE-1", TxState.UNKNOWN, None, TxError("TRANSACTION_TIMEOUT", "no answer in time")
    )
    await stub.control(fail_next=1, status=503)
    notifier = Notifier(journal.outbox, stub.endpoint(), policy=SUPERSEDED_BACKOFF)
    await notifier.start()
    try:
        first = await notifier.deliver_now("LATE-1", budget_s=5)
        assert (first.sent, first.state) == (False, "pending")
        kind, _ = journal.reconcile("LATE-1", accepted_result(), time.time())
        assert kind is ReconcileKind.RECONCILED
        notifier.kick()  # as the reconciler does
        await eventually(delivered(journal, "LATE-1"))  # the corrected one

        async def both_delivered() -> bool:
            return all(n.state is NotificationState.DELIVERED for n in journal.outbox.list())

        await eventually(both_delivered)
    finally:
        await notifier.stop()
    acknowledged = [r for r in await stub.received() if r["outcome"] == "acknowledged"]
    states = [r["body"]["terminal_result"]["state"] for r in acknowledged]
    assert states == ["unknown", "accepted"]


async def _hipay_answering_200_then_stalling() -> tuple[web.AppRunner, str, asyncio.Event]:
    """HiPay answers 200 at once, then never finishes the body (a proxy buffering it, a
    backend stuck after committing): ``release`` ends it."""
    release = asyncio.Event()

    async def notify(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(status=200, headers={"Content-Length": "1000"})
        await resp.prepare(request)  # the status line and headers, not a byte of body
        await release.wait()
        return resp

    app = web.Application()
    app.router.add_post("/v1/connector/order", notify)
    runner, url = await _on_loopback(web.AppRunner(app, access_log=None, shutdown_timeout=0.1))
    return runner, url, release


# HiPay's 200 comes at once; the budget is far longer than a loopback round trip and far
# shorter than the request timeout the body read would otherwise wait for.
STALLED_BODY = dataclasses.replace(FAST, request_timeout_s=30.0)
STALLED_BODY_BUDGET_S = 3.0


async def test_a_2xx_is_a_delivery_without_waiting_for_its_body(journal: Journal) -> None:
    """The status says HiPay took it: the register's answer says sent, and the row is
    delivered, without waiting (up to the request timeout) for a body nobody reads."""
    runner, url, release = await _hipay_answering_200_then_stalling()
    await finish_order(journal, "ORDER_1")
    notifier = Notifier(journal.outbox, HipayEndpoint(url, "l", "p"), policy=STALLED_BODY)
    try:
        status = await notifier.deliver_now("ORDER_1", budget_s=STALLED_BODY_BUDGET_S)
    finally:
        release.set()
        await notifier.stop()
        await runner.cleanup()
    assert (status.sent, status.count, status.state) == (True, 1, "delivered")
