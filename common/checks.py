"""What makes an install fail, checked before it fails: ``doctor`` prints them, ``run`` obeys them.

A kiosk is installed once, often offline, then left alone.  Every check here
looks at the real thing (binds the port, opens the device, writes a file in
the data directory, connects to supervisord's socket) and says, in one line,
what is wrong and the command or edit that fixes it.  A ``failed`` check blocks
a start: ``run`` refuses to start supervisord rather than let it restart a
crashing program in a loop; a ``warning`` is printed and the start goes on.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import pwd
import shutil
import socket
import stat
import tempfile
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from common import installed, paths
from common.config import ConfigError, ConnectorConfig, load_config_arg
from common.config.loader import socket_room_problem
from common.config.model import CONCERT_V3

# Below this the journal and the logs (10 MB x 10 per program) may fill the disk mid-day.
MIN_FREE_BYTES = 200 * 1024 * 1024
CONNECT_TIMEOUT_S = 3.0  # the V3 terminal: on the shop's network, it answers at once or not
RESOLVE_TIMEOUT_S = 5.0  # a resolver with no network can hang for much longer
DIALOUT = "dialout"


class CheckStatus(StrEnum):
    OK = "ok"
    WARNING = "warning"  # printed; the connector still starts
    FAILED = "failed"  # blocks a start


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict; ``fix`` says what to do when it is not ``ok``."""

    name: str
    status: CheckStatus
    detail: str
    fix: str = ""

    @property
    def blocks(self) -> bool:
        return self.status is CheckStatus.FAILED

    def line(self) -> str:
        text = f"{self.status.value:<8} {self.name}: {self.detail}"
        if self.fix and self.status is not CheckStatus.OK:
            return f"{text}; fix: {self.fix}"
        return text


def _ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, CheckStatus.OK, detail)


def _failed(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, CheckStatus.FAILED, detail, fix)


def _warning(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, CheckStatus.WARNING, detail, fix)


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def check_config(arg: str) -> tuple[CheckResult, ConnectorConfig | None]:
    """The loader's own verdict, every problem at once (its message names key, line, rule)."""
    try:
        config = load_config_arg(arg)
    except ConfigError as exc:
        return _failed("config", str(exc), "edit the file (rules: docs/configuration.md)"), None
    where = "the built-in demo config" if config.source_path is None else str(config.source_path)
    return _ok("config", f"{where} is valid"), config


def check_config_mode(config: ConnectorConfig) -> CheckResult:
    """The file holds two passwords: nobody but the connector's user should read it."""
    name = "config file mode"
    path = config.source_path
    if path is None:
        return _ok(name, "the demo has no file")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return _warning(
            name,
            f"{path} is mode {mode:04o}: other users can read the passwords in it",
            f"chmod 600 {path}",
        )
    return _ok(name, f"{path} is mode {mode:04o} (only its owner reads it)")


def _device_owner(st: os.stat_result) -> tuple[str, str]:
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    return owner, group


