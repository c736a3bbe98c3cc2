"""The errorCode table covers every code tp-manager and the channel can produce, and
docs/error-codes.md is that table."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from common.commands import errors as codes
from supervisor_agent.api import error_codes
from supervisor_agent.api.wire_json import dumps, loads
from tp_manager.terminal import errors as terminal_errors

DOC = Path(__file__).resolve().parents[2] / "docs" / "error-codes.md"


def terminal_error_codes() -> set[str]:
    return {
        cls.code
        for _, cls in inspect.getmembers(terminal_errors, inspect.isclass)
        if issubclass(cls, terminal_errors.TerminalError)
    }


def test_every_terminal_error_code_is_in_the_table() -> None:
    assert terminal_error_codes() - set(error_codes.CODES) == set()


def test_every_channel_error_code_is_in_the_table() -> None:
    assert set(codes.MONEY_MAY_HAVE_MOVED) - set(error_codes.CODES) == set()


def outcome_unknown(code: str) -> bool:
    """The page's column: the channel's table; a code only the API answers never
    reached tp-manager, so no money moved."""
    return codes.MONEY_MAY_HAVE_MOVED.get(code, False)


def test_outcome_unknown_matches_money_may_have_moved() -> None:
    for _, cls in inspect.getmembers(terminal_errors, inspect.isclass):
        if issubclass(cls, terminal_errors.TerminalError) and cls.money_may_have_moved:
            assert outcome_unknown(cls.code), cls.code


def test_doc_table_is_the_code_table() -> None:
    rows = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"^\| `([A-Z_]+)` \| (\d{3}) \| (yes|no) \|", line)
        if match:
            rows[match.group(1)] = (int(match.group(2)), match.group(3) == "yes")
    table = error_codes.CODES
    expected = {code: (e.http_status, outcome_unknown(code)) for code, e in table.items()}
    assert rows == expected


def test_wire_json_keeps_decimal_text() -> None:
    text = '{"a":8.99,"b":4711892728946,"c":"10,23","d":[1E+2,0.10],"e":null,"f":true}'
    assert dumps(loads(text)) == text
