"""Which driver tp-manager runs, built from the config: the one place that knows both.

Orders of the POS API may name their own Concert V3 terminal
(``host_information``).  The API already refuses hosts that are not in
``allowed_terminals``; tp-manager checks again, because the control channel
is the last door before the network.  Such terminals are built once per
host, port and version and kept, so a second order to the same terminal sees
it busy and ``cancel`` can reach it.
"""

from __future__ import annotations

from collections.abc import Callable

from common.config import ConnectorConfig
from common.config.model import CONCERT_V3
from common.config.rules import host_port
from tp_manager.concert_v2.terminal import ConcertV2Terminal
from tp_manager.concert_v3 import ConcertV3Terminal, Contract, protocol_version
from tp_manager.terminal.base import LinkStateCallback, Terminal
from tp_manager.terminal.errors import TerminalNotAllowed
from tp_manager.terminal.model import PaymentResult, TerminalTarget


def _contracts(config: ConnectorConfig) -> tuple[Contract, ...]:
    return tuple(
        Contract(
            payment_application=c.payment_application,
            merchant_contract=c.merchant_id,
            rank=c.rank,
        )
        for c in config.contracts
    )


def _concert_v3(
    config: ConnectorConfig,
    host: str,
    port: int,
    version: str,
    on_link_state: LinkStateCallback | None = None,
) -> ConcertV3Terminal:
    return ConcertV3Terminal(
        host,
        port,
        version,
        pos_number=config.pos_number,
        contracts=_contracts(config),
        transaction_timeout=config.transaction_timeout,
        on_link_state=on_link_state,
    )


def build_terminal(
    config: ConnectorConfig,
    on_link_state: LinkStateCallback,
    on_late_answer: Callable[[PaymentResult], None] | None = None,
) -> Terminal:
    """The configured terminal's driver (not started); Concert V2 reports late answers."""
    if config.terminal_protocol == CONCERT_V3:
        host, port = config.terminal_address
        return _concert_v3(config, host, port, config.concert_v3_version, on_link_state)
    return ConcertV2Terminal(
        config.device_path,
        baudrate=config.baud_rate,
        bytesize=config.data_bits,
        parity=config.parity,
        stopbits=config.stop_bits,
        transaction_timeout=config.transaction_timeout,
        on_link_state=on_link_state,
        on_late_answer=on_late_answer,
    )


def describe_device(config: ConnectorConfig) -> str:
    """What ``info`` reports as the device: the serial path, or host:port."""
    if config.terminal_protocol == CONCERT_V3:
        host, port = config.terminal_address
        return host_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return config.device_path


class TargetTerminals:
    """Drivers for the terminals orders name, built on first use and kept."""

    def __init__(self, config: ConnectorConfig, default: Terminal) -> None:
        self.config = config
        self.default = default
        self._built: dict[tuple[str, int, str], Terminal] = {}

    def __call__(self, target: TerminalTarget) -> Terminal:
        host, port = target.host, target.port
        try:
            address = host_port(target.address)
            version = protocol_version(target.version or self.config.concert_v3_version)
        except ValueError as exc:
            raise TerminalNotAllowed(f"target {host}:{port}: {exc}") from None
        if address not in self.config.allowed_terminals:
            raise TerminalNotAllowed(f"terminal {address} is not in allowed_terminals")
        if self.config.terminal_protocol == CONCERT_V3 and address == describe_device(self.config):
            if version == self.config.concert_v3_version:
                return self.default
        key = (host, port, version)
        if key not in self._built:
            self._built[key] = _concert_v3(self.config, host, port, version)
        return self._built[key]

    def all(self) -> list[Terminal]:
        return [self.default, *self._built.values()]
