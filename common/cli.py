"""``ecr-connector``: one command, one small module per subcommand.

Each subcommand module exposes ``configure(parser)`` and ``main(args) -> int``
and is imported only when its subcommand runs, so ``ecr-connector simulate``
does not pay for aiohttp and the API does not pay for pyserial.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from common import __version__

# (subcommand, module, one-line help)
SUBCOMMANDS: list[tuple[str, str, str]] = [
    ("run", "common.runner", "run the connector under supervisord (a demo without --config)"),
    ("setup", "common.setup.cli", "ask the installer's questions and write config.yml"),
    ("doctor", "common.doctor", "check an install: config, terminal, ports, disk, sockets"),
    ("simulate", "tp_manager.simulator.cli", "run the built-in payment terminal simulator"),
    ("hipay-stub", "supervisor_agent.hipay_stub", "run a stand-in HiPay notification endpoint"),
    ("outbox", "supervisor_agent.outbox_cli", "list or requeue undelivered HiPay notifications"),
    ("status", "supervisor_agent.cli_status", "the running connector's status (the status page)"),
    ("pay", "supervisor_agent.cli_pay", "a test payment through the running connector, live"),
    ("update", "supervisor_agent.update.cli", "check for, or run now, the signed self-update"),
    ("publish", "supervisor_agent.update.publish", "publish a release to a self-update feed"),
]


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """Only the selected subcommand's module is imported: a heavy one can't slow the others."""
    parser = argparse.ArgumentParser(
        prog="ecr-connector",
        description="Connect a cash register or kiosk to a card payment terminal.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, module_name, help_text in SUBCOMMANDS:
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module_name)
        if name == selected:
            importlib.import_module(module_name).configure(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = {name for name, _, _ in SUBCOMMANDS}
    selected = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(selected if selected in names else None)
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
