"""The logs are JSON lines with nothing secret in them, checked on real output.

In-process: ``configure_logging`` writing to a StringIO, fed the kinds of secrets a
connector meets (password keys, Authorization headers, credentials in free text and
URLs, card numbers, the configured passwords), from structlog and from stdlib loggers.
Across a process: the terminal simulator's stderr, while it serves one payment.
"""

from __future__ import annotations

import io
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from common.logging import LogFileSpec, UtcStamper, configure_logging
from common.redact import REDACTED, luhn_ok
from supervisor_agent.api.flavours.parts import generate_order_id
from tp_manager.concert_v3.messages import build_request, encode_request
from tp_manager.terminal.model import PaymentRequest

ROOT = Path(__file__).resolve().parents[2]
HEAD = ("timestamp", "level", "process", "event")

API_PASSWORD = "api-Secret-42"  # the configured secrets (config.api_password...)
HIPAY_PASSWORD = "hipay-Secret-99"
KEY_SECRETS = ("hunter2-pw", "pwd-value-7", "key-123-abc", "nested-pw", "tok-xyz-1", "s-one-1")
BASIC_TOKEN = "dXNlcjpodW50ZXIy"  # base64("user:hunter2")
BEARER_TOKEN = "abc.def.ghi"
URL_PASSWORD = "url-pass-77"
PANS = ("4111111111111111", "4111 1111 1111 1111", "5555555555554444", "5555-5555-5555-4444")
SECRETS = (API_PASSWORD, HIPAY_PASSWORD, *KEY_SECRETS, BASIC_TOKEN, BEARER_TOKEN, URL_PASSWORD)

ORDER_ID = "ORDER_1537532589263"  # its digits do not pass Luhn: must stay readable

Capture = Callable[[], list[dict[str, Any]]]


def _parse(text: str) -> list[dict[str, Any]]:
    lines = text.splitlines()
    assert lines, "nothing was logged"
    parsed = []
    for line in lines:
        record = json.loads(line)  # every line is one JSON object
        assert isinstance(record, dict), line
        for key in HEAD:
            assert key in record, f"{key} missing in {line}"
        assert list(record)[:4] == list(HEAD), line
        stamp = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
        assert stamp.utcoffset() == timedelta(0), record["timestamp"]  # UTC
        parsed.append(record)
    return parsed


def _assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"secret {secret!r} in the log"
    for pan in PANS:
        assert pan not in text, f"card number {pan!r} in the log"


@pytest.fixture
def capture() -> Iterator[tuple[io.StringIO, Capture]]:
    """configure_logging into a StringIO (tests/conftest.py restores the set-up after)."""
    stream = io.StringIO()
    configure_logging(
        "supervisor-agent", "info", secrets=[API_PASSWORD, HIPAY_PASSWORD], stream=stream
    )
    yield stream, lambda: _parse(stream.getvalue())
    structlog.reset_defaults()  # configured in this test: back to structlog's defaults


def _by_event(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["event"]: r for r in records}


