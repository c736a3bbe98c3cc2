"""The event loop tp-manager and the supervisor agent run on.

Both processes spend most of their CPU between payments' steps in the event loop itself
(readiness polling, callbacks, transports), not in the connector's code.  uvloop runs that
loop in C on libuv: on the fast-path benchmark it cut the connector's CPU per payment by
about 12 % with no change to any handler.  Everything the processes use (aiohttp,
the ZeroMQ sockets of common/loop_socket.py, pyserial-asyncio) works on any loop that
implements ``add_reader``/``add_writer``, which uvloop does.

Tests that drive ``serve()`` inside pytest's own loop run on the standard loop, so the
code paths stay loop-agnostic; the processes started under supervisord run on this one.
uvloop has wheels for x86_64 and 64-bit ARM only; elsewhere (a 32-bit ARM kiosk board)
pyproject.toml does not ask for it, rather than make the install compile libuv, and the
processes run on asyncio's own loop, which is the same code, only slower.

:func:`started` is what each process calls once it serves: the objects made by its
start (modules, models, the app) live as long as the process, yet every full garbage
collection walked them all: 35,000 objects in tp-manager and 60,000 in the agent, 20
and 57 ms on this project's 2-vCPU test machine, a pause that landed on whichever
payment was running (the p99 of the benchmarks).  ``gc.freeze`` moves them out of the
collector's sight; what a payment makes is still collected as before.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

try:
    import uvloop
except ImportError:  # no wheel for this machine (pyproject.toml's marker): asyncio's loop
    uvloop = None  # type: ignore[assignment]

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a new event loop, uvloop's where it is installed."""
    if uvloop is None:
        return asyncio.run(main)
    return uvloop.run(main)


def started() -> None:
    """The process serves: its start's objects are kept out of later collections.

    No ``gc.collect()`` first: it would pause the first payments as long as the
    collection it saves (the start's few cycles stay, a fixed amount).
    """
    gc.freeze()
