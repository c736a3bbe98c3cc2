"""Deeply nested JSON is refused by name before the parser can recurse into a 500."""

from __future__ import annotations

import pytest

from supervisor_agent.api.bodies import MAX_JSON_DEPTH, nesting_depth
from tests.api.conftest import Api
from tests.api.test_api_transport import assert_error

DEEP = 5000  # far past the JSON parser's recursion limit (~1000)


def nested_array(levels: int) -> str:
    return "[" * levels + "]" * levels


def nested_object(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("top-level array", nested_array(DEEP)),
        ("custom_data", '{"amount": "1.00", "custom_data": {"k": ' + nested_array(DEEP) + "}}"),
        ("cart", '{"amount": "1.00", "cart": ' + nested_object(DEEP) + "}"),
        ("just past the limit", '{"amount": "1.00", "cart": ' + nested_array(MAX_JSON_DEPTH) + "}"),
    ],
)
async def test_deep_json_is_a_400_naming_the_rule(api: Api, name: str, text: str) -> None:
    status, body, _ = await api.post("/", text)
    assert status == 400, (name, body)
    err = assert_error(body, 400, "INVALID_JSON")
    assert err["details"] == {"path": "(body)", "rule": "max_depth"}
    assert str(MAX_JSON_DEPTH) in err["message"]
    assert api.tpm.received == []


async def test_deep_kiosk_and_pos_bodies_are_400_too(kiosk: Api) -> None:
    for path in ("/", "/v1/connector/order"):
        status, body, _ = await kiosk.post(path, nested_object(DEEP))
        assert status == 400
        assert assert_error(body, 400, "INVALID_JSON")["details"]["rule"] == "max_depth"


async def test_nesting_at_the_limit_is_parsed(api: Api) -> None:
    # the body object is level 1, "cart" opens level 2: the limit is reached, not passed
    text = '{"amount": "1.00", "cart": ' + nested_array(MAX_JSON_DEPTH - 1) + "}"
    status, body, _ = await api.post("/", text)
    assert status == 200, body
    assert body["cart"] == {} and body["warnings"]  # a nonsense cart is dropped, as always


def test_brackets_inside_strings_and_escapes_do_not_count() -> None:
    assert nesting_depth('{"a": "[[[[{{{{", "b": "\\"[[[["}', 3) == 1
    assert nesting_depth('["\\\\", [[]]]', 10) == 3
    assert nesting_depth(nested_array(100), 5) == 6  # stops counting past the limit
    assert nesting_depth("not json at all", 5) == 0
