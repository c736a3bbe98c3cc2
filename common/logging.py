"""Logs for log-based monitoring: one JSON object per line, nothing secret in it.

Every line carries ``timestamp`` (UTC, ISO 8601), ``level``, ``process``
(tp-manager, supervisor-agent, simulator...) and ``event``, a dotted name from
the catalogue in docs/log-events.md; ``order_id`` and ``duration_ms`` where
they apply.  Logs of libraries (aiohttp, asyncio) go through the same
pipeline, so a monitoring rule never meets a line it cannot parse.

The redaction processor runs last, on every line: values of password-like
keys, ``Authorization`` values, user:password in URLs, Luhn-valid card numbers
and the configured secrets themselves are replaced wherever they appear.  An
exception nothing caught is logged the same way (``process.crashed``), and its
traceback printed on stderr only redacted.

A line is cheap (benchmarks/log_cost.py): redaction runs each pattern only on a
value it could change, the time stamp's date and time of day are formatted once per
second, the JSON is rendered by orjson, and a line is rendered once
whatever number of handlers take it.  tp-manager and the agent write their lines
themselves into ``<data_dir>/logs/<program>.log`` (:class:`LogFile`, rotated by
size) instead of through supervisord's pipes, which cost supervisord CPU per line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import IO, Any

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from common import paths
from common.redact import redact_fields, redact_text

# Libraries whose INFO chatter is not ours to monitor.
QUIET_LIBRARIES = ("aiohttp.access", "asyncio", "tenacity")


MB = 1024 * 1024
LOG_FILE_MODE = 0o600  # the logs hold order ids: this user's only (common/paths.py)


@dataclass(frozen=True)
class LogFileSpec:
    """A program's own log file: rotated at ``max_mb``, ``backups`` older files kept."""

    path: Path
    max_mb: int
    backups: int


def log_file_of(config: Any) -> LogFileSpec | None:
    """The file ``run`` asked this program to log to (``paths.LOG_FILE_ENV``), sized by the
    config's ``log_file_max_mb`` and ``log_file_backups``; None (``run --console-logs``, a
    program started by hand): log to stdout."""
    where = os.environ.get(paths.LOG_FILE_ENV)
    if not where:
        return None
    return LogFileSpec(Path(where), config.log_file_max_mb, config.log_file_backups)


class UtcStamper:
    """The ``timestamp`` of every line, the text structlog's ``TimeStamper(fmt="iso",
    utc=True)`` writes (``2026-11-30T04:16:30.123456Z``: microseconds floored, left out
    when zero, as ``datetime.isoformat`` does) at a fraction of its cost: the date and
    time of day are formatted once per second, not per line."""

    __slots__ = ("_clock", "_second")

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._clock = clock  # epoch nanoseconds
        self._second: tuple[int | None, str] = (None, "")  # swapped whole: any thread logs

    def __call__(self, _logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        second, rest = divmod(self._clock(), 1_000_000_000)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (
                second,
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)),
            )
        micro = rest // 1000
        event_dict["timestamp"] = f"{cached[1]}.{micro:06d}Z" if micro else f"{cached[1]}Z"
        return event_dict


# Fields the pipeline itself writes after the caller's (UtcStamper, add_log_level,
# add_logger_name overwrite any caller value): never data, so never redacted.
PIPELINE_FIELDS = frozenset({"timestamp", "level", "logger"})


class Redactor:
    """A structlog processor; ``secrets`` are exact values (the configured passwords)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(s for s in secrets if s)

    def __call__(self, _logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        return redact_fields(event_dict, self.secrets, trusted=PIPELINE_FIELDS)


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def render_json(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> str:
    """The line's JSON (the last processor): orjson, several times faster than ``json``;
    what orjson refuses (an integer past 64 bits) falls back to ``json``, never drops."""
    try:
        return orjson.dumps(event_dict, default=str, option=_ORJSON_OPTIONS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(event_dict, default=str, ensure_ascii=False)


ProblemListener = Callable[[str], None]
_listeners: list[ProblemListener] = []  # told every line at PROBLEM_LEVEL or above
PROBLEM_LEVEL = logging.WARNING


def add_problem_listener(listener: ProblemListener) -> None:
    """``listener`` gets each warning-or-worse line as written (rendered and redacted):
    the status page's recent problems.  Kept across a reconfiguration."""
    _listeners.append(listener)


class _LineHandler(logging.Handler):
    """The process's one output, shared by structlog (its lines arrive rendered, through
    :meth:`line`) and the stdlib root logger (records, rendered by the formatter)."""

    def write_line(self, line: str) -> None:
        raise NotImplementedError

    def line(self, line: str, levelno: int) -> None:
        try:
            with self.lock:  # type: ignore[union-attr]  # an RLock: emit() already holds it
                self.write_line(line)
        except RecursionError:
            raise
        except Exception:  # a full disk never fails a payment: said on stderr, as stdlib does
            if logging.raiseExceptions:
                traceback.print_exc(file=sys.stderr)
        if levelno >= PROBLEM_LEVEL:
            for listener in tuple(_listeners):
                with contextlib.suppress(Exception):  # a log call never raises
                    listener(line)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.line(self.format(record), record.levelno)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


class StreamLines(_LineHandler, logging.StreamHandler):
    """Lines to a stream: stdout under ``run --console-logs``, a StringIO in a test."""

    def write_line(self, line: str) -> None:
        self.stream.write(line + self.terminator)
        self.stream.flush()


