"""``ecr-connector run``: check the install, render supervisord's config, run it, watch it.

The config is validated, and what would make a program die at start (a taken
port, a serial device this user may not open, a read-only data directory) is
checked, before anything starts: a user's mistake is one clear message and a
non-zero exit, never a supervisord restart loop.  supervisord then runs as this
command's child; Ctrl-C (SIGINT) and SIGTERM are passed on to it and it stops
the programs in reverse priority order (tp-manager waits for a payment in
flight).  A program that still dies at start is named on the console with the
last error line of its log, and after a few such failures the connector stops
(exit 1) rather than answer nothing.  A clean stop removes the sockets and the
link the programs left in ``run/``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common import installed, paths, versions
from common.start_watch import FAST_DEATH_S
from common.supervisord import START_RETRIES, ExtraProgram, RenderParams, rpc, write_config

if TYPE_CHECKING:
    from common.config import ConnectorConfig

EXIT_CONFIG = 2
EXIT_BLOCKED = 1  # a blocking check failed, or a program kept dying at start
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR2)
POLL_S = 0.5
# supervisord starts its programs only once its first poll() returns, after 1 s unless a
# socket it listens on wakes it first (supervisor.supervisord.runforever): `run` asks it
# for the programs' states this often from the start, so the first answer (and the
# programs' spawn) comes as soon as its socket is up, not a second later.
FIRST_CONTACT_POLL_S = 0.01
FIRST_CONTACT_TIMEOUT_S = 10.0  # then back to POLL_S: a slow machine, or a broken start
# Once every program has run FAST_DEATH_S (its start is judged), only a later crash loop is
# left to see, and supervisord's own FATAL ends one: asking twice a second all day cost
# `run` and supervisord a few ms of CPU per second on an idle kiosk.
STEADY_POLL_S = 5.0
FLAVOUR_HINTS = {
    "desktop": "desktop API shape; `ecr-connector run --demo kiosk` for the kiosk's",
    "kiosk": "kiosk API shape; `ecr-connector run` (or --demo desktop) for the desktop's",
}

DEMO_BANNER = """\
==========================================================================
  ECR connector -- DEMO MODE (no config given)
  Terminal : built-in simulator (Concert V2 over a pseudo-terminal)
  HiPay    : local stand-in at {hipay}  (nothing leaves this machine)
  API      : http://{bind}:{port}/  ({shape})
  Login    : {user} / {password}     <- demo credentials, not for production
  Try      : curl -u {user}:{password} -X POST http://{bind}:{port}/ \\
                  -H 'Content-Type: application/json' -d '{{"amount": "9.99"}}'
  Data     : {data_dir}
  Logs     : {log_dir}
  Stop     : Ctrl-C
==========================================================================
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config.yml (desktop) or config.txt (kiosk); without it, a demo runs",
    )
    parser.add_argument(
        "--demo",
        choices=sorted({"desktop", "kiosk"}),
        help="run the demo in this API shape (desktop, the default, or kiosk)",
    )
    parser.add_argument(
        "--console-logs",
        action="store_true",
        help="send the programs' JSON logs to this console instead of rotated files",
    )
    parser.add_argument(
        "--print-pidfile",
        action="store_true",
        help="print where supervisord writes its pid, and exit (used by always-up.sh)",
    )


def extra_programs(config: ConnectorConfig) -> list[ExtraProgram]:
    """The simulator, when the config asks for it, and the demo's HiPay stand-in."""
    programs: list[ExtraProgram] = []
    if config.uses_simulator:
        if config.terminal_protocol == "concert-v3":
            sim_args = ["--protocol", "concert-v3", "--listen", f"127.0.0.1:{config.terminal_port}"]
        else:
            sim_args = [
                "--protocol", "concert-v2", "--pty",
                "--link", str(paths.simulator_tty(config.data_dir)),
            ]  # fmt: skip
        programs.append(ExtraProgram("simulator", ["-m", "common", "simulate", *sim_args]))
    if config.demo and config.demo_hipay_stub_port:
        login = config.hipay_login or ""
        password = config.hipay_password.get_secret_value() if config.hipay_password else ""
        stub_args = ["--host", "127.0.0.1", "--port", str(config.demo_hipay_stub_port)]
        stub_args += ["--login", login, "--password", password]
        programs.append(ExtraProgram("hipay-stub", ["-m", "common", "hipay-stub", *stub_args]))
    if config.update_url:
        # started by the agent when a new version is installed: it restarts the agent
        config_arg = str(config.source_path) if config.source_path else "demo"
        switch_args = ["-m", "supervisor_agent.update.switch", "--config", config_arg]
        programs.append(ExtraProgram("update-switch", switch_args, startsecs=0, autostart=False))
    return programs


