"""Serial profiles, RTS/CTS and the keep-alive interval, on real config files.

The seeds' four line keys keep meaning what they meant; ``serial_profile`` names a whole
line; a key that contradicts its profile's frame is refused with the key, its line and
the rule; named Concert V2 terminals take the same keys and start from the top level's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from common.concert_v2_line import DEFAULT_KEEPALIVE_INTERVAL_S, SerialLine
from common.config import ConfigError, load_config

from .test_config import (
    BASE_YAML,
    DESKTOP_SEED_JSON,
    KIOSK_SEED_TXT,
    NEXT,
    load_error,
    where,
    write,
)

SEVEN_E_ONE = SerialLine(9600, 7, "even", 1)
EIGHT_N_ONE = SerialLine(9600, 8, "none", 1)


def line_of(lines: str, tmp_path: Path) -> SerialLine:
    return load_config(write(tmp_path, BASE_YAML + lines)).serial_line


def test_the_seeds_keep_their_line_and_get_the_default_keepalive(tmp_path: Path) -> None:
    desktop = load_config(write(tmp_path, DESKTOP_SEED_JSON.replace("COM14", "/dev/ttyUSB0")))
    kiosk = load_config(write(tmp_path, KIOSK_SEED_TXT, "config.txt"))
    for config in (desktop, kiosk):
        assert config.serial_line == EIGHT_N_ONE
        assert config.rtscts is False
        assert config.keepalive_interval == DEFAULT_KEEPALIVE_INTERVAL_S == 180.0


def test_the_seeds_four_keys_still_set_any_line(tmp_path: Path) -> None:
    lines = "baudRate: 19200\ndataBits: 7\nparity: odd\nstopBits: 2\n"
    assert line_of(lines, tmp_path) == SerialLine(19200, 7, "odd", 2)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("serial_profile: rs232-7e1\n", SEVEN_E_ONE),
        ("serial_profile: RS232-7E1\n", SEVEN_E_ONE),  # any case
        ("serial_profile: usb-8n1\n", EIGHT_N_ONE),
        # baud rate and RTS/CTS are taken over a profile
        (
            "serial_profile: rs232-7e1\nbaudRate: 19200\nrtscts: true\n",
            SerialLine(19200, 7, "even", 1, True),
        ),
        # keys that agree with the profile's frame are fine (a seed config carries them)
        ("serial_profile: rs232-7e1\ndataBits: 7\nparity: e\nstopBits: 1\n", SEVEN_E_ONE),
        ("rtscts: yes\n", SerialLine(rtscts=True)),
        ("rtscts: off\n", SerialLine(rtscts=False)),
    ],
)
def test_serial_profile_and_overrides(tmp_path: Path, lines: str, expected: SerialLine) -> None:
    assert line_of(lines, tmp_path) == expected


def test_a_seed_config_cannot_silently_undo_its_profile(tmp_path: Path) -> None:
    """The seed's installer always writes dataBits 8, parity none: adding serial_profile
    rs232-7e1 to it must not quietly stay 8N1."""
    seed = DESKTOP_SEED_JSON.replace("COM14", "/dev/ttyUSB0").replace(
        '"baudRate": 9600,', '"serial_profile": "rs232-7e1", "baudRate": 9600,'
    )
    path = write(tmp_path, seed)
    error = load_error(path)
    assert where(error) == [("dataBits", 1), ("parity", 1)]
    assert error.problems[0].rule == (
        "is 8, but serial_profile rs232-7e1 (7E1) sets 7: remove dataBits (the profile sets it) "
        "or choose another serial_profile"
    )
    assert error.problems[1].rule == (
        "is none, but serial_profile rs232-7e1 (7E1) sets even: remove parity (the profile "
        "sets it) or choose another serial_profile"
    )


@pytest.mark.parametrize(
    ("line", "key", "rule"),
    [
        (
            "serial_profile: rs232",
            "serial_profile",
            "must be one of usb-8n1, rs232-7e1 (got 'rs232')",
        ),
        (
            "serial_profile: usb-8n1\nstopBits: 2",
            "stopBits",
            "is 2, but serial_profile usb-8n1 (8N1) sets 1: remove stopBits (the profile sets it) "
            "or choose another serial_profile",
        ),
        (
            "rtscts: maybe",
            "rtscts",
            "must be true or false (yes/no, on/off, 1/0 accepted) (got 'maybe')",
        ),
        (
            "keepalive_interval: 0.5",
            "keepalive_interval",
            "must be 0 or off (no keep-alive probe), or from 1 to 3600 seconds (got '0.5')",
        ),
        (
            "keepalive_interval: 3601",
            "keepalive_interval",
            "must be 0 or off (no keep-alive probe), or from 1 to 3600 seconds (got '3601')",
        ),
        (
            "keepalive_interval: soon",
            "keepalive_interval",
            "must be 0 or off (no keep-alive probe), or from 1 to 3600 seconds (got 'soon')",
        ),
        (
            "keepalive_interval: -5",
            "keepalive_interval",
            "must be 0 or off (no keep-alive probe), or from 1 to 3600 seconds (got '-5')",
        ),
    ],
)
def test_bad_values_name_the_key_its_line_and_the_rule(
    tmp_path: Path, line: str, key: str, rule: str
) -> None:
    path = write(tmp_path, BASE_YAML + line + "\n")
    error = load_error(path)
    assert where(error) == [(key, NEXT + line.count("\n"))]
    assert (
        str(error) == f"config file {path}: key '{key}' (line {NEXT + line.count(chr(10))}): {rule}"
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("keepalive_interval: 0", None),
        ("keepalive_interval: off", None),
        ("keepalive_interval: OFF", None),
        ("keepalive_interval: 90", 90.0),
        ("keepalive_interval: 2,5", 2.5),
        ("keepAliveInterval: 600", 600.0),  # spelled as the loader folds any key
    ],
)
def test_keepalive_interval(tmp_path: Path, line: str, expected: float | None) -> None:
    assert load_config(write(tmp_path, BASE_YAML + line + "\n")).keepalive_interval == expected


def test_a_typo_is_refused_with_the_nearest_key(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, BASE_YAML + "serial_profil: usb-8n1\n"))
    assert error.rule == "is not a known key; did you mean 'serial_profile'?"


def test_kiosk_spelling(tmp_path: Path) -> None:
    text = KIOSK_SEED_TXT + "SERIAL_PROFILE=rs232-7e1\nRTSCTS=true\nKEEPALIVE_INTERVAL=off\n"
    config = load_config(write(tmp_path, text, "config.txt"))
    assert config.serial_line == SerialLine(9600, 7, "even", 1, True)
    assert config.keepalive_interval is None


# --------------------------------------------------------------------------- named terminals

NAMED = """\
serial_profile: rs232-7e1
keepalive_interval: 60
terminals:
  lane1: {protocol: concert-v2, device: /dev/ttyUSB1}
  lane2:
    protocol: concert-v2
    device: /dev/ttyUSB2
    serial_profile: usb-8n1
    rtscts: true
    keepalive_interval: off
  lane3: {protocol: concert-v2, device: /dev/ttyUSB3, baudRate: 19200, keepalive_interval: 300}
  lane4: {protocol: concert-v3, host: 192.168.1.24}
  lane5: {protocol: concert-v3, host: 192.168.1.25, keepalive_interval: off}
