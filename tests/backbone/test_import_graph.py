"""``common/`` is shared by both processes and depends on neither (one owner per fact)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROCESS_PACKAGES = ("tp_manager", "supervisor_agent")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_common_imports_nothing_from_the_process_packages() -> None:
    arrows = sorted(
        f"{path.relative_to(ROOT)} -> {name}"
        for path in (ROOT / "common").rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in PROCESS_PACKAGES
    )
    assert arrows == []


def test_the_agent_imports_nothing_from_tp_manager() -> None:
    arrows = sorted(
        f"{path.relative_to(ROOT)} -> {name}"
        for path in (ROOT / "supervisor_agent").rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] == "tp_manager"
    )
    assert arrows == []
