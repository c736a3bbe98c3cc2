"""What the benchmark scripts share: this repository's code, percentiles, /proc readings,
and the simulator and connector helpers of tests/stack.py.

A script run as ``python benchmarks/NAME.py`` puts the repository it lives in first on
``sys.path`` before importing this module, then calls :func:`use_this_repo`: the script,
its subprocesses and the supervised programs then all run this checkout's code, even when
the interpreter's virtualenv has another worktree installed in editable mode.
"""

from __future__ import annotations

import compileall
import contextlib
import datetime as dt
import importlib
import json
import math
import os
import platform
import signal
import sys
import timeit
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parents[1]

# The payment every benchmark makes: below 1000.00, so the simulator's default scenario
# (approve) answers it; the simulated customer takes the simulator's smallest time.
AMOUNT_MINOR: Final = 999  # 9.99 EUR
AMOUNT_TEXT: Final = "9.99"
CURRENCY_NUMERIC: Final = "978"  # EUR
CUSTOMER_SECONDS: Final = 0.0  # simulate --pay-seconds
PACED_BAUDRATE: Final = 9600
BITS_PER_BYTE_8N1: Final = 10  # start + 8 data + stop


# What ``deploy/quickstart.sh`` compiles: the code the connector's processes import.
PACKAGES: Final = ("common", "tp_manager", "supervisor_agent", "deploy")


def use_this_repo() -> None:
    """Make this checkout's code the one every process runs.

    The caller already has :data:`REPO` first on ``sys.path``; ``PYTHONPATH`` carries it to
    the subprocesses (``python -m common`` runs in REPO anyway, but supervisord starts the
    programs in the data directory, where only the path decides).  Fails loudly if the
    project's packages were already imported from elsewhere.
    """
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    )
    import common

    where = Path(common.__file__).resolve()
    if REPO not in where.parents:
        raise RuntimeError(f"common imported from {where}, not from {REPO}")
    compile_packages()


def compile_packages() -> None:
    """Write the checkout's bytecode cache, as ``deploy/quickstart.sh`` and pip's install
    of a wheel do on a real box.  Without it, an environment with PYTHONDONTWRITEBYTECODE
    (the machine of the figures in README.md sets it) compiles every module at every start, and the
    ``run`` -> first payment figure would measure the compiler, not the connector."""
    for package in PACKAGES:
        if not compileall.compile_dir(REPO / package, quiet=1):
            raise RuntimeError(f"{package}: a module does not compile")


def runs_this_repo(pid: int) -> bool:
    """Whether a process started by a benchmark got this checkout first on its PYTHONPATH
    (see :func:`use_this_repo`), from /proc/<pid>/environ."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    for entry in environ:
        name, _, value = entry.partition(b"=")
        if name == b"PYTHONPATH":
            return value.decode(errors="replace").split(os.pathsep)[0] == str(REPO)
    return False


def git_revision() -> str:
    """Short commit of REPO's HEAD, ``+dirty`` if the work tree has changes (or "unknown")."""
    import subprocess

    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


# --- statistics ----------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p95 of 10 values is the largest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def p50(values: Sequence[float]) -> float | None:
    return percentile(values, 50) if values else None


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def mb(kb: int | None) -> str:
    return "n/a" if kb is None else f"{kb / 1024:.1f} MB"


# --- the machine and its processes ---------------------------------------------------


