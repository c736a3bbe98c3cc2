"""Delivers the outbox to HiPay: at least once, with a stable idempotency key.

One attempt at a time per notification.  A failed attempt writes the row's next
``next_attempt_at`` (exponential backoff capped at one minute, see retry_policy.py)
in the same write that records it, so a restart keeps every row's schedule.  The
worker sleeps until the earliest row falls due, or until it is kicked (a verdict
was reconciled, a held outcome written, an attempt left its row pending): it does not
poll.

The register's answer waits for one attempt only (:meth:`Notifier.deliver_now`), made
by the payment path itself on the row the journal just wrote: HiPay refusing a
connection answers the customer at once, and the worker carries on in the background.
While HiPay is down (hipay_outage.py) the notifier logs one warning, keeps trying
HiPay at least every ``probe_interval_s``, and when HiPay answers again makes the
whole backlog due at once: it drains with ``max_concurrent`` attempts in flight over
one keep-alive connection pool.  Rows are only dead-lettered on a 4xx answer other
than 408/429.

Counting, for ``numberOfNotificationSent`` (``attempts_received``):

* a 2xx counts 1: HiPay has it;
* an attempt whose request went out but got no answer (read timeout, reset,
  server gone) counts 1: HiPay *may* have it.  The next attempt is a
  reconciliation send with the same ``Idempotency-Key``, and counts 1 more if
  acknowledged, hence 2;
* a connection that never opened counts 0, and so does any HTTP answer that is
  not 2xx (5xx, 429, 4xx, 3xx): HiPay said it did not take it.  A redirect is never
  followed: a 301/302/303 would turn the POST into a GET without the notification,
  a 307/308 would send it elsewhere, and whatever answered that with a 2xx (a
  maintenance page) would pass for HiPay taking it.  It is retried like a 5xx;
* a kept-alive connection that dies under the request counts 1 if the request went
  out, and the POST goes again at once on a new connection (:meth:`Notifier._attempt`).

One notifier per data directory (a ``flock`` on :attr:`Notifier.lock_path`
enforces it), so claiming rows is a matter of not starting a row twice in
this process.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import IO

import aiohttp
import structlog

from common.redact import redact_text
from supervisor_agent.hipay_outage import HipayOutage
from supervisor_agent.hipay_payload import TERMINAL_RESULT_KEY
from supervisor_agent.journal import TxState
from supervisor_agent.metrics import Metrics
from supervisor_agent.outbox import Notification, NotificationState, Outbox
from supervisor_agent.retry_policy import RetryPolicy, parse_retry_after

log = structlog.get_logger(__name__)

NOTIFY_PATH = "/v1/connector/order"
IDEMPOTENCY_HEADER = "Idempotency-Key"

DELIVER_NOW_BUDGET_S = 3.0
ANSWER_LOG_MAX_CHARS = 300
ANSWER_READ_MAX_BYTES = 64 * 1024
RETRYABLE_STATUSES = frozenset({408, 429})  # and every 5xx and 3xx (_retryable)
# Connections to HiPay at most: one per terminal paying right now plus the worker's
# max_concurrent fit under it; beyond it an attempt waits for a free connection.
MAX_CONNECTIONS = 64


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


@dataclass(slots=True)
class _RequestTrace:
    """What aiohttp's trace hooks tell about one POST."""

    sent: bool = False  # the headers went out: HiPay may have the request
    reused: bool = False  # on a kept-alive connection from the pool


async def _on_headers_sent(
    _session: aiohttp.ClientSession, ctx: SimpleNamespace, _params: object
) -> None:
    ctx.trace_request_ctx.sent = True


async def _on_connection_reused(
    _session: aiohttp.ClientSession, ctx: SimpleNamespace, _params: object
) -> None:
    ctx.trace_request_ctx.reused = True


@dataclass(slots=True)
class _Post:
    """One POST's outcome: an HTTP answer (``status``) or the error instead of one."""

    trace: _RequestTrace = field(default_factory=_RequestTrace)
    status: int | None = None
    answer: str = ""
    retry_after: float | None = None
    error: BaseException | None = None


def _dead_connection(exc: BaseException) -> bool:
    """The connection died under the request without a byte of answer (reset, closed),
    as opposed to HiPay being slow (a timeout) or refusing (an HTTP status)."""
    return isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError) and not (
        isinstance(exc, TimeoutError)
    )


