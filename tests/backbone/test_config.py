"""The config loader on real files: the seeds' own configs, every rule, every way a file fails.

Each broken rule must name the file, the key as the user wrote it, its line and the rule,
without ever echoing a password; the processes must stop on it with exit code 2 and one
message, before starting anything.  docs/configuration.md describes the same behaviour.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from common.config import (
    DATA_DIR_ENV,
    ConfigError,
    ConnectorConfig,
    ContractConfig,
    demo_config,
    load_config,
)
from common.config.model import HIPAY_BASE_URLS

REPO = Path(__file__).resolve().parents[2]

API_PASSWORD = "Api-s3cret-pw"
HIPAY_PASSWORD = "Test_HiPay-s3cret"

# The smallest valid desktop config; BASE_LINES lines, so a key appended is on BASE_LINES + 1.
BASE_YAML = f"""\
serial_port: /dev/ttyUSB0
api_username: register
api_password: {API_PASSWORD}
hipay_login: 12345678.stage-secure-gateway.hipay-tpp.com
hipay_password: {HIPAY_PASSWORD}
"""
BASE_LINES = 5
NEXT = BASE_LINES + 1

# The desktop seed's installer output, verbatim (Windows install: serial_port COM14).
DESKTOP_SEED_JSON = (
    '{ "baudRate": 9600, "dataBits": 8, "parity": "none", "stopBits": 1, "hipay_login": '
    '"12345678.stage-secure-gateway.hipay-tpp.com", "hipay_password": '
    '"Test_qVpLbNOWemB7SCcnuqQoT3Yu", "serial_port": "COM14", "serial_number": "1234567890", '
    '"local_port": "8888", "api_username": "log", "api_password": "pwd", "environment": "dev", '
    '"authorization_threshold": 100, "update_time": "03:00", "contract": { "proxy": { '
    '"payment_application": "001", "merchant_id": "1234567", "rank": "001" }, "nfc": { '
    '"payment_application": "00B", "merchant_id": "1234568", "rank": "001" } } }'
)

# The kiosk seed's config.txt (Linux section), verbatim keys and values.
KIOSK_SEED_TXT = """\
SERIAL_PORT=/dev/ttyUSB0
LOCAL_PORT=8080
TERMINAL_MANAGER_LOGIN=log
TERMINAL_MANAGER_PWD=pwd
HIPAY_LOGIN=99999999.stage-secure-gateway.hipay-tpp.com
HIPAY_PWD=Test_XXXXXXXXXXXXXXXXXXXXXXXX
UPDATE_TIME=04:00
"""


# --------------------------------------------------------------------------- helpers


def write(tmp_path: Path, text: str | bytes, name: str = "config.yml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


def where(error: ConfigError) -> list[tuple[str | None, int | None]]:
    """Each problem's key (as written) and line, in the order the message lists them."""
    return [(p.key, p.line) for p in error.problems]


# --------------------------------------------------------------------------- the seeds


@pytest.mark.skipif(sys.platform == "win32", reason="COM ports are valid on Windows")
def test_desktop_seed_verbatim_is_refused_on_linux_for_its_com_port(tmp_path: Path) -> None:
    path = write(tmp_path, DESKTOP_SEED_JSON + "\n")
    error = load_error(path)
    assert str(error) == (
        f"config file {path}: key 'serial_port' (line 1): COM14 is a Windows port name; "
        "on Linux the terminal is a device such as /dev/ttyUSB0 or /dev/ttyACM0 "
        "(compare `ls /dev` before and after plugging it in), or 'simulator' for the "
        "built-in simulator (got 'COM14')"
    )


