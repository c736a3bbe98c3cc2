"""Logs for log-based monitoring: one JSON object per line, nothing secret in it.

Every line carries ``timestamp`` (UTC, ISO 8601), ``level``, ``process``
(tp-manager, supervisor-agent, simulator...) and ``event``, a dotted name from
the catalogue in docs/log-events.md; ``order_id`` and ``duration_ms`` where
they apply.  Logs of libraries (aiohttp, asyncio) go through the same
pipeline, so a monitoring rule never meets a line it cannot parse.

The redaction processor runs last, on every line: values of password-like
keys, ``Authorization`` values, user:password in URLs, Luhn-valid card numbers
and the configured secrets themselves are replaced wherever they appear.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import IO, Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from common.redact import redact

# Libraries whose INFO chatter is not ours to monitor.
QUIET_LIBRARIES = ("aiohttp.access", "asyncio", "tenacity")


class Redactor:
    """A structlog processor; ``secrets`` are exact values (the configured passwords)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(s for s in secrets if s)

    def __call__(self, _logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        return dict(redact(event_dict, self.secrets))


_HEAD = ("timestamp", "level", "process", "event")


def _head_first(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """The four fields every line has come first: easier for a person reading a tail."""
    head = {key: event_dict.pop(key) for key in _HEAD if key in event_dict}
    return {**head, **event_dict}


def _add_process(process: str) -> Processor:
    def add(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("process", process)
        return event_dict

    return add


def configure_logging(
    process: str,
    level: str = "info",
    *,
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> None:
    """Set up structlog and the stdlib root logger for this process; call once at start."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_process(process),
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            Redactor(secrets),
            _head_first,
            structlog.processors.JSONRenderer(default=str, sort_keys=False),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


def secrets_of(config: Any) -> list[str]:
    """The configured secret values, for :class:`Redactor` (a config or anything like one)."""
    values: list[str] = []
    for name in ("api_password", "hipay_password"):
        secret = getattr(config, name, None)
        getter = getattr(secret, "get_secret_value", None)
        if callable(getter):
            values.append(str(getter()))
    return values