def check_serial_device(device: str) -> CheckResult:
    """Present, and opened by this user the way tp-manager opens it (read-write)."""
    name = "terminal"
    path = Path(device)
    if not os.path.exists(path):  # Path.exists raises on a folder it may not enter
        return _failed(
            name,
            f"serial device {device} is not there",
            "plug the terminal in, or set serial_port to its device: compare `ls /dev` before "
            "and after plugging it in (usually /dev/ttyUSB0 or /dev/ttyACM0)",
        )
    try:
        fd = os.open(device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except PermissionError:
        st = path.stat()
        owner, group = _device_owner(st)
        user = _user()
        return _failed(
            name,
            f"{device} ({owner}:{group}, mode {stat.S_IMODE(st.st_mode):04o}) cannot be "
            f"opened by user {user}",
            f"sudo usermod -a -G {group if group != 'root' else DIALOUT} {user}, then log in "
            "again (or restart the service)",
        )
    except OSError as exc:
        return _failed(
            name,
            f"{device} cannot be opened: {exc.strerror}",
            "check the cable and that no other program (another connector, a modem manager) "
            "holds the device",
        )
    os.close(fd)
    return _ok(name, f"serial device {device} opens read-write")


def check_terminal_host(host: str, port: int) -> CheckResult:
    """A Concert V3 terminal may be switched on after the kiosk: unreachable is a warning."""
    name = "terminal"
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return _warning(
            name,
            f"Concert V3 terminal {host}:{port} does not answer ({reason})",
            "switch the terminal on, check its IP address and port (terminal_host, "
            "terminal_port) and that this machine reaches it (`nc -vz HOST PORT`)",
        )
    return _ok(name, f"Concert V3 terminal {host}:{port} accepts a connection")


def check_terminal(config: ConnectorConfig, *, network: bool = True) -> CheckResult | None:
    """The serial device, or the V3 terminal (``network=False``: not asked, for a quick start)."""
    if config.uses_simulator:
        return _ok("terminal", "the built-in simulator (started with the connector)")
    if config.terminal_protocol == CONCERT_V3:
        if not network:
            return None
        host, port = config.terminal_address
        return check_terminal_host(host, port)
    if config.serial_port and "://" in config.serial_port:
        return _ok("terminal", f"{config.serial_port} is a pyserial URL (not checked)")
    return check_serial_device(config.device_path)


def listening_ports(config: ConnectorConfig) -> list[tuple[str, str, int]]:
    """(what, address, port) of every TCP port the connector will listen on."""
    from common.config.rules import endpoint_tcp_port

    ports = [("API port", config.bind_address, config.local_port)]
    for key in ("control_endpoint", "events_endpoint"):
        number = endpoint_tcp_port(getattr(config, key))
        if number is not None:
            ports.append((key, "127.0.0.1", number))
    if config.uses_simulator and config.terminal_protocol == CONCERT_V3:
        ports.append(("simulator port", "127.0.0.1", config.terminal_port))
    if config.demo_hipay_stub_port:
        ports.append(("demo HiPay stand-in port", "127.0.0.1", config.demo_hipay_stub_port))
    return ports


def check_port(what: str, address: str, port: int, key: str | None = "local_port") -> CheckResult:
    """Bound as the API binds it (SO_REUSEADDR, like asyncio): a TIME_WAIT is no false alarm.
    ``key`` is the config key that moves the port; None for the demo's fixed ports."""
    move = (
        f"set {key} to a free port"
        if key is not None
        else "the demo's ports are fixed: run with a config file of your own "
        f"(`{installed.command('ecr-connector')} setup`)"
    )
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
            sock.listen(1)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return _failed(
                    what,
                    f"port {port} on {address} is already in use by another program",
                    f"stop that program (`ss -ltnp 'sport = :{port}'` names it), or {move}",
                )
            if exc.errno == errno.EACCES:
                return _failed(
                    what,
                    f"port {port} on {address} needs root (ports below 1024 are privileged)",
                    f"set {key} to 1024 or above, like 8080" if key is not None else move,
                )
            return _failed(
                what,
                f"cannot listen on {address}:{port} ({exc.strerror})",
                "set bind_address to an address of this machine, like 127.0.0.1",
            )
    return _ok(what, f"{address}:{port} is free")


# The config key that moves each port listening_ports names (the endpoints are their own
# keys).  The demo has no file: none of its ports moves.
_PORT_KEYS = {"API port": "local_port", "simulator port": "terminal_port"}


def check_ports(config: ConnectorConfig) -> list[CheckResult]:
    demo = config.source_path is None
    return [
        check_port(what, address, number, None if demo else _PORT_KEYS.get(what, what))
        for what, address, number in listening_ports(config)
    ]


def _nearest_existing(path: Path) -> Path:
    while not os.path.exists(path) and path != path.parent:
        path = path.parent
    return path


def check_data_dir(data_dir: Path, min_free_bytes: int = MIN_FREE_BYTES) -> CheckResult:
    """Writable (a real file is written there) with room for the journal and the logs."""
    name = "data directory"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".doctor-"):
            pass
    except OSError as exc:
        where = _nearest_existing(data_dir)
        return _failed(
            name,
            f"{data_dir} is not writable by user {_user()} ({exc.strerror})",
            f"give user {_user()} write access to {where} (`sudo chown -R {_user()} {where}`) "
            "or set data_dir to a folder it owns",
        )
    free = shutil.disk_usage(data_dir).free
    if free < min_free_bytes:
        return _failed(
            name,
            f"{data_dir} has {free // 2**20} MiB free, under the {min_free_bytes // 2**20} "
            "MiB the journal and the logs need",
            "free some disk space, or set data_dir to a folder on a larger disk",
        )
    return _ok(name, f"{data_dir} is writable, {free // 2**20} MiB free")


