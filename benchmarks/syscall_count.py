"""System calls of running processes, counted by ``strace -c`` over a short sub-run.

strace stops a traced thread at every system call, which makes the traced payments far
slower: a benchmark counts with it on a separate sub-run and times nothing there.  Only
used when strace is installed (``apt-get install strace``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

ATTACH_TIMEOUT_S: Final = 10.0
DETACH_TIMEOUT_S: Final = 15.0
POLL_S: Final = 0.02
FSYNC_CALLS: Final = ("fsync", "fdatasync", "sync_file_range")


def strace_path() -> str | None:
    return shutil.which("strace")


@dataclass
class SyscallCounts:
    """Calls per system call name of one process (all its threads) over the sub-run."""

    calls: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def fsyncs(self) -> int:
        return sum(self.calls.get(name, 0) for name in FSYNC_CALLS)


def parse_summary(text: str) -> dict[str, int]:
    """The ``calls`` column of ``strace -c``'s table, by syscall (the total row left out)."""
    calls: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[-1] == "total" or not parts[3].isdigit():
            continue
        with contextlib.suppress(ValueError):
            float(parts[0])
            calls[parts[-1]] = calls.get(parts[-1], 0) + int(parts[3])
    return calls


def _threads_traced(pid: int) -> bool:
    """Every thread of ``pid`` has a tracer (strace attaches to them one by one)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:  # the process is gone
        return False
    for task in tasks:
        with contextlib.suppress(OSError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith("TracerPid:") and line.split()[1] == "0":
                    return False
    return bool(tasks)


@contextlib.contextmanager
def counting(pids: dict[str, int], workdir: Path) -> Iterator[dict[str, SyscallCounts]]:
    """One ``strace -f -c -p PID`` per program while the block runs; the dict it yields is
    filled once the block is over and every strace has detached (SIGINT, by its pid)."""
    results = {name: SyscallCounts() for name in pids}
    tracer = strace_path()
    if tracer is None:
        for counts in results.values():
            counts.error = "strace not installed"
        yield results
        return
    running: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    try:
        for name, pid in pids.items():
            out = workdir / f"strace-{name}.txt"
            proc = subprocess.Popen(
                [tracer, "-f", "-c", "-o", str(out), "-p", str(pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            running[name] = (proc, out)
        deadline = time.monotonic() + ATTACH_TIMEOUT_S
        for name, pid in pids.items():
            while not _threads_traced(pid):
                if time.monotonic() > deadline or running[name][0].poll() is not None:
                    results[name].error = "strace could not attach"
                    break
                time.sleep(POLL_S)
        yield results
    finally:
        for proc, _ in running.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGINT)
        for name, (proc, out) in running.items():
            try:
                proc.wait(timeout=DETACH_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=DETACH_TIMEOUT_S)
                results[name].error = "strace did not detach in time"
                continue
            with contextlib.suppress(OSError):
                results[name].calls = parse_summary(out.read_text())
