"""``info``: who the terminal is (serial number from config) and how it is reached."""

from __future__ import annotations

from typing import Any

from common.commands.info import InfoReply
from tp_manager.context import ServerContext


async def execute(ctx: ServerContext, props: dict[str, Any]) -> dict[str, Any]:
    return InfoReply(
        serial_number=ctx.serial_number,
        protocol=ctx.terminal.protocol,
        link=str(ctx.terminal.link_state),
        device=ctx.device,
    ).to_wire()
