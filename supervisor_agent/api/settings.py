"""The part of the connector's configuration the HTTP API reads.

``common/config.py`` (``ConnectorConfig``) is written in parallel with this
package, so the API depends only on the fields below, read by name through
:func:`api_settings`.  Any object with these attributes works (the real config,
or a plain namespace in a test); missing optional ones take the defaults here.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from common import __version__
from common.config.loader import DEFAULT_MAX_CONNECTIONS_PER_ADDRESS
from common.terminals import TerminalSpec

Flavour = Literal["desktop", "kiosk"]
FLAVOURS: tuple[Flavour, ...] = ("desktop", "kiosk")

DEFAULT_BIND_ADDRESS = "127.0.0.1"
# tp-manager's own transaction timeout is 120 s by default; the API waits a
# little longer so tp-manager's verdict (with its error code) arrives first.
DEFAULT_PAYMENT_TIMEOUT_S = 135.0
PAYMENT_TIMEOUT_MARGIN_S = 15.0
DEFAULT_MAINTENANCE_TIMEOUT_S = 10.0
DEFAULT_NOTIFICATION_BUDGET_S = 3.0


@dataclass(frozen=True)
class ApiSettings:
    api_username: str
    api_password: str
    api_flavour: Flavour = "desktop"
    cors_origins: tuple[str, ...] = ()
    max_connections_per_address: int = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS
    bind_address: str = DEFAULT_BIND_ADDRESS
    local_port: int = 8080
    authorization_threshold: Decimal | None = None  # major units; None: never forced
    serial_number: str = ""
    terminal_protocol: str = "concert-v2"
    terminal_location: str = ""  # the configured terminal's device, or host:port (Concert V3)
    allowed_terminals: tuple[str, ...] = ()  # "host:port" the POS API may target
    terminals: tuple[TerminalSpec, ...] = ()  # named in the config (common/terminals.py)
    pos_number: int = 1
    payment_timeout_s: float = DEFAULT_PAYMENT_TIMEOUT_S
    maintenance_timeout_s: float = DEFAULT_MAINTENANCE_TIMEOUT_S
    notification_budget_s: float = DEFAULT_NOTIFICATION_BUDGET_S
    version: str = __version__
    version_type: str = ""  # "concertv2" | "concertv3"; derived from the protocol if empty
    version_os: str = field(default_factory=lambda: platform.system().lower() or "linux")

    @property
    def version_string(self) -> str:
        """``{version}-{type}-{os}``, the form both seeds show."""
        return f"{self.version}-{self.type_name}-{self.version_os}"

    @property
    def type_name(self) -> str:
        return self.version_type or self.terminal_protocol.replace("-", "")


def _secret(value: Any) -> str:
    if value is None:
        return ""
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if callable(getter) else str(value)


def _tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, Sequence):
        return tuple(str(v) for v in value)
    return tuple(str(v) for v in value)


def api_settings(config: Any) -> ApiSettings:
    """Read the API's fields off a ``ConnectorConfig`` (or anything shaped like one).

    The kiosk's ``TERMINAL_MANAGER_LOGIN``/``TERMINAL_MANAGER_PWD`` are expected
    to arrive here already mapped to ``api_username``/``api_password`` by the
    config loader; the lowercase kiosk names are read as a fallback.
    """
    if isinstance(config, ApiSettings):
        return config

    def get(name: str, default: Any = None) -> Any:
        value = getattr(config, name, None)
        return default if value is None else value

    threshold = get("authorization_threshold")
    timeout = get("payment_timeout_s")
    if timeout is None and get("transaction_timeout") is not None:
        timeout = float(get("transaction_timeout")) + PAYMENT_TIMEOUT_MARGIN_S
    flavour = str(get("api_flavour", "desktop"))
    if flavour not in FLAVOURS:
        raise ValueError(f"api_flavour must be one of {FLAVOURS}, got {flavour!r}")
    return ApiSettings(
        api_username=str(get("api_username", get("terminal_manager_login", ""))),
        api_password=_secret(get("api_password", get("terminal_manager_pwd"))),
        api_flavour=flavour,
        cors_origins=_tuple(get("cors_origins")),
        max_connections_per_address=int(
            get("max_connections_per_address", DEFAULT_MAX_CONNECTIONS_PER_ADDRESS)
        ),
        bind_address=str(get("bind_address", DEFAULT_BIND_ADDRESS)),
        local_port=int(get("local_port", 8080)),
        authorization_threshold=None if threshold is None else Decimal(str(threshold)),
        serial_number=str(get("serial_number", "")),
        terminal_protocol=str(get("terminal_protocol", "concert-v2")),
        terminal_location=str(get("terminal_location", "")),
        allowed_terminals=_tuple(get("allowed_terminals")),
        terminals=tuple(get("terminals", ())),
        pos_number=int(get("pos_number", 1)),
        payment_timeout_s=float(timeout if timeout is not None else DEFAULT_PAYMENT_TIMEOUT_S),
        maintenance_timeout_s=float(get("maintenance_timeout_s", DEFAULT_MAINTENANCE_TIMEOUT_S)),
        notification_budget_s=float(get("notification_budget", DEFAULT_NOTIFICATION_BUDGET_S)),
        version=str(get("version", __version__)),
        version_type=str(get("version_type", "")),
        version_os=str(get("version_os", platform.system().lower() or "linux")),
    )
