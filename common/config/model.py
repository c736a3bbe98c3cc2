"""The connector's configuration once validated: one typed, read-only object.

Both processes load the same file through :func:`common.config.load_config`, so
they agree on every value; nothing downstream parses config text again.
Secrets are :class:`pydantic.SecretStr`, whose ``repr`` and ``str`` hide them,
so a config that reaches a log line or a traceback gives nothing away.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from pydantic import SecretStr

from common import paths
from common.concert_v2_line import DEFAULT_KEEPALIVE_INTERVAL_S, Parity, SerialLine
from common.concert_v3_profiles import DEFAULT_PROFILE
from common.config.rules import host_port
from common.terminals import TerminalSpec

CONCERT_V2 = "concert-v2"
CONCERT_V3 = "concert-v3"
SIMULATOR = "simulator"

# The POS API seed's base URLs.  HiPay has no "dev" platform: dev installs use stage.
HIPAY_BASE_URLS: dict[str, str] = {
    "stage": "https://cloudrun-api-yugcnet4yq-ew.a.run.app/",
    "production": "https://cloudrun-api-n3l7nqotca-ew.a.run.app/",
}


@dataclass(frozen=True, slots=True)
class ContractConfig:
    """One ``contract.<name>`` block of config.yml (``proxy`` is contact, ``nfc`` contactless)."""

    name: str
    payment_application: str
    merchant_id: str
    rank: str


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    # where it came from
    source_path: Path | None  # None: the built-in demo
    demo: bool
    data_dir: Path
    # the local HTTP API
    api_flavour: str
    bind_address: str
    local_port: int
    api_username: str
    api_password: SecretStr
    cors_origins: tuple[str, ...]
    max_connections_per_address: int  # open HTTP connections one client address may hold
    # HiPay
    hipay_login: str | None
    hipay_password: SecretStr | None
    environment: str  # "stage" | "production"
    hipay_base_url: str | None
    notification_budget: float  # seconds the register's answer waits for HiPay
    retention_months: int
    # the terminal
    terminal_protocol: str  # CONCERT_V2 | CONCERT_V3
    serial_port: str | None  # a device, a pyserial URL, or SIMULATOR
    serial_number: str
    baud_rate: int
    data_bits: int
    parity: Parity
    stop_bits: int
    terminal_host: str | None  # Concert V3; SIMULATOR for the built-in one
    terminal_port: int
    concert_v3_version: str  # the CZ field: "0300", "0301" (ConcertV3.1), "0302"
    allowed_terminals: tuple[str, ...]  # "host:port" the POS API may name
    pos_number: int
    transaction_timeout: float
    authorization_threshold: Decimal | None  # major units of the order's currency
    contracts: tuple[ContractConfig, ...]
    # operation
    update_time: dt.time | None
    update_url: str | None  # the TUF feed; None: self-update off
    update_root: Path  # the trusted TUF root metadata
    log_level: str
    log_file_max_mb: int  # each program's own log file rotates at this size
    log_file_backups: int  # older files kept (<program>.log.1 ...)
    control_endpoint: str
    events_endpoint: str
    demo_hipay_stub_port: int | None = None
    terminal_profile: str = DEFAULT_PROFILE  # the configured Concert V3 terminal's profile
    terminals: tuple[TerminalSpec, ...] = ()  # terminals named in the config (terminals.<id>)
    rtscts: bool = False  # the configured Concert V2 terminal's RTS/CTS flow control
    # Concert V2 keep-alive probe after this many idle seconds; None: no probe
    keepalive_interval: float | None = DEFAULT_KEEPALIVE_INTERVAL_S
    # tp-manager or the agent with its event loop stopped this long is killed and restarted
    hang_timeout: float = 60.0

    @property
    def hipay_url(self) -> str:
        """Where notifications go: ``hipay_base_url`` if set, else the environment's platform."""
        return self.hipay_base_url or HIPAY_BASE_URLS[self.environment]

    @property
    def serial_line(self) -> SerialLine:
        """The configured Concert V2 terminal's line (the seeds' keys, or its profile)."""
        return SerialLine(self.baud_rate, self.data_bits, self.parity, self.stop_bits, self.rtscts)

    @property
    def uses_simulator(self) -> bool:
        if self.terminal_protocol == CONCERT_V3:
            return self.terminal_host == SIMULATOR
        return self.serial_port == SIMULATOR

    @property
    def device_path(self) -> str:
        """The serial device tp-manager opens (the simulator's stable symlink when simulated)."""
        if self.serial_port == SIMULATOR or self.serial_port is None:
            return str(paths.simulator_tty(self.data_dir))
        return self.serial_port

    @property
    def terminal_address(self) -> tuple[str, int]:
        """The Concert V3 terminal's host and port (loopback when simulated)."""
        host = self.terminal_host or SIMULATOR
        return ("127.0.0.1" if host == SIMULATOR else host), self.terminal_port

    @property
    def terminal_location(self) -> str:
        """Where the configured terminal is: ``host:port`` (Concert V3), else its serial device.

        What tp-manager's ``info`` reports as the device and the status page shows."""
        if self.terminal_protocol == CONCERT_V3:
            host, port = self.terminal_address
            return host_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return self.device_path

    @property
    def version_type(self) -> str:
        """The ``type`` of ``/version``: ``concertv2`` / ``concertv3``, as the seeds write it."""
        return self.terminal_protocol.replace("-", "")
