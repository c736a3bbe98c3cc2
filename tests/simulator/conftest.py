"""Start the real ``ecr-connector simulate`` process and play a register on its pty.

The register side here is written byte by byte on purpose (its own LRC, its own
framing), sharing nothing with the simulator or the driver, so the tests check
the simulator against the protocol notes and not against itself.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import subprocess
import sys
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STX, ETX, EOT, ENQ, ACK, NAK = 0x02, 0x03, 0x04, 0x05, 0x06, 0x15

READY_TIMEOUT_S = 20.0  # interpreter start on a loaded machine
EXIT_TIMEOUT_S = 5.0
BYTE_TIMEOUT_S = 3.0
# Short simulator timers so the whole file runs in seconds.
PTY_ARGS = ("--protocol", "concert-v2", "--pty")
FAST_ARGS = ("--pay-seconds", "0.05", "--link-timeout", "1.0", "--reopen-seconds", "0.2")


class LineDropped(Exception):
    """The simulator closed its end of the pty (EIO on our side)."""


class Line:
    """The register's end of a serial line: a raw, non-blocking fd."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def open(cls, path: str) -> Line:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd)
        return cls(fd)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def _read_some(self, limit: int, timeout: float) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not ready:
            return b""
        try:
            data = os.read(self.fd, limit)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:
                raise LineDropped from exc
            raise
        if not data:
            raise LineDropped
        return data

    def read(self, count: int, timeout: float = BYTE_TIMEOUT_S) -> bytes:
        """Up to ``count`` bytes, whatever arrived before ``timeout``."""
        deadline = time.monotonic() + timeout
        out = b""
        while len(out) < count and (left := deadline - time.monotonic()) > 0:
            out += self._read_some(count - len(out), left)
        return out

    def read_byte(self, timeout: float = BYTE_TIMEOUT_S) -> int | None:
        data = self.read(1, timeout)
        return data[0] if data else None

    def read_until(self, byte: int, timeout: float = BYTE_TIMEOUT_S) -> bytes:
        deadline = time.monotonic() + timeout
        out = b""
        while (left := deadline - time.monotonic()) > 0:
            chunk = self._read_some(1, left)
            out += chunk
            if chunk and chunk[0] == byte:
                return out
        raise AssertionError(f"no byte {byte:#04x} within {timeout}s; got {out!r}")

    def silence(self, seconds: float) -> bytes:
        """What arrived in ``seconds``; a test expecting nothing asserts it is empty."""
        return self.read(4096, seconds)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def lrc_of(body: bytes) -> int:
    value = 0
    for byte in body:
        value ^= byte
    return value


def frame(message: bytes, lrc_delta: int = 0) -> bytes:
    body = message + bytes([ETX])
    return bytes([STX]) + body + bytes([lrc_of(body) ^ lrc_delta])


def request_message(
    amount: int,
    *,
    pos: str = "01",
    answer_flag: str = "1",
    mode: str = "1",
    ttype: str = "0",
    currency: str = "978",
    private: str = "TX00000001",
    delay: str = "A010",
    authorization: str = "B010",
) -> bytes:
    text = f"{pos}{amount:08d}{answer_flag}{mode}{ttype}{currency}{private}{delay}{authorization}"
    assert len(text) == 34, text
    return text.encode("ascii")


def expect(line: Line, byte: int, timeout: float = BYTE_TIMEOUT_S) -> None:
    got = line.read_byte(timeout)
    assert got == byte, f"expected {byte:#04x}, got {got!r}"


def send_request(line: Line, message: bytes) -> None:
    """Register -> terminal: ENQ/ACK, frame/ACK, EOT."""
    line.write(bytes([ENQ]))
    expect(line, ACK)
    line.write(frame(message))
    expect(line, ACK)
    line.write(bytes([EOT]))


def read_answer_frame(line: Line, timeout: float = BYTE_TIMEOUT_S) -> tuple[bytes, bool]:
    """STX..ETX LRC -> (message, lrc_ok)."""
    expect(line, STX, timeout)
    body = line.read_until(ETX)
    check = line.read_byte()
    assert check is not None, "no LRC after ETX"
    return body[:-1], check == lrc_of(body)


def receive_answer(line: Line, timeout: float = BYTE_TIMEOUT_S) -> str:
    """Terminal -> register: ENQ/ACK, frame/ACK, EOT; returns the answer text."""
    expect(line, ENQ, timeout)
    line.write(bytes([ACK]))
    message, lrc_ok = read_answer_frame(line)
    assert lrc_ok, f"bad LRC on {message!r}"
    line.write(bytes([ACK]))
    expect(line, EOT)
    return message.decode("ascii")


@dataclass
class Sim:
    proc: subprocess.Popen[bytes]
    log_path: Path
    where: str = ""
    lines: list[Line] = field(default_factory=list)
    _stdout: bytes = b""

    def read_ready(self, timeout: float = READY_TIMEOUT_S) -> str:
        """Next ``READY ...`` line of stdout; sets ``where`` to what follows READY."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while b"\n" not in self._stdout:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise AssertionError(f"no READY line; stderr: {self.log()}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise AssertionError(f"stdout closed; stderr: {self.log()}")
                self._stdout += chunk
        raw, _, self._stdout = self._stdout.partition(b"\n")
        text = raw.decode()
        assert text.startswith("READY "), text
        self.where = text.removeprefix("READY ")
        return self.where

    @property
    def pty_path(self) -> str:
        assert self.where.startswith("pty="), self.where
        return self.where.removeprefix("pty=")

    def open_line(self) -> Line:
        line = Line.open(self.pty_path)
        self.lines.append(line)
        return line

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logged_field(self, key: str, value: object, timeout: float = 2.0) -> bool:
        """Whether a JSON log line with ``key`` = ``value`` shows within ``timeout``
        (parsed: whatever the renderer's spacing)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log().splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if isinstance(record, dict) and record.get(key, self) == value:
                        return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def logged(self, text: str, timeout: float = 2.0) -> bool:
        """Whether ``text`` shows in the log within ``timeout``: the simulator logs an
        exchange after its last byte, which the test may have read a moment before."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self, signum: int = signal.SIGTERM) -> int:
        os.kill(self.proc.pid, signum)
        return self.proc.wait(EXIT_TIMEOUT_S)


StartSim = Callable[..., Sim]


def start_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "common", "simulate", *args]


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[StartSim]:
    """Factory: ``start_sim("--scenario", "refuse")`` -> a :class:`Sim` past READY."""
    sims: list[Sim] = []

    def start(
        *args: str, base: tuple[str, ...] = PTY_ARGS, fast: bool = True, ready: bool = True
    ) -> Sim:
        log_path = tmp_path / f"simulator-{len(sims)}.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                start_command(*base, *(FAST_ARGS if fast else ()), *args),
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log_file,
                stdin=subprocess.DEVNULL,
            )
        sim = Sim(proc, log_path)
        sims.append(sim)
        if ready:
            sim.read_ready()
        return sim

    yield start
    for sim in sims:
        for line in sim.lines:
            line.close()
        if sim.proc.poll() is None:
            os.kill(sim.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            sim.proc.wait(EXIT_TIMEOUT_S)
        if sim.proc.stdout is not None:
            sim.proc.stdout.close()
