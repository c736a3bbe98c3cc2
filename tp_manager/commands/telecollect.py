"""``telecollect``: not part of the Concert V2/V3 messages this connector knows.

The public protocol facts (docs/protocols.md) describe no telecollect message, and
the connector never guesses at a wire format: it answers NOT_SUPPORTED so the
register gets a clear, honest error instead of a silent no-op.
"""

from __future__ import annotations

from typing import Any

from tp_manager.context import ServerContext
from tp_manager.terminal.errors import NotSupported


async def execute(ctx: ServerContext, props: dict[str, Any]) -> dict[str, Any]:
    raise NotSupported(
        f"{ctx.terminal.protocol} has no documented telecollect message; "
        "run it from the terminal's menu"
    )
