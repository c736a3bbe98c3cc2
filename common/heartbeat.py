"""A program's heartbeat: proof that its event loop still turns, for ``run``'s hang watch.

supervisord restarts a program that dies, not one that hangs: an event loop blocked by a
call that never returns (a stuck device, a lock) answers nothing and holds its port for
ever.  So tp-manager and the agent each touch ``<data_dir>/run/<program>.alive`` from a
task of their event loop every :func:`interval_s`; ``ecr-connector run``
(``common/hang_watch.py``) kills a RUNNING program whose file has not changed for
``hang_timeout`` seconds, and supervisord starts it again.  A payment in flight never
stops the beat (it awaits the terminal, it does not block the loop): only a hang does.
Only the file's timestamp changes (no data written), a few times a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from common import paths

BEATS_PER_TIMEOUT = 6  # beats the watch may miss (a slow disk, a busy moment) before a kill
MAX_INTERVAL_S = 10.0


def path_of(data_dir: Path, program: str) -> Path:
    return paths.run_dir(data_dir) / f"{program}.alive"


def interval_s(hang_timeout_s: float) -> float:
    return min(MAX_INTERVAL_S, hang_timeout_s / BEATS_PER_TIMEOUT)


async def beat(data_dir: Path, program: str, hang_timeout_s: float) -> None:
    """Touch the program's heartbeat file for ever (cancel to stop)."""
    path = path_of(data_dir, program)
    every = interval_s(hang_timeout_s)
    while True:
        with contextlib.suppress(OSError):  # a full disk must not kill the program
            path.touch()  # an existing file: its mtime set to now
        await asyncio.sleep(every)
