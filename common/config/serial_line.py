"""The serial line and keep-alive keys of a Concert V2 terminal.

The same keys describe the configured terminal (top level, the seeds' ``baudRate``,
``dataBits``, ``parity``, ``stopBits``, unchanged) and each named one
(``terminals.<id>.baudRate``...).  A named terminal starts from the top level's line and
keep-alive, so a shop whose terminals are all alike says it once.

``serial_profile`` (common/concert_v2_line.py) sets the whole line; an explicit
``baudRate`` or ``rtscts`` is taken over it, but an explicit ``dataBits``, ``parity`` or
``stopBits`` must agree with the frame the profile's name promises: a seed config always
carries ``dataBits: 8``, and letting it silently undo ``serial_profile: rs232-7e1`` would
garble every payment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final

from common.concert_v2_line import (
    FRAME_FIELDS,
    MAX_KEEPALIVE_INTERVAL_S,
    MIN_KEEPALIVE_INTERVAL_S,
    SerialLine,
    serial_profile_named,
)
from common.config import rules
from common.config.collector import Collector

SERIAL_PROFILE: Final = "serial_profile"
KEEPALIVE_INTERVAL: Final = "keepalive_interval"
KEEPALIVE_OFF: Final = frozenset({"off", "no", "false", "none"})
KEEPALIVE_RULE: Final = (
    f"must be 0 or off (no keep-alive probe), or from {MIN_KEEPALIVE_INTERVAL_S:g} "
    f"to {MAX_KEEPALIVE_INTERVAL_S:g} seconds"
)

# SerialLine field -> its key, spelled as the seeds spell it.
LINE_KEYS: Final[Mapping[str, str]] = {
    "baud_rate": "baudRate",
    "data_bits": "dataBits",
    "parity": "parity",
    "stop_bits": "stopBits",
    "rtscts": "rtscts",
}


def serial_profile(value: Any) -> str:
    name = rules.required_text(value).lower()
    serial_profile_named(name)
    return name


def keepalive_interval(value: Any) -> float | None:
    """Seconds of idle line between keep-alive probes; ``None``: no probe."""
    if isinstance(value, str) and value.strip().lower() in KEEPALIVE_OFF:
        return None
    try:
        number = rules.seconds(value, 0, MAX_KEEPALIVE_INTERVAL_S, low_inclusive=True)
    except ValueError:
        raise ValueError(KEEPALIVE_RULE) from None
    if number == 0:
        return None
    if number < MIN_KEEPALIVE_INTERVAL_S:
        raise ValueError(KEEPALIVE_RULE)
    return number


# Every key of this module -> its rule (the loader's RULES and the terminals' fields).
RULES: Final[Mapping[str, Callable[[Any], Any]]] = {
    "baudRate": rules.baud_rate,
    "dataBits": rules.data_bits,
    "parity": rules.parity,
    "stopBits": rules.stop_bits,
    "rtscts": rules.boolean,
    SERIAL_PROFILE: serial_profile,
    KEEPALIVE_INTERVAL: keepalive_interval,
}


def resolve_line(c: Collector, key: Callable[[str], str], base: SerialLine) -> SerialLine:
    """The line the keys under ``key(...)`` describe, starting from ``base`` (or from
    their ``serial_profile``); contradictions with that profile go to ``c``."""
    profile = c.value(key(SERIAL_PROFILE), None, serial_profile)
    start = serial_profile_named(profile) if profile else base
    values: dict[str, Any] = {}
    for field, name in LINE_KEYS.items():
        given = c.value(key(name), None, RULES[name])
        if given is None:
            continue
        promised = getattr(start, field)
        if profile and field in FRAME_FIELDS and given != promised:
            c.problem(
                key(name),
                f"is {given}, but serial_profile {profile} ({start.frame}) sets {promised}: "
                f"remove {name} (the profile sets it) or choose another serial_profile",
            )
            continue
        values[field] = given
    return replace(start, **values)


def resolve_keepalive(c: Collector, key: Callable[[str], str], base: float | None) -> float | None:
    """The keep-alive interval under ``key(...)``, or ``base`` when not given."""
    return c.value(key(KEEPALIVE_INTERVAL), base, keepalive_interval)
