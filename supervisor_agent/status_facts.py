"""The facts of the status page, ``GET /status.json`` and ``ecr-connector status``.

One function gathers them so the page, the JSON and the terminal never tell
different stories.  Transactions come from the journal (masked as the live
events are: live_feed.transaction_facts), the outbox counts from the outbox, and
``last_event_id`` lets the page follow ``/events`` from exactly where these facts
were read.  Each configured terminal whose link is unknown or not heard of for a
while (``TerminalLinks.due``: a check can hold a terminal busy) is asked ``check`` at
once (bounded by ``CHECK_TIMEOUT_S``); the answers go to the terminals' links
(terminal_links.py), and the page's terminal rows are read from there, the record the
link gauge reads: a terminal tp-manager does not answer for keeps its last told state.
Every configured terminal is asked again when tp-manager's events reach the agent anew
(:meth:`StatusSource.relearn_links`): a new tp-manager's first link events are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

from common.commands import check as check_contract
from common.terminals import DEFAULT_TERMINAL
from supervisor_agent.api.settings import ApiSettings
from supervisor_agent.client import CommandFailed, TerminalClient
from supervisor_agent.event_log import EventLog
from supervisor_agent.journal import Journal
from supervisor_agent.live_feed import publish_link, transaction_facts
from supervisor_agent.metrics import Metrics
from supervisor_agent.recent_problems import RecentProblems
from supervisor_agent.terminal_links import UNKNOWN, TerminalLinks
from supervisor_agent.update import state as update_state

log = structlog.get_logger(__name__)

RECENT_TRANSACTIONS = 20
CHECK_TIMEOUT_S = 3.0  # the page must not hang on a terminal that does not answer
METRICS_REFRESH_S = 15.0  # a Prometheus scrape interval

Checked = check_contract.CheckReply | CommandFailed | ValueError  # an answer, or why none


def journal_bytes(path: Path) -> int:
    """The journal's size on disk, its WAL and shared-memory files included."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        try:
            total += os.stat(f"{path}{suffix}").st_size
        except FileNotFoundError:
            continue
    return total


def refresh_journal_gauges(journal: Journal, metrics: Metrics) -> None:
    """The gauges the journal holds, read now (SQLite: call it in a worker thread), at each
    scrape and each metrics round: the outbox's states with its oldest pending
    notification (one read), the journal's size, the last accepted payment."""
    metrics.set_outbox(journal.outbox.summary())
    metrics.set_journal_facts(journal_bytes(journal.path), journal.last_accepted_at())


@dataclass
class StatusSource:
    settings: ApiSettings
    journal: Journal
    client: TerminalClient
    events: EventLog
    links: TerminalLinks
    problems: RecentProblems | None = None
    started_at: float = field(default_factory=time.time)
    _relearn: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    async def _check(self, terminal: str) -> Checked:
        """tp-manager's ``check`` of one configured terminal; its answer goes to the links."""
        props = {} if terminal == DEFAULT_TERMINAL else {"terminal": terminal}
        token = self.links.asking(terminal)
        try:
            raw = await self.client.call(check_contract.NAME, props, timeout=CHECK_TIMEOUT_S)
            reply = check_contract.CheckReply.from_wire(raw)
        except (CommandFailed, ValueError) as exc:
            return exc
        before = self.links.get(terminal)
        taken = self.links.answered(terminal, token, reply.link, reply.detail)
        if taken and before is not None and before.link != reply.link:
            # a change tp-manager's events did not tell (missed while it restarted): the
            # page and other followers of /events learn it as from an event
            publish_link(self.events, terminal, reply.link, reply.detail)
        return reply

    async def _check_all(self, terminals: list[str]) -> dict[str, Checked]:
        replies = await asyncio.gather(*(self._check(key) for key in terminals))
        return dict(zip(terminals, replies, strict=True))

    def _link(self, reply: Checked | None) -> dict[str, Any]:
        """The configured terminal's section: its check (None: not asked, its link was
        heard of recently), or its last told link."""
        if reply is None or isinstance(reply, Exception):
            known = self.links.get(DEFAULT_TERMINAL)
            detail = known.detail if known else ""
            if reply is not None:
                detail = f"tp-manager did not answer the check: {getattr(reply, 'code', reply)}"
            return {
                "link": known.link if known and known.link else UNKNOWN,
                "busy": None,
                "responding": None,
                "detail": detail,
            }
        return {
            "link": reply.link,
            "busy": reply.busy,
            "responding": reply.responding,
            "detail": reply.detail,
        }

    def _update(self) -> dict[str, Any] | None:
        """The self-update's last run as the update and the switcher wrote it down
        (``<data_dir>/update/status.json``; the journal lives in the data directory), or
        None when no run ever did."""
        data_dir = self.journal.path.parent
        if not update_state.status_path(data_dir).exists():
            return None
        return asdict(update_state.read_status(data_dir))

    def _read_journal(self) -> dict[str, Any]:
        outbox = self.journal.outbox
        rows = []
        for record in self.journal.recent(RECENT_TRANSACTIONS):
            note = outbox.get_by_order(record.order_id)
            rows.append(
                {**transaction_facts(record), "notification": str(note.state) if note else None}
            )
        summary = outbox.summary()
        disk = shutil.disk_usage(self.journal.path.parent)
        return {
            "update": self._update(),
            "transactions": rows,
            "outbox": {"counts": summary.counts, "oldest_pending_at": summary.oldest_pending_at},
            "disk": {
                "path": str(self.journal.path.parent),
                "free_bytes": disk.free,
                "total_bytes": disk.total,
                "journal_bytes": journal_bytes(self.journal.path),
            },
        }

    async def refresh_metrics(self, metrics: Metrics) -> None:
        """The gauges read from disk; a terminal's link from ``check`` until it is known,
        and again after tp-manager (re)started (then its events tell each change)."""
        await asyncio.to_thread(refresh_journal_gauges, self.journal, metrics)
        await self._check_all(self.links.unlearned())

    def relearn_links(self) -> None:
        """tp-manager's events reach the agent again (its subscriber (re)connected): what
        a new tp-manager published before then is lost, so every configured terminal is
        asked ``check`` again, now (and at each round until one answers)."""
        self.links.relearn()
        self._relearn.set()

    async def keep_metrics_fresh(
        self, metrics: Metrics, interval_s: float = METRICS_REFRESH_S
    ) -> None:
        """Until cancelled; a failed refresh is logged and tried again next time."""
        while True:
            self._relearn.clear()
            try:
                await self.refresh_metrics(metrics)
            except Exception as exc:  # a busy disk: the next round tries again
                log.warning("metrics.refresh_failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval_s):
                    await self._relearn.wait()

    async def collect(self) -> dict[str, Any]:
        last_event_id = f"{self.events.boot}-{self.events.last_seq}"  # before reading anything
        replies = await self._check_all(self.links.due())
        stored = await asyncio.to_thread(self._read_journal)
        now = time.time()
        return {
            "generated_at": now,
            "last_event_id": last_event_id,
            "connector": {"version": self.settings.version_string, "update": stored.pop("update")},
            "terminal": {
                "protocol": self.settings.terminal_protocol,
                "serial_number": self.settings.serial_number or None,
                **self._link(replies.get(DEFAULT_TERMINAL)),
            },
            "terminals": [row.to_dict() for row in self.links.rows()],
            # the control channel's word, as ecr_tp_manager_up: without it no payment goes
            "tp_manager": {"connected": self.client.connected},
            "agent": {"started_at": self.started_at, "uptime_s": round(now - self.started_at, 1)},
            **stored,
            "problems": self.problems.lines() if self.problems else [],
        }