def test_desktop_seed_with_a_linux_port_loads_every_value_typed(tmp_path: Path) -> None:
    path = write(tmp_path, DESKTOP_SEED_JSON.replace("COM14", "/dev/ttyUSB0"))
    config = load_config(path)

    assert config.source_path == path
    assert config.demo is False
    assert config.data_dir == tmp_path.resolve()
    assert config.api_flavour == "desktop"
    assert config.serial_port == "/dev/ttyUSB0"
    assert config.serial_number == "1234567890"
    assert config.local_port == 8888
    assert isinstance(config.local_port, int)
    assert config.api_username == "log"
    assert config.api_password.get_secret_value() == "pwd"
    assert config.hipay_login == "12345678.stage-secure-gateway.hipay-tpp.com"
    assert config.hipay_password is not None
    assert config.hipay_password.get_secret_value() == "Test_qVpLbNOWemB7SCcnuqQoT3Yu"
    assert config.environment == "stage"  # the seed's "dev": HiPay has no dev platform
    assert config.hipay_url == HIPAY_BASE_URLS["stage"]
    assert config.authorization_threshold == Decimal("100")
    assert isinstance(config.authorization_threshold, Decimal)
    assert config.update_time == dt.time(3, 0)
    assert (config.baud_rate, config.data_bits, config.parity, config.stop_bits) == (
        9600,
        8,
        "none",
        1,
    )
    assert config.contracts == (
        ContractConfig("proxy", payment_application="001", merchant_id="1234567", rank="001"),
        ContractConfig("nfc", payment_application="00B", merchant_id="1234568", rank="001"),
    )
    assert config.terminal_protocol == "concert-v2"
    assert config.uses_simulator is False
    assert config.control_endpoint == f"ipc://{tmp_path.resolve()}/run/control.sock"
    assert config.events_endpoint == f"ipc://{tmp_path.resolve()}/run/events.sock"


def test_kiosk_seed_config_txt_maps_its_names_and_implies_the_kiosk_api(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, KIOSK_SEED_TXT, "config.txt"))

    assert config.api_flavour == "kiosk"
    assert config.serial_port == "/dev/ttyUSB0"
    assert config.local_port == 8080
    assert config.api_username == "log"  # TERMINAL_MANAGER_LOGIN
    assert config.api_password.get_secret_value() == "pwd"  # TERMINAL_MANAGER_PWD
    assert config.hipay_login == "99999999.stage-secure-gateway.hipay-tpp.com"
    assert config.hipay_password is not None
    assert config.hipay_password.get_secret_value() == "Test_XXXXXXXXXXXXXXXXXXXXXXXX"
    assert config.environment == "stage"  # inferred from the stage login
    assert config.update_time == dt.time(4, 0)
    assert config.authorization_threshold is None
    assert config.contracts == ()


def test_kiosk_api_flavour_can_be_overridden_in_config_txt(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, KIOSK_SEED_TXT + "API_FLAVOUR=desktop\n", "config.txt"))
    assert config.api_flavour == "desktop"


def test_environment_is_production_for_a_production_login(tmp_path: Path) -> None:
    text = BASE_YAML.replace("12345678.stage-secure-gateway.hipay-tpp.com", "12345678.hipay")
    config = load_config(write(tmp_path, text))
    assert config.environment == "production"
    assert config.hipay_url == HIPAY_BASE_URLS["production"]


# --------------------------------------------------------------------------- file formats


def test_unquoted_yaml_time_is_a_time_not_sexagesimal(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE_YAML + "update_time: 03:00\n"))
    assert config.update_time == dt.time(3, 0)


def test_yaml_11_booleans_and_octal_looking_numbers_stay_text(tmp_path: Path) -> None:
    text = BASE_YAML.replace("api_username: register", "api_username: yes")
    config = load_config(write(tmp_path, text + "serial_number: 0123\n"))
    assert config.api_username == "yes"
    assert config.serial_number == "0123"

    error = load_error(write(tmp_path, BASE_YAML + "parity: no\n", "parity.yml"))
    assert where(error) == [("parity", NEXT)]
    assert error.rule == "must be none, even or odd (got 'no')"


def test_config_txt_syntax_comments_quotes_and_dotted_keys(tmp_path: Path) -> None:
    text = """\
# a comment
; another comment

SERIAL_PORT = /dev/ttyUSB0
TERMINAL_MANAGER_LOGIN="log"
TERMINAL_MANAGER_PWD='p#w;d'
HIPAY_LOGIN: 99999999.stage-secure-gateway.hipay-tpp.com
HIPAY_PWD=Test_X
SERIAL_NUMBER=
contract.proxy.payment_application=001
CONTRACT.PROXY.MERCHANT_ID=1234567
Contract.Proxy.Rank=001
ALLOWED_TERMINALS=192.168.1.20:8888, 192.168.1.21:8888
"""
    config = load_config(write(tmp_path, text, "config.txt"))
    assert config.serial_port == "/dev/ttyUSB0"
    assert config.api_username == "log"
    assert config.api_password.get_secret_value() == "p#w;d"
    assert config.hipay_login == "99999999.stage-secure-gateway.hipay-tpp.com"
    assert config.serial_number == ""
    assert config.contracts == (ContractConfig("proxy", "001", "1234567", "001"),)
    assert config.allowed_terminals == ("192.168.1.20:8888", "192.168.1.21:8888")


