"""``setup --answers FILE``: the same answers from a JSON or YAML file, for a script.

FILE has the config's keys (the JSON the desktop seed's installer prints works
as is) plus ``install_dir``, or ``--install-dir``.  It is read by the config
loader's own reader and checked by its own rules, with the config file's place
as it will be, so every problem is reported at once, with its line, exactly as
``run`` would report it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.config.errors import ConfigError, ConfigProblem
from common.config.loader import build
from common.config.sources import Raw, parse_yaml, read_text
from common.setup.config_file import CONFIG_NAME
from common.setup.questions import INSTALL_DIR, install_dir

INSTALL_DIR_KEYS = frozenset({"installdir", "installfolder", "installationfolder"})


def _fold(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def nested(raw: dict[str, Raw]) -> dict[str, Any]:
    """Dotted keys back to the nesting the file had (``contract: {proxy: {...}}``)."""
    values: dict[str, Any] = {}
    for item in raw.values():
        *parents, leaf = item.key.split(".")
        target = values
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = item.value
    return values


def read_answers(path: Path, install_dir_arg: str | None) -> tuple[Path, dict[str, Any]]:
    """(the installation folder, the config's content) or one ConfigError listing it all."""
    path = path.expanduser().absolute()
    raw = parse_yaml(path, read_text(path))
    if not raw:
        raise ConfigError.single(path, None, "is empty: see docs/configuration.md for the keys")
    given = {k: v for k, v in raw.items() if _fold(k) in INSTALL_DIR_KEYS}
    config_raw = {k: v for k, v in raw.items() if k not in given}
    problems: list[ConfigProblem] = []
    folder: Path | None = None
    where = next(iter(given.values()), None)
    text = install_dir_arg if install_dir_arg is not None else (where.value if where else None)
    if text is None:
        rule = "is required: the folder config.yml goes to (or --install-dir)"
        problems.append(ConfigProblem(INSTALL_DIR, rule))
    else:
        try:
            folder = install_dir(text).absolute()
        except ValueError as exc:
            key = where.key if where and install_dir_arg is None else "--install-dir"
            line = where.line if where and install_dir_arg is None else None
            problems.append(ConfigProblem(key, f"{exc} (got {text!r})", line))
    target = (folder or path.parent) / CONFIG_NAME
    try:
        build(config_raw, source_path=target)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems or folder is None:
        raise ConfigError(path, sorted(problems, key=lambda p: (p.line is None, p.line or 0)))
    return folder, nested(config_raw)