def _supervisord_answers(sock_path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(sock_path))
        except OSError:
            return False
    return True


def check_supervisord_sockets(data_dir: Path) -> CheckResult:
    """supervisord makes its socket in ``run/``: the folder must take one, and none may listen."""
    name = "supervisord socket"
    sock_path = paths.supervisord_socket(data_dir)
    run_dir = sock_path.parent
    if os.path.exists(sock_path) and _supervisord_answers(sock_path):
        shutdown = (
            f"{installed.command('supervisorctl')} -c {run_dir / 'supervisord.conf'} shutdown"
        )
        return _failed(
            name,
            f"a connector already runs on {data_dir} ({sock_path} answers)",
            f"stop it first (`{shutdown}`), or use another data_dir",
        )
    too_deep = socket_room_problem(data_dir)
    if too_deep:
        return _failed(name, f"data_dir {data_dir} {too_deep}", "set data_dir to a shorter path")
    # no longer than supervisord's own socket name, so that a data_dir whose sockets fit
    # is never refused because the probe's path would not
    probe = run_dir / f".{os.getpid():x}.sock"
    try:
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(str(probe))
    except OSError as exc:
        where = _nearest_existing(run_dir)
        return _failed(
            name,
            f"cannot make a socket in {run_dir} ({exc.strerror or exc})",
            f"give user {_user()} write access to {where}, or set data_dir to a folder it owns",
        )
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return _ok(name, f"{run_dir} takes supervisord's and the programs' sockets")


def _resolve(host: str, timeout_s: float) -> str | None:
    """getaddrinfo has no timeout: it runs in a daemon thread that may outlive the answer."""
    result: list[str] = []

    def lookup() -> None:
        with contextlib.suppress(OSError, UnicodeError):
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            result.extend(str(info[4][0]) for info in infos)

    thread = threading.Thread(target=lookup, name="doctor-resolve", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return result[0] if result else None


def check_hipay(config: ConnectorConfig, timeout_s: float = RESOLVE_TIMEOUT_S) -> CheckResult:
    """A warning only: a kiosk may start offline; notifications wait in the journal."""
    name = "HiPay address"
    host = urlsplit(config.hipay_url).hostname or ""
    address = _resolve(host, timeout_s)
    if address is None:
        return _warning(
            name,
            f"{host} does not resolve (no network or no DNS?)",
            "check this machine's network and DNS; notifications wait in the journal meanwhile",
        )
    return _ok(name, f"{host} resolves to {address}")


def checks_for(config: ConnectorConfig, *, network: bool = True) -> list[CheckResult]:
    """Every check of a valid config; ``network=False`` (``run``): only what is on this
    machine, so a start is never held up by a slow network (those checks only warn)."""
    results = [check_config_mode(config)]
    terminal = check_terminal(config, network=network)
    if terminal is not None:
        results.append(terminal)
    results += check_ports(config)
    results.append(check_data_dir(config.data_dir))
    results.append(check_supervisord_sockets(config.data_dir))
    if network:
        results.append(check_hipay(config))
    return results


def run_checks(arg: str) -> list[CheckResult]:
    """``doctor``: the config (a path, or ``demo``), then, if it is valid, every other check."""
    config_result, config = check_config(arg)
    return [config_result] if config is None else [config_result, *checks_for(config)]
