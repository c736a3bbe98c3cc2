"""``terminals.<id>.<field>``: the terminals named in the config, beside the seeds' one.

Nested mappings are dotted keys (sources.py), so a YAML block::

    terminals:
      lane1: {protocol: concert-v3, host: 192.168.1.20, profile: payxpert}
      lane2: {protocol: concert-v2, device: /dev/ttyUSB1, serial_profile: rs232-7e1}

and the kiosk's ``TERMINALS.LANE1.HOST=192.168.1.20`` are the same keys.  Each field has
its rule; what a protocol needs (host for Concert V3, device for Concert V2) is required.
A Concert V2 terminal's line and keep-alive start from the top level's (serial_line.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from common.concert_v2_line import SerialLine
from common.concert_v3_profiles import DEFAULT_PROFILE, profile_named
from common.concert_v3_versions import protocol_version
from common.config import rules, serial_line
from common.config.collector import Collector
from common.config.model import CONCERT_V2, CONCERT_V3
from common.terminals import TerminalSpec, terminal_id

SECTION: Final = "terminals"
DEFAULT_PORT: Final = 8888


def _fold(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def v3_profile(value: Any) -> str:
    return profile_named(rules.required_text(value)).name


def v3_version(value: Any) -> str:
    try:
        return protocol_version(rules.required_text(value))
    except ValueError:
        raise ValueError(
            "must be ConcertV3.1 or ConcertV3.2 (or the CZ code 0300, 0301, 0302, 0310, 0320)"
        ) from None


def _device(value: Any) -> str:
    device = rules.serial_port(value)
    if device is None or device == rules.SIMULATOR:
        raise ValueError("must be a device path such as /dev/ttyUSB1 or a socket:// URL")
    return device


FIELD_RULES: Final[Mapping[str, Callable[[Any], Any]]] = {
    "protocol": rules.terminal_protocol,
    "host": rules.host,
    "port": rules.port,
    "device": _device,
    "version": v3_version,
    "profile": v3_profile,
    **serial_line.RULES,  # Concert V2: baudRate, dataBits, parity, stopBits, rtscts...
}
V3_ONLY: Final = ("host", "port", "version", "profile")
# keepalive_interval is both protocols' (tp_manager/keepalive.py): the rest is the line's
V2_ONLY: Final = ("device", *(k for k in serial_line.RULES if k != serial_line.KEEPALIVE_INTERVAL))
_FIELD_NAMES: Final = {_fold(f): f for f in FIELD_RULES}
FIELDS_HINT: Final = ", ".join(FIELD_RULES)


def canonical_key(rest: str) -> str:
    """``lane1.HOST`` -> ``terminals.lane1.host``; ``ValueError`` with the rule otherwise."""
    parts = rest.split(".")
    field = _FIELD_NAMES.get(_fold(parts[-1])) if len(parts) == 2 else None
    if field is None:
        raise ValueError(f"unknown terminals key: terminals.<id>.<field>, fields: {FIELDS_HINT}")
    return f"{SECTION}.{terminal_id(parts[0])}.{field}"


def build(
    c: Collector, default_version: str, line: SerialLine, keepalive: float | None
) -> tuple[TerminalSpec, ...]:
    """Every named terminal, in the order the file names them; problems go to ``c``.
    A Concert V2 terminal's line starts from ``line``, and every terminal's keep-alive
    from ``keepalive`` (the top level's)."""
    ids = list(dict.fromkeys(key.split(".")[1] for key in c.raw if key.startswith(SECTION + ".")))
    specs: list[TerminalSpec] = []
    for each in ids:

        def key(field: str, each: str = each) -> str:
            return f"{SECTION}.{each}.{field}"

        def value(field: str, default: Any = None, each: str = each) -> Any:
            return c.value(key(field, each), default, FIELD_RULES[field])

        protocol = value("protocol")
        if protocol is None:
            if key("protocol") not in c.raw:
                c.problem(key("protocol"), "is required: concert-v2 (serial) or concert-v3 (TCP)")
            continue
        needed = "host" if protocol == CONCERT_V3 else "device"
        given = value(needed)
        if given is None:
            if key(needed) not in c.raw:
                what = "the terminal's IP address" if needed == "host" else "its serial device"
                c.problem(key(needed), f"is required for {protocol}: {what}")
            continue
        wrong = V2_ONLY if protocol == CONCERT_V3 else V3_ONLY
        for field in wrong:
            if key(field) in c.raw:
                c.problem(key(field), f"does not apply to a {protocol} terminal")
        if protocol == CONCERT_V2:
            specs.append(
                TerminalSpec(
                    id=each,
                    protocol=CONCERT_V2,
                    device=given,
                    line=serial_line.resolve_line(c, key, line),
                    keepalive_interval=serial_line.resolve_keepalive(c, key, keepalive),
                )
            )
            continue
        specs.append(
            TerminalSpec(
                id=each,
                protocol=CONCERT_V3,
                host=given,
                port=value("port", DEFAULT_PORT),
                version=value("version", default_version),
                profile=value("profile", DEFAULT_PROFILE),
                keepalive_interval=serial_line.resolve_keepalive(c, key, keepalive),
            )
        )
    _check_unique_addresses(c, specs)
    return tuple(specs)


def _check_unique_addresses(c: Collector, specs: list[TerminalSpec]) -> None:
    seen: dict[str, str] = {}
    for spec in specs:
        address = rules.host_port(spec.address) if spec.host else spec.address
        if address in seen:
            field = "host" if spec.host else "device"
            c.problem(
                f"{SECTION}.{spec.id}.{field}",
                f"is terminal '{seen[address]}' already ({address}): one terminal, one id",
            )
        seen[address] = spec.id
