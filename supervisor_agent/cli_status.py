"""``ecr-connector status [--config FILE]``: the status page's facts, in the terminal.

Reads ``GET /status.json`` of the running connector (without ``--config``, the demo's;
the page's own source), so a technician over SSH sees exactly what the page shows.  Exit
status: 0 when the terminal links are up, 1 when one is not or tp-manager is not reachable,
2 when the API cannot be asked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import datetime
from typing import Any

import aiohttp
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from supervisor_agent.cli_api import ApiTarget, CliError, add_config_argument, refused

TIMEOUT_S = 15.0
STATE_STYLES = {
    "accepted": "green",
    "refused": "red",
    "unknown": "bold red",
    "failed": "yellow",
    "up": "green",
    "down": "bold red",
    "delivered": "green",
    "dead": "bold red",
    "pending": "yellow",
}


def configure(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")


async def fetch(target: ApiTarget) -> dict[str, Any]:
    try:
        async with target.session(aiohttp.ClientTimeout(total=TIMEOUT_S)) as session:
            async with session.get(target.base_url + "/status.json") as response:
                body = await response.json(content_type=None)
                if response.status != 200:
                    raise refused(response.status, body)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise target.unreachable(exc) from None
    if not isinstance(body, dict):
        raise CliError("the API answered something that is not the status facts")
    return body


def _when(ts: Any) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "—"


def _size(n: Any) -> str:
    if not isinstance(n, int | float):
        return "—"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return "—"


def _styled(value: Any) -> str:
    text = "—" if value is None else str(value)
    style = STATE_STYLES.get(text)
    return f"[{style}]{escape(text)}[/]" if style else escape(text)


def update_text(update: Any) -> str:
    """The last self-update run in one line, as the status page says it."""
    if not isinstance(update, dict):
        return "no self-update run yet"
    text = str(update.get("state"))
    if update.get("available"):
        text += f" (running {update.get('running')}, available {update['available']})"
    if update.get("reason"):
        text += f": {update['reason']}"
    return text + (f", {update['at']}" if update.get("at") else "")


def render(facts: dict[str, Any], console: Console) -> None:
    terminal, connector, agent = facts["terminal"], facts["connector"], facts["agent"]
    disk, outbox = facts["disk"], facts["outbox"]
    uptime = int(agent.get("uptime_s") or 0)
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row(
        "Terminal link", _styled(terminal.get("link")) + "  " + escape(terminal.get("detail") or "")
    )
    summary.add_row("Protocol", str(terminal.get("protocol")))
    summary.add_row("Serial number", str(terminal.get("serial_number") or "—"))
    summary.add_row("Version", str(connector.get("version")))
    connected = (facts.get("tp_manager") or {}).get("connected")
    summary.add_row(
        "tp-manager",
        "[green]connected[/]" if connected else "[bold red]not reachable: no payment possible[/]",
    )
    summary.add_row("Update", escape(update_text(connector.get("update"))))
    summary.add_row(
        "Up since",
        f"{_when(agent.get('started_at'))} ({uptime // 3600} h {uptime % 3600 // 60} min)",
    )
    summary.add_row(
        "Disk free",
        f"{_size(disk.get('free_bytes'))} of {_size(disk.get('total_bytes'))} ({disk.get('path')})",
    )
    summary.add_row("Journal", _size(disk.get("journal_bytes")))
    counts = outbox.get("counts", {})
    summary.add_row(
        "HiPay outbox",
        f"{counts.get('pending', 0)} pending, {_styled('dead') if counts.get('dead') else 'dead'}: "
        f"{counts.get('dead', 0)}, {counts.get('delivered', 0)} delivered; oldest pending "
        f"{_when(outbox.get('oldest_pending_at'))}",
    )
    console.print(summary)
    links = Table(title="Terminals", title_justify="left", expand=False)
    for column in ("terminal", "link", "since", "protocol", "where", "detail"):
        links.add_column(column)
    for row in facts.get("terminals", []):
        links.add_row(
            escape(str(row.get("terminal"))),
            _styled(row.get("link")),
            _when(row.get("since")),
            escape(str(row.get("protocol"))),
            escape(str(row.get("location") or "—")),
            escape(str(row.get("detail") or "")),
        )
    console.print(links)
    table = Table(title="Last transactions", title_justify="left", expand=False)
    for column in ("time", "order", "amount", "state", "card", "HiPay"):
        table.add_column(column, justify="right" if column == "amount" else "left")
    for tx in facts.get("transactions", []):
        state = _styled(tx.get("state"))
        if tx.get("reconciled_from"):
            state += f" (was {tx['reconciled_from']})"
        if tx.get("error_code"):
            state += " " + escape(str(tx["error_code"]))
        table.add_row(
            _when(tx.get("created_at")),
            escape(str(tx.get("order_id"))),
            tx.get("amount_text") or "—",
            state,
            tx.get("masked_pan") or "—",
            _styled(tx.get("notification")),
        )
    console.print(table)
    problems = facts.get("problems") or []
    console.print("[bold]Last problems[/]" + ("" if problems else ": none"))
    for p in problems:
        console.print(
            f"  {p.get('timestamp', '')} {_styled(p.get('level'))} {escape(p.get('event', ''))}"
            + (f" order {escape(str(p['order_id']))}" if p.get("order_id") else "")
            + (f": {escape(str(p['why']))}" if p.get("why") else ""),
            markup=True,
            highlight=False,
        )


def main(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    try:
        target = ApiTarget.from_config(args.config)
        facts = asyncio.run(fetch(target))
    except CliError as exc:
        Console(stderr=True, highlight=False).print(f"[red]status:[/] {exc}", markup=True)
        return 2
    if args.json:
        print(json.dumps(facts, indent=2, sort_keys=True))
    else:
        console.print(f"[bold]ECR connector[/] at {target.base_url}  ({time.strftime('%H:%M:%S')})")
        render(facts, console)
    return exit_code(facts)


def exit_code(facts: dict[str, Any]) -> int:
    """0 when the links are up, 1 when one is not: the configured terminal's, or a named
    terminal's known to be down (one not heard of yet does not count), so a script
    watching a shop with several lanes learns of any lane; 1 too when tp-manager is not
    reachable (the links then keep their last told state, and no payment goes).  (2: the
    API did not answer.)"""
    if facts["terminal"].get("link") != "up":
        return 1
    if (facts.get("tp_manager") or {}).get("connected") is False:
        return 1
    lanes = facts.get("terminals") or []
    return 1 if any(t.get("link") not in ("up", "unknown") for t in lanes) else 0
