"""The control-channel shapes: {id, command, properties} -> {id, ok, result|error}."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.messages import Event, MessageError, Reply, Request
from common.payment import FailureReason, PaymentResult, PaymentStatus, Timings, TransactionType


def test_request_round_trip() -> None:
    req = Request("pay", {"amount": 999, "currency_numeric": "978"})
    again = Request.decode(req.encode())
    assert again == req
    assert json.loads(req.encode()) == {
        "id": req.id,
        "command": "pay",
        "properties": {"amount": 999, "currency_numeric": "978"},
    }


def test_reply_shapes() -> None:
    ok = Reply.success("a1", {"cancelled": True})
    assert json.loads(ok.encode()) == {"id": "a1", "ok": True, "result": {"cancelled": True}}
    bad = Reply.failure("a2", "TERMINAL_BUSY", "a transaction is in flight")
    assert json.loads(bad.encode()) == {
        "id": "a2",
        "ok": False,
        "error": {
            "code": "TERMINAL_BUSY",
            "message": "a transaction is in flight",
            "money_may_have_moved": False,
        },
    }
    assert Reply.decode(bad.encode()) == bad
    assert Reply.decode(ok.encode()) == ok


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe",
        b"[]",
        b'{"command": "pay"}',
        b'{"id": "", "command": "pay"}',
        b'{"id": "x", "command": 3}',
        b'{"id": "x", "command": "pay", "properties": []}',
    ],
)
def test_bad_requests_are_typed_errors(raw: bytes) -> None:
    with pytest.raises(MessageError):
        Request.decode(raw)


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_message_error(raw: bytes) -> None:
    for decode in (Request.decode, Reply.decode):
        try:
            decode(raw)
        except MessageError:
            pass


def test_what_the_wire_carries_is_standard_json() -> None:
    """Keys that are not strings go out as strings (as the standard library wrote them);
    a float that is not a number goes out as null, never as the bare NaN standard JSON
    lacks; a number JSON cannot carry as an integer of 64 bits is refused, not sent."""
    result: dict[Any, Any] = {"amount": 999, 7: "seven", "ratio": float("nan")}
    raw = Reply.success("r1", result).encode()
    assert json.loads(raw, parse_constant=pytest.fail) == {
        "id": "r1",
        "ok": True,
        "result": {"amount": 999, "7": "seven", "ratio": None},
    }
    with pytest.raises(TypeError):
        Request("pay", {"amount": 2**64}).encode()
    with pytest.raises(MessageError):
        Reply.decode(b'{"id": "r1", "ok": true, "result": {"ratio": NaN}}')


def test_event_frames_round_trip() -> None:
    event = Event("transaction.finished", {"order_id": "O-1", "status": "accepted"})
    frames = event.frames()
    assert frames[0] == b"transaction.finished"
    assert Event.from_frames(frames) == event


_text = st.none() | st.text(max_size=20)
_results = st.builds(
    PaymentResult,
    status=st.sampled_from(PaymentStatus),
    amount=st.integers(0, 10**9),
    currency_numeric=st.sampled_from(["978", "840"]),
    transaction_type=st.sampled_from(TransactionType),
    protocol=st.sampled_from(["concert-v2", "concert-v3"]),
    pos_number=st.integers(1, 99),
    masked_pan=_text,
    failure_reason=st.none() | st.sampled_from(FailureReason),
    authorization_number=_text,
    customer_ticket=_text,
    raw=st.text(max_size=40),
    timings=st.builds(Timings, *(st.floats(0, 1e6) for _ in range(4))),
)


@given(_results)
def test_a_payment_result_crosses_the_channel_as_asdict_wrote_it(result: PaymentResult) -> None:
    """to_dict is written out for speed; its shape stays the journal's (asdict's)."""
    expected = dataclasses.asdict(result)
    for key in ("status", "transaction_type", "failure_reason"):
        if expected[key] is not None:
            expected[key] = str(expected[key])
    wire = result.to_dict()
    assert wire == expected
    assert json.loads(json.dumps(wire)) == expected
    assert PaymentResult.from_dict(json.loads(json.dumps(wire))) == result
