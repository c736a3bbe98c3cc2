"""Which drivers tp-manager runs, built from the config: the one place that knows both.

The configured terminal (the seeds' keys) and every terminal named in the config
(``terminals.<id>``) get a driver at start; each driver owns its busy state, so
different terminals pay at the same time and one terminal never runs two payments.
Orders of the POS API may name their own Concert V3 terminal (``host_information``):
one the config names (the configured one or a named one) is that terminal's driver,
whatever ``protocol`` the order names; another one must be in ``allowed_terminals`` (the
API refuses it already; tp-manager checks again, because the control channel is the last
door before the network) and is built once per host:port and kept, so a second order to
it sees it busy and ``cancel`` reaches it.  The configured terminal's driver and a built
one send each order's own version (POS API ``protocol``); a named one its config's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from common.concert_v2_line import SerialLine
from common.concert_v3_profiles import DEFAULT_PROFILE, profile_named
from common.config import ConnectorConfig
from common.config.model import CONCERT_V3
from common.config.rules import host_port
from common.terminals import DEFAULT_TERMINAL, TerminalSpec, key_for_address, spec_by_id
from tp_manager.concert_v2.terminal import ConcertV2Terminal, LateAnswerCallback
from tp_manager.concert_v3 import ConcertV3Terminal, Contract, protocol_version
from tp_manager.keepalive import KeepAlive
from tp_manager.terminal.base import LinkStateCallback, Terminal
from tp_manager.terminal.errors import TerminalNotAllowed
from tp_manager.terminal.model import LinkState, PaymentResult, TerminalTarget


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
    profile: str = DEFAULT_PROFILE,
    order_version: bool = False,
) -> ConcertV3Terminal:
    return ConcertV3Terminal(
        host,
        port,
        version,
        profile=profile_named(profile),
        pos_number=config.pos_number,
        contracts=_contracts(config),
        transaction_timeout=config.transaction_timeout,
        order_version=order_version,
        on_link_state=on_link_state,
    )


def build_terminal(
    config: ConnectorConfig,
    on_link_state: LinkStateCallback,
    on_late_answer: LateAnswerCallback | None = None,
) -> Terminal:
    """The configured terminal's driver (not started); Concert V2 reports late answers."""
    if config.terminal_protocol == CONCERT_V3:
        host, port = config.terminal_address
        return _concert_v3(
            config,
            host,
            port,
            config.concert_v3_version,
            on_link_state,
            profile=config.terminal_profile,
            order_version=True,  # as before: a POS order naming its address and version
        )
    return _concert_v2(
        config, config.device_path, config.serial_line, on_link_state, on_late_answer
    )


def _concert_v2(
    config: ConnectorConfig,
    device: str,
    line: SerialLine,
    on_link_state: LinkStateCallback | None = None,
    on_late_answer: LateAnswerCallback | None = None,
) -> ConcertV2Terminal:
    return ConcertV2Terminal(
        device,
        baudrate=line.baud_rate,
        bytesize=line.data_bits,
        parity=line.parity,
        stopbits=line.stop_bits,
        rtscts=line.rtscts,
        transaction_timeout=config.transaction_timeout,
        on_link_state=on_link_state,
        on_late_answer=on_late_answer,
    )


def describe_device(config: ConnectorConfig) -> str:
    """What ``info`` reports as the device: the serial path, or host:port."""
    return config.terminal_location


# (terminal key, the answer): writes it down; the answer's ACK waits for it
LateAnswer = Callable[[str, PaymentResult], Awaitable[object]]
KeyedLinkState = Callable[[str, LinkState, str], None]  # (terminal key, state, detail)


def _keyed(on_link_state: KeyedLinkState | None, key: str) -> LinkStateCallback | None:
    """A driver's link callback that reports under the terminal's key."""
    if on_link_state is None:
        return None

    def link(state: LinkState, detail: str) -> None:
        on_link_state(key, state, detail)

    return link


