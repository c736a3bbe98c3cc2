"""``ecr-connector pay AMOUNT [--currency EUR] [--order-id ID] [--config FILE]``.

A technician's test payment through the running connector's API, exactly as a
register makes one (the configured flavour's ``POST /``).  While the customer pays,
one live line follows ``/events`` for this order: elapsed time and what the
terminal is doing.  It ends with one line saying accepted / refused / failed /
unknown and what to do.  The stream is opened before the payment is posted, so no
event of the order can be missed.  Exit status: 0 accepted, 1 refused or failed,
2 not paid (the API refused the request or could not be reached), 3 unknown.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from supervisor_agent import event_log
from supervisor_agent.cli_api import ApiTarget, CliError, add_config_argument, refused
from supervisor_agent.sse_client import read_events

CONNECT_TIMEOUT_S = 10.0
EXIT = {"accepted": 0, "refused": 1, "failed": 1, "unknown": 3}
NOT_PAID_EXIT = 2

# What the live line says after each event of the order.
PHASES = {
    event_log.TRANSACTION_STARTED: "sent to the terminal",
    event_log.TERMINAL_BUSY: "the terminal took the payment",
    event_log.TRANSACTION_WAITING_FOR_CARD: "waiting for the card",
    event_log.TRANSACTION_FINISHED: "answered",
    event_log.LINK_DOWN: "terminal link down",
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "amount", help="major units, e.g. 9.99 (amounts from 1000.00 pick a simulator scenario)"
    )
    parser.add_argument("--currency", default="EUR", help="ISO 4217 code (default EUR)")
    parser.add_argument("--order-id", help="order id (default: a new CLI_... id)")
    add_config_argument(parser)


def new_order_id() -> str:
    now = datetime.now(UTC)
    return f"CLI_{now:%Y%m%d_%H%M%S}{now.microsecond // 1000:03d}_{secrets.token_hex(3)}"


@dataclass
class Progress:
    """The live line: rendered at each refresh, so the elapsed time moves by itself."""

    label: str
    started: float = field(default_factory=time.monotonic)
    phase: str = "posting the payment"

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        elapsed = time.monotonic() - self.started
        yield Text.assemble(
            ("⏳ ", "yellow"), (self.label, "bold"), f"  {elapsed:5.1f} s  ", (self.phase, "cyan")
        )


def body_for(flavour: str, amount: str, currency: str, order_id: str) -> dict[str, Any]:
    if flavour == "kiosk":
        return {"amount": amount, "currency": currency, "orderId": order_id}
    return {"amount": amount, "currency": currency, "order_id": order_id}


async def _follow(stream: aiohttp.ClientResponse, order_id: str, progress: Progress) -> None:
    async for event in read_events(stream):
        data = event.payload()
        if event.name == event_log.LINK_DOWN or data.get("order_id") == order_id:
            phase = PHASES.get(event.name)
            if event.name == event_log.TRANSACTION_FINISHED:
                phase = f"answered: {data.get('state')}"
            if phase:
                progress.phase = phase


async def pay(
    target: ApiTarget, args: argparse.Namespace, order_id: str, console: Console
) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=target.settings.payment_timeout_s + 30
    )
    body = body_for(target.settings.api_flavour, args.amount, args.currency, order_id)
    progress = Progress(f"{args.amount} {args.currency} · order {order_id}")
    try:
        async with target.session(timeout) as session:
            async with session.get(target.base_url + "/events") as stream:
                if stream.status != 200:
                    raise refused(stream.status, await stream.json(content_type=None))
                follower = asyncio.create_task(_follow(stream, order_id, progress))
                try:
                    with Live(progress, console=console, refresh_per_second=8, transient=True):
                        async with session.post(target.base_url + "/", json=body) as answer:
                            result = await answer.json(content_type=None)
                            if answer.status != 200:
                                raise refused(answer.status, result)
                finally:
                    follower.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await follower
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise target.unreachable(exc) from None
    answer_body = result[0] if isinstance(result, list) and result else result
    if not isinstance(answer_body, dict):
        raise CliError("the API's answer is not a payment answer")
    answer_body["_elapsed_s"] = time.monotonic() - progress.started
    return answer_body


def verdict(answer: dict[str, Any], order_id: str, amount: str, currency: str) -> tuple[str, str]:
    """(state, the one closing line, with rich markup)."""
    state = str(answer.get("transactionState") or "unknown")
    raw_error = answer.get("error")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    code = answer.get("errorCode") or error.get("errorCode")
    why = answer.get("errorDescription") or error.get("errorDescription")
    reason = escape(f" ({code}: {str(why or '').rstrip('.')})" if code else "")
    oid, paid = escape(order_id), escape(f"{amount} {currency}")
    elapsed = f" in {answer.get('_elapsed_s', 0):.1f} s"
    if state == "accepted":
        return state, f"[bold green]✔ ACCEPTED[/] {paid}, order {oid}{elapsed}: the customer paid."
    if state == "refused":
        return state, (
            f"[bold red]✘ REFUSED[/] {paid}, order {oid}{reason}: nothing was paid; "
            "the customer may pay again (a new order id)."
        )
    if state == "failed":
        return state, (
            f"[bold yellow]✘ FAILED[/] {paid}, order {oid}{reason}: it never reached the "
            f"terminal, nothing was paid; safe to retry (same order id: --order-id {oid})."
        )
    advice = escape(str(answer.get("advice") or ""))
    return "unknown", (
        f"[bold red]? UNKNOWN[/] {paid}, order {oid}{reason}: the customer MAY HAVE PAID. "
        f"Do not ask again: check the terminal's receipt; GET /transactions/{oid} shows the "
        f"terminal's verdict once it comes. {advice}"
    )


def main(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    order_id = args.order_id or new_order_id()
    try:
        target = ApiTarget.from_config(args.config)
        answer = asyncio.run(pay(target, args, order_id, console))
    except CliError as exc:
        console.print(
            f"[bold red]✘ NOT PAID[/] order {escape(order_id)}: {escape(str(exc))}",
            markup=True,
            soft_wrap=True,
        )
        return NOT_PAID_EXIT
    state, line = verdict(answer, order_id, args.amount, args.currency)
    console.print(line, markup=True, soft_wrap=True)  # one line: the terminal wraps it
    return EXIT.get(state, NOT_PAID_EXIT)
