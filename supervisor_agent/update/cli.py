"""``ecr-connector update --check | --now --config FILE``: the self-update by hand.

``--check`` prints the running version (what the running connector's ``/version``
says) and the version the feed offers, verified by TUF exactly as the agent does, in a
metadata cache of its own (``<data_dir>/update/check/``) so it never races the agent's.
``--now`` asks the running agent for an update run at once (SIGUSR1 through supervisord:
the same run as the scheduled one, payment wait and rollback included) and follows it in
``<data_dir>/update/status.json`` until it ends.
"""

from __future__ import annotations

import argparse
import sys
import time
import xmlrpc.client

from common import paths
from common.config import ConfigError, ConnectorConfig, load_config_arg
from common.supervisord import rpc
from supervisor_agent.update import state
from supervisor_agent.update.feed import Feed, Refused
from supervisor_agent.update.switch import AGENT, reported_version

DEFAULT_WAIT_S = 1800.0  # a payment to wait for, an install, a health check and a rollback
POLL_S = 0.5
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
GOOD_ENDINGS = frozenset({"up_to_date", "skipped", "switched"})


def configure(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--check", action="store_true", help="print the running and the available version"
    )
    what.add_argument(
        "--now", action="store_true", help="update the running connector now, and wait"
    )
    parser.add_argument("--config", required=True, metavar="FILE", help="the connector's config")
    parser.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT_S,
        metavar="SECONDS",
        help=f"--now: give up waiting after this long (default {DEFAULT_WAIT_S:g})",
    )


def _running(config: ConnectorConfig) -> str:
    try:
        return reported_version(config)
    except (OSError, ValueError, KeyError, IndexError):
        return "not running (its API does not answer)"


def check(config: ConnectorConfig) -> int:
    print(f"running:   {_running(config)}")
    if not config.update_url:
        print("available: self-update is off (no update_url in the config)")
        return EXIT_OK
    feed = Feed(config.update_url, config.update_root, paths.update_dir(config.data_dir) / "check")
    try:
        release = feed.latest()
    except Refused as refused:
        print(f"available: refused: {refused}")
        return EXIT_FAILED
    print(f"available: {release.version} ({release.wheel})")
    return EXIT_OK


def _show(status: state.Status) -> str:
    text = f"update: {status.state}"
    if status.available:
        text += f" (running {status.running}, available {status.available})"
    if status.reason:
        text += f": {status.reason}"
    return text


def followed_after(current: state.Status) -> int:
    """The run number the command's run comes after: a run already under way (the daily
    one, or another ``--now``) is the one it follows, since the agent runs one at a time
    and would find nothing more to do after it."""
    return current.run if current.final else current.run - 1


def now(config: ConnectorConfig, wait_s: float) -> int:
    if not config.update_url:
        print("update: self-update is off (no update_url in the config)")
        return EXIT_FAILED
    before = followed_after(state.read_status(config.data_dir))
    try:
        rpc(paths.supervisord_socket(config.data_dir)).supervisor.signalProcess(AGENT, "USR1")
    except (OSError, xmlrpc.client.Fault) as exc:
        print(f"update: the connector is not running, or its agent is down ({exc})")
        return EXIT_FAILED
    deadline = time.monotonic() + wait_s
    shown = ""
    while time.monotonic() < deadline:
        status = state.read_status(config.data_dir)
        if status.run > before:
            line = _show(status)
            if line != shown:
                print(line, flush=True)
                shown = line
            if status.final:
                return EXIT_OK if status.state in GOOD_ENDINGS else EXIT_FAILED
        time.sleep(POLL_S)
    print(f"update: still not finished after {wait_s:g} s; see {paths.log_dir(config.data_dir)}")
    return EXIT_FAILED


def main(args: argparse.Namespace) -> int:
    try:
        config = load_config_arg(args.config)
    except ConfigError as exc:
        print(f"ecr-connector: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return check(config) if args.check else now(config, args.wait)
