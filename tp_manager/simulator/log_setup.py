"""The simulator's logs: the product's JSON lines, on stderr.

Stdout carries only the ``READY ...`` lines a driver or test reads, so the
simulator's logs must go to stderr.
"""

from __future__ import annotations

import sys

from common.logging import configure_logging as _configure


def configure_logging(level: str = "INFO") -> None:
    _configure("simulator", level, stream=sys.stderr)