def _retryable(status: int) -> bool:
    """An answer that says "not now" (5xx, 408, 429) or "not here" (a redirect, which
    is not followed: maintenance, a moved endpoint): HiPay did not take the notification,
    and a later try may succeed.  Any other 4xx is about the notification itself."""
    return status in RETRYABLE_STATUSES or status >= 500 or 300 <= status < 400


def _may_hold_back_a_correction(row: Notification) -> bool:
    """An ``unknown`` notification: a late verdict's corrected one may be waiting for it
    to leave ``pending`` (Outbox.due), so its end must wake the worker."""
    result = row.payload.get(TERMINAL_RESULT_KEY)
    return isinstance(result, dict) and result.get("state") == TxState.UNKNOWN


def _finished_row(task: asyncio.Task[Notification | None]) -> Notification | None:
    """The row as a finished attempt left it; None if it has not finished or crashed."""
    if not task.done() or task.cancelled() or task.exception() is not None:
        return None
    return task.result()


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
        self._inflight: dict[int, asyncio.Task[Notification | None]] = {}
        # Rows whose last attempt crashed (most often: the journal could not write it
        # down, a full or read-only disk): id -> (not before, crashes in a row).  The row
        # itself still says "due", so without this it would be sent again at once, in a
        # loop; it waits the backoff instead, in memory (the disk is what failed).
        self._crashed: dict[int, tuple[float, int]] = {}
        self._outage = HipayOutage()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._url = endpoint.base_url.rstrip("/") + NOTIFY_PATH
        self._timeout = aiohttp.ClientTimeout(
            total=self._policy.request_timeout_s, sock_connect=self._policy.connect_timeout_s
        )
        pair = f"{endpoint.login}:{endpoint.password}".encode()
        self._authorization = "Basic " + base64.b64encode(pair).decode("ascii")

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        if self.lock_path is not None:
            self._take_lock(self.lock_path)
        self._client()  # the session (and its pool) for the notifier's life, not per payment
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
        """Look at the outbox now (a row was queued or requeued in this process)."""
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
            trace.on_connection_reuseconn.append(_on_connection_reused)
            # One keep-alive pool for every attempt: payments in a row and a backlog go
            # without a TCP (or TLS) handshake per notification.  Idle sockets close after
            # keepalive_s, well under common server idle timeouts (60-75 s), so a request
            # rarely meets a socket HiPay is closing; if one does, that try counts
            # uncertain and the POST goes again at once on a new connection (_attempt).
            connector = aiohttp.TCPConnector(
                limit=MAX_CONNECTIONS, keepalive_timeout=self._policy.keepalive_s
            )
            self._session = aiohttp.ClientSession(connector=connector, trace_configs=[trace])
        return self._session

    # -- worker loop -------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                sleep_s = await self._dispatch()
            except Exception as exc:  # a locked or busy database: read again shortly
                log.warning("hipay.notify.poll_failed", error=repr(exc))
                sleep_s = self._policy.read_retry_s
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for loses a cancel that
            # lands as the event is set (stop() cancels attempts whose end sets it), and
            # the worker would then outlive stop() for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(sleep_s):
                    await self._wake.wait()

    async def _dispatch(self) -> float:
        """Start the attempts that are due, or the outage's probe; seconds until the next.

        A finishing attempt, a kick and HiPay's return wake the loop earlier.
        """
        policy = self._policy
        now = time.time()
        free = policy.max_concurrent - len(self._inflight)
        if free <= 0:
            return policy.rescan_interval_s
        waiting = self._waiting_after_crash(now)
        due = await asyncio.to_thread(self._outbox.due, now, free, {*self._inflight, *waiting})
        probing = self._outage.active and not self._inflight and now >= self._outage.probe_at
        if not due and probing:  # no row is due, but HiPay may be back: try the earliest
            due = await asyncio.to_thread(self._outbox.due, math.inf, 1, waiting)
        for note in due:
            self._spawn(note.id)
        if len(self._inflight) >= policy.max_concurrent:
            return policy.rescan_interval_s
        wake_at = now + policy.rescan_interval_s
        if waiting:
            wake_at = min(wake_at, *waiting.values())
        earliest = await asyncio.to_thread(
            self._outbox.next_attempt_at, {*self._inflight, *waiting}
        )
        if earliest is not None:
            wake_at = min(wake_at, earliest)
            if self._outage.active and not self._inflight:
                wake_at = min(wake_at, self._outage.probe_at)
        return max(0.0, wake_at - time.time())

    def _waiting_after_crash(self, now: float) -> dict[int, float]:
        """The rows still in their backoff after a crashed attempt: id -> when they may go."""
        return {nid: at for nid, (at, _) in self._crashed.items() if at > now}

    def _spawn(
        self, notification_id: int, queued: Notification | None = None
    ) -> asyncio.Task[Notification | None]:
        existing = self._inflight.get(notification_id)
        if existing is not None:
            return existing
        task = asyncio.create_task(
            self._attempt_row(notification_id, queued), name=f"hipay-{notification_id}"
        )
        self._inflight[notification_id] = task

        def done(t: asyncio.Task[Notification | None]) -> None:
            was_full = len(self._inflight) >= self._policy.max_concurrent
            self._inflight.pop(notification_id, None)
            if t.cancelled():
                return
            if t.exception() is not None:
                crashes = self._crashed.get(notification_id, (0.0, 0))[1] + 1
                wait_s = self._policy.backoff_s(crashes)
                self._crashed[notification_id] = (time.time() + wait_s, crashes)
                self._wake.set()
                log.error(
                    "hipay.notify.delivery_crashed",
                    notification_id=notification_id,
                    error=repr(t.exception()),
                    next_attempt_in_s=round(wait_s, 3),
                )
                return
            self._crashed.pop(notification_id, None)
            # The worker's sleep already counts every row but those in flight: it has to
            # look again only if this one stays pending (its next attempt is new), if it
            # had to wait for a free slot, or if this one may hold back its correction
            # (Outbox.due).  Any other delivered or dead row changes nothing.
            row = t.result()
            if (
                was_full
                or row is None
                or row.state is NotificationState.PENDING
                or _may_hold_back_a_correction(row)
            ):
                self._wake.set()

        task.add_done_callback(done)
        return task

    async def deliver_now(
        self,
        order_id: str,
        budget_s: float = DELIVER_NOW_BUDGET_S,
        *,
        queued: Notification | None = None,
    ) -> DeliveryStatus:
        """One attempt at an order's notification (or the one in flight), awaited at most
        ``budget_s``.

        Only one: when HiPay refuses, fails or is down, the register gets its answer at
        once and the worker retries on the row's schedule.  The attempt is never
        cancelled when the budget runs out; the answer then says what is known.
        ``queued`` is the row the journal just wrote (``Journal.finish``): the
        payment path passes it, so nothing is read back before the POST (and its count
        is that row's: a payment that just finished has no other notification).
        """
        deadline = time.monotonic() + budget_s
        note = queued
        if note is None:
            note = await asyncio.to_thread(self._outbox.get_by_order, order_id)
            if note is None:
                return DeliveryStatus(sent=False, count=0, state=None)
        task = self._start(note, queued)
        if task is not None:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                await asyncio.wait({task}, timeout=remaining)
            latest = _finished_row(task) or await asyncio.to_thread(self._outbox.get, note.id)
            note = latest or note
        count = note.attempts_received  # a payment's own row: the order's only notification
        if queued is None:  # an order looked up: a reconciled one has two, both count
            count = await asyncio.to_thread(self._outbox.received_of_order, order_id)
        return DeliveryStatus(sent=note.sent, count=count, state=str(note.state))

    def send_soon(self, queued: Notification) -> None:
        """Start the attempt at a row the journal just queued, and wait for nothing: for
        an answer that does not show HiPay's delivery (the POS API's).  What the attempt
        meets (refused, down) is written down and retried as for any row."""
        self._start(queued, queued)

    def _start(
        self, note: Notification, queued: Notification | None
    ) -> asyncio.Task[Notification | None] | None:
        """The attempt in flight for ``note``, started now if the row is due; None when
        it is not (delivered, dead, backing off, or after a crash of its own)."""
        task = self._inflight.get(note.id)
        if task is None and note.state is NotificationState.PENDING:
            now = time.time()
            if note.next_attempt_at <= now and note.id not in self._waiting_after_crash(now):
                task = self._spawn(note.id, queued)
        return task

    # -- one attempt -----------------------------------------------------------

    async def _attempt_row(
        self, notification_id: int, queued: Notification | None = None
    ) -> Notification | None:
        """One attempt at a row that is still pending; returns the row as it leaves it.

        The worker's rows are read again (the list it chose from may be stale); a row
        the journal just queued (``queued``) is sent as it was written.
        """
        note = queued
        if note is None:
            note = await asyncio.to_thread(self._outbox.get, notification_id)
        if note is None or note.state is not NotificationState.PENDING:
            return note
        return await self._attempt(note)

    async def _attempt(self, note: Notification) -> Notification:
        """One POST, written down with its consequence (delivered, next attempt, dead).

        A kept-alive connection found dead (HiPay restarted, or closed it as the request
        went out) is not HiPay refusing: that try is written down (uncertain if the
        request left) and the POST goes again at once on a new connection, instead of
        waiting for the row's backoff and calling it an outage.  Once per attempt.
        """
        started_at = time.time()
        post = await self._post(note)
        if post.error is not None and post.trace.reused and _dead_connection(post.error):
            note = await self._stale_connection(note, post.error, sent=post.trace.sent)
            post = await self._post(note)
        if post.status is None:
            assert post.error is not None
            return await self._no_answer(
                note, post.error, uncertain=post.trace.sent, started_at=started_at
            )
        return await self._answered(note, post.status, post.answer, post.retry_after, started_at)

    async def _post(self, note: Notification) -> _Post:
        """The POST itself: HiPay's answer, or the error that stood for it."""
        if note.attempts_received > 0:
            log.info(
                "hipay.notify.reconciliation_send",
                order_id=note.order_id,
                notification_id=note.id,
                attempts_received=note.attempts_received,
            )
        post = _Post()
        try:
            async with self._client().post(
                self._url,
                data=note.payload_json.encode(),
                headers=self._headers(note),
                timeout=self._timeout,
                trace_request_ctx=post.trace,
                allow_redirects=False,  # a redirect is an answer, not HiPay taking it
            ) as resp:
                post.status = resp.status
                post.retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                # A 2xx's status is the whole answer: its body is not read, so HiPay
                # stalling after the status (no byte of body) cannot hold the delivery
                # (and the register's answer) until the request timeout.
                if not 200 <= resp.status < 300:
                    post.answer = await self._answer_text(resp)
        except asyncio.CancelledError:
            if post.trace.sent and post.status is None:  # stopping mid-request: HiPay may have it
                await self._record(
                    note,
                    NotificationState.PENDING,
                    status=None,
                    error="cancelled after the request was sent",
                    possibly_received=True,
                )
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            post.error = exc  # after an answer's status (closing the body): the answer stands
        return post

    @staticmethod
    async def _answer_text(resp: aiohttp.ClientResponse) -> str:
        """What a refusal says (kept masked, for a human): its body, and where a redirect
        pointed."""
        location = resp.headers.get("Location")
        text = "" if location is None else f"redirected to {location}: "
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            raw = await resp.content.read(ANSWER_READ_MAX_BYTES)
            text += raw.decode("utf-8", errors="replace")
        return text

    def _headers(self, note: Notification) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Authorization": self._authorization,
            IDEMPOTENCY_HEADER: note.idempotency_key,
        }

    async def _stale_connection(
        self, note: Notification, exc: BaseException, *, sent: bool
    ) -> Notification:
        """Write down a try lost to a dead kept-alive connection; the row stays due."""
        error = f"{type(exc).__name__}: {exc}".strip()
        self._count("uncertain" if sent else "not_sent")
        updated = await self._record(
            note, NotificationState.PENDING, status=None, error=error, possibly_received=sent
        )
        log.info(
            "hipay.notify.stale_connection",
            order_id=note.order_id,
            notification_id=note.id,
            error=error[:ANSWER_LOG_MAX_CHARS],
            uncertain=sent,
        )
        return updated

    async def _no_answer(
        self, note: Notification, exc: BaseException, *, uncertain: bool, started_at: float
    ) -> Notification:
        error = f"{type(exc).__name__}: {exc}".strip()
        self._count("uncertain" if uncertain else "not_sent")
        return await self._retry_later(
            note,
            status=None,
            error=error,
            possibly_received=uncertain,
            retry_after=None,
            started_at=started_at,
        )

    async def _answered(
        self,
        note: Notification,
        status: int,
        answer: str,
        retry_after: float | None,
        started_at: float,
    ) -> Notification:
        if 200 <= status < 300:
            updated = await self._record(
                note, NotificationState.DELIVERED, status=status, error=None, possibly_received=True
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
            await self._reachable()
            return updated
        safe = self._safe_answer(answer)  # kept and logged: one line, masked (not for a 2xx)
        if _retryable(status):
            self._count("retryable")
            return await self._retry_later(
                note,
                status=status,
                error=safe,
                possibly_received=False,
                retry_after=retry_after,
                started_at=started_at,
            )
        updated = await self._record(
            note, NotificationState.DEAD, status=status, error=safe, possibly_received=False
        )
        self._count("rejected")
        log.error(
            "hipay.notify.dead_lettered",
            order_id=note.order_id,
            notification_id=note.id,
            status=status,
            answer=safe,
        )
        await self._reachable()  # HiPay answered: it is up, whatever it thought of this one
        return updated

    async def _retry_later(
        self,
        note: Notification,
        *,
        status: int | None,
        error: str,
        possibly_received: bool,
        retry_after: float | None,
        started_at: float,
    ) -> Notification:
        """Write down a failed attempt with the row's next one, and tell the outage."""
        wait_s = self._policy.backoff_s(note.attempts + 1, retry_after)
        updated = await self._record(
            note,
            NotificationState.PENDING,
            status=status,
            error=error,
            possibly_received=possibly_received,
            next_attempt_at=time.time() + wait_s,
        )
        reason = error if status is None else f"HTTP {status}"
        log.info(
            "hipay.notify.attempt_failed",
            order_id=note.order_id,
            notification_id=note.id,
            status=status,
            error=error[:ANSWER_LOG_MAX_CHARS],
            retry_after_s=retry_after,
            uncertain=possibly_received,
            attempts=updated.attempts,
            next_attempt_in_s=round(wait_s, 3),
        )
        if self._outage.failed(
            attempt_started_at=started_at,
            now=time.time(),
            probe_wait_s=self._policy.probe_wait_s(retry_after),
        ):
            log.warning(
                "hipay.notify.unreachable",
                url=self._url,
                reason=reason[:ANSWER_LOG_MAX_CHARS],
                order_id=note.order_id,
            )
        return updated

    async def _reachable(self) -> None:
        """HiPay answered: if that ends an outage, make the whole backlog due now."""
        ended = self._outage.answered(time.time())
        if ended is None:
            return
        pending = await asyncio.to_thread(self._outbox.expedite)
        log.info(
            "hipay.notify.reachable_again",
            url=self._url,
            duration_s=round(ended.duration_s, 3),
            failed_attempts=ended.failed_attempts,
            pending=pending,
        )
        self._wake.set()

    async def _record(
        self,
        note: Notification,
        state: NotificationState,
        *,
        status: int | None,
        error: str | None,
        possibly_received: bool,
        next_attempt_at: float | None = None,
    ) -> Notification:
        """Write one attempt down, on the journal's writer thread (no fsync of its own).

        Also on the way out of a cancelled attempt (:meth:`stop` while a request waited
        for its answer): the write is queued before the cancellation goes on, and lands
        even if this task is cancelled again; :meth:`stop` awaits the task, and the
        journal, closed after the notifier, commits what is queued.
        """
        return await self._outbox.record_attempt(
            note.id,
            state=state,
            status=status,
            error=error,
            possibly_received=possibly_received,
            next_attempt_at=next_attempt_at,
        )

    def _safe_answer(self, text: str) -> str:
        """HiPay's answer, fit for a log line: one line, truncated, no PAN, no credential."""
        text = redact_text(" ".join(text.split()), (self._endpoint.password,))
        if len(text) > ANSWER_LOG_MAX_CHARS:
            text = text[: ANSWER_LOG_MAX_CHARS - 1] + "…"
        return text

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.notification_attempt(result)
