"""Turn a config file (or the built-in demo) into a validated :class:`ConnectorConfig`.

Key names are matched loosely, because two seeds already spell them two ways:
case, ``_`` and ``-`` are ignored (``baudRate``, ``BAUDRATE``, ``baud_rate``
are one key), and the kiosk names map onto the desktop ones
(``TERMINAL_MANAGER_PWD`` is ``api_password``).  Unknown keys are errors, with
the nearest known key suggested: a silently ignored typo on an unattended
machine would be found months later.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from common import paths
from common.concert_v2_line import DEFAULT_KEEPALIVE_INTERVAL_S, DEFAULT_LINE
from common.concert_v3_profiles import DEFAULT_PROFILE
from common.concert_v3_versions import protocol_version
from common.config import rules, serial_line
from common.config import terminals as named_terminals
from common.config.errors import ConfigError, ConfigProblem
from common.config.model import CONCERT_V2, CONCERT_V3, SIMULATOR, ConnectorConfig, ContractConfig
from common.config.sources import Raw, parse_txt, parse_yaml, read_text

DEMO = "demo"
# ``--config demo:kiosk``: the demo in the kiosk's API shape (``run --demo kiosk``)
DEMO_FLAVOURS: dict[str, str] = {DEMO: "desktop", f"{DEMO}:kiosk": "kiosk"}
DATA_DIR_ENV = "ECR_CONNECTOR_DATA_DIR"  # the demo's data directory (default ./data)
DEMO_API_PORT = 8080
DEMO_HIPAY_STUB_PORT = 8089
DEMO_VALUES: dict[str, Any] = {
    "serial_port": SIMULATOR,
    "serial_number": "SIM0000000001",
    "local_port": DEMO_API_PORT,
    "api_username": "demo",
    "api_password": "demo-password",
    "hipay_login": "demo-hipay-login",
    "hipay_password": "demo-hipay-password",
    "environment": "stage",
    "hipay_base_url": f"http://127.0.0.1:{DEMO_HIPAY_STUB_PORT}/",
    "authorization_threshold": "100",
    "update_time": "03:00",
}

DEFAULT_LOCAL_PORT = 8080
DEFAULT_TERMINAL_PORT = 8888
PTY_DATA_BITS = 8  # all a Linux pseudo-terminal takes: the built-in simulator's line
DEFAULT_TRANSACTION_TIMEOUT_S = 120.0
DEFAULT_NOTIFICATION_BUDGET_S = 3.0
DEFAULT_HANG_TIMEOUT_S = 60.0  # a program whose event loop stood still this long is hung
DEFAULT_RETENTION_MONTHS = 13
# each program's own log file (common/logging.py): 10 MB, 10 older files kept
DEFAULT_LOG_FILE_MAX_MB = 10
DEFAULT_LOG_FILE_BACKUPS = 10
# open HTTP connections one client address may hold: a POS backend driving 50 lanes from
# one address needs one per lane in flight plus its lookups (docs/configuration.md)
DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 128
DEFAULT_V3_PROTOCOL = "ConcertV3.1"
CONTRACT_NAMES = ("proxy", "nfc")
CONTRACT_FIELDS = ("payment_application", "merchant_id", "rank")
SECRET_KEYS = frozenset({"api_password", "hipay_password"})
RUN_SOCKETS = ("control.sock", "events.sock")  # the default ZeroMQ endpoints, under data_dir/run
# supervisord binds its socket as "<path>.<its pid>" and then links it in place, so that
# name must fit a unix socket path too: "." and 7 digits, Linux's largest pid (4194304)
SUPERVISORD_BIND_SUFFIX_BYTES = len(".4194304")

# canonical key -> the other spellings the seeds use (matched after folding)
ALIASES: dict[str, tuple[str, ...]] = {
    "api_username": ("TERMINAL_MANAGER_LOGIN",),
    "api_password": ("TERMINAL_MANAGER_PWD",),
    "hipay_password": ("HIPAY_PWD",),
}


def _fold(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


CONTRACT_FIELD_NAMES = {_fold(f): f for f in CONTRACT_FIELDS}


def _seconds(low: float, high: float) -> Callable[[Any], float]:
    return lambda value: rules.seconds(value, low, high, low_inclusive=False)


def _months(value: Any) -> int:
    return rules.whole_number(
        value, 1, rules.MAX_RETENTION_MONTHS, "a number of months from 1 to 120"
    )


def _pos_number(value: Any) -> int:
    return rules.whole_number(value, 1, 99, "a POS number from 1 to 99")


def _log_file_mb(value: Any) -> int:
    return rules.whole_number(
        value, 1, rules.MAX_LOG_FILE_MB, f"a size in MB from 1 to {rules.MAX_LOG_FILE_MB}"
    )


def _log_file_backups(value: Any) -> int:
    return rules.whole_number(
        value,
        0,
        rules.MAX_LOG_FILE_BACKUPS,
        f"a number of files from 0 to {rules.MAX_LOG_FILE_BACKUPS}",
    )


def _connections(value: Any) -> int:
    return rules.whole_number(
        value,
        1,
        rules.MAX_CONNECTIONS_PER_ADDRESS,
        f"a number of connections from 1 to {rules.MAX_CONNECTIONS_PER_ADDRESS}",
    )


# canonical key (as the desktop seed spells it) -> rule
RULES: dict[str, Callable[[Any], Any]] = {
    "hipay_login": rules.optional_text,
    "hipay_password": rules.secret_text,
    "serial_port": rules.serial_port,
    "serial_number": rules.optional_text,
    "local_port": rules.port,
    "api_username": rules.api_username,
    "api_password": rules.secret_text,
    "environment": rules.environment,
    "authorization_threshold": rules.threshold,
    "update_time": rules.hhmm,
    "update_url": rules.update_url,
    "update_root": rules.path,
    **serial_line.RULES,  # baudRate, dataBits, parity, stopBits, rtscts, serial_profile...
    "data_dir": rules.path,
    "bind_address": rules.bind_address,
    "terminal_protocol": rules.terminal_protocol,
    "terminal_host": rules.optional_host,
    "terminal_port": rules.port,
    "protocol_version": named_terminals.v3_version,
    "terminal_profile": named_terminals.v3_profile,
    "allowed_terminals": rules.host_ports,
    "hipay_base_url": rules.base_url,
    "api_flavour": rules.api_flavour,
    "cors_origins": rules.cors_origins,
    "max_connections_per_address": _connections,
    "transaction_timeout": _seconds(0, rules.MAX_TRANSACTION_TIMEOUT_S),
    "notification_budget": _seconds(0, rules.MAX_NOTIFICATION_BUDGET_S),
    "hang_timeout": _seconds(rules.MIN_HANG_TIMEOUT_S, rules.MAX_HANG_TIMEOUT_S),
    "retention_months": _months,
    "pos_number": _pos_number,
    "log_level": rules.log_level,
    "log_file_max_mb": _log_file_mb,
    "log_file_backups": _log_file_backups,
    "control_endpoint": rules.zmq_endpoint,
    "events_endpoint": rules.zmq_endpoint,
}
CONTRACT_RULES: dict[str, Callable[[Any], str]] = {
    "payment_application": rules.payment_application,
    "merchant_id": rules.merchant_id,
    "rank": rules.rank,
}


def _canonical_names() -> dict[str, str]:
    names = {_fold(key): key for key in RULES}
    for key, aliases in ALIASES.items():
        names.update({_fold(alias): key for alias in aliases})
    names["contract"] = "contract"
    names[named_terminals.SECTION] = named_terminals.SECTION
    return names


CANONICAL = _canonical_names()


class _Collector:
    """Runs every rule, keeps every problem, so one pass reports them all."""

    def __init__(self, raw: Mapping[str, Raw]) -> None:
        self.raw = raw
        self.problems: list[ConfigProblem] = []

    def problem(self, key: str, rule: str) -> None:
        item = self.raw.get(key)
        self.problems.append(
            ConfigProblem(item.key if item else key, rule, item.line if item else None)
        )

    def given(self, key: str) -> bool:
        item = self.raw.get(key)
        return item is not None and item.value not in (None, [], "")

    def value(self, key: str, default: Any = None, rule: Callable[[Any], Any] | None = None) -> Any:
        item = self.raw.get(key)
        if item is None or item.value is None:
            return default
        check = rule or RULES[key]
        try:
            return check(item.value)
        except ValueError as exc:
            shown = "" if key in SECRET_KEYS else f" (got {_show(item.value)})"
            self.problem(key, f"{exc}{shown}")
            return default


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


def _unknown_key(key: str) -> str:
    """The rule for a key no spelling matches, with the nearest known key (compared folded)."""
    known = [*RULES, *(a for aliases in ALIASES.values() for a in aliases)]
    known += [f"contract.{n}.{f}" for n in CONTRACT_NAMES for f in CONTRACT_FIELDS]
    folded = {_fold(k): k for k in known}
    close = difflib.get_close_matches(_fold(key), folded, n=1, cutoff=0.6)
    if not close:
        return "is not a known key (see docs/configuration.md)"
    suggestion = folded[close[0]]
    if key.isupper():  # a kiosk config.txt: answer in its spelling
        suggestion = suggestion.upper()
    return f"is not a known key; did you mean '{suggestion}'?"


def _canonicalise(raw: Mapping[str, Raw]) -> tuple[dict[str, Raw], list[ConfigProblem]]:
    """Map each key the file used onto its canonical name; unknown or doubled keys are problems."""
    out: dict[str, Raw] = {}
    problems: list[ConfigProblem] = []
    for item in raw.values():
        head, _, rest = item.key.partition(".")
        name = CANONICAL.get(_fold(head))
        if name == "contract":
            parts = rest.split(".")
            field = CONTRACT_FIELD_NAMES.get(_fold(parts[-1]))
            if len(parts) != 2 or _fold(parts[0]) not in CONTRACT_NAMES or field is None:
                problems.append(
                    ConfigProblem(
                        item.key,
                        "unknown contract key: contracts are contract.proxy (contact) and "
                        "contract.nfc (contactless), each with payment_application, "
                        "merchant_id and rank",
                        item.line,
                    )
                )
                continue
            canonical = f"contract.{_fold(parts[0])}.{field}"
        elif name == named_terminals.SECTION:
            try:
                canonical = named_terminals.canonical_key(rest)
            except ValueError as exc:
                problems.append(ConfigProblem(item.key, str(exc), item.line))
                continue
        elif name is None or rest:
            problems.append(ConfigProblem(item.key, _unknown_key(item.key), item.line))
            continue
        else:
            canonical = name
        if canonical in out:
            first = out[canonical]
            problems.append(
                ConfigProblem(
                    item.key,
                    f"sets the same value as '{first.key}'"
                    + (f" (line {first.line})" if first.line else "")
                    + ": keep one of them",
                    item.line,
                )
            )
            continue
        out[canonical] = item
    return out, problems


def _contracts(c: _Collector) -> tuple[ContractConfig, ...]:
    contracts: list[ContractConfig] = []
    for name in CONTRACT_NAMES:
        keys = {f: f"contract.{name}.{f}" for f in CONTRACT_FIELDS}
        present = [f for f, key in keys.items() if c.given(key)]
        if not present:
            continue
        values = {f: c.value(key, rule=CONTRACT_RULES[f]) for f, key in keys.items()}
        for f in CONTRACT_FIELDS:
            if f not in present:
                c.problems.append(
                    ConfigProblem(
                        f"contract.{name}.{f}",
                        f"is required: contract.{name} needs payment_application, "
                        "merchant_id and rank",
                    )
                )
        if all(values[f] for f in CONTRACT_FIELDS):
            contracts.append(ContractConfig(name, **values))
    return tuple(contracts)


def _top_level(key: str) -> str:
    """Top-level keys are their own names (named terminals prefix theirs)."""
    return key


def _endpoint(c: _Collector, key: str, run_dir: Path, filename: str) -> str:
    if c.given(key):
        return str(c.value(key, ""))
    return f"ipc://{run_dir / filename}"


def socket_room_problem(data_dir: Path) -> str | None:
    """The rule ``data_dir`` breaks when its unix sockets would not fit a sockaddr_un.

    supervisord's socket is made there whatever the ZeroMQ endpoints are, so it counts too,
    with the temporary name supervisord binds first (:data:`SUPERVISORD_BIND_SUFFIX_BYTES`).
    """
    run_dir = paths.run_dir(data_dir)
    needs = {paths.supervisord_socket(data_dir): SUPERVISORD_BIND_SUFFIX_BYTES}
    needs.update({run_dir / name: 0 for name in RUN_SOCKETS})
    sock, extra = max(needs.items(), key=lambda item: len(bytes(item[0])) + item[1])
    size = len(bytes(sock))
    if size + extra <= rules.MAX_IPC_PATH_BYTES:
        return None
    detail = f"{sock} is {size} bytes"
    if extra:
        detail += (
            f", and supervisord binds it first as {sock}.PID ({size + extra} bytes with the "
            "longest pid)"
        )
    return (
        f"is too deep for the connector's unix sockets: {detail}, over the "
        f"{rules.MAX_IPC_PATH_BYTES} a unix socket path allows; use a shorter data_dir"
    )


def _check_socket_room(c: _Collector, data_dir: Path) -> None:
    problem = socket_room_problem(data_dir)
    if problem:
        c.problem("data_dir", problem)


def _from_base_dir(values: dict[str, Raw], key: str, base_dir: Path) -> None:
    """A relative path in the file is taken from the config file's directory."""
    item = values.get(key)
    if item is not None and isinstance(item.value, str):
        given = Path(item.value).expanduser()
        values[key] = Raw(item.key, str(base_dir / given), item.line)