def test_secrets_and_card_numbers_never_reach_the_output(capture: tuple[Any, Capture]) -> None:
    stream, records = capture
    log = structlog.get_logger("tests.backbone.test_logging")
    log.info("test.keys", password=KEY_SECRETS[0], db_pwd=KEY_SECRETS[1], api_key=KEY_SECRETS[2])
    log.warning(
        "test.headers",
        headers={"Authorization": f"Basic {BASIC_TOKEN}", "Content-Type": "application/json"},
    )
    log.info(
        "test.free_text",
        detail=f"sent Authorization: Basic {BASIC_TOKEN} then Bearer {BEARER_TOKEN} to HiPay",
    )
    log.info("test.url", url=f"https://merchant:{URL_PASSWORD}@api.hipay.example/v1/order")
    log.info(
        "test.card_text",
        report=f"card {PANS[0]} declined, retry with {PANS[1]} or {PANS[3]}",
    )
    log.info("test.card_int", reference=5555555555554444)
    log.error("test.configured_secret", message=f"login failed with {API_PASSWORD}")
    log.info(
        "test.nested",
        payload={
            "order": {"items": [{"note": f"paid with {PANS[2]}"}]},
            "credentials": {"password": KEY_SECRETS[3], "token": KEY_SECRETS[4]},
            "more": [f"Bearer {BEARER_TOKEN}", {"secret": KEY_SECRETS[5]}, (HIPAY_PASSWORD,)],
        },
    )
    log.info(
        "test.plain",
        order_id=ORDER_ID,
        amount=899,
        authorization_threshold="100.00",
        authorization_number="136967",
        duration_ms=12.5,
        long_number=1234567890123,  # 13 digits, not Luhn-valid: not a card number
    )
    log.debug("test.below_level", password="never-rendered")

    text = stream.getvalue()
    _assert_clean(text)
    lines = records()
    assert len(lines) == 9, text  # one line per call, the debug one filtered out
    assert {r["process"] for r in lines} == {"supervisor-agent"}
    assert {r["logger"] for r in lines} == {"tests.backbone.test_logging"}
    events = _by_event(lines)
    assert "test.below_level" not in events

    keys = events["test.keys"]
    assert keys["password"] == keys["db_pwd"] == keys["api_key"] == REDACTED
    assert keys["level"] == "info"
    headers = events["test.headers"]["headers"]
    assert headers == {"Authorization": REDACTED, "Content-Type": "application/json"}
    assert events["test.headers"]["level"] == "warning"
    assert events["test.free_text"]["detail"] == (
        f"sent Authorization: Basic {REDACTED} then Bearer {REDACTED} to HiPay"
    )
    assert events["test.url"]["url"] == f"https://{REDACTED}@api.hipay.example/v1/order"
    assert events["test.card_text"]["report"] == (
        "card 411111######1111 declined, retry with 4111 11## #### 1111 or 5555-55##-####-4444"
    )
    assert events["test.card_int"]["reference"] == "555555######4444"
    assert events["test.configured_secret"]["message"] == f"login failed with {REDACTED}"
    assert events["test.configured_secret"]["level"] == "error"
    payload = events["test.nested"]["payload"]
    assert payload["order"]["items"][0]["note"] == "paid with 555555######4444"
    assert payload["credentials"] == {"password": REDACTED, "token": REDACTED}
    assert payload["more"] == [f"Bearer {REDACTED}", {"secret": REDACTED}, [REDACTED]]

    plain = events["test.plain"]
    assert plain["order_id"] == ORDER_ID
    assert plain["amount"] == 899
    assert plain["authorization_threshold"] == "100.00"
    assert plain["authorization_number"] == "136967"
    assert plain["duration_ms"] == 12.5
    assert plain["long_number"] == 1234567890123


def test_an_order_id_that_reads_as_a_card_number_is_masked(capture: tuple[Any, Capture]) -> None:
    # documented in docs/log-events.md: Luhn-valid and an issued card's first digit for
    # its length; a millisecond clock that passes the Luhn check is no card number, and the
    # connector's own generated ids have no 13-digit run
    _, records = capture
    assert luhn_ok("1795607480005") and luhn_ok("4222222222222")
    for order_id in ("4222222222222", "1795607480005", generate_order_id()):
        structlog.get_logger("tests").info("test.order", order_id=order_id)
    logged = [r["order_id"] for r in records()]
    assert logged[:2] == ["422222###2222", "1795607480005"]


def test_library_lines_are_json_and_redacted(capture: tuple[Any, Capture]) -> None:
    stream, records = capture
    logging.getLogger("aiohttp.server").error(
        "Error handling request from %s: Authorization: Basic %s, password %s, card %s",
        "192.0.2.7",
        BASIC_TOKEN,
        HIPAY_PASSWORD,
        PANS[0],
    )
    logging.getLogger("aiohttp.access").info("quiet: held at warning, %s", API_PASSWORD)
    _assert_clean(stream.getvalue())
    (line,) = records()
    assert line["logger"] == "aiohttp.server"
    assert line["level"] == "error"
    assert line["process"] == "supervisor-agent"
    assert line["event"] == (
        f"Error handling request from 192.0.2.7: Authorization: Basic {REDACTED}, "
        f"password {REDACTED}, card 411111######1111"
    )


