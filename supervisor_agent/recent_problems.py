"""The agent's last warnings and errors, for the status page: what a technician reads first.

A logging handler beside the JSON one, fed the same lines after the same
redaction (it formats with the root handler's formatter), so the page can never
show a secret or a card number the log would not.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from typing import Any

PROBLEMS_KEPT = 10


class RecentProblems(logging.Handler):
    def __init__(self, kept: int = PROBLEMS_KEPT, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self._lines: deque[dict[str, Any]] = deque(maxlen=kept)
        self._guard = threading.Lock()

    @classmethod
    def install(cls, kept: int = PROBLEMS_KEPT) -> RecentProblems:
        """Attach to the root logger, formatting as its (JSON, redacting) handler does."""
        root = logging.getLogger()
        handler = cls(kept)
        formatter = next((h.formatter for h in root.handlers if h.formatter), None)
        if formatter is not None:
            handler.setFormatter(formatter)
        root.addHandler(handler)
        return handler

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = json.loads(self.format(record))
        except (ValueError, TypeError):
            return  # not our JSON formatter (a test without configured logging)
        if not isinstance(line, dict):
            return
        kept = {k: line.get(k) for k in ("timestamp", "level", "event", "order_id", "error")}
        with self._guard:
            self._lines.append({k: v for k, v in kept.items() if v is not None})

    def lines(self) -> list[dict[str, Any]]:
        """Newest first."""
        with self._guard:
            return list(reversed(self._lines))