def test_yaml_nested_and_dotted_contract_keys_are_the_same_key(tmp_path: Path) -> None:
    text = BASE_YAML + "contract.proxy.rank: '001'\ncontract:\n  proxy:\n    rank: '002'\n"
    error = load_error(write(tmp_path, text))
    assert str(error) == (
        f"config file {error.path}: key 'contract.proxy.rank' (line {NEXT + 3}): "
        f"is set twice (first on line {NEXT})"
    )


# --------------------------------------------------------------------------- key names


def test_key_names_ignore_case_underscores_and_dashes(tmp_path: Path) -> None:
    text = BASE_YAML + "BAUD-RATE: 19200\ndata_bits: 7\nParity: E\nSTOP_BITS: 2\n"
    config = load_config(write(tmp_path, text))
    assert (config.baud_rate, config.data_bits, config.parity, config.stop_bits) == (
        19200,
        7,
        "even",
        2,
    )


def test_unknown_key_suggests_the_nearest_known_one(tmp_path: Path) -> None:
    path = write(tmp_path, BASE_YAML + "loacl_port: 8080\nfrobnicate: 1\n")
    error = load_error(path)
    assert str(error) == (
        f"config file {path}: 2 problems:\n"
        f"  - key 'loacl_port' (line {NEXT}): is not a known key; did you mean 'local_port'?\n"
        f"  - key 'frobnicate' (line {NEXT + 1}): is not a known key (see docs/configuration.md)"
    )


def test_unknown_kiosk_key_suggests_in_the_kiosk_spelling(tmp_path: Path) -> None:
    text = KIOSK_SEED_TXT.replace("TERMINAL_MANAGER_PWD", "TERMINAL_MANAGER_PASSWORD")
    error = load_error(write(tmp_path, text, "config.txt"))
    assert [str(p) for p in error.problems] == [
        "key 'TERMINAL_MANAGER_PASSWORD' (line 4): is not a known key; "
        "did you mean 'TERMINAL_MANAGER_PWD'?",
        "key 'api_password': is required",
    ]


def test_a_key_given_twice_under_two_spellings(tmp_path: Path) -> None:
    path = write(tmp_path, BASE_YAML + "baudRate: 9600\nbaud_rate: 19200\n")
    error = load_error(path)
    assert str(error) == (
        f"config file {path}: key 'baud_rate' (line {NEXT + 1}): "
        f"sets the same value as 'baudRate' (line {NEXT}): keep one of them"
    )


def test_an_alias_and_its_key_given_together(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, BASE_YAML + "TERMINAL_MANAGER_PWD: other\n"))
    assert where(error) == [("TERMINAL_MANAGER_PWD", NEXT)]
    assert error.rule == "sets the same value as 'api_password' (line 3): keep one of them"


def test_a_yaml_key_written_twice_is_not_silently_overwritten(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, BASE_YAML + "local_port: 8080\nlocal_port: 9090\n"))
    assert where(error) == [("local_port", NEXT + 1)]
    assert error.rule == f"is set twice (first on line {NEXT})"


def test_a_config_txt_key_written_twice(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, KIOSK_SEED_TXT + "LOCAL_PORT=9090\n", "config.txt"))
    assert where(error) == [("LOCAL_PORT", 8)]
    assert error.rule == "is set twice (first on line 2)"


def test_unknown_contract_names_and_a_scalar_contract(tmp_path: Path) -> None:
    text = BASE_YAML + "contract: both\n"
    error = load_error(write(tmp_path, text))
    contract_rule = (
        "unknown contract key: contracts are contract.proxy (contact) and contract.nfc "
        "(contactless), each with payment_application, merchant_id and rank"
    )
    assert where(error) == [("contract", NEXT)]
    assert error.rule == contract_rule

    error = load_error(write(tmp_path, BASE_YAML + "contract:\n  visa:\n    rank: '001'\n"))
    assert where(error) == [("contract.visa.rank", NEXT + 2)]
    assert error.rule == contract_rule


