"""``ecr-connector run``: validate the config, render supervisord's, run it in the foreground.

The config is validated here, before anything starts, so a user's mistake is
one clear message and never a supervisord restart loop of crashing children.
Ctrl-C (SIGINT) or SIGTERM reaches supervisord, which stops the programs in
reverse priority order; tp-manager waits for a payment in flight.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from common import paths
from common.supervisord import ExtraProgram, RenderParams, write_config

if TYPE_CHECKING:
    from common.config import ConnectorConfig

DEMO_BANNER = """\
==========================================================================
  ECR connector -- DEMO MODE (no config given)
  Terminal : built-in simulator (Concert V2 over a pseudo-terminal)
  HiPay    : local stand-in at {hipay}  (nothing leaves this machine)
  API      : http://{bind}:{port}/
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
    return programs


def main(args: argparse.Namespace) -> int:
    from common.config import DATA_DIR_ENV, ConfigError, load_config_arg

    try:
        config = load_config_arg(args.config or "demo")
    except ConfigError as exc:
        print(f"ecr-connector: {exc}", file=sys.stderr)
        return 2
    if args.print_pidfile:
        print(paths.supervisord_pidfile(config.data_dir))
        return 0
    conf_path = write_config(
        RenderParams(
            data_dir=config.data_dir,
            config_path=config.source_path,
            transaction_timeout_s=config.transaction_timeout,
            console_logs=args.console_logs,
            extra_programs=extra_programs(config),
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
    supervisord = [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(conf_path)]
    # supervisord becomes this process, so Ctrl-C and SIGTERM reach it directly
    os.execv(sys.executable, supervisord)  # noqa: S606 - fixed argv, no shell
    return 0  # not reached
