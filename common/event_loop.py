"""The event loop tp-manager and the supervisor agent run on.

Both processes spend most of their CPU between payments' steps in the event loop itself
(readiness polling, callbacks, transports), not in the connector's code.  uvloop runs that
loop in C on libuv: on the fast-path benchmark it cut the connector's CPU per payment by
about 12 % with no change to any handler.  Every library the processes use (aiohttp,
pyzmq's asyncio sockets, pyserial-asyncio) works on any loop that implements
``add_reader``/``add_writer``, which uvloop does.

Tests that drive ``serve()`` inside pytest's own loop run on the standard loop, so the
code paths stay loop-agnostic; the processes started under supervisord run on this one.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a new uvloop event loop (as ``asyncio.run`` does)."""
    return uvloop.run(main)
