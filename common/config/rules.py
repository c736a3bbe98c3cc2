"""Value rules for the configuration, one function per kind of value.

Each function takes what a file gave (YAML scalars arrive as text, kiosk
``config.txt`` values always do), returns the typed value, or raises
``ValueError`` whose text is the rule the user broke.  The loader adds the
file, the key and the offending value, so the text here is only the rule.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import sys
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from common.concert_v2_line import Parity
from common.money import MoneyError, to_decimal

# Application codes from the POS API's ``terminal_transaction_display.contract_array``
# (docs: /work/shared/pos-api-schema.md); ``payment_application`` must be one of them.
PAYMENT_APPLICATIONS: dict[str, str] = {
    "001": "CB/Visa/Mastercard contact",
    "002": "Amex contact",
    "003": "CB Enseigne (Cetelem instalments)",
    "004": "Cetelem",
    "005": "Cofinoga",
    "006": "Diners",
    "007": "Pass",
    "008": "Franfinance",
    "009": "JCB",
    "101": "CB VAD (card number keyed in)",
    "201": "quasi-cash",
    "301": "PLBS",
    "401": "Optalion",
    "501": "Cash-Agence",
    "601": "PNF",
    "602": "P3F",
    "603": "Optalion",
    "604": "Préauto-CM",
    "605": "PRCME",
    "607": "QR-code payment",
    "608": "TOP3-3XCB",
    "609": "PNF-HPS",
    "701": "PPFCA",
    "00A": "Banque Accord EMV",
    "00B": "CB/Visa/Mastercard contactless",
    "00C": "cheque",
    "00D": "Amex contactless",
    "00E": "CONECS contact",
    "00F": "DCC",
    "00G": "QuickPass",
    "00I": "CPEI-EMV",
    "00S": "Sofinco",
    "00U": "UnionPay",
    "10E": "CONECS contactless",
    "30F": "PLBS-DCC-GB",
}

# Accepted spellings of ``environment`` -> the HiPay platform they mean.  HiPay
# has no "dev" platform: the seed's ``dev`` installs talk to stage.
ENVIRONMENT_ALIASES: dict[str, str] = {
    "dev": "stage",
    "stage": "stage",
    "staging": "stage",
    "prod": "production",
    "production": "production",
}

# Rates a serial port is commonly set to; anything else is far more likely a
# typo (96000) than a terminal configured to an odd rate.
STANDARD_BAUD_RATES = (1200, 2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200)
PARITY_ALIASES: dict[str, Parity] = {
    "none": "none",
    "n": "none",
    "even": "even",
    "e": "even",
    "odd": "odd",
    "o": "odd",
}
PROTOCOL_ALIASES = {
    "concert-v2": "concert-v2",
    "concertv2": "concert-v2",
    "concert_v2": "concert-v2",
    "v2": "concert-v2",
    "concert-v3": "concert-v3",
    "concertv3": "concert-v3",
    "concert_v3": "concert-v3",
    "v3": "concert-v3",
}
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_LEVEL_ALIASES = {"warn": "warning", "fatal": "critical"}

SIMULATOR = "simulator"
MAX_TRANSACTION_TIMEOUT_S = 600.0  # beyond 10 min a customer has long walked away
MAX_NOTIFICATION_BUDGET_S = 60.0
# a heartbeat is a sixth of it (common/heartbeat.py): below, beats come more than once a second
MIN_HANG_TIMEOUT_S = 5.0
MAX_HANG_TIMEOUT_S = 3600.0
MAX_RETENTION_MONTHS = 120
MAX_LOG_FILE_MB = 1024
MAX_LOG_FILE_BACKUPS = 100
MAX_CONNECTIONS_PER_ADDRESS = 1000  # each connection is a file descriptor (often 1024 per process)
# sockaddr_un.sun_path is 108 bytes on Linux, one of them the terminating NUL.
MAX_IPC_PATH_BYTES = 107
LOOPBACK_NAMES = ("localhost",)

_HHMM = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
_ORIGIN = re.compile(r"https?://[^/\s?#]+")
_WINDOWS_COM = re.compile(r"COM[0-9]+", re.IGNORECASE)


def _text(value: Any, what: str = "text") -> str:
    """Scalars as text: YAML and config.txt both deliver strings, code may pass ints."""
    if isinstance(value, bool) or value is None or isinstance(value, dict | list | tuple):
        raise ValueError(f"must be {what}")
    if isinstance(value, str | int | Decimal):
        return str(value).strip()
    raise ValueError(f"must be {what}")


def required_text(value: Any) -> str:
    text = _text(value)
    if not text:
        raise ValueError("must not be empty")
    return text


def optional_text(value: Any) -> str | None:
    if value is None:
        return None
    return _text(value) or None


def api_username(value: Any) -> str:
    text = required_text(value)
    if ":" in text:
        raise ValueError(
            "must not contain ':' (HTTP Basic authentication splits user:password there)"
        )
    return text


def secret_text(value: Any) -> str:
    """Passwords keep their exact text: no stripping, a space may be part of one."""
    getter = getattr(value, "get_secret_value", None)
    if callable(getter):
        value = getter()
    if isinstance(value, bool) or value is None or not isinstance(value, str | int):
        raise ValueError("must be text")
    text = str(value)
    if not text.strip():
        raise ValueError("must not be empty")
    return text


def whole_number(value: Any, low: int, high: int, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"must be {what}")
    if isinstance(value, int):
        number = value
    else:
        text = _text(value, what)
        if not re.fullmatch(r"[+]?[0-9]+", text):
            raise ValueError(f"must be {what}")
        number = int(text)
    if not low <= number <= high:
        raise ValueError(f"must be {what}")
    return number


def port(value: Any) -> int:
    return whole_number(value, 1, 65535, "a TCP port number from 1 to 65535")


def seconds(value: Any, low: float, high: float, *, low_inclusive: bool) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number of seconds")
    try:
        number = float(to_decimal(value)) if not isinstance(value, float) else value
    except MoneyError:
        raise ValueError("must be a number of seconds, like 120 or 2.5") from None
    ok_low = number >= low if low_inclusive else number > low
    if not ok_low or number > high:
        low_text = f"{low:g} or more" if low_inclusive else f"more than {low:g}"
        raise ValueError(f"must be {low_text} and at most {high:g} seconds")
    return number


def environment(value: Any) -> str:
    text = _text(value).lower()
    if text not in ENVIRONMENT_ALIASES:
        raise ValueError("must be one of " + ", ".join(ENVIRONMENT_ALIASES))
    return ENVIRONMENT_ALIASES[text]


def infer_environment(hipay_login: Any) -> str:
    """HiPay stage logins read ``<id>.stage-secure-gateway.hipay-tpp.com``."""
    return (
        "stage" if isinstance(hipay_login, str) and "stage" in hipay_login.lower() else "production"
    )


def threshold(value: Any) -> Decimal | None:
    """Major units, exact: ``100``, ``2.5``, ``"2,50"``; never through a float."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        amount = to_decimal(value.strip() if isinstance(value, str) else value)
    except MoneyError:
        raise ValueError(
            "must be an amount in major units of the currency, like 100 or 2.50 (not negative)"
        ) from None
    return amount


