"""``ecr-connector doctor``: check an install before (or instead of) calling support.

One line per check, ``ok`` / ``warning`` / ``failed`` with the fix; the exit
code is 1 when a check blocks a start (``run`` would refuse it), 0 otherwise.
The checks themselves are in :mod:`common.checks`, shared with ``run``.
"""

from __future__ import annotations

import argparse

from common.checks import run_checks

EXIT_BLOCKED = 1


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        default="demo",
        help="config.yml (desktop) or config.txt (kiosk); without it, the demo's",
    )


def main(args: argparse.Namespace) -> int:
    results = run_checks(args.config)
    for result in results:
        print(result.line())
    blocking = [r for r in results if r.blocks]
    if blocking:
        print(f"doctor: {len(blocking)} problem(s) would stop `ecr-connector run`")
        return EXIT_BLOCKED
    print("doctor: nothing blocks a start")
    return 0
