"""Which terminal an order or a maintenance call names, as the journal keys it.

The desktop and kiosk routes take a ``terminal`` id (an addition to the seeds), the POS
API a ``host_information`` address, the maintenance routes ``?terminal=``.  Each names a
terminal of the config (common/terminals.py) or the configured one; anything else is
refused (403 TERMINAL_NOT_ALLOWED) before the journal or tp-manager hear of it.
"""

from __future__ import annotations

from common.config.model import CONCERT_V3
from common.terminals import (
    DEFAULT_TERMINAL,
    TerminalSpec,
    key_for_address,
    spec_by_id,
    spec_for_address,
)
from supervisor_agent.api import error_codes
from supervisor_agent.api.errors import ApiError
from supervisor_agent.api.settings import ApiSettings


def not_named(settings: ApiSettings, value: str, path: str) -> ApiError:
    known = ", ".join([DEFAULT_TERMINAL, *(t.id for t in settings.terminals)])
    return ApiError(
        403,
        error_codes.TERMINAL_NOT_ALLOWED,
        f"{path}: terminal {value!r} is not one of this connector's terminals ({known})",
        path=path,
        rule="terminals",
        value=value,
        has_value=True,
    )


def named_terminal(settings: ApiSettings, value: str | None, path: str) -> TerminalSpec | None:
    """The named terminal ``value`` picks; None for the configured one (no value, or
    ``default``); ``ApiError`` for a name the config does not have."""
    if value is None or value.strip().lower() == DEFAULT_TERMINAL:
        return None
    spec = spec_by_id(settings.terminals, value)
    if spec is None:
        raise not_named(settings, value, path)
    return spec


def terminal_at(settings: ApiSettings, address: str) -> TerminalSpec | None:
    """The named Concert V3 terminal at ``host:port`` (a POS API order), if any."""
    return spec_for_address(settings.terminals, address)


def address_key(settings: ApiSettings, address: str) -> str:
    """The journal's key of the terminal at ``host:port`` (a POS API order): the one
    tp-manager drives it under (common/terminals.py), ``default`` for the configured
    terminal's own address."""
    configured = settings.terminal_location if settings.terminal_protocol == CONCERT_V3 else None
    return key_for_address(settings.terminals, address, configured)
