"""The self-update's switch of programs, and its undoing when the switcher dies mid-way.

``update-switch`` (supervisor_agent/update/switch.py) stops the agent and tp-manager,
moves the ``current`` link and starts both again.  It is a one-shot program supervisord
does not restart: killed (OOM, ``kill -9``) between the stop and the start, it used to
leave both programs stopped, the till without payments, until the next ``ecr-connector
run``; killed during its health check, the new version ran on unchecked and the pending
switch stayed.  ``run``'s watch (common/runner.py) sees a switcher that is gone while its
pending switch (``update/switch.json``) is still there and does what the next ``run``
would (``versions.prepare``): ``current`` back where it was, both programs (re)started.

In ``common`` because both ``run`` and the switcher use :func:`restart`.
"""

from __future__ import annotations

import xmlrpc.client
from pathlib import Path
from typing import Any, Final

from common import paths, versions
from common.supervisord import rpc

SWITCH_PROGRAM: Final = "update-switch"
AGENT: Final = "supervisor-agent"
TP_MANAGER: Final = "tp-manager"
STOP_RPC_TIMEOUT_S: Final = 900.0  # a stop waits for a payment in flight and its HiPay budget
# supervisord's states of a program that ended by itself: killed, crashed.  Not STOPPED:
# supervisord stopped it (the connector stopping), and the next ``run`` undoes the switch.
_DIED: Final = frozenset({"EXITED", "FATAL", "BACKOFF"})


def _each(method: Any, names: tuple[str, ...], wait: bool, harmless: str) -> None:
    """Call a supervisord method on each program; a fault saying ``harmless`` is fine."""
    for name in names:
        try:
            method(name, wait)
        except xmlrpc.client.Fault as fault:
            if harmless not in fault.faultString:
                raise


def restart(data_dir: Path, point_to: str, previous: str | None) -> None:
    """Stop the agent then tp-manager, move the links, start tp-manager then the agent."""
    proxy = rpc(paths.supervisord_socket(data_dir), timeout_s=STOP_RPC_TIMEOUT_S)
    _each(proxy.supervisor.stopProcess, (AGENT, TP_MANAGER), True, "NOT_RUNNING")
    if previous is not None:
        versions.point(data_dir, versions.PREVIOUS, previous)
    versions.point(data_dir, versions.CURRENT, point_to)
    _each(proxy.supervisor.startProcess, (TP_MANAGER, AGENT), False, "ALREADY_STARTED")


def switcher_died(data_dir: Path, infos: list[dict[str, Any]]) -> bool:
    """A switch is pending and its switcher, started after it was asked for, is gone.

    Started *after* the pending switch was written (supervisord's ``start``, in whole
    seconds, not before the marker's time): the agent writes the marker and then starts
    the switcher, so the switcher's end from an earlier update, still shown EXITED, is
    not this switch's."""
    marker = versions.pending_switch(data_dir)
    try:
        asked_at = int(marker.stat().st_mtime)
    except FileNotFoundError:
        return False
    info = next((i for i in infos if i.get("name") == SWITCH_PROGRAM), None)
    if info is None or str(info.get("statename")) not in _DIED:
        return False
    started = int(info.get("start") or 0)
    return started != 0 and started >= asked_at


def undo(data_dir: Path) -> str:
    """Put ``current`` back to the version the pending switch left, restart both
    programs on it, forget the switch; the version restored."""
    was = versions.switched_from(data_dir)
    restart(data_dir, was, None)
    versions.pending_switch(data_dir).unlink(missing_ok=True)
    return was
