"""A program driven through a real pseudo-terminal, the way a person at a terminal drives it.

The child gets the pty as its controlling terminal and its stdin/stdout/stderr;
the test waits for each prompt (ANSI escapes stripped), types the answer and
Enter, and keeps every byte the child wrote, so it can say what was on screen.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]|\x1b[=>]|\r")
STEP_TIMEOUT_S = 30.0
ROWS, COLUMNS = 50, 250  # wide: a long question is never wrapped in two


class PtySession:
    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.leader, follower = os.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.proc = subprocess.Popen(
            argv,
            stdin=follower,
            stdout=follower,
            stderr=follower,
            cwd=cwd,
            env={**env, "TERM": "xterm"},
            start_new_session=True,
        )
        os.close(follower)
        self.raw = b""  # every byte the program wrote
        self.seen = 0  # how much of the stripped screen text the test has matched already

    @property
    def screen(self) -> str:
        return ANSI.sub(b"", self.raw).decode("utf-8", errors="replace")

    def _read(self, timeout_s: float) -> bool:
        ready, _, _ = select.select([self.leader], [], [], timeout_s)
        if not ready:
            return False
        try:
            chunk = os.read(self.leader, 65536)
        except OSError:  # EIO: the program closed the terminal
            return False
        self.raw += chunk
        return bool(chunk)

    def expect(self, text: str, timeout_s: float = STEP_TIMEOUT_S) -> None:
        """Wait until ``text`` shows after what was matched before."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.screen.find(text, self.seen)
            if found >= 0:
                self.seen = found + len(text)
                return
            left = deadline - time.monotonic()
            if left <= 0 or (not self._read(min(left, 1.0)) and self.proc.poll() is not None):
                raise AssertionError(
                    f"no {text!r} on screen within {timeout_s} s; screen after the last "
                    f"match:\n{self.screen[self.seen :][-3000:]}"
                )

    def type(self, text: str) -> None:
        os.write(self.leader, text.encode())

    def answer(self, prompt: str, text: str) -> None:
        self.expect(prompt)
        self.type(text + "\r")

    def wait(self, timeout_s: float = STEP_TIMEOUT_S) -> int:
        """Read the rest of the output until the program exits; its exit code."""
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.2)
        while self._read(0.1):
            pass
        return self.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        with contextlib.suppress(OSError):
            os.close(self.leader)