def hhmm(value: Any) -> dt.time | None:
    if value is None:
        return None
    text = _text(value, 'a time written HH:MM, like "03:00"')
    if not text:
        return None
    match = _HHMM.fullmatch(text)
    if not match:
        raise ValueError('must be a time written HH:MM (00:00 to 23:59), like "03:00"')
    return dt.time(int(match.group(1)), int(match.group(2)))


# pyserial URLs whose port has a descriptor, which the Concert V2 transport reads on the
# event loop (pyserial-asyncio); rfc2217:// and loop:// have none and could never open.
SERIAL_URL_SCHEMES: Final = frozenset({"socket"})


def serial_port(value: Any) -> str | None:
    if value is None:
        return None
    text = _text(value)
    if not text:
        return None
    if text.lower() == SIMULATOR:
        return SIMULATOR
    if sys.platform != "win32" and _WINDOWS_COM.fullmatch(text):
        raise ValueError(
            f"{text} is a Windows port name; on Linux the terminal is a device such as "
            "/dev/ttyUSB0 or /dev/ttyACM0 (compare `ls /dev` before and after plugging it in), "
            "or 'simulator' for the built-in simulator"
        )
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in SERIAL_URL_SCHEMES:
            raise ValueError(
                f"a {scheme}:// port cannot be used: tp-manager reads the terminal's port on "
                "its event loop, which needs a descriptor, and pyserial's "
                f"{scheme}:// port has none; use socket://HOST:PORT (a serial server in raw "
                "TCP mode) or the device path"
            )
        return text
    if not (text.startswith("/") or sys.platform == "win32"):
        raise ValueError(
            "must be a device path such as /dev/ttyUSB0, a pyserial URL (socket://HOST:PORT), "
            "or 'simulator' for the built-in simulator"
        )
    return text


