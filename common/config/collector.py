"""What a part of the loader needs from its problem collector (loader._Collector)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from common.config.sources import Raw


class Collector(Protocol):
    """Runs a rule on a key's raw value and keeps every broken rule, so one pass reports
    them all."""

    raw: Mapping[str, Raw]

    def problem(self, key: str, rule: str) -> None: ...

    def value(
        self, key: str, default: Any = None, rule: Callable[[Any], Any] | None = None
    ) -> Any: ...
