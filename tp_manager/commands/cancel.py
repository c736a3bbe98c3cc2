"""``cancel``: abort the transaction in flight, if any."""

from __future__ import annotations

from typing import Any

from tp_manager.context import ServerContext


async def execute(ctx: ServerContext, props: dict[str, Any]) -> dict[str, Any]:
    cancelled = await (ctx.active_terminal or ctx.terminal).cancel()
    return {"cancelled": cancelled}