def test_fields_the_pipeline_writes_cannot_carry_a_caller_s_secret(
    capture: tuple[Any, Capture],
) -> None:
    """timestamp, level and logger are not redacted: they must always be the pipeline's."""
    stream, records = capture
    smuggled = {"timestamp": API_PASSWORD, "level": PANS[0], "logger": HIPAY_PASSWORD}
    logging.getLogger("aiohttp.server").warning("extra fields", extra=smuggled)
    structlog.get_logger("tests.backbone.test_logging").warning("test.kwargs", **smuggled)
    _assert_clean(stream.getvalue())
    library, ours = records()
    assert (library["level"], library["logger"]) == ("warning", "aiohttp.server")
    assert (ours["level"], ours["logger"]) == ("warning", "tests.backbone.test_logging")


def test_tracebacks_are_one_json_line_and_redacted(capture: tuple[Any, Capture]) -> None:
    stream, records = capture
    log = structlog.get_logger("tests.backbone.test_logging")
    url = f"https://merchant:{URL_PASSWORD}@api.hipay.example/"
    try:
        raise RuntimeError(f"cannot reach {url} with {HIPAY_PASSWORD} for card {PANS[2]}")
    except RuntimeError:
        log.exception("test.crashed", order_id=ORDER_ID)
    try:
        raise ValueError(f"bad token {API_PASSWORD}")
    except ValueError:
        logging.getLogger("asyncio").error("Task exception was never retrieved", exc_info=True)

    text = stream.getvalue()
    _assert_clean(text)
    crashed, library = records()  # two calls, two lines, whatever the tracebacks hold
    assert crashed["event"] == "test.crashed"
    assert crashed["level"] == "error"
    assert crashed["order_id"] == ORDER_ID
    assert crashed["exception"].startswith("Traceback (most recent call last):")
    exception = crashed["exception"]
    assert f"RuntimeError: cannot reach https://{REDACTED}@api.hipay.example/" in exception
    assert "555555######4444" in exception
    assert library["logger"] == "asyncio"
    assert library["event"] == "Task exception was never retrieved"
    assert f"ValueError: bad token {REDACTED}" in library["exception"]


# --- the program's own log file -----------------------------------------------------

LINE_PAD = "x" * 200  # a line of about 330 bytes