def _config_arg(args: argparse.Namespace) -> str | None:
    """``--config`` or ``--demo``: ``None`` when both are given (one message says so)."""
    from common.config.loader import DEMO

    if args.demo and args.config:
        return None
    if args.demo:
        return DEMO if args.demo == "desktop" else f"{DEMO}:{args.demo}"
    return str(args.config or DEMO)


def pre_checks(config: ConnectorConfig) -> bool:
    """The doctor's local checks; prints what is not ok; False when one blocks the start."""
    from common.checks import checks_for

    results = checks_for(config, network=False)
    for result in results:
        if result.status != "ok":
            say(result.line())
    if any(result.blocks for result in results):
        say(f"not started; fix the above (`{doctor_command(config)}` checks again)")
        return False
    return True


def say(message: str) -> None:
    """On the console (stderr), after the command's name, at once."""
    print(f"ecr-connector: {message}", file=sys.stderr, flush=True)


def doctor_command(config: ConnectorConfig) -> str:
    where = f" --config {config.source_path}" if config.source_path else ""
    return f"{installed.command('ecr-connector')} doctor{where}"


def main(args: argparse.Namespace) -> int:
    from common.config import DATA_DIR_ENV, ConfigError, load_config_arg

    arg = _config_arg(args)
    if arg is None:
        say("--demo runs the built-in demo; drop --config")
        return EXIT_CONFIG
    try:
        config = load_config_arg(arg)
    except ConfigError as exc:
        print(f"ecr-connector: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.print_pidfile:
        print(paths.supervisord_pidfile(config.data_dir))
        return 0
    if not pre_checks(config):
        return EXIT_BLOCKED
    # supervisord, its log files and the programs inherit it: this user's files only
    os.umask(paths.PRIVATE_UMASK)
    extras = extra_programs(config)
    conf_path = write_config(
        RenderParams(
            data_dir=config.data_dir,
            config_path=config.source_path,
            demo_arg=arg,
            transaction_timeout_s=config.transaction_timeout,
            console_logs=args.console_logs,
            extra_programs=extras,
            # through versions/current: a restart by the self-update runs the new version
            python=versions.prepare(config.data_dir),
        )
    )
    if config.demo:
        # the programs run with the data directory as their working directory: tell them
        # where the demo's data is rather than let them work it out again from there
        os.environ[DATA_DIR_ENV] = str(config.data_dir)
        print(
            DEMO_BANNER.format(
                hipay=config.hipay_url,
                bind=config.bind_address,
                port=config.local_port,
                shape=FLAVOUR_HINTS[config.api_flavour],
                user=config.api_username,
                password=config.api_password.get_secret_value(),
                data_dir=config.data_dir,
                log_dir=paths.log_dir(config.data_dir),
            ),
            flush=True,
        )
    else:
        print(
            f"ecr-connector: API on http://{config.bind_address}:{config.local_port}/ ; "
            f"logs in {paths.log_dir(config.data_dir)} ; Ctrl-C to stop",
            flush=True,
        )
    # a one-shot (the self-update's switch) exits when done: not a program dying at start
    programs = ["tp-manager", "supervisor-agent", *(p.name for p in extras if p.autostart)]
    code = supervise(conf_path, config, programs)
    remove_run_files(config)
    return code


def supervise(conf_path: Path, config: ConnectorConfig, programs: list[str]) -> int:
    """supervisord in the foreground as a child: its exit code, or 1 once a program is FATAL."""
    from common.hang_watch import HangWatch
    from common.start_watch import StartWatch

    watch = StartWatch(paths.log_dir(config.data_dir))
    hangs = HangWatch(config.data_dir, config.hang_timeout)
    watch.mark(programs)
    supervisord = [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(conf_path)]
    proc = subprocess.Popen(supervisord)  # fixed argv, no shell
    # imported while supervisord starts (about 70 ms): not on the way to its start
    import xmlrpc.client

    from common import switch_recovery

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, forward)
    sock = paths.supervisord_socket(config.data_dir)
    gave_up = False
    contacted = steady = False
    first_contact_until = time.monotonic() + FIRST_CONTACT_TIMEOUT_S
    proxy: xmlrpc.client.ServerProxy | None = None  # kept: one connection, config read once
    exited = _exit_waiter(proc)
    undoing: threading.Thread | None = None  # a dead switcher's switch being undone
    while proc.poll() is None:
        infos = None
        try:
            proxy = proxy or rpc(sock)
            infos = proxy.supervisor.getAllProcessInfo()
            contacted = True
        except (OSError, xmlrpc.client.Error):
            proxy, steady = None, False
        if isinstance(infos, list) and not gave_up:
            watched = [info for info in infos if info.get("name") in programs]
            steady = _all_started(watched, programs)
            messages = watch.update(watched, START_RETRIES)
            if versions.pending_switch(config.data_dir).exists():
                # the self-update restarts the programs on purpose and judges their starts
                # itself (health check, rollback): those exits are not failed starts
                watch.failures.clear()
                messages = []
                # ...but a switcher killed mid-way judges nothing: undo its switch
                idle = undoing is None or not undoing.is_alive()
                if idle and switch_recovery.switcher_died(config.data_dir, infos):
                    undoing = threading.Thread(
                        target=_undo_switch, args=(config.data_dir,), daemon=True
                    )
                    undoing.start()
            for message in messages:
                say(message)
            for name, pid, still_s in hangs.hung(infos, time.monotonic()):
                say(
                    f"{name} (pid {pid}) is hung: no heartbeat for {still_s:.0f} s; "
                    "killing it, supervisord starts it again"
                )
                with contextlib.suppress(OSError, xmlrpc.client.Error):
                    rpc(sock).supervisor.signalProcess(name, "KILL")
            if watch.fatal:
                gave_up = True
                say(
                    "stopping the connector; fix the cause and start it again "
                    f"(`{doctor_command(config)}` checks the usual ones)"
                )
                with contextlib.suppress(OSError, xmlrpc.client.Error):
                    rpc(sock).supervisor.shutdown()
        if not contacted and time.monotonic() < first_contact_until:
            exited(FIRST_CONTACT_POLL_S)
        else:
            exited(STEADY_POLL_S if steady and not gave_up else POLL_S)
    exited(None)  # releases the waiter
    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    return EXIT_BLOCKED if gave_up else proc.returncode


