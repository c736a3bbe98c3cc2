"""docs/log-events.md lists exactly the events the code logs, at the level the code logs them.

The code side is an AST scan of common/, tp_manager/ and supervisor_agent/: every
``log.<level>("name", ...)`` call whose first argument is a string constant, plus the
Concert V2 link layer's ``Note("name", ...)`` effects, which the driver logs at info
(``log.info(effect.event, ...)``).  The doc side is every table row whose first cell is
an event name in backticks and whose second is its level.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("common", "tp_manager", "supervisor_agent")
DOC = ROOT / "docs" / "log-events.md"

# The structlog/stdlib method -> the ``level`` the line carries.
LEVELS = {
    "debug": "debug",
    "info": "info",
    "msg": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
    "exception": "error",
    "critical": "critical",
    "fatal": "critical",
}
LOGGER_NAME = re.compile(r"(^|\.|_)(log|logger)$")
# Notes of tp_manager/concert_v2/link.py, logged by the driver at info.
NOTE_CLASS = "Note"
NOTE_LEVEL = "info"
# The only log call whose event name is not a constant: the driver logging a Note.
DYNAMIC_CALLS = {("tp_manager/concert_v2/terminal.py", "effect.event")}
EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
DOC_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*([a-z]+)\s*\|(.*)\|\s*$")
NO_ACTION = {"", "—", "-"}


@dataclass(frozen=True)
class Site:
    name: str
    level: str
    where: str  # path:line


def _receiver(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in LEVELS:
        text = ast.unparse(func.value)
        if LOGGER_NAME.search(text):
            return text
    return None


def scan_code(root: Path = ROOT) -> tuple[list[Site], set[tuple[str, str]]]:
    """Every logged event name with its level, and the log calls with a non-constant name."""
    sites: list[Site] = []
    dynamic: set[tuple[str, str]] = set()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                first = node.args[0] if node.args else None
                constant = (
                    first.value
                    if isinstance(first, ast.Constant) and isinstance(first.value, str)
                    else None
                )
                where = f"{rel}:{node.lineno}"
                if _receiver(node) is not None:
                    assert isinstance(node.func, ast.Attribute)
                    level = LEVELS[node.func.attr]
                    if constant is not None:
                        sites.append(Site(constant, level, where))
                    elif first is not None:
                        dynamic.add((rel, ast.unparse(first)))
                elif (
                    isinstance(node.func, ast.Name)
                    and node.func.id == NOTE_CLASS
                    and constant is not None
                ):
                    sites.append(Site(constant, NOTE_LEVEL, where))
    return sites, dynamic


@dataclass(frozen=True)
class Row:
    name: str
    level: str
    action: str
    line: int


def parse_doc(text: str) -> list[Row]:
    """The catalogue rows: ``| `event` | level | meaning | fields | do |``."""
    rows: list[Row] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = DOC_ROW.match(line)
        if match is None or match.group(2) not in set(LEVELS.values()):
            continue  # the header, separators, and the other tables of the page
        cells = [c.strip() for c in match.group(3).split("|")]
        rows.append(Row(match.group(1), match.group(2), cells[-1], number))
    return rows


def _code_levels() -> dict[str, set[str]]:
    sites, _ = scan_code()
    levels: dict[str, set[str]] = defaultdict(set)
    for site in sites:
        levels[site.name].add(site.level)
    return levels


def _doc_rows() -> list[Row]:
    return parse_doc(DOC.read_text(encoding="utf-8"))


def test_the_scan_finds_the_code_events() -> None:
    # guards the scan itself: if it silently found nothing, the checks below would be empty
    sites, _ = scan_code()
    names = {s.name for s in sites}
    assert len(names) > 100
    for known in (
        "agent.journal.recovered_unknown",  # log.error in supervisor_agent/main.py
        "concert_v2.internal_error",  # log.exception
        "concert_v2.link.nak_sent",  # a Note of the link layer
        "simulator.stopping",  # a logger created inside a function
        "concert_v3.probe.ok",  # log.debug
    ):
        assert known in names, known


def test_the_scan_on_a_made_up_tree(tmp_path: Path) -> None:
    package = tmp_path / "supervisor_agent"
    package.mkdir()
    (package / "mod.py").write_text(
        "import logging, warnings\n"
        "log = structlog.get_logger(__name__)\n"
        "def f(self, name, parser):\n"
        "    log.warning('a.warned', x=1)\n"
        "    log.exception('a.crashed')\n"
        "    self._log.debug('a.debugged')\n"
        "    logging.getLogger('x').info('free text from a library')\n"
        "    log.info(name)\n"
        "    Note('a.noted', {})\n"
        "    parser.error('not a log call')\n"
        "    warnings.warn('nor this')\n"
    )
    sites, dynamic = scan_code(tmp_path)
    assert {(s.name, s.level) for s in sites} == {
        ("a.warned", "warning"),
        ("a.crashed", "error"),
        ("a.debugged", "debug"),
        ("a.noted", "info"),
    }
    assert dynamic == {("supervisor_agent/mod.py", "name")}


def test_the_doc_parser_reads_rows() -> None:
    text = (
        "| event | level | meaning | fields | do |\n"
        "| --- | --- | --- | --- | --- |\n"
        "| `a.b` | warning | something | `x` | restart |\n"
        "| `a.c` | info | fine | — | — |\n"
        "| `a.rule` = x | why | do |\n"
    )
    assert parse_doc(text) == [Row("a.b", "warning", "restart", 3), Row("a.c", "info", "—", 4)]


def test_every_log_call_names_its_event_with_a_constant() -> None:
    _, dynamic = scan_code()
    assert dynamic == DYNAMIC_CALLS, (
        "a log call whose event name is not a string constant cannot be catalogued: "
        f"{sorted(dynamic - DYNAMIC_CALLS)}"
    )


def test_event_names_follow_the_scheme() -> None:
    sites, _ = scan_code()
    bad = sorted({f"{s.name} ({s.where})" for s in sites if not EVENT_NAME.match(s.name)})
    assert not bad, f"event names must be dotted lower_snake_case: {bad}"


def test_each_event_has_one_level() -> None:
    mixed = {name: sorted(levels) for name, levels in _code_levels().items() if len(levels) > 1}
    assert not mixed, f"one event name, several levels (split the name): {mixed}"


def test_every_event_in_the_code_is_in_the_doc() -> None:
    documented = {row.name for row in _doc_rows()}
    sites, _ = scan_code()
    missing = sorted({f"{s.name} ({s.where})" for s in sites if s.name not in documented})
    assert not missing, f"events logged but missing from {DOC.name}: {missing}"


def test_every_event_in_the_doc_is_logged_by_the_code() -> None:
    logged = set(_code_levels())
    stale = sorted(f"{row.name} (line {row.line})" for row in _doc_rows() if row.name not in logged)
    assert not stale, f"{DOC.name} lists events the code no longer logs: {stale}"


def test_the_doc_lists_each_event_once() -> None:
    seen: dict[str, int] = {}
    twice = []
    for row in _doc_rows():
        if row.name in seen:
            twice.append(f"{row.name} (lines {seen[row.name]} and {row.line})")
        seen[row.name] = row.line
    assert not twice, twice


def test_the_doc_gives_the_level_the_code_logs() -> None:
    levels = _code_levels()
    wrong = sorted(
        f"{row.name}: doc says {row.level}, code logs {sorted(levels[row.name])}"
        for row in _doc_rows()
        if row.name in levels and levels[row.name] != {row.level}
    )
    assert not wrong, wrong


def test_warnings_and_errors_say_what_to_do() -> None:
    silent = sorted(
        row.name
        for row in _doc_rows()
        if row.level in ("warning", "error", "critical") and row.action in NO_ACTION
    )
    assert not silent, f"warning/error events without an operator action in {DOC.name}: {silent}"
