"""Watch supervisord's programs while ``run`` is in the foreground: say why one dies at start.

supervisord retries a program that dies before its ``startsecs`` a few times
(``START_RETRIES``), then marks it FATAL and leaves the rest running, which on
an unattended kiosk is a connector that answers nothing and says so only in a
log file.  And on a slow or busy machine a program that dies while it starts
may outlive ``startsecs``: supervisord then counts it as started and restarts
it forever.  So this watcher counts itself: every exit of a program less than
``FAST_DEATH_S`` after its start is a failed start, printed with the last error
line of the program's log; after ``START_RETRIES + 1`` in a row (or supervisord's
own FATAL) it reports the program so ``run`` stops the connector with that reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.logging import CRASHED_EVENT
from common.redact import redact, redact_text

ERROR_LEVELS = ("error", "critical")
# A program that exits sooner than this after its start never really started: its
# configuration or its surroundings are wrong, and restarting it will not help.
FAST_DEATH_S = 20
MAX_READ_BYTES = 256 * 1024  # of a log's newest part: the reason is in its last lines


def _json_reason(line: str) -> str | None:
    """``event: key=value ...`` of an error-level JSON log line; None for any other line."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or str(record.get("level", "")).lower() not in ERROR_LEVELS:
        return None
    skip = {"level", "timestamp", "process", "event", "logger", "pid"}
    record = redact(record)
    # a traceback's last line says what went wrong; the frames are for the log file
    exception = record.pop("exception", None)
    lines = str(exception).strip().splitlines() if exception else []
    cause = lines[-1].strip() if lines else None
    if cause and record.get("event") == CRASHED_EVENT:
        return cause
    details = " ".join(f"{k}={v}" for k, v in record.items() if k not in skip)
    if cause:
        details += f" exception={cause}"
    return f"{record.get('event', 'error')}: {details.strip()}".rstrip(": ")


@dataclass
class LogTail:
    """A program's two log files, read only from where they ended when ``run`` began."""

    log_dir: Path
    name: str
    offsets: dict[Path, int] = field(default_factory=dict)

    def files(self) -> list[Path]:
        return [self.log_dir / f"{self.name}.log", self.log_dir / f"{self.name}.err.log"]

    def mark(self) -> None:
        for path in self.files():
            self.offsets[path] = path.stat().st_size if path.exists() else 0

    def _new_lines(self, path: Path) -> list[str]:
        if not path.exists():
            return []
        size = path.stat().st_size
        start = self.offsets.get(path, 0)
        if size < start:  # rotated since
            start = 0
        start = max(start, size - MAX_READ_BYTES)
        with path.open("rb") as handle:
            handle.seek(start)
            text = handle.read().decode("utf-8", errors="replace")
        return [line.strip() for line in text.splitlines() if line.strip()]

    def last_error(self) -> str | None:
        """The newest error-level JSON line; else the last line on stderr (a traceback's)."""
        out, err = (self._new_lines(path) for path in self.files())
        for line in reversed(out + err):
            reason = _json_reason(line)
            if reason:
                return reason
        plain = [line for line in err if _json_reason(line) is None and not line.startswith("{")]
        return redact_text(plain[-1]) if plain else None


@dataclass
class StartWatch:
    """Turns successive ``getAllProcessInfo()`` answers into messages for the console."""

    log_dir: Path
    tails: dict[str, LogTail] = field(default_factory=dict)
    seen_stops: dict[str, int] = field(default_factory=dict)
    starts: dict[str, int] = field(default_factory=dict)  # the start seen before an exit
    failures: dict[str, int] = field(default_factory=dict)
    fatal: str | None = None  # the message for the program supervisord gave up on

    def tail(self, name: str) -> LogTail:
        if name not in self.tails:
            self.tails[name] = LogTail(self.log_dir, name)
            self.tails[name].mark()
        return self.tails[name]

    def mark(self, names: list[str]) -> None:
        """Before supervisord starts: what the logs hold now is an earlier run's."""
        for name in names:
            self.tail(name)

    def reason(self, info: dict[str, Any]) -> str:
        name = str(info["name"])
        found = self.tail(name).last_error()
        if found:
            return found
        if info.get("spawnerr"):
            return str(info["spawnerr"])
        return f"exit status {info.get('exitstatus')} (its log: {self.log_dir / name}.log)"

    def _lifetime(self, name: str, start: int, stop: int) -> int | None:
        """Seconds the program that exited at ``stop`` ran; None when its start was missed."""
        seen = self.starts.get(name)
        if seen is not None and seen <= stop:
            return stop - seen
        return stop - start if start <= stop else None

    def update(self, infos: list[dict[str, Any]], retries: int) -> list[str]:
        """Messages for what changed; sets ``fatal`` once a program is given up on.

        supervisord's ``stop`` is the time of the program's last exit (0: none yet), so a
        new value is a new exit, counted once whatever state it is seen in."""
        messages: list[str] = []
        for info in infos:
            name, state = str(info["name"]), str(info["statename"])
            start, stop = int(info.get("start") or 0), int(info.get("stop") or 0)
            if stop and stop != self.seen_stops.get(name, 0):
                self.seen_stops[name] = stop
                lifetime = self._lifetime(name, start, stop)
                if lifetime is not None and lifetime >= FAST_DEATH_S:
                    self.failures[name] = 0  # it had started: supervisord restarts it
                else:
                    self.failures[name] = self.failures.get(name, 0) + 1
                    ran = "" if lifetime is None else f" {lifetime} s after its start"
                    if self.failures[name] <= retries and state != "FATAL":
                        messages.append(
                            f"{name} died at start{ran} ({self.reason(info)}); trying again "
                            f"(try {self.failures[name]} of {retries + 1})"
                        )
            if start:
                self.starts[name] = start
            gave_up = state == "FATAL" or self.failures.get(name, 0) > retries
            if gave_up and self.fatal is None:
                self.fatal = (
                    f"{name} died at start {self.failures.get(name, 0)} times in a row; "
                    f"giving up: {self.reason(info)}"
                )
                messages.append(self.fatal)
        return messages