"""


def test_named_terminals_start_from_the_top_level_and_take_their_own_keys(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, BASE_YAML + NAMED))
    specs = {spec.id: spec for spec in config.terminals}
    assert config.serial_line == SEVEN_E_ONE and config.keepalive_interval == 60.0
    assert (specs["lane1"].line, specs["lane1"].keepalive_interval) == (SEVEN_E_ONE, 60.0)
    assert (specs["lane2"].line, specs["lane2"].keepalive_interval) == (
        SerialLine(9600, 8, "none", 1, True),
        None,
    )
    assert (specs["lane3"].line, specs["lane3"].keepalive_interval) == (
        SerialLine(19200, 7, "even", 1),
        300.0,
    )
    # Concert V3 keeps no line open, but its link is watched the same way (TCP connect)
    assert specs["lane4"].keepalive_interval == 60.0
    assert specs["lane5"].keepalive_interval is None


def test_named_terminal_keys_are_checked_and_named_in_full(tmp_path: Path) -> None:
    text = BASE_YAML + (
        "terminals:\n"
        "  lane1: {protocol: concert-v2, device: /dev/ttyUSB1, serial_profile: rs232-7e1, "
        "dataBits: 8}\n"
        "  lane2: {protocol: concert-v3, host: 192.168.1.22, serial_profile: usb-8n1, "
        "keepalive_interval: 60}\n"
        "  lane3: {protocol: concert-v2, device: /dev/ttyUSB3, rtscts: sometimes}\n"
    )
    error = load_error(write(tmp_path, text))
    problems = {p.key: p.rule for p in error.problems}
    assert problems == {
        "terminals.lane1.dataBits": "is 8, but serial_profile rs232-7e1 (7E1) sets 7: remove "
        "dataBits (the profile sets it) or choose another serial_profile",
        "terminals.lane2.serial_profile": "does not apply to a concert-v3 terminal",
        "terminals.lane3.rtscts": "must be true or false (yes/no, on/off, 1/0 accepted) "
        "(got 'sometimes')",
    }
    assert isinstance(error, ConfigError)


@pytest.mark.parametrize(
    ("lines", "key"),
    [("serial_profile: rs232-7e1\n", "serial_profile"), ("dataBits: 7\n", "dataBits")],
)
def test_the_built_in_simulator_refuses_a_seven_bit_line(
    lines: str, key: str, tmp_path: Path
) -> None:
    """Its line is a pseudo-terminal: a 7E1 simulator would only fail later, at open."""
    text = BASE_YAML.replace("/dev/ttyUSB0", "simulator") + lines
    error = load_error(write(tmp_path, text))
    assert where(error) == [(key, NEXT)]
    assert "pseudo-terminal, which takes only 8" in str(error)
    assert load_config(write(tmp_path, BASE_YAML + lines)).serial_line.data_bits == 7
