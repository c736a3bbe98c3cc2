"""``ecr-connector setup``: ask the seed installer's questions (or read them from a file),
write ``<installation folder>/config.yml``, and say how to check and start the connector."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from common import installed
from common.config import ConfigError, load_config
from common.setup.config_file import CONFIG_NAME, masked, render, write_private

EXIT_BAD_ANSWERS = 2
EXIT_CANCELLED = 130  # as a shell reports Ctrl-C


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--answers",
        metavar="FILE",
        help="JSON or YAML with the config's keys and install_dir: no questions asked",
    )
    parser.add_argument(
        "--install-dir",
        metavar="DIR",
        help="with --answers: the installation folder (instead of install_dir in FILE)",
    )
    parser.add_argument(
        "--force", action="store_true", help="with --answers: replace an existing config.yml"
    )


def next_steps(path: Path) -> str:
    exe = installed.command("ecr-connector")
    always_up = Path(str(resources.files("deploy").joinpath("always-up.sh")))
    return (
        f"Check it : {exe} doctor --config {path}\n"
        f"Start it : {exe} run --config {path}\n"
        "At boot  : cron (crontab -e), as the seeds do:\n"
        f"             */2 * * * * ECR_CONFIG={path} ECR_CONNECTOR={exe} {always_up}\n"
        "           or systemd: deploy/ecr-connector.service with\n"
        f"             ExecStart={exe} run --config {path}"
    )


def _interactive() -> tuple[Path, dict[str, Any]] | None:
    from common.setup import wizard
    from common.setup.questions import INSTALL_DIR, config_values, install_dir

    print("Installing HiPay ECR Connector...")
    answers = wizard.ask_all()
    folder = install_dir(answers[INSTALL_DIR]).absolute()
    if (folder / CONFIG_NAME).exists() and not wizard.confirm_replace(str(folder / CONFIG_NAME)):
        return None
    return folder, config_values(answers)


def main(args: argparse.Namespace) -> int:
    if args.answers is None and not sys.stdin.isatty():
        print(
            "ecr-connector setup: asks its questions on a terminal; without one, give "
            "--answers FILE (JSON or YAML with the config's keys and install_dir)",
            file=sys.stderr,
        )
        return EXIT_BAD_ANSWERS
    try:
        if args.answers is not None:
            from common.setup.answers import read_answers

            folder, values = read_answers(Path(args.answers), args.install_dir)
            if (folder / CONFIG_NAME).exists() and not args.force:
                print(
                    f"ecr-connector setup: {folder / CONFIG_NAME} exists; --force replaces it",
                    file=sys.stderr,
                )
                return EXIT_BAD_ANSWERS
        else:
            chosen = _interactive()
            if chosen is None:
                print("setup: nothing was written")
                return 0
            folder, values = chosen
        path = write_private(folder, render(values))
        load_config(path)  # what run will read: the same loader says yes
    except ConfigError as exc:
        print(f"ecr-connector setup: {exc}", file=sys.stderr)
        return EXIT_BAD_ANSWERS
    except KeyboardInterrupt:
        print("\nsetup: cancelled; nothing was written", file=sys.stderr)
        return EXIT_CANCELLED
    print("Installation completed with success ! Your config is as follows:")
    print(render(masked(values)).split("\n", 2)[2], end="")
    print(f"Written to {path} (mode 0600, folder 0700); edit it there.")
    print(next_steps(path))
    return 0
