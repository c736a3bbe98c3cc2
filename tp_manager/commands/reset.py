"""``reset``: restart the terminal, where its protocol has a message for it.

Concert V3 terminals whose profile takes ``CD=R`` (reboot) do; Concert V2 and the
mandatory part of Concert V3 have none: NOT_SUPPORTED names the protocol or the
profile, so the register gets a clear, honest error instead of a silent no-op.
"""

from __future__ import annotations

from typing import Any

from common.commands.reset import ResetReply
from tp_manager.context import ServerContext


async def execute(ctx: ServerContext, props: dict[str, Any]) -> dict[str, Any]:
    done = await ctx.addressed(props)[1].reset()
    detail = "the terminal is rebooting" if done else "the terminal refused the reboot"
    return ResetReply(done=done, detail=detail).to_wire()