def test_a_contract_needs_its_three_fields(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, BASE_YAML + "contract.nfc.payment_application: 00B\n"))
    assert [str(p) for p in error.problems] == [
        "key 'contract.nfc.merchant_id': is required: contract.nfc needs "
        "payment_application, merchant_id and rank",
        "key 'contract.nfc.rank': is required: contract.nfc needs "
        "payment_application, merchant_id and rank",
    ]


# --------------------------------------------------------------------------- the rules

# (lines appended to BASE_YAML, the first of them broken; key as written; rule; shown value)
CONTRACT_REST = "contract.proxy.merchant_id: '1234567'\ncontract.proxy.rank: '001'\n"
RULE_CASES = [
    ("local_port: 99999", "local_port", "must be a TCP port number from 1 to 65535", "'99999'"),
    ("local_port: 0", "local_port", "must be a TCP port number from 1 to 65535", "'0'"),
    ("terminal_port: 8o88", "terminal_port", "must be a TCP port number from 1 to 65535", "'8o88'"),
    (
        "update_time: 24:00",
        "update_time",
        'must be a time written HH:MM (00:00 to 23:59), like "03:00"',
        "'24:00'",
    ),
    (
        "update_time: 3h00",
        "update_time",
        'must be a time written HH:MM (00:00 to 23:59), like "03:00"',
        "'3h00'",
    ),
    ("parity: mark", "parity", "must be none, even or odd", "'mark'"),
    ("dataBits: 9", "dataBits", "must be 7 or 8", "'9'"),
    ("stopBits: 3", "stopBits", "must be 1 or 2", "'3'"),
    (
        "baudRate: 96000",
        "baudRate",
        "must be one of 1200, 2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200",
        "'96000'",
    ),
    (
        "environment: qa",
        "environment",
        "must be one of dev, stage, staging, prod, production",
        "'qa'",
    ),
    (
        "authorization_threshold: -5",
        "authorization_threshold",
        "must be an amount in major units of the currency, like 100 or 2.50 (not negative)",
        "'-5'",
    ),
    (
        "contract.proxy.payment_application: '999'\n" + CONTRACT_REST,
        "contract.proxy.payment_application",
        "must be one of the POS API's 3-character application codes "
        "(001 CB/Visa/Mastercard contact, 00B contactless, ... see docs/configuration.md)",
        "'999'",
    ),
    (
        "contract.proxy.merchant_id: '123456'\n"
        "contract.proxy.payment_application: '001'\ncontract.proxy.rank: '001'",
        "contract.proxy.merchant_id",
        "must be the 7-character merchant contract number (MID), like 1234567",
        "'123456'",
    ),
    (
        "contract.proxy.rank: '01'\n"
        "contract.proxy.payment_application: '001'\ncontract.proxy.merchant_id: '1234567'",
        "contract.proxy.rank",
        'must be the 3-character terminal rank, like "001"',
        "'01'",
    ),
    (
        "hipay_base_url: http://hipay.example.com/",
        "hipay_base_url",
        "must use https:// (plain http:// would send the HiPay credentials in clear; "
        "it is allowed only for a local stand-in on 127.0.0.1 or localhost)",
        "'http://hipay.example.com/'",
    ),
    (
        "hipay_base_url: http://127.0.0.1.example.com/",
        "hipay_base_url",
        "must use https:// (plain http:// would send the HiPay credentials in clear; "
        "it is allowed only for a local stand-in on 127.0.0.1 or localhost)",
        "'http://127.0.0.1.example.com/'",
    ),
    (
        "bind_address: pos.example.com",
        "bind_address",
        "must be an IP address of this machine, like 127.0.0.1 (local only) or 0.0.0.0",
        "'pos.example.com'",
    ),
    (
        "cors_origins: [https://pos.example.com/checkout]",
        "cors_origins",
        "each entry must be an origin like https://pos.example.com (scheme and host, no path), "
        "got 'https://pos.example.com/checkout'",
        "['https://pos.example.com/checkout']",
    ),
    (
        'cors_origins: ["*"]',
        "cors_origins",
        "'*' is not allowed: the API needs credentials, which browsers never send to a "
        "wildcard origin; list each origin, like https://pos.example.com",
        "['*']",
    ),
    (
        "allowed_terminals: [192.168.1.20]",
        "allowed_terminals",
        "each entry must be host:port, like 192.168.1.20:8888 ([::1]:8888 for IPv6)",
        "['192.168.1.20']",
    ),
    (
        "transaction_timeout: 0",
        "transaction_timeout",
        "must be more than 0 and at most 600 seconds",
        "'0'",
    ),
    (
        "transaction_timeout: 601",
        "transaction_timeout",
        "must be more than 0 and at most 600 seconds",
        "'601'",
    ),
    ("log_file_max_mb: 0", "log_file_max_mb", "must be a size in MB from 1 to 1024", "'0'"),
    (
        "log_file_backups: 101",
        "log_file_backups",
        "must be a number of files from 0 to 100",
        "'101'",
    ),
    (
        "max_connections_per_address: 0",
        "max_connections_per_address",
        "must be a number of connections from 1 to 1000",
        "'0'",
    ),
    (
        "max_connections_per_address: 5000",
        "max_connections_per_address",
        "must be a number of connections from 1 to 1000",
        "'5000'",
    ),
    (
        "control_endpoint: tcp://0.0.0.0:5555",
        "control_endpoint",
        "a tcp:// endpoint must be on the loopback address (tcp://127.0.0.1:PORT): "
        "the control channel has no authentication",
        "'tcp://0.0.0.0:5555'",
    ),
    (
        "events_endpoint: tcp://192.168.1.10:5556",
        "events_endpoint",
        "a tcp:// endpoint must be on the loopback address (tcp://127.0.0.1:PORT): "
        "the control channel has no authentication",
        "'tcp://192.168.1.10:5556'",
    ),
]