def test_the_log_file_is_private_rotated_and_never_splits_a_line(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "tp-manager.log"
    old = os.umask(0o022)  # a careless umask: the file is private all the same
    try:
        spec = LogFileSpec(path, max_mb=1, backups=2)
        configure_logging("tp-manager", "info", secrets=[API_PASSWORD], log_file=spec)
        log = structlog.get_logger("tests.backbone.test_logging")
        lines = 10_000  # about 3.3 MB: rotated three times, two older files kept
        for n in range(lines):
            log.info("test.line", n=n, pad=LINE_PAD, note=f"pw {API_PASSWORD} card {PANS[0]}")
        logging.getLogger("aiohttp.server").error("library line, card %s", PANS[1])
    finally:
        os.umask(old)
        structlog.reset_defaults()
    files = sorted(path.parent.iterdir())
    assert [f.name for f in files] == ["tp-manager.log", "tp-manager.log.1", "tp-manager.log.2"]
    for file in files:
        assert file.stat().st_mode & 0o777 == 0o600, file
        assert file.stat().st_size <= 1024 * 1024, file
    text = "".join(f.read_text() for f in reversed(files))  # oldest first
    _assert_clean(text)
    records = _parse(text)  # every line whole, in whichever file
    numbers = [r["n"] for r in records if r["event"] == "test.line"]
    assert numbers == list(range(lines - len(numbers), lines))  # the newest, in order
    assert len(numbers) > 6000
    assert records[-1]["logger"] == "aiohttp.server"  # libraries write to the same file
    assert records[-1]["event"] == "library line, card 4111 11## #### 1111"


def test_with_no_backups_kept_the_log_file_still_stops_at_its_size(tmp_path: Path) -> None:
    """``log_file_backups: 0`` (allowed, docs/configuration.md: at most 1 x the size): the
    file starts again empty at its size, not grows on for the years the box runs."""
    path = tmp_path / "logs" / "supervisor-agent.log"
    try:
        spec = LogFileSpec(path, max_mb=1, backups=0)
        configure_logging("supervisor-agent", "info", log_file=spec)
        log = structlog.get_logger("tests.backbone.test_logging")
        lines = 10_000  # about 3.3 MB
        for n in range(lines):
            log.info("test.line", n=n, pad=LINE_PAD)
    finally:
        structlog.reset_defaults()
    assert [f.name for f in path.parent.iterdir()] == ["supervisor-agent.log"]
    assert path.stat().st_mode & 0o777 == 0o600
    assert 0 < path.stat().st_size <= 1024 * 1024
    numbers = [r["n"] for r in _parse(path.read_text())]  # whole lines, the newest
    assert numbers == list(range(lines - len(numbers), lines))


def test_the_status_page_gets_the_warnings_as_logged(
    capture: tuple[Any, Capture], monkeypatch: pytest.MonkeyPatch
) -> None:
    from supervisor_agent.recent_problems import RecentProblems

    # The listeners are the process's (the agent installs one for good): this test's
    # list goes away with the test, so no later test's lines reach its listener.
    monkeypatch.setattr("common.logging._listeners", [])
    problems = RecentProblems.install()
    log = structlog.get_logger("tests.backbone.test_logging")
    log.info("test.fine", order_id=ORDER_ID)
    log.warning("test.slow", order_id=ORDER_ID, error=f"login {HIPAY_PASSWORD} refused")
    logging.getLogger("aiohttp.server").error("Error handling request, card %s", PANS[0])
    assert [(p["level"], p["event"]) for p in problems.lines()] == [
        ("error", "Error handling request, card 411111######1111"),
        ("warning", "test.slow"),
    ]
    assert problems.lines()[1]["error"] == f"login {REDACTED} refused"
    assert problems.lines()[1]["order_id"] == ORDER_ID


# --- a crash the program did not catch: its traceback is redacted too -------------

CRASH_SCRIPT = """
import sys, threading
from pathlib import Path
from common.logging import LogFileSpec, configure_logging
api_password, pan, log_path, where = sys.argv[1:5]
configure_logging(
    "supervisor-agent", "info", secrets=[api_password],
    log_file=LogFileSpec(Path(log_path), max_mb=1, backups=1),
)
def crash():
    raise RuntimeError(f"HiPay said no to {api_password} for card {pan}")
if where == "thread":
    worker = threading.Thread(target=crash, name="journal-writer")
    worker.start()
    worker.join()
    sys.exit(0)
crash()
"""


@pytest.mark.parametrize("where", ["main", "thread"])
def test_an_uncaught_crash_is_redacted_on_stderr_and_logged(tmp_path: Path, where: str) -> None:
    """What supervisord keeps of a program's stderr (``<program>.err.log``) gets the
    traceback of a crash nothing caught: the interpreter's own printing of it would write
    the exception's message, secrets and card numbers included, past the log pipeline."""
    log_path = tmp_path / "logs" / "supervisor-agent.log"
    done = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, API_PASSWORD, PANS[0], str(log_path), where],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=READY_TIMEOUT_S,
        check=False,
    )
    assert (done.returncode != 0) is (where == "main"), done
    assert "RuntimeError" in done.stderr  # the traceback is still there...
    _assert_clean(done.stderr)  # ...with the secret and the card number out of it
    assert "for card 411111######1111" in done.stderr
    records = _parse(log_path.read_text())
    crashed = [r for r in records if r["event"] == "process.crashed"]
    assert len(crashed) == 1, records
    assert crashed[0]["level"] == "critical"
    assert "RuntimeError" in crashed[0]["exception"]
    assert REDACTED in crashed[0]["exception"]
    assert crashed[0]["thread"] == ("journal-writer" if where == "thread" else "MainThread")
    _assert_clean(log_path.read_text())


# --- across a real process: the terminal simulator --------------------------------

READY_TIMEOUT_S = 20.0  # interpreter start on a loaded machine
STEP_TIMEOUT_S = 10.0
EXIT_TIMEOUT_S = 10.0


