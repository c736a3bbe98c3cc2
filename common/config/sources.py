"""Reading the two config file formats into ``{dotted.key: Raw}``, with line numbers.

Two formats reach the connector: the desktop seed's ``config.yml`` (YAML; the
seed's installer prints it as JSON, which is YAML too) and the kiosk seed's
``config.txt`` (``KEY=VALUE`` lines).  Both end up as flat dotted keys with
every scalar as the text the user wrote, so the value rules (rules.py) see the
same thing whatever the format.

YAML scalars are deliberately *not* resolved by YAML's own rules: YAML 1.1
reads an unquoted ``update_time: 03:00`` as the integer 180 (base 60) and
``parity: no`` as false.  A config written by hand must mean what it says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from common.config.errors import ConfigError, ConfigProblem

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TXT_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]*)\s*[=:]\s*(.*)")


@dataclass(frozen=True, slots=True)
class Raw:
    """One value as the file gave it: text, None, or a list of texts; and where."""

    key: str  # as the user spelled it (dotted for nested keys)
    value: Any
    line: int | None


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError.single(path, None, "the file does not exist") from None
    except IsADirectoryError:
        raise ConfigError.single(path, None, "is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError.single(
            path, None, "cannot be read by this user (check its owner and mode)"
        ) from None
    try:
        return data.decode("utf-8-sig")  # a BOM from Windows editors is harmless
    except UnicodeDecodeError as exc:
        raise ConfigError.single(
            path, None, f"is not UTF-8 text (byte {exc.start}): save it as UTF-8"
        ) from None


def _scalar(node: yaml.ScalarNode) -> str | None:
    if node.style in ("'", '"', "|", ">"):
        return str(node.value)
    return None if node.value in _NULLS else str(node.value)


def _flatten(
    node: yaml.Node, prefix: str, out: dict[str, Raw], problems: list[ConfigProblem]
) -> None:
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            problems.append(ConfigProblem(None, "a key must be a plain name", line))
            continue
        key = f"{prefix}{key_node.value}"
        if isinstance(value_node, yaml.MappingNode):
            _flatten(value_node, key + ".", out, problems)
            continue
        if key in out:  # YAML itself keeps the last one silently
            problems.append(
                ConfigProblem(key, f"is set twice (first on line {out[key].line})", line)
            )
        elif isinstance(value_node, yaml.SequenceNode):
            items = [item for item in value_node.value if isinstance(item, yaml.ScalarNode)]
            if len(items) != len(value_node.value):
                problems.append(ConfigProblem(key, "must be a list of plain values", line))
                continue
            out[key] = Raw(key, [_scalar(item) for item in items], line)
        elif isinstance(value_node, yaml.ScalarNode):
            out[key] = Raw(key, _scalar(value_node), line)
        else:  # pragma: no cover - aliases are resolved by compose
            problems.append(ConfigProblem(key, "has an unsupported value", line))


def parse_yaml(path: Path, text: str) -> dict[str, Raw]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = str(exc.problem)
        if "alias" in problem or "anchor" in problem:
            # "found undefined alias 'Test_...'" would echo a password that starts with '*'
            problem = "a value starting with * or & must be in quotes (YAML alias or anchor)"
        raise ConfigError.single(path, None, f"is not valid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise ConfigError.single(path, None, f"is not valid YAML: {exc}") from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError.single(
            path,
            None,
            "must be a mapping of keys to values (key: value lines)",
            root.start_mark.line + 1,
        )
    out: dict[str, Raw] = {}
    problems: list[ConfigProblem] = []
    _flatten(root, "", out, problems)
    if problems:
        raise ConfigError(path, problems)
    return out


def parse_txt(path: Path, text: str) -> dict[str, Raw]:
    """The kiosk's ``config.txt``: ``KEY=VALUE`` per line; ``#`` and ``;`` start comments."""
    out: dict[str, Raw] = {}
    problems: list[ConfigProblem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        match = _TXT_LINE.fullmatch(stripped)
        if match is None:
            # the line itself is not shown: it may be a password
            problems.append(ConfigProblem(None, "expected KEY=VALUE", number))
            continue
        key, value = match.group(1), match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key in out:
            problems.append(
                ConfigProblem(key, f"is set twice (first on line {out[key].line})", number)
            )
            continue
        out[key] = Raw(key, value or None, number)
    if problems:
        raise ConfigError(path, problems)
    return out