@pytest.mark.parametrize(
    ("lines", "key", "rule", "shown"), RULE_CASES, ids=[c[0].split("\n")[0] for c in RULE_CASES]
)
def test_each_rule_names_file_key_line_and_rule(
    tmp_path: Path, lines: str, key: str, rule: str, shown: str
) -> None:
    path = write(tmp_path, BASE_YAML + lines + "\n")
    error = load_error(path)
    assert error.path == path
    assert where(error) == [(key, NEXT)]
    assert str(error) == f"config file {path}: key '{key}' (line {NEXT}): {rule} (got {shown})"


@pytest.mark.parametrize(
    ("line", "attribute", "value"),
    [
        ("transaction_timeout: 600", "transaction_timeout", 600.0),
        ("transaction_timeout: 0.5", "transaction_timeout", 0.5),
        ("max_connections_per_address: 1000", "max_connections_per_address", 1000),
        ("hipay_base_url: http://127.0.0.1:8089", "hipay_base_url", "http://127.0.0.1:8089/"),
        ("hipay_base_url: http://localhost/hipay/", "hipay_base_url", "http://localhost/hipay/"),
        ("bind_address: localhost", "bind_address", "127.0.0.1"),
        ("bind_address: 0.0.0.0", "bind_address", "0.0.0.0"),
        (
            "cors_origins: https://a.example, http://b.example:8080/",
            "cors_origins",
            ("https://a.example", "http://b.example:8080"),
        ),
        ("control_endpoint: tcp://127.0.0.1:5555", "control_endpoint", "tcp://127.0.0.1:5555"),
        ("authorization_threshold: '2,50'", "authorization_threshold", Decimal("2.50")),
        ("update_time: 3:05", "update_time", dt.time(3, 5)),
        ("environment: PROD", "environment", "production"),
        ("log_level: WARN", "log_level", "warning"),
        ("log_file_max_mb: 1", "log_file_max_mb", 1),
        ("log_file_backups: 0", "log_file_backups", 0),
        ("protocol_version: ConcertV3.2", "concert_v3_version", "0302"),
    ],
)
def test_values_at_the_edge_of_their_rule_are_accepted(
    tmp_path: Path, line: str, attribute: str, value: object
) -> None:
    config = load_config(write(tmp_path, BASE_YAML + line + "\n"))
    assert getattr(config, attribute) == value


def test_two_bad_endpoints_are_two_problems_not_three(tmp_path: Path) -> None:
    text = BASE_YAML + "control_endpoint: tcp://0.0.0.0:5555\nevents_endpoint: ipc://relative\n"
    error = load_error(write(tmp_path, text))
    assert where(error) == [("control_endpoint", NEXT), ("events_endpoint", NEXT + 1)]


def test_the_two_endpoints_must_differ(tmp_path: Path) -> None:
    text = (
        BASE_YAML
        + "control_endpoint: tcp://127.0.0.1:5555\nevents_endpoint: tcp://127.0.0.1:5555\n"
    )
    error = load_error(write(tmp_path, text))
    assert where(error) == [("events_endpoint", NEXT + 1)]
    assert error.rule == "must differ from control_endpoint"


