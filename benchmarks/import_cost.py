"""What each connector process holds and spends before it does any work: its imports.

Run from the repository root::

    .venv/bin/python benchmarks/import_cost.py [--repeats N]

tp-manager's and the agent's idle memory is almost all import time.  For each process,
a fresh interpreter runs its start the way it really starts, up to where it would begin
working, then reports:

- tp-manager, the agent: their ``__main__`` module (``python -m tp_manager``,
  ``python -m supervisor_agent``, as supervisord starts them) with ``--help``, which ends
  them once every module-level import has run;
- supervisord: ``import supervisor.supervisord``;
- ``ecr-connector run``: its module, the config loader and the checks.

Printed: VmRSS and PSS at that point (/proc/self), the modules held, the packages held
that are meant to be imported only where used (the ones tests/backbone/test_lean_imports.py
forbids at start, and the ISO 4217 table, loaded at the first currency look-up), and the
CPU time the whole start took (user + system of the child, median of
``--repeats``; CPU time moves less than wall time on a shared machine).  Memory does not
depend on the machine's load: this is the figure to compare before and after a change.
The whole connector's idle RSS, after a payment, is in benchmarks/fast_path.py.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's code first (see benchmarks/harness.py)

from benchmarks.harness import git_revision, load_average, machine_line, use_this_repo  # noqa: E402
from common.lean import NOT_AT_START  # noqa: E402

DEFAULT_REPEATS: Final = 5

# Run in the child: the start up to its work, then what it holds, as JSON on stdout.
PROBE: Final = """
import contextlib, io, json, runpy, sys
target = {target!r}
if target.startswith("-m "):
    sys.argv = [sys.argv[0], "--help"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        runpy.run_module(target[3:], run_name="__main__", alter_sys=True)
else:
    for name in target.split(","):
        __import__(name)
def kb(path, key):
    for line in open(path):
        if line.startswith(key + ":"):
            return int(line.split()[1])
held = sorted({{n.split(".")[0] for n, m in sys.modules.items() if m is not None}})
print(json.dumps({{"rss": kb("/proc/self/status", "VmRSS"),
                  "pss": kb("/proc/self/smaps_rollup", "Pss"),
                  "modules": sum(m is not None for m in sys.modules.values()),
                  "held": held}}))
"""

PROCESSES: Final = {
    "tp-manager": "-m tp_manager",
    "supervisor-agent": "-m supervisor_agent",
    "supervisord": "supervisor.supervisord",
    "ecr-connector run": "common.runner,common.config,common.checks",
}


def probe(target: str) -> tuple[dict[str, Any], float]:
    """One fresh interpreter: what it reported, and the CPU seconds it took."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(target=target)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return json.loads(done.stdout.strip().splitlines()[-1]), cpu


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, metavar="N")
    args = parser.parse_args(argv)
    use_this_repo()
    print(machine_line("ECR connector import cost"))
    print(f"code: {REPO} at {git_revision()}; load average {load_average()[0]:.2f}\n")
    header = f"{'process':<18} {'VmRSS MB':>9} {'PSS MB':>7} {'modules':>8} {'CPU s':>6}  held"
    print(header)
    print("-" * len(header))
    both_rss = 0.0
    for name, target in PROCESSES.items():
        probe(target)  # warm-up: the page cache, .pyc files
        samples = [probe(target) for _ in range(max(1, args.repeats))]
        report = samples[-1][0]
        cpu = statistics.median(cpu for _, cpu in samples)
        held = [p for p in NOT_AT_START if p in report["held"]]
        if name not in ("tp-manager", "supervisor-agent"):
            held = ["(not judged: not a payment program)"]
        if name in ("tp-manager", "supervisor-agent"):
            both_rss += report["rss"] / 1024
        print(
            f"{name:<18} {report['rss'] / 1024:>9.1f} {report['pss'] / 1024:>7.1f} "
            f"{report['modules']:>8} {cpu:>6.2f}  {', '.join(held) or '-'}"
        )
    print(f"\ntp-manager + agent VmRSS at the end of their imports: {both_rss:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