def build_named(
    config: ConnectorConfig,
    spec: TerminalSpec,
    on_late_answer: LateAnswer | None = None,
    on_link_state: KeyedLinkState | None = None,
) -> Terminal:
    """The driver of one terminal named in the config (not started)."""
    link = _keyed(on_link_state, spec.id)
    if spec.protocol == CONCERT_V3:
        assert spec.host is not None  # the loader requires it
        return _concert_v3(config, spec.host, spec.port, spec.version, link, profile=spec.profile)
    late = None if on_late_answer is None else (lambda result: on_late_answer(spec.id, result))
    return _concert_v2(config, spec.device or "", spec.line, link, on_late_answer=late)


class TargetTerminals:
    """The configured terminal, the named ones (built at once) and the ones orders name
    (built on first use and kept); each found under the key both processes use."""

    def __init__(
        self,
        config: ConnectorConfig,
        default: Terminal,
        on_late_answer: LateAnswer | None = None,
        on_link_state: KeyedLinkState | None = None,
    ) -> None:
        self.config = config
        self.default = default
        self._on_link_state = on_link_state
        self.named: dict[str, Terminal] = {
            spec.id: build_named(config, spec, on_late_answer, on_link_state)
            for spec in config.terminals
        }
        # one driver per address (its busy flag), sending each order's own version
        self._built: dict[str, ConcertV3Terminal] = {}

    def __call__(self, target: TerminalTarget) -> Terminal:
        return self.keyed(target)[1]

    def by_id(self, terminal_id: str) -> tuple[str, Terminal]:
        """A terminal named in the config, by id (any case)."""
        spec = spec_by_id(self.config.terminals, terminal_id)
        if spec is None:
            known = ", ".join(self.named) or "none"
            raise TerminalNotAllowed(
                f"terminal {terminal_id!r} is not named in the config (named: {known})"
            )
        return spec.id, self.named[spec.id]

    def keyed(self, target: TerminalTarget) -> tuple[str, Terminal]:
        """The driver an order's ``host_information`` names, and its key."""
        host, port = target.host, target.port
        try:
            address = host_port(target.address)
            version = protocol_version(target.version or self.config.concert_v3_version)
        except ValueError as exc:
            raise TerminalNotAllowed(f"target {host}:{port}: {exc}") from None
        if address not in self.config.allowed_terminals:
            raise TerminalNotAllowed(f"terminal {address} is not in allowed_terminals")
        # One terminal, one driver, whatever version the order names: a second driver would
        # be a second busy flag, and two payments at once on one terminal.  The configured
        # terminal's and a built one send the order's version; a named one its config's.
        configured = (
            describe_device(self.config) if self.config.terminal_protocol == CONCERT_V3 else None
        )
        key = key_for_address(self.config.terminals, address, configured)
        if key == DEFAULT_TERMINAL:
            return key, self.default
        if key in self.named:
            return key, self.named[key]
        built = self._built.get(address)
        if built is None:
            built = self._built[address] = _concert_v3(
                self.config,
                host,
                port,
                version,
                _keyed(self._on_link_state, address),
                order_version=True,
            )
        return address, built

    def all(self) -> list[Terminal]:
        return [self.default, *self.named.values(), *self._built.values()]


def build_keepalives(config: ConnectorConfig, targets: TargetTerminals) -> list[KeepAlive]:
    """A keep-alive (not started) for each configured terminal whose interval is not off:
    the configured one (``keepalive_interval``) and the named ones (theirs).  Concert V2
    probes with ENQ/EOT, Concert V3 with a TCP connect (tp_manager/keepalive.py)."""
    wanted: list[tuple[str, Terminal, float | None]] = [
        (DEFAULT_TERMINAL, targets.default, config.keepalive_interval),
        *((s.id, targets.named[s.id], s.keepalive_interval) for s in config.terminals),
    ]
    return [
        KeepAlive(driver, key, interval)
        for key, driver, interval in wanted
        if isinstance(driver, ConcertV2Terminal | ConcertV3Terminal) and interval is not None
    ]
