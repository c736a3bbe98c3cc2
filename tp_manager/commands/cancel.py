"""``cancel``: stop waiting for the payment in flight (every busy terminal, or one target).

Neither Concert protocol has an abort message: the reply says whether the
terminal may still complete the payment, and a Concert V2 terminal that does
so is read to the end and its verdict kept in the result store.
"""

from __future__ import annotations

from typing import Any

from common.commands import errors as codes
from common.commands.cancel import CancelReply, CancelRequest
from tp_manager.commands import CommandError
from tp_manager.context import ServerContext


async def execute(ctx: ServerContext, props: dict[str, Any]) -> dict[str, Any]:
    try:
        request = CancelRequest.from_wire(props)
    except ValueError as exc:
        raise CommandError(codes.INVALID_PROPERTIES, str(exc)) from None
    if request.target is not None or request.terminal is not None:
        terminals = [ctx.terminal_for(request.target, request.terminal)[1]]
    else:
        terminals = ctx.busy_terminals()
    replies = [await terminal.cancel() for terminal in terminals]
    chosen = (
        [r for r in replies if r.cancelled]
        or [r for r in replies if r.order_id]
        or [CancelReply(cancelled=False)]
    )
    return chosen[0].to_wire()
