"""Delivers the outbox to HiPay: at least once, with a stable idempotency key.

Each pending row gets a *series* of attempts governed by tenacity (exponential
backoff with jitter, capped; ``Retry-After`` honoured).  Every attempt and every
scheduled wait is written to the outbox before the next step, so a restart
resumes the schedule where the old process left it: the worker picks up pending
rows as they fall due.  A series that ends without an answer leaves the row
pending with ``next_attempt_at`` :attr:`RetryPolicy.series_pause_s` away; rows
are only dead-lettered on a 4xx answer other than 408/429.

Counting, for ``numberOfNotificationSent`` (``attempts_received``):

* a 2xx counts 1: HiPay has it;
* an attempt whose request went out but got no answer (read timeout, reset,
  server gone) counts 1: HiPay *may* have it.  The next attempt is a
  reconciliation send with the same ``Idempotency-Key``, and counts 1 more if
  acknowledged, hence 2;
* a connection that never opened counts 0, and so does any HTTP answer that is
  not 2xx (5xx, 429, 4xx): HiPay said it did not take it.

One notifier per data directory (a ``flock`` on :attr:`Notifier.lock_path`
enforces it), so claiming rows is a matter of not starting a row twice in
this process.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

import aiohttp
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from common.redact import redact_text
from supervisor_agent.metrics import Metrics
from supervisor_agent.outbox import Notification, NotificationState, Outbox

log = structlog.get_logger(__name__)

NOTIFY_PATH = "/v1/connector/order"
IDEMPOTENCY_HEADER = "Idempotency-Key"
LOCK_FILENAME = "notifier.lock"

REQUEST_TIMEOUT_S = 15.0  # one attempt, connect to last byte of the answer
CONNECT_TIMEOUT_S = 5.0
BACKOFF_INITIAL_S = 1.0  # first wait; doubles per attempt
BACKOFF_MAX_S = 60.0  # cap of one wait
BACKOFF_JITTER_S = 1.0  # uniform 0..jitter added to each wait
ATTEMPTS_PER_SERIES = 6  # then the row rests until series_pause_s
SERIES_PAUSE_S = 300.0
RETRY_AFTER_MAX_S = 900.0  # we honour Retry-After up to this
POLL_INTERVAL_S = 5.0  # how often the worker looks for due rows (the CLI may add some)
MAX_CONCURRENT = 4
DELIVER_NOW_BUDGET_S = 3.0
ANSWER_LOG_MAX_CHARS = 300
ANSWER_READ_MAX_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Every timer of the notifier; tests pass short ones."""

    request_timeout_s: float = REQUEST_TIMEOUT_S
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    backoff_initial_s: float = BACKOFF_INITIAL_S
    backoff_max_s: float = BACKOFF_MAX_S
    backoff_jitter_s: float = BACKOFF_JITTER_S
    attempts_per_series: int = ATTEMPTS_PER_SERIES
    series_pause_s: float = SERIES_PAUSE_S
    retry_after_max_s: float = RETRY_AFTER_MAX_S
    poll_interval_s: float = POLL_INTERVAL_S
    max_concurrent: int = MAX_CONCURRENT


@dataclass(frozen=True, slots=True)
class HipayEndpoint:
    base_url: str
    login: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """What the HTTP API reports: ``notificationHipaySent`` and ``numberOfNotificationSent``."""

    sent: bool
    count: int
    state: str | None = None  # outbox state, None when the order has no notification


