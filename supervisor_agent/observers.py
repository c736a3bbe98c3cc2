"""A list of callbacks told about a write after it committed, none able to break it.

The journal and the outbox tell their observers (the live event feed) what they
just wrote, with the row as written: the events the operator sees are the
journal's own truth, never re-derived.  An observer that raises is logged and
skipped: a display must never fail a payment's write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")


class Observers(Generic[T]):
    def __init__(self) -> None:
        self._callbacks: list[Callable[[str, T], None]] = []

    def add(self, callback: Callable[[str, T], None]) -> None:
        self._callbacks.append(callback)

    def tell(self, change: str, item: T) -> None:
        for callback in self._callbacks:
            try:
                callback(change, item)
            except Exception as exc:
                log.warning("agent.observer.failed", change=change, error=repr(exc))