def _undo_switch(data_dir: Path) -> None:
    """The self-update's switcher died mid-switch: back to the version it left, both
    programs running (common/switch_recovery.py); on a thread of its own, for stopping
    a program waits for a payment in flight."""
    from common import switch_recovery

    say("the self-update's switch died before it was done; undoing it")
    try:
        was = switch_recovery.undo(data_dir)
    except Exception as exc:  # supervisord gone (a stop): the next run undoes it
        say(f"could not undo the switch ({exc}); the next `ecr-connector run` will")
        return
    say(f"switch undone: running {was} again")


def _all_started(watched: list[dict[str, Any]], programs: list[str]) -> bool:
    """Every program RUNNING for at least FAST_DEATH_S by supervisord's clock: started."""
    return len(watched) == len(programs) and all(
        info.get("statename") == "RUNNING"
        and int(info.get("now") or 0) - int(info.get("start") or 0) >= FAST_DEATH_S
        for info in watched
    )


def _exit_waiter(proc: subprocess.Popen[bytes]) -> Callable[[float | None], None]:
    """``wait(timeout)`` that returns when supervisord exits or the time is up, asleep in
    between: a pidfd in select() on Linux, where ``Popen.wait(timeout)`` would wake every
    50 ms to ask; ``wait(None)`` closes it."""
    try:
        pidfd: int | None = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux 5.3+: Popen's own polling wait
        pidfd = None

    def wait(timeout_s: float | None) -> None:
        nonlocal pidfd
        if timeout_s is None:
            if pidfd is not None:
                os.close(pidfd)
                pidfd = None
            return
        if pidfd is not None:
            select.select([pidfd], [], [], timeout_s)
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout_s)

    return wait


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_run_files(config: ConnectorConfig) -> None:
    """The ZeroMQ sockets and the simulator's link the programs leave behind, once supervisord
    is gone; never while a supervisord (another start on this data_dir) still runs."""
    pidfile = paths.supervisord_pidfile(config.data_dir)
    with contextlib.suppress(OSError, ValueError):
        if _alive(int(pidfile.read_text().strip())):
            return
    made = [paths.simulator_tty(config.data_dir), paths.supervisord_socket(config.data_dir)]
    for endpoint in (config.control_endpoint, config.events_endpoint):
        if endpoint.startswith("ipc://"):
            made.append(Path(endpoint.removeprefix("ipc://")))
    for path in made:
        if path.is_symlink() or path.is_socket():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
