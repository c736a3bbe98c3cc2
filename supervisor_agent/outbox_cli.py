"""``ecr-connector outbox``: see which HiPay notifications are stuck, and requeue dead ones.

``ecr-connector outbox [--config PATH | --data-dir DIR] [--json]`` (neither: the demo's)
lists pending and dead notifications; ``ecr-connector outbox retry ID`` (or ``retry
--all``) puts dead-lettered ones back in the queue, due now.  A running agent picks
them up when it next rereads the outbox (within a minute: this process cannot wake it);
the command needs no running agent and no network.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from common.config import ConfigError, load_config_arg
from common.logging import configure_logging
from supervisor_agent.journal import JOURNAL_FILENAME, Journal
from supervisor_agent.outbox import Notification, NotificationState

ERROR_COLUMN_CHARS = 60


def _add_location(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--config", default=default, help="connector config file (without it, the demo's)"
    )
    parser.add_argument("--data-dir", default=default, help="data directory (instead of --config)")


def configure(parser: argparse.ArgumentParser) -> None:
    _add_location(parser, suppress=False)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    actions = parser.add_subparsers(dest="outbox_action", metavar="ACTION")
    actions.required = False
    retry = actions.add_parser("retry", help="requeue a dead-lettered notification")
    _add_location(retry, suppress=True)
    target = retry.add_mutually_exclusive_group(required=True)
    target.add_argument("id", nargs="?", type=int, help="notification id (see the listing)")
    target.add_argument("--all", action="store_true", help="requeue every dead notification")
    listing = actions.add_parser("list", help="list pending and dead notifications (default)")
    _add_location(listing, suppress=True)
    listing.add_argument("--json", action="store_true", default=argparse.SUPPRESS)


def _data_dir(args: argparse.Namespace) -> Path:
    if getattr(args, "data_dir", None):
        return Path(args.data_dir)
    try:  # no --config: the demo's, as ``run`` and ``doctor``
        return load_config_arg(getattr(args, "config", None)).data_dir
    except ConfigError as exc:  # the user's mistake: one clear line, no traceback
        raise SystemExit(f"outbox: {exc}") from None


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _line(note: Notification) -> str:
    error = (note.last_error or "").replace("\n", " ")
    if len(error) > ERROR_COLUMN_CHARS:
        error = error[: ERROR_COLUMN_CHARS - 1] + "…"
    return (
        f"{note.id:>6}  {note.state:<9} {note.order_id:<24} {note.attempts:>8} "
        f"{note.attempts_received:>8}  {_when(note.next_attempt_at):<20} "
        f"{note.last_status if note.last_status is not None else '-':>6}  {error}"
    )


def main(args: argparse.Namespace) -> int:
    # stdout is the listing (``--json`` feeds other tools); warnings go to stderr as JSON
    configure_logging("outbox", "warning", stream=sys.stderr)
    data_dir = _data_dir(args)
    path = data_dir / JOURNAL_FILENAME
    if not path.exists():
        print(f"outbox: no journal at {path}", file=sys.stderr)
        return 2
    journal = Journal(path)
    try:
        if getattr(args, "outbox_action", None) == "retry":
            return _retry(journal, args)
        return _list(journal, bool(getattr(args, "json", False)))
    finally:
        journal.close()


def _list(journal: Journal, as_json: bool) -> int:
    notes = list(journal.outbox.iter_undelivered())
    if as_json:
        for note in notes:
            print(json.dumps(note.to_dict(), sort_keys=True))
        return 0
    if not notes:
        print("no pending or dead notifications")
        return 0
    print(
        f"{'id':>6}  {'state':<9} {'order_id':<24} {'attempts':>8} {'received':>8}  "
        f"{'next attempt (UTC)':<20} {'status':>6}  last error"
    )
    for note in notes:
        print(_line(note))
    return 0


def _refused(journal: Journal, notification_id: int) -> str:
    """Why ``retry_dead`` left the row alone."""
    note = journal.outbox.get(notification_id)
    if note is None:
        return "does not exist"
    if note.state is not NotificationState.DEAD:
        return f"is {note.state}, not dead"
    later = journal.outbox.superseded_by(notification_id)
    if later is None:  # changed meanwhile (another process)
        return "was not requeued: read the listing again"
    return (
        f"is superseded by notification {later.id}, delivered, of the same order "
        f"{note.order_id}: sent now it would reach HiPay after it and be its last word"
    )


def _retry(journal: Journal, args: argparse.Namespace) -> int:
    if args.all:
        ids = [n.id for n in journal.outbox.list(NotificationState.DEAD)]
    else:
        ids = [args.id]
    failed = 0
    for notification_id in ids:
        if journal.outbox.retry_dead(notification_id):
            print(f"notification {notification_id} requeued")
        else:
            print(
                f"notification {notification_id} {_refused(journal, notification_id)}",
                file=sys.stderr,
            )
            failed += 1
    if not ids:
        print("no dead notifications")
    return 1 if failed else 0
