"""No ``asyncio.wait_for`` in the connector's own packages.

On Python 3.11, ``wait_for`` drops a cancel that lands in the same loop iteration as
the awaited result: a task being stopped carries on (this hung the agent's shutdown
once, tests/tp_manager/test_control_cancel.py).  ``asyncio.timeout`` has no such gap.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("common", "tp_manager", "supervisor_agent")


def wait_for_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "wait_for"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "asyncio"
    ]


def test_the_detector_sees_a_wait_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import asyncio\nasync def f(e):\n    await asyncio.wait_for(e.wait(), 1)\n")
    assert wait_for_calls(sample) == [3]


def test_no_package_waits_with_asyncio_wait_for() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line in wait_for_calls(path)
    ]
    assert found == [], "use `async with asyncio.timeout(...)` instead: " + ", ".join(found)
