"""Writing the config file the setup produced: atomically, private, readable by a person.

The file is written to a temporary name in the same folder and renamed over
``config.yml``, so a Ctrl-C or a power cut leaves the old file or the new one,
never half of one.  It is created 0600 in a 0700 folder: it holds two
passwords.  Scalars are written plain where YAML allows (the loader reads every
value as the text written, so ``local_port: 8888`` is the text 8888), quoted
where the loader would otherwise read them differently (``null``, ``~``, an
empty value, or surrounding spaces).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from common.redact import SECRET_KEY

CONFIG_NAME = "config.yml"
MASK = "********"
HEADER = (
    "# ECR connector config, written by `ecr-connector setup`.\n"
    "# Keys and rules: docs/configuration.md; check it with `ecr-connector doctor --config FILE`.\n"
)
_LOADER_NULLS = frozenset({"", "~", "null", "Null", "NULL"})


class _PlainDumper(yaml.SafeDumper):
    """Text stays text: no implicit typing, so nothing is quoted just to stay a string."""


_PlainDumper.yaml_implicit_resolvers = {}


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if value in _LOADER_NULLS or value != value.strip() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_PlainDumper.add_representer(str, _text)


def render(values: Mapping[str, Any]) -> str:
    body = yaml.dump(
        dict(values), Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=1000
    )
    return HEADER + body


def masked(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy for the console: every secret (password, pwd...) replaced by a fixed mask."""
    return {
        key: masked(value)
        if isinstance(value, Mapping)
        else (MASK if SECRET_KEY.search(key) and value else value)
        for key, value in values.items()
    }


def write_private(folder: Path, text: str) -> Path:
    """``folder/config.yml`` (0600) in ``folder`` (made, or set, 0700), atomically."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    target = folder / CONFIG_NAME
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{CONFIG_NAME}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp made it 0600
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(target)
    except BaseException:  # Ctrl-C included: no half-written file is left behind
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)
    return target