def build(
    raw: Mapping[str, Raw],
    *,
    source_path: Path | None,
    kiosk_file: bool = False,
    demo: bool = False,
) -> ConnectorConfig:
    """Validate ``raw`` (from a file or the demo) into a config, or raise one ConfigError."""
    values, problems = _canonicalise(raw)
    c = _Collector(values)
    c.problems.extend(problems)

    base_dir = source_path.parent if source_path is not None else Path.cwd()
    _from_base_dir(values, "data_dir", base_dir)
    data_dir: Path = c.value("data_dir", base_dir).resolve()
    _from_base_dir(values, "update_root", base_dir)

    protocol = c.value("terminal_protocol", CONCERT_V2)
    serial_port = c.value("serial_port")
    terminal_host = c.value("terminal_host")
    terminal_port = c.value("terminal_port", DEFAULT_TERMINAL_PORT)
    login = c.value("hipay_login")
    password = c.value("hipay_password")
    api_username = c.value("api_username", "")
    api_password = c.value("api_password")
    required = {
        "api_username": api_username,
        "api_password": api_password,
        "hipay_login": login,
        "hipay_password": password,
    }
    if protocol == CONCERT_V2:
        required["serial_port"] = serial_port
    else:
        required["terminal_host"] = terminal_host
    reported = {p.key for p in c.problems}
    for key, typed in required.items():
        item = values.get(key)
        if typed or (item is not None and item.key in reported):
            continue  # set, or its own rule already said what is wrong with it
        hint = {
            "serial_port": ": the terminal's device, like /dev/ttyUSB0, or 'simulator'",
            "terminal_host": ": the Concert V3 terminal's IP address, or 'simulator'",
        }.get(key, "")
        c.problem(key, f"is required{hint}")

    if protocol == CONCERT_V3 and terminal_host and terminal_host.lower() == SIMULATOR:
        terminal_host = SIMULATOR
    allowed: tuple[str, ...] = c.value("allowed_terminals", ())
    v3_version = c.value("protocol_version", protocol_version(DEFAULT_V3_PROTOCOL))
    line = serial_line.resolve_line(c, _top_level, DEFAULT_LINE)
    if protocol == CONCERT_V2 and serial_port == SIMULATOR and line.data_bits != PTY_DATA_BITS:
        # the built-in simulator's line is a pseudo-terminal, which refuses 7 data bits
        c.problem(
            serial_line.SERIAL_PROFILE if serial_line.SERIAL_PROFILE in c.raw else "dataBits",
            f"sets {line.data_bits} data bits, but serial_port: simulator runs on a "
            f"pseudo-terminal, which takes only {PTY_DATA_BITS}: use usb-8n1 (or no profile) "
            "with the simulator",
        )
    keepalive = serial_line.resolve_keepalive(c, _top_level, DEFAULT_KEEPALIVE_INTERVAL_S)
    terminals = named_terminals.build(c, v3_version, line, keepalive)
    if protocol == CONCERT_V3 and terminal_host:
        host = "127.0.0.1" if terminal_host == SIMULATOR else terminal_host
        own = rules.host_port(
            f"[{host}]:{terminal_port}" if ":" in host else f"{host}:{terminal_port}"
        )
        allowed = (own, *allowed)
    named = (rules.host_port(t.address) for t in terminals if t.host is not None)
    allowed = tuple(dict.fromkeys((*allowed, *named)))

    environment = c.value("environment") or rules.infer_environment(login)
    run_dir = paths.run_dir(data_dir)
    config = ConnectorConfig(
        source_path=source_path,
        demo=demo,
        data_dir=data_dir,
        api_flavour=c.value("api_flavour", "kiosk" if kiosk_file else "desktop"),
        bind_address=c.value("bind_address", "127.0.0.1"),
        local_port=c.value("local_port", DEFAULT_LOCAL_PORT),
        api_username=api_username,
        api_password=SecretStr(api_password or ""),
        cors_origins=c.value("cors_origins", ()),
        max_connections_per_address=c.value(
            "max_connections_per_address", DEFAULT_MAX_CONNECTIONS_PER_ADDRESS
        ),
        hipay_login=login,
        hipay_password=SecretStr(password) if password else None,
        environment=environment,
        hipay_base_url=c.value("hipay_base_url"),
        notification_budget=c.value("notification_budget", DEFAULT_NOTIFICATION_BUDGET_S),
        retention_months=c.value("retention_months", DEFAULT_RETENTION_MONTHS),
        terminal_protocol=protocol,
        serial_port=serial_port,
        serial_number=c.value("serial_number") or "",
        baud_rate=line.baud_rate,
        data_bits=line.data_bits,
        parity=line.parity,
        stop_bits=line.stop_bits,
        terminal_host=terminal_host,
        terminal_port=terminal_port,
        concert_v3_version=v3_version,
        terminal_profile=c.value("terminal_profile", DEFAULT_PROFILE),
        terminals=terminals,
        allowed_terminals=allowed,
        pos_number=c.value("pos_number", 1),
        transaction_timeout=c.value("transaction_timeout", DEFAULT_TRANSACTION_TIMEOUT_S),
        hang_timeout=c.value("hang_timeout", DEFAULT_HANG_TIMEOUT_S),
        authorization_threshold=c.value("authorization_threshold"),
        contracts=_contracts(c),
        update_time=c.value("update_time"),
        update_url=c.value("update_url"),
        update_root=c.value("update_root", paths.update_root(data_dir)),
        log_level=c.value("log_level", "info"),
        log_file_max_mb=c.value("log_file_max_mb", DEFAULT_LOG_FILE_MAX_MB),
        log_file_backups=c.value("log_file_backups", DEFAULT_LOG_FILE_BACKUPS),
        control_endpoint=_endpoint(c, "control_endpoint", run_dir, RUN_SOCKETS[0]),
        events_endpoint=_endpoint(c, "events_endpoint", run_dir, RUN_SOCKETS[1]),
        demo_hipay_stub_port=DEMO_HIPAY_STUB_PORT if demo else None,
        rtscts=line.rtscts,
        keepalive_interval=keepalive,
    )
    _check_socket_room(c, data_dir)
    if config.control_endpoint and config.control_endpoint == config.events_endpoint:
        c.problem("events_endpoint", "must differ from control_endpoint")
    if c.problems:
        raise ConfigError(
            source_path, sorted(c.problems, key=lambda p: (p.line is None, p.line or 0))
        )
    return config


