"""The operator's routes: ``/events`` (live), ``/status`` (page) and ``/status.json``.

One bundle so ``create_app`` registers them in one line; ``main.py`` builds it
with the agent's event log (fed by the journal and tp-manager), a test or a bare
``create_app`` gets one of its own.  Open streams end when the app shuts down, so
they never hold up a stop that waits for a payment's answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from supervisor_agent.api.live_events import HEARTBEAT_S, LiveEvents
from supervisor_agent.api.settings import ApiSettings
from supervisor_agent.api.status_page import StatusPage
from supervisor_agent.client import TerminalClient
from supervisor_agent.event_log import EventLog
from supervisor_agent.journal import Journal
from supervisor_agent.live_feed import LiveFeed
from supervisor_agent.metrics import Metrics
from supervisor_agent.recent_problems import RecentProblems
from supervisor_agent.status_facts import StatusSource
from supervisor_agent.terminal_links import TerminalLinks


@dataclass
class OperatorView:
    events: EventLog
    feed: LiveFeed
    status: StatusSource
    heartbeat_s: float = HEARTBEAT_S

    @classmethod
    def for_app(
        cls,
        settings: ApiSettings,
        client: TerminalClient,
        journal: Journal,
        *,
        metrics: Metrics | None = None,
        problems: RecentProblems | None = None,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> OperatorView:
        """A fresh event log fed by ``journal``'s writes (tp-manager's events: ``feed``),
        and the terminals' links, which ``metrics`` (if given) serves as its link gauge,
        beside whether ``client`` reaches tp-manager (``ecr_tp_manager_up``)."""
        events = EventLog()
        links = TerminalLinks.of(settings)  # the one record the gauge and the page read
        if metrics is not None:
            metrics.watch_links(links)
            metrics.watch_tp_manager(lambda: client.connected)
        feed = LiveFeed(events, metrics, links)
        journal.observers.add(feed.journal_changed)
        journal.outbox.observers.add(feed.outbox_changed)
        status = StatusSource(settings, journal, client, events, links, problems)
        return cls(events, feed, status, heartbeat_s)

    def install(self, app: web.Application) -> None:
        page = StatusPage(self.status)
        app.add_routes(
            [
                web.get(
                    "/events", LiveEvents(self.events, self.heartbeat_s).stream, allow_head=False
                ),
                web.get("/status", page.page, allow_head=False),
                web.get("/status.json", page.facts, allow_head=False),
            ]
        )
        app.on_shutdown.append(self._close)

    async def _close(self, app: web.Application) -> None:
        self.events.close()
