"""``check``: link state, busy flag, and whether the terminal answers a probe."""

from __future__ import annotations

from typing import Any

from common.commands.check import CheckReply
from tp_manager.context import ServerContext


async def execute(ctx: ServerContext, props: dict[str, Any]) -> dict[str, Any]:
    status = await ctx.addressed(props)[1].check()
    return CheckReply(
        protocol=status.protocol,
        link=str(status.link),
        busy=status.busy,
        responding=status.responding,
        detail=status.detail,
    ).to_wire()
