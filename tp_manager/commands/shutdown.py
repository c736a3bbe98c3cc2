"""``shutdown``: stop tp-manager gracefully (a payment in flight finishes first)."""

from __future__ import annotations

from typing import Any

from common.commands.shutdown import ShutdownReply
from tp_manager.context import ServerContext


async def execute(ctx: ServerContext, props: dict[str, Any]) -> dict[str, Any]:
    ctx.shutdown_requested.set()
    return ShutdownReply(stopping=True, payment_in_flight=bool(ctx.busy_terminals())).to_wire()
