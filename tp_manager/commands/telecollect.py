"""``telecollect``: send the terminal's day of transactions to the bank (remote collection).

Concert V3 terminals whose profile takes ``CD=B`` do it; Concert V2 and the
mandatory part of Concert V3 have no message for it: NOT_SUPPORTED names the
protocol or the profile.
"""

from __future__ import annotations

from typing import Any

from tp_manager.context import ServerContext


async def execute(ctx: ServerContext, props: dict[str, Any]) -> dict[str, Any]:
    reply = await ctx.addressed(props)[1].telecollect()
    return reply.to_wire()