# --------------------------------------------------------------------------- required keys


def test_missing_required_keys_are_listed_after_the_others(tmp_path: Path) -> None:
    path = write(tmp_path, "local_port: 8080\nparity: x\n")
    error = load_error(path)
    assert str(error) == (
        f"config file {path}: 6 problems:\n"
        "  - key 'parity' (line 2): must be none, even or odd (got 'x')\n"
        "  - key 'api_username': is required\n"
        "  - key 'api_password': is required\n"
        "  - key 'hipay_login': is required\n"
        "  - key 'hipay_password': is required\n"
        "  - key 'serial_port': is required: the terminal's device, like /dev/ttyUSB0, "
        "or 'simulator'"
    )


def test_a_blank_required_value_counts_as_missing(tmp_path: Path) -> None:
    text = BASE_YAML.replace("serial_port: /dev/ttyUSB0", 'serial_port: "  "')
    text = text.replace("12345678.stage-secure-gateway.hipay-tpp.com", "' '")
    error = load_error(write(tmp_path, text))
    assert [str(p) for p in error.problems] == [
        "key 'serial_port' (line 1): is required: the terminal's device, like /dev/ttyUSB0, "
        "or 'simulator'",
        "key 'hipay_login' (line 4): is required",
    ]


def test_a_broken_required_value_is_reported_once(tmp_path: Path) -> None:
    text = BASE_YAML.replace("api_username: register", "api_username: a:b")
    error = load_error(write(tmp_path, text))
    assert where(error) == [("api_username", 2)]
    assert error.rule == (
        "must not contain ':' (HTTP Basic authentication splits user:password there) (got 'a:b')"
    )


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    ("name", "text", "key", "line"),
    [
        (
            "list.yml",
            BASE_YAML.replace(f"api_password: {API_PASSWORD}", f"api_password: [{API_PASSWORD}]"),
            "api_password",
            3,
        ),
        (
            "twice.yml",
            BASE_YAML + f"HIPAY_PWD: {HIPAY_PASSWORD}-2\n",
            "HIPAY_PWD",
            NEXT,
        ),
        (
            "alias.yml",
            BASE_YAML.replace(
                f"hipay_password: {HIPAY_PASSWORD}", f"hipay_password: *{HIPAY_PASSWORD}"
            ),
            None,
            5,
        ),
        (
            "config.txt",
            KIOSK_SEED_TXT + f"HIPAY_PWD {HIPAY_PASSWORD}\n",
            None,
            8,
        ),
        (
            "twice.txt",
            KIOSK_SEED_TXT + f"hipay_pwd={HIPAY_PASSWORD}\n",
            "hipay_pwd",
            8,
        ),
    ],
)
def test_secrets_never_appear_in_error_messages(
    tmp_path: Path, name: str, text: str, key: str | None, line: int
) -> None:
    error = load_error(write(tmp_path, text, name))
    assert where(error) == [(key, line)]
    for secret in (API_PASSWORD, HIPAY_PASSWORD, "Test_XXXXXXXXXXXXXXXXXXXXXXXX"):
        assert secret not in str(error)


def test_a_secret_breaking_its_rule_is_named_but_not_shown(tmp_path: Path) -> None:
    text = BASE_YAML.replace(f"api_password: {API_PASSWORD}", 'api_password: "   "')
    path = write(tmp_path, text + "local_port: 99999\n")
    error = load_error(path)
    assert str(error) == (
        f"config file {path}: 2 problems:\n"
        "  - key 'api_password' (line 3): must not be empty\n"
        f"  - key 'local_port' (line {NEXT}): must be a TCP port number from 1 to 65535 "
        "(got '99999')"
    )
    assert HIPAY_PASSWORD not in str(error)


def test_a_loaded_config_hides_its_secrets_in_repr(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE_YAML))
    assert API_PASSWORD not in repr(config)
    assert HIPAY_PASSWORD not in repr(config)


# --------------------------------------------------------------------------- several problems


