"""The one exception a bad configuration raises, worded for the person who edits the file.

A connector runs unattended: when its config is wrong it must stop at start-up
with a message that says which file, which key (as the user spelled it, with
its line when known) and which rule, so the fix takes one edit and not a
support call.  Every problem found in one pass is listed, so a file with three
typos is fixed in one go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One broken rule: ``key`` as written in the file (``None``: the file as a whole)."""

    key: str | None
    rule: str
    line: int | None = None

    def __str__(self) -> str:
        if self.key is None:
            return f"line {self.line}: {self.rule}" if self.line else self.rule
        where = f"key '{self.key}'"
        if self.line:
            where += f" (line {self.line})"
        return f"{where}: {self.rule}"


class ConfigError(Exception):
    """The configuration cannot be used; ``str()`` is the user-facing message."""

    def __init__(self, path: Path | None, problems: Sequence[ConfigProblem]) -> None:
        if not problems:
            raise ValueError("ConfigError needs at least one problem")
        self.path = path
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)
        super().__init__(str(self))

    @classmethod
    def single(
        cls, path: Path | None, key: str | None, rule: str, line: int | None = None
    ) -> ConfigError:
        return cls(path, [ConfigProblem(key, rule, line)])

    @property
    def key(self) -> str | None:
        """The key of the first problem (handy for callers and tests)."""
        return self.problems[0].key

    @property
    def rule(self) -> str:
        return self.problems[0].rule

    def __str__(self) -> str:
        where = f"config file {self.path}" if self.path is not None else "built-in demo config"
        if len(self.problems) == 1:
            return f"{where}: {self.problems[0]}"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        return f"{where}: {len(self.problems)} problems:\n{lines}"