def _read_ready(proc: subprocess.Popen[bytes], stderr_path: Path) -> str:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + READY_TIMEOUT_S
    out = b""
    while b"\n" not in out:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            raise AssertionError(f"no READY line; stderr: {stderr_path.read_text()}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError(f"stdout closed; stderr: {stderr_path.read_text()}")
            out += chunk
    line, _, rest = out.partition(b"\n")
    assert rest == b"", rest  # nothing but the READY line on stdout
    return line.decode()


def _events(text: str) -> set[str]:
    """The events of the complete JSON lines in ``text`` (the last may be half written)."""
    found = set()
    for line in text.splitlines():
        try:
            found.add(json.loads(line)["event"])
        except (ValueError, KeyError, TypeError):
            continue
    return found


def _wait_logged(path: Path, event: str) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while event not in _events(path.read_text()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{event} not logged; stderr: {path.read_text()}")
        time.sleep(0.05)


def test_the_simulator_logs_json_lines_on_stderr(tmp_path: Path) -> None:
    stderr_path = tmp_path / "simulator.stderr"
    command = [sys.executable, "-m", "common", "simulate"]
    command += ["--protocol", "concert-v3", "--listen", "127.0.0.1:0"]
    with stderr_path.open("wb") as stderr_file:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
        )
    try:
        ready = _read_ready(proc, stderr_path)
        assert ready.startswith("READY tcp=127.0.0.1:"), ready
        port = int(ready.rpartition(":")[2])
        request = encode_request(build_request(PaymentRequest(amount=899, currency_numeric="978")))
        with socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT_S) as sock:
            sock.sendall(request)
            _wait_logged(stderr_path, "simulator.concert_v3.answer.sent")
            assert sock.recv(4096)  # the answer is there
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(EXIT_TIMEOUT_S) == 0
        assert proc.stdout is not None
        assert proc.stdout.read() == b""
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(EXIT_TIMEOUT_S)
        if proc.stdout is not None:
            proc.stdout.close()

    text = stderr_path.read_text()
    records = _parse(text)
    assert {r["process"] for r in records} == {"simulator"}, text
    events = [r["event"] for r in records]
    for expected in (
        "simulator.concert_v3.listening",
        "simulator.concert_v3.request.received",
        "simulator.concert_v3.answer.sent",
        "simulator.stopping",
        "simulator.concert_v3.stopped",
    ):
        assert expected in events, text
    received = _by_event(records)["simulator.concert_v3.request.received"]
    assert received["amount"] == 899
    assert received["logger"] == "tp_manager.simulator.concert_v3"


def test_the_timestamp_is_the_text_structlog_s_iso_utc_stamper_writes() -> None:
    """``UtcStamper`` formats a second once; every line's text is still what
    ``TimeStamper(fmt="iso", utc=True)`` makes of the same instant (microseconds floored,
    none written at .000000), across seconds, a new year, and back in time."""
    instants = [
        1_764_476_190_123_456_789,  # 2025-11-30T04:16:30.123456Z
        1_764_476_190_999_999_999,  # same second, last microsecond
        1_764_476_191_000_000_000,  # the next second, exactly: no fraction
        1_764_476_191_000_000_999,  # under a microsecond past it: no fraction either
        1_764_476_191_000_001_000,
        1_798_761_599_999_999_000,  # 2026-12-31T23:59:59.999999Z
        1_798_761_600_000_500_000,  # 2027-01-01
        1_764_476_190_000_000_000,  # back to an earlier second
        0,
    ]
    clock = iter(instants)
    stamper = UtcStamper(clock=lambda: next(clock))
    for ns in instants:
        second, rest = divmod(ns, 1_000_000_000)
        moment = datetime.fromtimestamp(second, UTC).replace(microsecond=rest // 1000)
        expected = moment.isoformat().replace("+00:00", "Z")  # what TimeStamper writes
        assert stamper(None, "info", {})["timestamp"] == expected


def test_the_timestamp_follows_the_clock() -> None:
    before = datetime.now(UTC)
    stamp = UtcStamper()(None, "info", {})["timestamp"]
    after = datetime.now(UTC)
    assert before <= datetime.fromisoformat(stamp.replace("Z", "+00:00")) <= after
