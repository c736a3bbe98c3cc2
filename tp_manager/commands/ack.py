"""``ack``: the agent has journaled these orders' verdicts; the result store forgets them."""

from __future__ import annotations

from typing import Any

from common.commands import errors as codes
from common.commands.ack import AckReply, AckRequest
from tp_manager.commands import CommandError
from tp_manager.context import ServerContext


async def execute(ctx: ServerContext, props: dict[str, Any]) -> dict[str, Any]:
    try:
        request = AckRequest.from_wire(props)
    except ValueError as exc:
        raise CommandError(codes.INVALID_PROPERTIES, str(exc)) from None
    return AckReply(forgotten=await ctx.results.ack(request.order_ids)).to_wire()