def proc_status_kb(pid: int, key: str) -> int | None:
    """``VmRSS`` / ``VmHWM`` of a process from /proc/<pid>/status, in kB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


CLOCK_TICKS_PER_S: Final = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a process (all its threads) from /proc/<pid>/stat, in seconds.

    The kernel counts them in clock ticks (1/SC_CLK_TCK s, usually 10 ms): read them over
    a long run of payments, not one."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # the command name may hold spaces
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLOCK_TICKS_PER_S


def proc_threads_cpu_s(pid: int) -> float | None:
    """CPU time of a process's live threads in nanoseconds' precision, from
    /proc/<pid>/task/*/schedstat: for short windows (idle), where clock ticks are too
    coarse.  A thread that ended in the window is missing from the sum."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[0])
    except OSError:
        return None
    return total / 1e9


def supervisord_pid(data_dir: Path) -> int:
    """supervisord's pid, from its pidfile: ``ecr-connector run`` is its parent (it watches
    the programs' starts), not supervisord itself."""
    from common import paths

    return int(paths.supervisord_pidfile(data_dir).read_text().strip())


def filesystem_of(path: Path) -> str:
    """``fstype (device)`` of the mount holding ``path``, from /proc/mounts."""
    best, found = "", "unknown filesystem"
    target = str(path).rstrip("/") + "/"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, fstype = line.split()[:3]
            prefix = mount.rstrip("/") + "/"
            if target.startswith(prefix) and len(prefix) > len(best):
                best, found = prefix, f"{fstype} ({device})"
    return found


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen


def machine_line(title: str) -> str:
    """Title, date, CPUs, kernel, Python and how fast Python runs here: the first line of
    a benchmark's output."""
    now = dt.datetime.now().astimezone()
    return (
        f"{title} -- {now:%Y-%m-%d %H:%M %Z} -- {os.cpu_count()} CPUs ({cpu_model()}), "
        f"Linux {platform.release()}, Python {platform.python_version()}, "
        "reference loop {:.1f} us best, {:.1f} us median".format(*reference_loop_us())
    )


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.machine()


# A payment answer's size and shape: the reference loop encodes and decodes it.
REFERENCE_ANSWER: Final = {
    "paymentStatus": "SUCCESS",
    "notificationHipaySent": True,
    "numberOfNotificationSent": 1,
    "errorCode": None,
    "amount": "9.99",
    "currency": "EUR",
    "orderId": "ECR_20261130_120000000_abcdef",
    "transactionType": "Debit",
    "terminal": {"serial": "SN-0001", "authorization": "123456", "pan": "497010******0014"},
    "basket": [{"sku": f"item-{n}", "qty": n, "unit_price": 199} for n in range(4)],
}
REFERENCE_LOOPS: Final = 500  # per repeat: about 10 ms
REFERENCE_REPEATS: Final = 60  # about 1 s in all: a VM's slow spells show in the median


def reference_loop_us() -> tuple[float, float]:
    """Microseconds for one JSON round trip of a payment answer with the standard
    library: the best and the median of many short repeats.  A plain CPU figure to
    compare machines (a VM that takes twice as long here takes about twice the CPU per
    payment); on a shared VM the best and the median can differ by 2x within a second,
    which is why both are printed."""
    runs = timeit.repeat(
        "json.loads(json.dumps(answer))",
        globals={"json": json, "answer": REFERENCE_ANSWER},
        number=REFERENCE_LOOPS,
        repeat=REFERENCE_REPEATS,
    )
    per_loop = sorted(run / REFERENCE_LOOPS * 1e6 for run in runs)
    return per_loop[0], per_loop[len(per_loop) // 2]


# --- processes ---------------------------------------------------------------------


def stack_helpers() -> Any:
    """tests/stack.py: its process helpers start the simulator, the HiPay stub and the
    connector the way the end-to-end tests do."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # tests/ is not installed
    # Imported by name so mypy checks the benchmarks without re-checking the test helper.
    return importlib.import_module("tests.stack")


@contextlib.contextmanager
def simulator(workdir: Path, name: str, args: list[str]) -> Iterator[str]:
    """``ecr-connector simulate ARGS`` in its own process, logging at WARNING so its
    logging stays out of the figures; yields what READY announced; stopped by pid after."""
    with stack_helpers().ready_process(
        ["simulate", *args, "--log-level", "WARNING"], workdir / f"{name}.err.log"
    ) as announced:
        yield announced


def v2_simulator_args(*, paced: bool) -> list[str]:
    """``simulate`` arguments of a Concert V2 terminal on a pty, customer 0 s."""
    args = ["--protocol", "concert-v2", "--pty", "--pay-seconds", f"{CUSTOMER_SECONDS:g}"]
    if paced:
        args += ["--pace", "--baudrate", str(PACED_BAUDRATE)]
    return args


def exit_on_sigterm(signum: int, _frame: object) -> None:
    """SIGTERM ends the run through the finally blocks, so every subprocess is stopped; a
    second SIGTERM is ignored while that (bounded) cleanup runs."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)
