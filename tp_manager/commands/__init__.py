"""One module per control-channel command; each exposes ``async execute(ctx, properties)``.

A command returns the JSON-ready ``result`` dict, or raises a
:class:`~tp_manager.terminal.errors.TerminalError` (its ``code`` reaches the
client) or :class:`CommandError` for bad properties.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from common import commands

if TYPE_CHECKING:
    from tp_manager.context import ServerContext

Handler = Callable[["ServerContext", dict[str, Any]], Awaitable[dict[str, Any]]]


class CommandError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def load_handlers() -> dict[str, Handler]:
    return {
        name: importlib.import_module(f"tp_manager.commands.{name}").execute
        for name in commands.COMMANDS
    }
