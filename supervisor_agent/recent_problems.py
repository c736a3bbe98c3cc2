"""The agent's last warnings and errors, for the status page: what a technician reads first.

A listener of the log output (common.logging.add_problem_listener): it is handed each
warning-or-worse line as written to the log, already rendered and redacted, so the page
can never show a secret or a card number the log would not.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any

from common.logging import add_problem_listener

PROBLEMS_KEPT = 10
KEPT_FIELDS = ("timestamp", "level", "event", "order_id", "terminal")
# what the agent's warning and error lines say the cause is, under these names
# (docs/log-events.md); ``status`` is an HTTP status (HiPay's refusal)
WHY_FIELDS = ("error_code", "status", "reason", "error", "detail")


def why(record: dict[str, Any]) -> str | None:
    """The line's cause in a few words, from whichever of :data:`WHY_FIELDS` it has."""
    parts = []
    for key in WHY_FIELDS:
        value = record.get(key)
        if value is None or value == "":
            continue
        parts.append(f"HTTP {value}" if key == "status" else str(value))
    return "; ".join(parts) or None


class RecentProblems:
    def __init__(self, kept: int = PROBLEMS_KEPT) -> None:
        self._lines: deque[dict[str, Any]] = deque(maxlen=kept)
        self._guard = threading.Lock()

    @classmethod
    def install(cls, kept: int = PROBLEMS_KEPT) -> RecentProblems:
        """Listen to this process's log output (configured by common.logging)."""
        problems = cls(kept)
        add_problem_listener(problems.add)
        return problems

    def add(self, line: str) -> None:
        """One rendered log line (JSON); anything else is ignored."""
        try:
            record = json.loads(line)
        except ValueError:
            return
        if not isinstance(record, dict):
            return
        kept = {k: record.get(k) for k in KEPT_FIELDS}
        kept.update({k: record.get(k) for k in WHY_FIELDS}, why=why(record))
        with self._guard:
            self._lines.append({k: v for k, v in kept.items() if v is not None})

    def lines(self) -> list[dict[str, Any]]:
        """Newest first."""
        with self._guard:
            return list(reversed(self._lines))
