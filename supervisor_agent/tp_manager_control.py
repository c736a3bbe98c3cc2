"""Stopping tp-manager for ``GET /stop``: through supervisord, never by signalling it directly.

supervisord then knows the stop was wanted (no autorestart) and applies the
program's stop policy: SIGTERM, a payment in flight finishes, SIGKILL only
after ``stopwaitsecs``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from common.supervisord import rpc

log = structlog.get_logger(__name__)

PROGRAM = "tp-manager"


def stopper(socket_path: Path) -> Callable[[], Awaitable[bool]]:
    """An async ``stop_tp_manager()`` bound to supervisord's unix socket."""

    def _stop() -> bool:
        import xmlrpc.client  # at the first stop, like rpc(): not held all day

        proxy = rpc(socket_path, timeout_s=180.0)
        try:
            proxy.supervisor.stopProcess(PROGRAM, True)
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" in fault.faultString:
                return True
            log.error("agent.stop_tp_manager.failed", fault=fault.faultString)
            return False
        except OSError as exc:
            log.error("agent.stop_tp_manager.unreachable", error=str(exc))
            return False
        info: dict[str, Any] = proxy.supervisor.getProcessInfo(PROGRAM)  # type: ignore[assignment]
        return bool(info["statename"] in ("STOPPED", "EXITED"))

    async def stop_tp_manager() -> bool:
        return await asyncio.to_thread(_stop)

    return stop_tp_manager