def test_several_problems_are_reported_at_once_sorted_by_line(tmp_path: Path) -> None:
    # The rules run local_port, baudRate, update_time in that order; the lines are reversed.
    text = BASE_YAML.replace("api_username: register\n", "") + (
        "update_time: 25:00\nbaudRate: 96000\nlocal_port: 0\n"
    )
    path = write(tmp_path, text)
    error = load_error(path)
    assert where(error) == [
        ("update_time", 5),
        ("baudRate", 6),
        ("local_port", 7),
        ("api_username", None),
    ]
    assert str(error).startswith(f"config file {path}: 4 problems:\n  - key 'update_time' (line 5)")
    assert error.key == "update_time"


# --------------------------------------------------------------------------- the file itself


def test_an_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    assert str(load_error(path)) == (
        f"config file {path}: is empty: see docs/configuration.md for the keys"
    )
    only_comments = write(tmp_path, "# nothing here\n\n; nor here\n", "config.txt")
    assert load_error(only_comments).rule == "is empty: see docs/configuration.md for the keys"


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "config.yml"
    assert str(load_error(path)) == f"config file {path}: the file does not exist"


def test_a_directory(tmp_path: Path) -> None:
    assert str(load_error(tmp_path)) == (
        f"config file {tmp_path}: is a directory, not a config file"
    )


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, "api_username: caf\xe9\n".encode("latin-1"))
    assert str(load_error(path)) == (
        f"config file {path}: is not UTF-8 text (byte 17): save it as UTF-8"
    )


def test_a_utf8_bom_is_harmless(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, b"\xef\xbb\xbf" + BASE_YAML.encode()))
    assert config.api_username == "register"


def test_invalid_yaml_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, BASE_YAML + "local_port: 8080\n  indented: oops\n")
    error = load_error(path)
    assert where(error) == [(None, NEXT + 1)]
    assert str(error) == (
        f"config file {path}: line {NEXT + 1}: is not valid YAML: "
        "mapping values are not allowed here"
    )


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "- serial_port\n- local_port\n"))
    assert where(error) == [(None, 1)]
    assert error.rule == "must be a mapping of keys to values (key: value lines)"


def test_a_config_txt_line_that_is_not_key_value(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, KIOSK_SEED_TXT + "just some words\n", "config.txt"))
    assert where(error) == [(None, 8)]
    assert error.rule == "expected KEY=VALUE"


# --------------------------------------------------------------------------- data_dir


def test_data_dir_defaults_to_the_config_files_directory(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE_YAML, "etc/config.yml"))
    assert config.data_dir == (tmp_path / "etc").resolve()


def test_a_relative_data_dir_is_resolved_against_the_config_files_directory(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, BASE_YAML + "data_dir: ../var/data\n", "etc/config.yml"))
    assert config.data_dir == (tmp_path / "var" / "data").resolve()
    assert config.control_endpoint == f"ipc://{config.data_dir}/run/control.sock"


def test_an_absolute_data_dir_is_kept(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE_YAML + f"data_dir: {tmp_path}/d\n", "a/c.yml"))
    assert config.data_dir == (tmp_path / "d").resolve()


def test_a_data_dir_too_deep_for_the_unix_sockets(tmp_path: Path) -> None:
    # <data_dir>/run/supervisor.sock is the longest socket, and supervisord binds it first
    # as <that>.<pid> (up to 8 bytes more): data_dir may be 79 bytes at most.
    fits = "/" + "d" * 78
    assert load_config(write(tmp_path, BASE_YAML + f"data_dir: {fits}\n")).data_dir == Path(fits)

    too_deep = "/" + "d" * 79
    path = write(tmp_path, BASE_YAML + f"data_dir: {too_deep}\n", "deep.yml")
    error = load_error(path)
    assert str(error) == (
        f"config file {path}: key 'data_dir' (line {NEXT}): is too deep for the connector's "
        f"unix sockets: {too_deep}/run/supervisor.sock is 100 bytes, and supervisord binds "
        f"it first as {too_deep}/run/supervisor.sock.PID (108 bytes with the longest pid), "
        "over the 107 a unix socket path allows; use a shorter data_dir"
    )


def test_a_data_dir_too_deep_is_reported_even_with_tcp_endpoints(tmp_path: Path) -> None:
    text = BASE_YAML + (
        f"data_dir: /{'d' * 90}\n"
        "control_endpoint: tcp://127.0.0.1:5555\nevents_endpoint: tcp://127.0.0.1:5556\n"
    )
    error = load_error(write(tmp_path, text))
    assert where(error) == [("data_dir", NEXT)]  # supervisord's socket is still in data_dir


