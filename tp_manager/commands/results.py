"""``results``: every verdict the agent has not acknowledged (common/commands/results.py)."""

from __future__ import annotations

from typing import Any

from common.commands.results import ResultsReply
from tp_manager.context import ServerContext


async def execute(ctx: ServerContext, props: dict[str, Any]) -> dict[str, Any]:
    return ResultsReply(results=await ctx.results.pending()).to_wire()