def load_config(path: Path | str) -> ConnectorConfig:
    """Read and validate a ``config.yml`` (desktop) or ``config.txt`` (kiosk)."""
    path = Path(path).expanduser().absolute()
    text = read_text(path)
    kiosk_file = path.suffix.lower() == ".txt"
    raw = parse_txt(path, text) if kiosk_file else parse_yaml(path, text)
    if not raw:
        raise ConfigError.single(path, None, "is empty: see docs/configuration.md for the keys")
    return build(raw, source_path=path, kiosk_file=kiosk_file)


def demo_config(flavour: str = "desktop") -> ConnectorConfig:
    """The no-config demo: simulator terminal, local HiPay stand-in, fixed demo credentials."""
    data_dir = Path(os.environ.get(DATA_DIR_ENV) or Path.cwd() / "data")
    values = {
        **DEMO_VALUES,
        "data_dir": str(data_dir.expanduser().absolute()),
        "api_flavour": flavour,
    }
    raw = {key: Raw(key, str(value), None) for key, value in values.items()}
    return build(raw, source_path=None, demo=True)


def load_config_arg(arg: str | None) -> ConnectorConfig:
    """``--config`` as the processes take it: a path, or ``demo`` (or nothing) for the demo,
    ``demo:kiosk`` for the demo in the kiosk's API shape."""
    if arg is None:
        return demo_config()
    if arg in DEMO_FLAVOURS:
        return demo_config(DEMO_FLAVOURS[arg])
    return load_config(arg)