def test_an_ipc_endpoint_too_long(tmp_path: Path) -> None:
    endpoint = "ipc:///" + "s" * 107
    error = load_error(write(tmp_path, BASE_YAML + f"control_endpoint: {endpoint}\n"))
    assert where(error) == [("control_endpoint", NEXT)]
    assert error.rule.startswith(
        "the socket path is 108 bytes, over the 107 a unix socket allows: use a shorter "
        "data_dir or a tcp://127.0.0.1:PORT endpoint"
    )


# --------------------------------------------------------------------------- Concert V3

V3_YAML = BASE_YAML.replace("serial_port: /dev/ttyUSB0\n", "terminal_protocol: concert-v3\n")


def test_concert_v3_requires_terminal_host_not_serial_port(tmp_path: Path) -> None:
    path = write(tmp_path, V3_YAML)
    assert str(load_error(path)) == (
        f"config file {path}: key 'terminal_host': is required: "
        "the Concert V3 terminal's IP address, or 'simulator'"
    )


def test_concert_v3_allowed_terminals_default_to_the_terminal(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, V3_YAML + "terminal_host: 192.168.1.20\n"))
    assert config.terminal_protocol == "concert-v3"
    assert config.terminal_host == "192.168.1.20"
    assert config.terminal_port == 8888
    assert config.concert_v3_version == "0301"
    assert config.allowed_terminals == ("192.168.1.20:8888",)
    assert config.terminal_address == ("192.168.1.20", 8888)
    assert config.uses_simulator is False


def test_concert_v3_terminal_is_always_in_allowed_terminals(tmp_path: Path) -> None:
    text = V3_YAML + (
        "terminal_host: 192.168.1.20\nterminal_port: 9000\n"
        "allowed_terminals: [192.168.1.21:8888, 192.168.1.20:9000]\n"
    )
    config = load_config(write(tmp_path, text))
    assert config.allowed_terminals == ("192.168.1.20:9000", "192.168.1.21:8888")


def test_concert_v3_simulator(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, V3_YAML + "terminal_host: Simulator\n"))
    assert config.terminal_host == "simulator"
    assert config.uses_simulator is True
    assert config.terminal_address == ("127.0.0.1", 8888)
    assert config.allowed_terminals == ("127.0.0.1:8888",)


def test_concert_v2_allowed_terminals_default_to_none(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, BASE_YAML)).allowed_terminals == ()


# --------------------------------------------------------------------------- the demo


def test_demo_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "demo-data"))
    config = demo_config()
    assert isinstance(config, ConnectorConfig)
    assert config.demo is True
    assert config.source_path is None
    assert config.uses_simulator is True
    assert config.serial_port == "simulator"
    assert config.hipay_url == "http://127.0.0.1:8089/"
    assert config.demo_hipay_stub_port == 8089
    assert config.environment == "stage"
    assert (config.api_username, config.api_password.get_secret_value()) == (
        "demo",
        "demo-password",
    )
    assert config.local_port == 8080
    assert config.bind_address == "127.0.0.1"
    assert config.data_dir == (tmp_path / "demo-data").resolve()


def test_demo_data_dir_defaults_to_dot_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert demo_config().data_dir == (tmp_path / "data").resolve()


# --------------------------------------------------------------------------- the processes

BAD_PORT_RULE = "must be a TCP port number from 1 to 65535 (got '99999')"


@pytest.mark.parametrize(
    ("module", "prog"),
    [
        (["common", "run"], "ecr-connector"),
        (["tp_manager"], "tp-manager"),
        (["supervisor_agent"], "supervisor-agent"),
    ],
    ids=["ecr-connector run", "tp-manager", "supervisor-agent"],
)
def test_a_bad_config_stops_the_process_with_exit_2_and_one_line(
    tmp_path: Path, module: list[str], prog: str
) -> None:
    data_dir = tmp_path / "data"
    path = write(tmp_path, BASE_YAML + f"data_dir: {data_dir}\nlocal_port: 99999\n")
    result = subprocess.run(
        [sys.executable, "-m", *module, "--config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"{prog}: config file {path}: key 'local_port' (line {NEXT + 1}): {BAD_PORT_RULE}\n"
    )
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not data_dir.exists()  # nothing was started: no run/, no logs/, no journal


def test_ecr_connector_run_with_a_missing_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    result = subprocess.run(
        [sys.executable, "-m", "common", "run", "--config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == f"ecr-connector: config file {path}: the file does not exist\n"