class LogFile(_LineHandler, RotatingFileHandler):
    """A program's own log file, rotated at ``max_bytes`` with ``backups`` older files kept
    (``tp-manager.log.1`` ...), created 0600 whatever the umask.

    The stdlib handler asks the filesystem twice and renders the line twice for each line
    to decide on rotation; this one counts what it wrote (characters, so a line with
    non-ASCII text rotates a little late)."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self._size = 0
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_FILE_MODE)
        os.fchmod(fd, LOG_FILE_MODE)  # an older install's file, or a wider umask
        stream = open(fd, "a", encoding="utf-8", errors=self.errors)
        self._size = os.fstat(fd).st_size
        return stream

    def doRollover(self) -> None:  # the stdlib's name
        """With backups, the stdlib's rotation.  With none (``log_file_backups: 0``) the
        stdlib reopens the same file to append, so it would grow for ever: it is emptied
        instead, and the file never passes its size."""
        if self.backupCount > 0:
            super().doRollover()
            return
        if self.stream is not None:
            self.stream.close()
            self.stream = None  # the stdlib's own "closed"
        with contextlib.suppress(FileNotFoundError):
            os.truncate(self.baseFilename, 0)
        self.stream = self._open()

    def write_line(self, line: str) -> None:
        line += self.terminator
        if self.stream is None:
            self.stream = self._open()
        if self.maxBytes > 0 and self._size and self._size + len(line) > self.maxBytes:
            self.doRollover()
            if self.stream is None:
                self.stream = self._open()
        self.stream.write(line)
        self.stream.flush()
        self._size += len(line)


_output: _LineHandler | None = None  # where structlog's lines go: the root handler


class _Lines:
    """structlog's logger at the end of the chain: gets the rendered line and writes it to
    the current output, without a stdlib LogRecord (half a line's cost)."""

    __slots__ = ("name",)

    def __init__(self, name: str = "root") -> None:
        self.name = name  # add_logger_name reads it

    def _line(self, line: str, levelno: int) -> None:
        output = _output
        if output is not None:
            output.line(line, levelno)

    def debug(self, line: str) -> None:
        self._line(line, logging.DEBUG)

    def info(self, line: str) -> None:
        self._line(line, logging.INFO)

    def warning(self, line: str) -> None:
        self._line(line, logging.WARNING)

    def error(self, line: str) -> None:
        self._line(line, logging.ERROR)

    def critical(self, line: str) -> None:
        self._line(line, logging.CRITICAL)


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
    log_file: LogFileSpec | None = None,
) -> None:
    """Set up structlog and the stdlib root logger for this process; call once at start.

    Lines go to ``log_file`` when given (its folder made private), else to ``stream``
    (stdout by default)."""
    global _output
    secret_values = tuple(s for s in secrets if s)  # read twice below: no one-shot iterator
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_process(process),
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        UtcStamper(),
    ]
    last: list[Processor] = [
        structlog.processors.format_exc_info,
        Redactor(secret_values),
        _head_first,
        render_json,
    ]
    structlog.configure(
        processors=[*shared, *last],
        logger_factory=_Lines,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    # a library's stdlib record (aiohttp, asyncio) to the same JSON line as ours
    formatter = structlog.stdlib.ProcessorFormatter(
        # a library's extra= fields first: the pipeline's own fields then overwrite any
        # of the same name, so PIPELINE_FIELDS are never a caller's data
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *last],
    )
    handler: _LineHandler
    if log_file is not None:
        paths.make_private(log_file.path.parent)
        handler = LogFile(log_file.path, log_file.max_mb * MB, log_file.backups)
    else:
        handler = StreamLines(stream or sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, LogFile):
            old.close()  # ours, and no longer written
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    _output = handler
    _catch_crashes(secret_values)


log = structlog.get_logger(__name__)


# The event of the line an exception nothing caught is logged as (written as a literal at
# the call below, as docs/log-events.md's catalogue test wants; start_watch reads it).
CRASHED_EVENT = "process.crashed"


def _catch_crashes(secrets: tuple[str, ...]) -> None:
    """An exception nothing caught (in the main thread or another) is logged as one
    ``process.crashed`` line and printed on stderr redacted.  The interpreter's own
    printing would put its message (a password, a card number in it) on stderr, which
    supervisord keeps in ``<program>.err.log``, past the log pipeline."""

    def report(kind: type[BaseException], exc: BaseException | None, tb: Any, thread: str) -> None:
        if issubclass(kind, KeyboardInterrupt):  # Ctrl-C on a command: no crash, no data
            sys.__excepthook__(kind, exc or kind(), tb)
            return
        if exc is None:
            exc = kind()
        with contextlib.suppress(Exception):  # a broken log must not hide the traceback
            log.critical("process.crashed", thread=thread, exc_info=(kind, exc, tb))
        text = "".join(traceback.format_exception(kind, exc, tb))
        with contextlib.suppress(Exception):  # stderr closed: the log line is what is left
            sys.stderr.write(redact_text(text, secrets))
            sys.stderr.flush()

    sys.excepthook = lambda kind, exc, tb: report(kind, exc, tb, threading.current_thread().name)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:  # the stdlib's hook says nothing of it either
            return
        name = args.thread.name if args.thread is not None else "?"
        report(args.exc_type, args.exc_value, args.exc_traceback, name)

    threading.excepthook = thread_hook


def secrets_of(config: Any) -> list[str]:
    """The configured secret values, for :class:`Redactor` (a config or anything like one)."""
    values: list[str] = []
    for name in ("api_password", "hipay_password"):
        secret = getattr(config, name, None)
        getter = getattr(secret, "get_secret_value", None)
        if callable(getter):
            values.append(str(getter()))
    return values