def baud_rate(value: Any) -> int:
    rates = ", ".join(str(r) for r in STANDARD_BAUD_RATES)
    number = whole_number(value, 1, 10_000_000, f"one of {rates}")
    if number not in STANDARD_BAUD_RATES:
        raise ValueError(f"must be one of {rates}")
    return number


def data_bits(value: Any) -> int:
    number = whole_number(value, 7, 8, "7 or 8")
    return number


def stop_bits(value: Any) -> int:
    return whole_number(value, 1, 2, "1 or 2")


def parity(value: Any) -> Parity:
    text = _text(value).lower()
    if text not in PARITY_ALIASES:
        raise ValueError("must be none, even or odd")
    return PARITY_ALIASES[text]


BOOLEANS: dict[str, bool] = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}


def boolean(value: Any) -> bool:
    """YAML values arrive as text (sources.py): ``true``/``false`` and their usual spellings."""
    if isinstance(value, bool):
        return value
    text = _text(value, "true or false").lower()
    if text not in BOOLEANS:
        raise ValueError("must be true or false (yes/no, on/off, 1/0 accepted)")
    return BOOLEANS[text]


def terminal_protocol(value: Any) -> str:
    text = _text(value).lower()
    if text not in PROTOCOL_ALIASES:
        raise ValueError("must be concert-v2 (serial) or concert-v3 (TCP)")
    return PROTOCOL_ALIASES[text]


def log_level(value: Any) -> str:
    text = _text(value).lower()
    text = LOG_LEVEL_ALIASES.get(text, text)
    if text not in LOG_LEVELS:
        raise ValueError("must be one of " + ", ".join(LOG_LEVELS))
    return text


def api_flavour(value: Any) -> str:
    text = _text(value).lower()
    if text not in ("desktop", "kiosk"):
        raise ValueError("must be desktop or kiosk")
    return text


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host(value: Any) -> str:
    text = _text(value, "a host name or an IP address")
    try:
        ipaddress.ip_address(text.strip("[]"))
        return text.strip("[]")
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(text):
        raise ValueError("must be a host name or an IP address")
    return text


def optional_host(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return host(value)


def bind_address(value: Any) -> str:
    text = _text(value, "an IP address")
    if text.lower() == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise ValueError(
            "must be an IP address of this machine, like 127.0.0.1 (local only) or 0.0.0.0"
        ) from None


def host_port(value: Any) -> str:
    """``host:port`` (IPv6 in brackets), written back in one canonical form."""
    text = _text(value, "host:port")
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]+)|([^:\[\]\s]+):([0-9]+)", text)
    if not match:
        raise ValueError(
            "each entry must be host:port, like 192.168.1.20:8888 ([::1]:8888 for IPv6)"
        )
    raw_host = match.group(1) or match.group(3)
    raw_port = match.group(2) or match.group(4)
    name = host(raw_host)
    number = port(raw_port)
    return f"[{name}]:{number}" if ":" in name else f"{name}:{number}"


