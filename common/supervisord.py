"""Render the supervisord configuration, and talk to a running supervisord.

The template lives in ``deploy/supervisord.conf.tmpl`` (shipped as package
data) so an integrator can read what runs, and how it is restarted, in one
place.  Values are filled with :class:`string.Template` because supervisord's
own syntax already uses ``%(...)s``.
"""

from __future__ import annotations

import configparser
import secrets
import shlex
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from common import paths

if TYPE_CHECKING:
    import xmlrpc.client

TEMPLATE_NAME = "supervisord.conf.tmpl"
LOG_MAXBYTES = "10MB"
LOG_BACKUPS = 10
# How long supervisord waits after SIGTERM before SIGKILL, beyond the
# transaction timeout, so a payment in flight always gets its answer.
STOP_MARGIN_S = 15
# The agent is stopped first (reverse priority) and waits for the payment in flight
# too, then journals it and waits the HiPay budget (at most 60 s) before answering.
AGENT_STOP_EXTRA_S = 80
# Fast failures (a program dead before its startsecs) in a row before supervisord gives up
# on it (FATAL): a wrong config or a taken port does not heal by itself, and 1000 silent
# retries only hid the reason in a log file.
START_RETRIES = 3
RPC_USERNAME = "ecr-connector"
CONF_NAME = "supervisord.conf"


@dataclass
class ExtraProgram:
    """A further supervised program (the simulator, the HiPay stub of the demo)."""

    name: str
    args: list[str]
    priority: int = 10
    startsecs: int = 1
    # False: a one-shot started on demand through XML-RPC (the self-update's switch)
    autostart: bool = True


@dataclass
class RenderParams:
    data_dir: Path
    config_path: Path | None  # None: demo
    demo_arg: str = "demo"  # what the programs get as --config when config_path is None
    transaction_timeout_s: float = 120.0
    console_logs: bool = False
    extra_programs: list[ExtraProgram] = field(default_factory=list)
    python: str = sys.executable
    # supervisord's socket asks for it (no "running without any HTTP authentication" CRIT
    # line); readers find it in the rendered file, which only this user may read
    rpc_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def run_dir(self) -> Path:
        return paths.run_dir(self.data_dir)

    @property
    def log_dir(self) -> Path:
        return paths.log_dir(self.data_dir)


def _log_settings(name: str, params: RenderParams) -> str:
    if params.console_logs:
        # straight to supervisord's stdout: no rotation, for a person watching
        return (
            "stdout_logfile = /dev/stdout\nstdout_logfile_maxbytes = 0\n"
            "stderr_logfile = /dev/stderr\nstderr_logfile_maxbytes = 0"
        )
    log_dir = params.log_dir
    return (
        f"stdout_logfile = {log_dir}/{name}.log\n"
        f"stdout_logfile_maxbytes = {LOG_MAXBYTES}\n"
        f"stdout_logfile_backups = {LOG_BACKUPS}\n"
        f"stderr_logfile = {log_dir}/{name}.err.log\n"
        f"stderr_logfile_maxbytes = {LOG_MAXBYTES}\n"
        f"stderr_logfile_backups = {LOG_BACKUPS}"
    )


def _own_log_settings(name: str, params: RenderParams) -> str:
    """tp-manager and the agent write ``<name>.log`` themselves (common/logging.py, rotated
    by the config's log_file_max_mb/log_file_backups): no JSON line crosses supervisord's
    pipes, which cost it CPU per line.  What they print outside their log (a message before
    logging is set up, a traceback of a crash) is kept in ``<name>.err.log``."""
    if params.console_logs:
        return _log_settings(name, params)  # stdout, through supervisord, to the console
    return (
        f'environment = {paths.LOG_FILE_ENV}="{paths.program_log(params.data_dir, name)}"\n'
        "redirect_stderr = true\n"
        f"stdout_logfile = {paths.program_err_log(params.data_dir, name)}\n"
        f"stdout_logfile_maxbytes = {LOG_MAXBYTES}\n"
        f"stdout_logfile_backups = {LOG_BACKUPS}"
    )


def _program_block(prog: ExtraProgram, params: RenderParams) -> str:
    command = " ".join(shlex.quote(a) for a in [params.python, *prog.args])
    again = "true" if prog.autostart else "false"
    return (
        f"\n[program:{prog.name}]\ncommand = {command}\ndirectory = {params.data_dir}\n"
        f"priority = {prog.priority}\nautostart = {again}\nautorestart = {again}\n"
        f"startsecs = {prog.startsecs}\nstartretries = {START_RETRIES if prog.autostart else 0}\n"
        "stopsignal = TERM\n"
        f"stopwaitsecs = 10\n{_log_settings(prog.name, params)}\n"
    )


def render(params: RenderParams) -> str:
    template = Template(resources.files("deploy").joinpath(TEMPLATE_NAME).read_text())
    config_arg = shlex.quote(str(params.config_path) if params.config_path else params.demo_arg)
    return template.substitute(
        data_dir=params.data_dir,
        run_dir=params.run_dir,
        log_dir=params.log_dir,
        python=shlex.quote(params.python),
        config_arg=config_arg,
        tp_manager_stopwaitsecs=int(params.transaction_timeout_s) + STOP_MARGIN_S,
        agent_stopwaitsecs=int(params.transaction_timeout_s) + STOP_MARGIN_S + AGENT_STOP_EXTRA_S,
        log_settings_tp_manager=_own_log_settings("tp-manager", params),
        log_settings_supervisor_agent=_own_log_settings("supervisor-agent", params),
        extra_programs="".join(_program_block(p, params) for p in params.extra_programs),
        start_retries=START_RETRIES,
        rpc_username=RPC_USERNAME,
        rpc_password=params.rpc_password,
    )


def write_config(params: RenderParams) -> Path:
    for directory in (params.data_dir, params.run_dir, params.log_dir):
        paths.make_private(directory)
    path = params.run_dir / CONF_NAME
    # created 0600 before the password is written into it
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(render(params))
    return path


def rpc_credentials(socket_path: Path) -> tuple[str | None, str | None]:
    """The user and password of the supervisord serving ``socket_path``, from its rendered
    config beside it; (None, None) when there is none (an older render, or no access)."""
    parser = configparser.RawConfigParser()
    try:
        parser.read(socket_path.parent / CONF_NAME)
    except (OSError, configparser.Error):
        return None, None
    section = "supervisorctl"
    if not parser.has_section(section):
        return None, None
    return parser.get(section, "username", fallback=None), parser.get(
        section, "password", fallback=None
    )


def rpc(socket_path: Path, timeout_s: float = 5.0) -> xmlrpc.client.ServerProxy:
    """An XML-RPC proxy to supervisord over its private unix socket.

    supervisor's client and the XML parser are imported here, at the first call: the agent
    holds this module for ``GET /stop`` and would otherwise carry them all day."""
    import xmlrpc.client

    from supervisor.xmlrpc import SupervisorTransport

    username, password = rpc_credentials(socket_path)
    transport = SupervisorTransport(username, password, f"unix://{socket_path}")
    transport.timeout = timeout_s
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
