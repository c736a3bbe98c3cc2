"""Each configured terminal's link as the agent knows it: the one owner of that fact.

tp-manager publishes every change of a terminal's link (``link.up`` / ``link.down``,
with the terminal's key: ``default`` or a ``terminals.<id>`` id); the agent's event
subscriber hands them here (live_feed.py).  Events are hints that a subscriber can
miss (PUB drops what it sends while the agent is away), so a ``check`` answer tells
the state too (status_facts.py): at start, while a terminal is still unknown, after
tp-manager (re)started, and when the status page is read, for a link not heard of
lately.  The link gauge (metrics.py, ``ecr_terminal_link_up``, read at scrape time) and
the status page's terminal rows both read this, so they never tell different stories.

* **Unknown until told**: before an event or a check answer, a terminal's link is
  ``None``: the gauge has no series for it (an alert never fires on a guess) and the
  page shows ``unknown``.
* **Bounded**: only configured terminals have a row (the default one and the config's
  named ones); an event for any other key (a Concert V3 terminal only an order named) is
  not kept here, so the gauge's series are as many as the config's terminals.
* **No stale answer wins**: a check answer is taken only if no event for that terminal
  arrived while the check was in flight (the event is then newer than the answer: the
  two travel on different sockets, so their order is not guaranteed).
* **Since**: when the agent learned the current state (the event's arrival, or the
  check answer that first told it); a state told again does not move it.
* **Learned**: when the agent last heard anything of the link (any event or answer);
  none again when tp-manager's events reach the agent anew (:meth:`TerminalLinks.relearn`:
  a new tp-manager's first events are lost), so each terminal is asked ``check`` again.
  The status page asks ``check`` only of terminals unknown or not heard of for
  :data:`RECHECK_AFTER_S` (:meth:`TerminalLinks.due`): a check of an idle Concert V3
  terminal is an exchange that holds it busy, and the page reloads after every
  finished payment, so checking every terminal at every load would refuse payments
  (409 TERMINAL_BUSY) in a busy shop while someone watches the page.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from common.terminals import DEFAULT_TERMINAL

if TYPE_CHECKING:  # metrics.py imports this module; the API package imports metrics.py
    from supervisor_agent.api.settings import ApiSettings

LINK_UP: Final = "up"  # tp-manager's LinkState values: disconnected, connecting, up, down
LINK_DOWN: Final = "down"
UNKNOWN: Final = "unknown"  # what the page shows for a link nobody told yet
RECHECK_AFTER_S: Final = 60.0  # a link not heard of for this long is checked again


@dataclass(frozen=True, slots=True)
class TerminalLink:
    """One configured terminal and its link (``link`` None: unknown)."""

    terminal: str  # its key: ``default`` or its id in the config
    protocol: str  # concert-v2 | concert-v3
    location: str  # the serial device, or host:port
    link: str | None = None
    since: float | None = None
    detail: str = ""
    learned_at: float | None = None  # the last event or answer about it

    @property
    def up(self) -> bool:
        return self.link == LINK_UP

    def to_dict(self) -> dict[str, Any]:
        return {
            "terminal": self.terminal,
            "protocol": self.protocol,
            "location": self.location,
            "link": self.link or UNKNOWN,
            "since": self.since,
            "detail": self.detail,
        }


class TerminalLinks:
    """Thread-safe: events arrive on the event loop, the gauge is read by any scrape."""

    def __init__(
        self, terminals: Iterable[TerminalLink], clock: Callable[[], float] = time.time
    ) -> None:
        self._rows = {t.terminal: t for t in terminals}
        self._told = dict.fromkeys(self._rows, 0)  # events per terminal: a check's token
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def of(cls, settings: ApiSettings) -> TerminalLinks:
        """The configured terminal (the seeds' keys) first, then the named ones."""
        default = TerminalLink(
            DEFAULT_TERMINAL, settings.terminal_protocol, settings.terminal_location
        )
        named = (TerminalLink(s.id, s.protocol, s.address) for s in settings.terminals)
        return cls([default, *named])

    @property
    def keys(self) -> list[str]:
        return list(self._rows)

    def rows(self) -> list[TerminalLink]:
        with self._lock:
            return list(self._rows.values())

    def get(self, terminal: str) -> TerminalLink | None:
        with self._lock:
            return self._rows.get(terminal)

    def unlearned(self) -> list[str]:
        """The terminals to ``check`` now: never told, or marked by :meth:`relearn`."""
        with self._lock:
            return [key for key, row in self._rows.items() if row.learned_at is None]

    def relearn(self) -> None:
        """What was told may be stale: tp-manager (re)started, and the link events it
        published before the agent's subscriber reconnected are lost (a link found down
        at its start, which it never says again while it stays down).  Each row keeps its
        state (the gauge keeps its series) until a ``check`` answer or an event."""
        with self._lock:
            for key, row in self._rows.items():
                self._rows[key] = replace(row, learned_at=None)

    def due(self, max_age_s: float = RECHECK_AFTER_S) -> list[str]:
        """The terminals to ``check``: unknown, or not heard of for ``max_age_s``."""
        oldest = self._clock() - max_age_s
        with self._lock:
            return [
                key
                for key, row in self._rows.items()
                if row.learned_at is None or row.learned_at <= oldest
            ]

    def told(self, terminal: str, link: str, detail: str) -> bool:
        """A link event; False when ``terminal`` is not a configured one (not kept)."""
        with self._lock:
            if terminal not in self._rows:
                return False
            self._told[terminal] += 1
            self._set(terminal, link, detail)
            return True

    def asking(self, terminal: str) -> int:
        """Before a ``check``: the token :meth:`answered` compares."""
        with self._lock:
            return self._told.get(terminal, 0)

    def answered(self, terminal: str, token: int, link: str, detail: str) -> bool:
        """A ``check`` answer, taken unless an event for ``terminal`` came since ``token``."""
        with self._lock:
            if terminal not in self._rows or self._told[terminal] != token:
                return False
            self._set(terminal, link, detail)
            return True

    def _set(self, terminal: str, link: str, detail: str) -> None:
        row, now = self._rows[terminal], self._clock()
        since = row.since if row.link == link else now
        self._rows[terminal] = replace(row, link=link, since=since, detail=detail, learned_at=now)