def text_list(value: Any) -> list[str]:
    """A YAML list, or one comma-separated string (the only way config.txt can say it)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, Iterable) and not isinstance(value, dict | bytes):
        return [_text(item) for item in value]
    raise ValueError("must be a list (or a comma-separated string)")


def host_ports(value: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(host_port(item) for item in text_list(value)))


def cors_origins(value: Any) -> tuple[str, ...]:
    origins: list[str] = []
    for item in text_list(value):
        origin = item.rstrip("/")
        if origin == "*":
            raise ValueError(
                "'*' is not allowed: the API needs credentials, which browsers never send to a "
                "wildcard origin; list each origin, like https://pos.example.com"
            )
        if not _ORIGIN.fullmatch(origin):
            raise ValueError(
                f"each entry must be an origin like https://pos.example.com "
                f"(scheme and host, no path), got {item!r}"
            )
        origins.append(origin)
    return tuple(dict.fromkeys(origins))


def _http_url(value: Any, example: str, why_https: str) -> str | None:
    """An http(s) URL ending in ``/``; plain http only on loopback, for ``why_https``."""
    if value is None:
        return None
    text = _text(value, "a URL")
    if not text:
        return None
    match = re.fullmatch(r"(https?)://(\[[^\]]+\]|[^/:?#\s]+)(:[0-9]+)?(/[^\s?#]*)?", text)
    if not match:
        raise ValueError(f"must be a URL like {example}")
    scheme, url_host = match.group(1), match.group(2)
    if scheme == "http" and not is_loopback(url_host):
        raise ValueError(
            f"must use https:// ({why_https}; "
            "it is allowed only for a local stand-in on 127.0.0.1 or localhost)"
        )
    return text if text.endswith("/") else text + "/"


def base_url(value: Any) -> str | None:
    return _http_url(
        value,
        "https://api.example.com/",
        "plain http:// would send the HiPay credentials in clear",
    )


def update_url(value: Any) -> str | None:
    """The self-update feed: TUF signs what it serves, https keeps who asks private."""
    return _http_url(
        value,
        "https://updates.example.com/ecr-connector/",
        "plain http:// would tell anyone on the way which version each connector runs",
    )


def path(value: Any) -> Path:
    if isinstance(value, Path):
        result = value
    else:
        text = _text(value, "a directory path")
        if not text:
            raise ValueError("must not be empty")
        result = Path(text)
    result = result.expanduser()
    if not result.is_absolute():
        raise ValueError("must be an absolute path (or relative to the config file's directory)")
    return result


def zmq_endpoint(value: Any) -> str:
    """``ipc:///absolute/path`` or ``tcp://<loopback>:PORT``: never reachable from the network."""
    text = _text(value, "a ZeroMQ endpoint")
    if text.startswith("ipc://"):
        sock = text[len("ipc://") :]
        if not sock.startswith("/"):
            raise ValueError(
                "an ipc:// endpoint needs an absolute path, like ipc:///run/ecr/control"
            )
        if len(sock.encode()) > MAX_IPC_PATH_BYTES:
            raise ValueError(
                f"the socket path is {len(sock.encode())} bytes, over the {MAX_IPC_PATH_BYTES} "
                "a unix socket allows: use a shorter data_dir or a tcp://127.0.0.1:PORT endpoint"
            )
        return text
    match = re.fullmatch(r"tcp://(\[[^\]]+\]|[^:\s]+):([0-9]+)", text)
    if match:
        if not is_loopback(match.group(1)):
            raise ValueError(
                "a tcp:// endpoint must be on the loopback address (tcp://127.0.0.1:PORT): "
                "the control channel has no authentication"
            )
        port(match.group(2))
        return text
    raise ValueError("must be ipc:///absolute/path or tcp://127.0.0.1:PORT")


def endpoint_tcp_port(endpoint: str) -> int | None:
    match = re.fullmatch(r"tcp://.+:([0-9]+)", endpoint)
    return int(match.group(1)) if match else None


def payment_application(value: Any) -> str:
    text = _text(value, "a 3-character application code").upper()
    if text not in PAYMENT_APPLICATIONS:
        raise ValueError(
            "must be one of the POS API's 3-character application codes "
            "(001 CB/Visa/Mastercard contact, 00B contactless, ... see docs/configuration.md)"
        )
    return text


def merchant_id(value: Any) -> str:
    text = _text(value, "a 7-character merchant contract number")
    if not re.fullmatch(r"[A-Za-z0-9]{7}", text):
        raise ValueError("must be the 7-character merchant contract number (MID), like 1234567")
    return text


def rank(value: Any) -> str:
    text = _text(value, 'a 3-character terminal rank, like "001"')
    if not re.fullmatch(r"[A-Za-z0-9]{3}", text):
        raise ValueError('must be the 3-character terminal rank, like "001"')
    return text