class NotifierAlreadyRunning(RuntimeError):
    """Another process holds the notifier lock of this data directory."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _Rejected(Exception):
    pass


def _parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or HTTP-date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


async def _on_headers_sent(
    _session: aiohttp.ClientSession, ctx: SimpleNamespace, _params: object
) -> None:
    ctx.trace_request_ctx.sent = True


class Notifier:
    """The asyncio worker; ``start`` it once, ``stop`` it on shutdown."""

    def __init__(
        self,
        outbox: Outbox,
        endpoint: HipayEndpoint,
        *,
        policy: RetryPolicy | None = None,
        metrics: Metrics | None = None,
        lock_path: Path | None = None,
    ) -> None:
        self._outbox = outbox
        self._endpoint = endpoint
        self._policy = policy or RetryPolicy()
        self._metrics = metrics
        self.lock_path = lock_path
        self._lock_file: IO[str] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._url = endpoint.base_url.rstrip("/") + NOTIFY_PATH
        pair = f"{endpoint.login}:{endpoint.password}".encode()
        self._authorization = "Basic " + base64.b64encode(pair).decode("ascii")

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        if self.lock_path is not None:
            self._take_lock(self.lock_path)
        self._loop_task = asyncio.create_task(self._run(), name="hipay-notifier")
        log.info("hipay.notify.worker_started", url=self._url)

    async def stop(self) -> None:
        tasks = [t for t in (self._loop_task, *self._inflight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None
        log.info("hipay.notify.worker_stopped")

    def kick(self) -> None:
        """Look for due rows now rather than at the next poll (after a ``finish``)."""
        self._wake.set()

    def _take_lock(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise NotifierAlreadyRunning(f"another notifier holds {path}") from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(_on_headers_sent)
            # A fresh connection per attempt: no stale keep-alive socket turning a
            # notification nobody received into an "uncertain" one.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True), trace_configs=[trace]
            )
        return self._session

    # -- worker loop -------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            free = self._policy.max_concurrent - len(self._inflight)
            if free > 0:
                try:
                    due = await asyncio.to_thread(self._outbox.due, None, free, set(self._inflight))
                except Exception as exc:  # a locked or busy database: try again next poll
                    log.warning("hipay.notify.poll_failed", error=repr(exc))
                    due = []
                for note in due:
                    self._spawn(note.id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._policy.poll_interval_s)

    def _spawn(self, notification_id: int) -> asyncio.Task[None]:
        existing = self._inflight.get(notification_id)
        if existing is not None:
            return existing
        task = asyncio.create_task(self._deliver(notification_id), name=f"hipay-{notification_id}")
        self._inflight[notification_id] = task

        def done(t: asyncio.Task[None]) -> None:
            self._inflight.pop(notification_id, None)
            self._wake.set()
            if not t.cancelled() and t.exception() is not None:
                log.error(
                    "hipay.notify.delivery_crashed",
                    notification_id=notification_id,
                    error=repr(t.exception()),
                )

        task.add_done_callback(done)
        return task

    async def deliver_now(
        self, order_id: str, budget_s: float = DELIVER_NOW_BUDGET_S
    ) -> DeliveryStatus:
        """Start (or join) the delivery of an order's notification, wait at most ``budget_s``.

        The delivery is never cancelled when the budget runs out: the API
        answers with what is known, and the worker carries on.
        """
        deadline = time.monotonic() + budget_s
        note = await asyncio.to_thread(self._outbox.get_by_order, order_id)
        if note is None:
            return DeliveryStatus(sent=False, count=0, state=None)
        if note.state is NotificationState.PENDING and note.next_attempt_at <= time.time():
            self._spawn(note.id)
        task = self._inflight.get(note.id)
        remaining = deadline - time.monotonic()
        if task is not None and remaining > 0:
            await asyncio.wait({task}, timeout=remaining)
        latest = await asyncio.to_thread(self._outbox.get, note.id)
        assert latest is not None
        return DeliveryStatus(
            sent=latest.sent, count=latest.attempts_received, state=str(latest.state)
        )

    # -- one series of attempts ----------------------------------------------

    async def _deliver(self, notification_id: int) -> None:
        note = await asyncio.to_thread(self._outbox.get, notification_id)
        if note is None or note.state is not NotificationState.PENDING:
            return
        policy = self._policy
        # Capped exponential plus additive jitter (what wait_exponential_jitter does, spelt
        # with the parts every tenacity >= 8.2 has, whose parameter names did not change).
        backoff = wait_exponential(
            multiplier=policy.backoff_initial_s, max=policy.backoff_max_s
        ) + wait_random(0, policy.backoff_jitter_s)

        def wait(state: RetryCallState) -> float:
            base = float(backoff(state))
            exc = state.outcome.exception() if state.outcome else None
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                return min(max(base, retry_after), policy.retry_after_max_s)
            return base

        async def before_sleep(state: RetryCallState) -> None:
            sleep_s = state.upcoming_sleep
            await asyncio.to_thread(self._outbox.schedule, notification_id, time.time() + sleep_s)
            log.info(
                "hipay.notify.retry_scheduled",
                order_id=note.order_id,
                notification_id=notification_id,
                wait_s=round(sleep_s, 3),
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.attempts_per_series),
            wait=wait,
            retry=retry_if_exception_type(_Retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        current = note
        try:
            async for attempt in retrying:
                with attempt:
                    current = await self._attempt(current)
        except _Retryable as exc:
            pause = policy.series_pause_s
            if exc.retry_after is not None:
                pause = max(pause, min(exc.retry_after, policy.retry_after_max_s))
            next_at = time.time() + pause
            await asyncio.to_thread(self._outbox.schedule, notification_id, next_at)
            log.warning(
                "hipay.notify.series_exhausted",
                order_id=note.order_id,
                notification_id=notification_id,
                attempts=policy.attempts_per_series,
                next_attempt_in_s=round(pause, 3),
            )
        except _Rejected:
            pass  # dead-lettered and logged by _attempt

    async def _attempt(self, note: Notification) -> Notification:
        """One POST; returns the updated row on 2xx, raises _Retryable or _Rejected otherwise."""
        if note.attempts_received > 0:
            log.info(
                "hipay.notify.reconciliation_send",
                order_id=note.order_id,
                notification_id=note.id,
                attempts_received=note.attempts_received,
            )
        trace = SimpleNamespace(sent=False)
        headers = {
            "Content-Type": "application/json",
            "Authorization": self._authorization,
            IDEMPOTENCY_HEADER: note.idempotency_key,
        }
        timeout = aiohttp.ClientTimeout(
            total=self._policy.request_timeout_s, sock_connect=self._policy.connect_timeout_s
        )
        status: int | None = None
        answer = ""
        retry_after: float | None = None
        try:
            async with self._client().post(
                self._url,
                data=note.payload_json.encode(),
                headers=headers,
                timeout=timeout,
                trace_request_ctx=trace,
            ) as resp:
                status = resp.status
                retry_after = _parse_retry_after(resp.headers.get("Retry-After"))
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    raw = await resp.content.read(ANSWER_READ_MAX_BYTES)
                    answer = raw.decode("utf-8", errors="replace")
        except asyncio.CancelledError:
            if trace.sent and status is None:  # shutting down mid-request: HiPay may have it
                self._outbox.record_attempt(
                    note.id,
                    state=NotificationState.PENDING,
                    status=None,
                    error="cancelled after the request was sent",
                    possibly_received=True,
                )
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            if status is None:
                await self._no_answer(note, exc, uncertain=trace.sent)
        assert status is not None
        return await self._answered(note, status, answer, retry_after)

    async def _no_answer(self, note: Notification, exc: BaseException, *, uncertain: bool) -> None:
        error = f"{type(exc).__name__}: {exc}".strip()
        await asyncio.to_thread(
            self._outbox.record_attempt,
            note.id,
            state=NotificationState.PENDING,
            status=None,
            error=error,
            possibly_received=uncertain,
        )
        self._count("uncertain" if uncertain else "not_sent")
        log.warning(
            "hipay.notify.attempt_failed",
            order_id=note.order_id,
            notification_id=note.id,
            error=error[:ANSWER_LOG_MAX_CHARS],
            uncertain=uncertain,
        )
        raise _Retryable(error)

    async def _answered(
        self, note: Notification, status: int, answer: str, retry_after: float | None
    ) -> Notification:
        safe = self._safe_answer(answer)
        if 200 <= status < 300:
            updated = await asyncio.to_thread(
                self._outbox.record_attempt,
                note.id,
                state=NotificationState.DELIVERED,
                status=status,
                error=None,
                possibly_received=True,
            )
            latency = (updated.delivered_at or time.time()) - updated.created_at
            self._count("acknowledged")
            if self._metrics is not None:
                self._metrics.delivery_latency(max(0.0, latency))
            log.info(
                "hipay.notify.delivered",
                order_id=note.order_id,
                notification_id=note.id,
                status=status,
                attempts=updated.attempts,
                count=updated.attempts_received,
                latency_s=round(latency, 3),
            )
            return updated
        if status in (408, 429) or status >= 500:
            await asyncio.to_thread(
                self._outbox.record_attempt,
                note.id,
                state=NotificationState.PENDING,
                status=status,
                error=safe,
                possibly_received=False,
            )
            self._count("retryable")
            log.warning(
                "hipay.notify.attempt_failed",
                order_id=note.order_id,
                notification_id=note.id,
                status=status,
                answer=safe,
                retry_after_s=retry_after,
                uncertain=False,
            )
            raise _Retryable(f"HTTP {status}", retry_after)
        await asyncio.to_thread(
            self._outbox.record_attempt,
            note.id,
            state=NotificationState.DEAD,
            status=status,
            error=safe,
            possibly_received=False,
        )
        self._count("rejected")
        log.error(
            "hipay.notify.dead_lettered",
            order_id=note.order_id,
            notification_id=note.id,
            status=status,
            answer=safe,
        )
        raise _Rejected(f"HTTP {status}")

    def _safe_answer(self, text: str) -> str:
        """HiPay's answer, fit for a log line: one line, truncated, no PAN, no credential."""
        text = redact_text(" ".join(text.split()), (self._endpoint.password,))
        if len(text) > ANSWER_LOG_MAX_CHARS:
            text = text[: ANSWER_LOG_MAX_CHARS - 1] + "…"
        return text

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.notification_attempt(result)

    def status_snapshot(self) -> dict[str, Any]:
        return {"in_flight": sorted(self._inflight), "url": self._url}
