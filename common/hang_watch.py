"""``run``'s watch over hung programs: one whose heartbeat stopped is killed, and restarted.

Each RUNNING program (tp-manager, the agent) touches its heartbeat file from its event
loop (``common/heartbeat.py``).  This watch remembers, on ``run``'s monotonic clock (a
wall clock set by NTP neither hides nor fakes a hang), when it last saw each file change;
a program whose file has not changed for ``hang_timeout`` seconds since that, or since
its start was first seen, is hung: ``run`` sends it SIGKILL through supervisord (a hung
loop would not act on SIGTERM), and supervisord's autorestart starts it again.  A
program STARTING or STOPPING is not judged: a stop may rightly wait for a payment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import heartbeat

WATCHED = ("tp-manager", "supervisor-agent")


@dataclass
class _Seen:
    pid: int
    mark: int | None  # the file's mtime_ns when last seen
    since: float  # run's monotonic time of the last change (or of the pid's first sight)


@dataclass
class HangWatch:
    data_dir: Path
    hang_timeout_s: float
    seen: dict[str, _Seen] = field(default_factory=dict)

    def _mark(self, name: str) -> int | None:
        try:
            return heartbeat.path_of(self.data_dir, name).stat().st_mtime_ns
        except OSError:
            return None

    def hung(self, infos: list[dict[str, Any]], now: float) -> list[tuple[str, int, float]]:
        """(name, pid, seconds without a beat) of each RUNNING program found hung."""
        found = []
        for info in infos:
            name, pid = str(info.get("name")), int(info.get("pid") or 0)
            if name not in WATCHED or info.get("statename") != "RUNNING" or not pid:
                self.seen.pop(name, None)
                continue
            mark = self._mark(name)
            seen = self.seen.get(name)
            if seen is None or seen.pid != pid or seen.mark != mark:
                self.seen[name] = _Seen(pid, mark, now)
                continue
            if now - seen.since >= self.hang_timeout_s:
                found.append((name, pid, now - seen.since))
                del self.seen[name]  # judged once; its successor is a new pid
        return found
