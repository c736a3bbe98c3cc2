"""The ``update-switch`` program: switch to the installed release, check it, roll back if sick.

supervisord starts it on the agent's request (``cycle.py``); it is a program of its own
because it restarts the agent, and must still be there to judge the new version and to
undo the switch.  It runs the *old* version's code, the one already known to work:
before anything else it re-executes itself from the environment ``current`` names now,
resolved, so moving the link later changes nothing it imports.

The switch: stop the agent (supervisord's graceful stop lets a request in flight end),
stop tp-manager, point ``current`` at the new version (``previous`` at the old one),
start both.  While both are stopped no process can import from a moving link.
Healthy means, within :data:`HEALTH_TIMEOUT_S`: both programs RUNNING without a
restart for :data:`SETTLE_S` (a release that answers and then dies in its first seconds
is not healthy, and would otherwise crash on as ``current``), the API's healthcheck
answering, ``/version`` naming the new version, tp-manager answering ``info`` on the
control channel.  A program that falls into BACKOFF/FATAL/EXITED, or is restarted,
fails the check at once.  A failed check restores ``previous``, restarts both, remembers the
version so it is never installed again, and logs ``update.rolled_back`` at error.
Killed itself mid-way, it is undone by ``run``'s watch (common/switch_recovery.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import structlog

from common import paths, versions
from common.commands import info
from common.commands.info import InfoReply
from common.config import ConfigError, ConnectorConfig, load_config_arg
from common.logging import configure_logging, secrets_of
from common.start_watch import FAST_DEATH_S
from common.supervisord import rpc
from common.switch_recovery import AGENT, TP_MANAGER, restart
from supervisor_agent.client import CommandFailed, TerminalClient
from supervisor_agent.update import state

log = structlog.get_logger("supervisor_agent.update.switch")  # not __main__ under -m

PROCESS = "update-switch"
HEALTH_TIMEOUT_S = 90.0
HEALTH_POLL_S = 0.5
PROBE_TIMEOUT_S = 3.0
PINNED_ENV = "ECR_CONNECTOR_SWITCH_PINNED"
SICK_STATES = frozenset({"BACKOFF", "FATAL", "EXITED"})
# How long both programs must run, by supervisord's clock, before a start counts: what
# `run`'s watch calls a failed start (dead sooner than this) must fail the check too.
SETTLE_S = FAST_DEATH_S


def pin_environment(argv: list[str]) -> None:
    """Re-execute from the resolved environment (see the module doc); once only."""
    real = Path(os.path.realpath(sys.prefix))
    if Path(sys.prefix) == real or os.environ.get(PINNED_ENV):
        return
    os.environ[PINNED_ENV] = "1"
    python = str(versions.python_of(real))
    os.execv(python, [python, "-m", "supervisor_agent.update.switch", *argv])  # noqa: S606


def _api_host(config: ConnectorConfig) -> str:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(config.bind_address, config.bind_address)  # noqa: S104
    return f"[{host}]" if ":" in host else host


def _get(config: ConnectorConfig, path: str) -> Any:
    url = f"http://{_api_host(config)}:{config.local_port}{path}"
    request = urllib.request.Request(url)
    secret = config.api_password.get_secret_value()
    token = base64.b64encode(f"{config.api_username}:{secret}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:  # noqa: S310
        return json.loads(response.read())


def reported_version(config: ConnectorConfig) -> str:
    """The version ``/version`` reports (``X.Y.Z-concertv2-linux``: the part before ``-``)."""
    body = _get(config, "/version")
    if isinstance(body, list):  # the kiosk shape
        body = body[0]
    return str(body["version"]).split("-", 1)[0]


def _program_problem(data_dir: Path, starts: dict[str, int]) -> tuple[str | None, int | None]:
    """(why a program is sick, or None; seconds both have been RUNNING, None if not both).

    ``starts`` keeps each program's start as first seen RUNNING: a later one is a restart
    (it died, and supervisord started it again between two looks)."""
    proxy = rpc(paths.supervisord_socket(data_dir))
    infos: list[dict[str, Any]] = proxy.supervisor.getAllProcessInfo()  # type: ignore[assignment]
    states = {str(info["name"]): info for info in infos}
    up_s: int | None = None
    running = True
    for name in (TP_MANAGER, AGENT):
        info = states.get(name, {})
        statename = str(info.get("statename", "UNKNOWN"))
        if statename in SICK_STATES:
            detail = info.get("spawnerr") or f"exit status {info.get('exitstatus')}"
            return f"{name} {statename.lower()} at start ({detail})", None
        start = int(info.get("start") or 0)
        first = starts.get(name)
        if first is not None and start != first:
            return f"{name} restarted {start - first} s after its start", None
        if statename != "RUNNING":
            running = False
            continue
        starts[name] = start
        ran = int(info.get("now") or 0) - start
        up_s = ran if up_s is None else min(up_s, ran)
    return None, up_s if running else None


async def _probe(config: ConnectorConfig, client: TerminalClient, version: str) -> str | None:
    """Why the running connector is not (yet) the healthy ``version``, or None."""
    try:
        await asyncio.to_thread(_get, config, "/v1/connector/healthcheck")
        seen = await asyncio.to_thread(reported_version, config)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        return f"the API does not answer ({exc})"
    if seen != version:
        return f"/version says {seen}, not {version}"
    try:
        InfoReply.from_wire(await client.call(info.NAME, {}, timeout=PROBE_TIMEOUT_S))
    except CommandFailed as exc:
        return f"tp-manager does not answer info ({exc.code})"
    except ValueError as exc:  # a reply that is not the contract's: another version's
        return f"tp-manager's info reply is not understood ({exc})"
    return None


async def health(config: ConnectorConfig, version: str, timeout_s: float) -> str | None:
    """None when ``version`` is healthy within ``timeout_s``, else why not."""
    client = TerminalClient(config.control_endpoint)
    await client.start()
    deadline = time.monotonic() + timeout_s
    last = "not checked yet"
    starts: dict[str, int] = {}
    try:
        while time.monotonic() < deadline:
            try:
                sick, up_s = await asyncio.to_thread(_program_problem, config.data_dir, starts)
            except OSError as exc:
                sick, up_s = None, None
                last = f"supervisord does not answer ({exc})"
            if sick is not None:
                return sick
            if up_s is not None:
                problem = await _probe(config, client, version)
                if problem is None and up_s >= SETTLE_S:
                    return None
                last = problem or f"running {up_s} s of the {SETTLE_S} s a start must last"
            await asyncio.sleep(HEALTH_POLL_S)
    finally:
        await client.close()
    return f"not healthy within {timeout_s:g} s: {last}"


async def switch(config: ConnectorConfig) -> int:
    data_dir = config.data_dir
    marker = versions.pending_switch(data_dir)
    try:
        pending = json.loads(marker.read_text())
        to, was, was_version = (
            str(pending["to"]),
            str(pending["from"]),
            str(pending["from_version"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("update.switch_failed", error=f"no readable pending switch: {exc}")
        return 1
    status = state.read_status(data_dir)
    if not versions.is_installed(data_dir, to):
        marker.unlink(missing_ok=True)
        log.error("update.switch_failed", version=to, error="the version is not installed")
        status.state, status.reason = "switch_failed", f"{to} is not installed"
        state.write_status(data_dir, status)
        return 1
    try:
        return await _switch_checked(config, status, to, was, was_version)
    except Exception:  # a bug here must not leave the kiosk with both programs stopped
        log.exception("update.crashed", version=to)
        await asyncio.to_thread(restart, data_dir, was, None)
        marker.unlink(missing_ok=True)
        status.state, status.reason = "switch_failed", "the switch crashed; see update-switch.log"
        state.write_status(data_dir, status)
        return 1


async def _switch_checked(
    config: ConnectorConfig, status: state.Status, to: str, was: str, was_version: str
) -> int:
    data_dir = config.data_dir
    marker = versions.pending_switch(data_dir)
    log.info("update.restarting", running=was_version, to=to)
    await asyncio.to_thread(restart, data_dir, to, was)
    problem = await health(config, to, HEALTH_TIMEOUT_S)
    if problem is None:
        marker.unlink(missing_ok=True)
        removed = versions.prune(data_dir)
        log.info("update.switched", previous=was_version, version=to, pruned=removed)
        status.state, status.reason = "switched", None
        state.write_status(data_dir, status)
        return 0
    state.remember_rolled_back(data_dir, to, problem)
    await asyncio.to_thread(restart, data_dir, was, None)
    restored_problem = await health(config, was_version, HEALTH_TIMEOUT_S)
    marker.unlink(missing_ok=True)
    versions.prune(data_dir)
    log.error("update.rolled_back", version=to, restored=was_version, reason=problem)
    if restored_problem is not None:
        log.error("update.rollback_unhealthy", version=was_version, reason=restored_problem)
    status.state, status.reason = "rolled_back", problem
    state.write_status(data_dir, status)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pin_environment(argv)
    parser = argparse.ArgumentParser(prog=PROCESS, description=__doc__)
    parser.add_argument("--config", default="demo", help="config.yml/config.txt, or 'demo'")
    args = parser.parse_args(argv)
    try:
        config = load_config_arg(args.config)
    except ConfigError as exc:
        print(f"{PROCESS}: {exc}", file=sys.stderr)
        return 2
    configure_logging(PROCESS, config.log_level, secrets=secrets_of(config))
    return asyncio.run(switch(config))


if __name__ == "__main__":
    sys.exit(main())
