"""Properties of the Concert V3 codec, over generated inputs; the simulator's own
encoder (tp_manager/simulator/concert_v3.py, written apart) checks the driver's."""

from __future__ import annotations

import itertools
import re
import string

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tp_manager.concert_v3.codec import (
    FieldStreamDecoder,
    encode_fields,
)
from tp_manager.concert_v3.messages import build_request, mask_pan, parse_answer
from tp_manager.simulator import concert_v3 as simulator
from tp_manager.terminal.errors import MalformedMessage
from tp_manager.terminal.model import PaymentRequest, PaymentResult

from .conftest import decode_whole

TAG_CHARS = string.ascii_uppercase + string.digits
PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))

tags = st.text(TAG_CHARS, min_size=2, max_size=2)
values = st.text(PRINTABLE, min_size=1, max_size=999)
messages = st.lists(
    st.tuples(tags, values), min_size=1, max_size=12, unique_by=lambda field: field[0]
)


def outcome(feed_chunks: list[bytes]) -> tuple[str, object]:
    """('ok', fields) or ('error', (type, message)); anything else escapes and fails."""
    decoder = FieldStreamDecoder()
    try:
        for chunk in feed_chunks:
            decoder.feed(chunk)
        return "ok", decoder.finish()
    except MalformedMessage as exc:
        return "error", (type(exc), str(exc))


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@given(st.binary(max_size=300))
@example(b"CZ0040301")
@example(b"CZ000")
@example(b"\xff")
def test_any_bytes_give_fields_or_a_typed_error(data: bytes) -> None:
    kind, value = outcome([data])
    if kind == "ok":
        assert encode_fields(value) == data  # type: ignore[arg-type]


@given(
    st.one_of(
        st.binary(max_size=120),
        messages.map(encode_fields),
        # valid messages with one byte changed: errors deep inside
        st.tuples(messages.map(encode_fields), st.integers(0, 10_000), st.integers(0, 255)).map(
            lambda t: t[0][: t[1] % len(t[0])] + bytes([t[2]]) + t[0][t[1] % len(t[0]) + 1 :]
        ),
    ),
    st.lists(st.integers(0, 10_000), max_size=8),
)
def test_any_segmentation_gives_the_same_outcome(data: bytes, cuts: list[int]) -> None:
    assert outcome(split(data, cuts)) == outcome([data])


@given(messages)
def test_driver_and_simulator_write_and_read_the_same_fields(
    fields: list[tuple[str, str]],
) -> None:
    written_by_simulator = simulator.encode(dict(fields))
    assert encode_fields(fields) == written_by_simulator
    assert decode_whole(written_by_simulator) == tuple(fields)


@given(messages, st.data())
def test_byte_by_byte_and_prefixes(fields: list[tuple[str, str]], data: st.DataObject) -> None:
    wire = encode_fields(fields)
    decoder = FieldStreamDecoder()
    stop = data.draw(st.integers(0, len(wire)))
    for byte in wire[:stop]:
        decoder.feed(bytes([byte]))
    # every field whose last byte arrived is decoded; none past it
    whole = 0
    offset = 0
    for _tag, value in fields:
        offset += 5 + len(value)
        if offset <= stop:
            whole += 1
    assert decoder.fields == tuple(fields[:whole])
    assert decoder.has_partial_field == (stop != offset_of(fields, whole))


def offset_of(fields: list[tuple[str, str]], count: int) -> int:
    return sum(5 + len(value) for _, value in fields[:count])


@given(st.text(string.digits, min_size=12, max_size=19))
def test_mask_pan_leaves_at_most_ten_digits(pan: str) -> None:
    masked = mask_pan(pan)
    assert len(masked) == len(pan)
    assert len(re.findall(r"[0-9]", masked)) <= 10
    assert masked[:6] == pan[:6] and masked[-4:] == pan[-4:]


SENT = build_request(PaymentRequest(amount=1234, currency_numeric="978"))


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(st.sampled_from(["AE", "AF", "CB", "CD", "CA", "CE", "AA", "CC", "CG"]), values),
        max_size=8,
        unique_by=lambda field: field[0],
    )
)
def test_any_answer_fields_give_a_result_or_a_typed_error(
    fields: list[tuple[str, str]],
) -> None:
    try:
        result = parse_answer(fields, SENT)
    except MalformedMessage:
        return
    assert isinstance(result, PaymentResult)
    if result.masked_pan is not None:
        assert not re.search(r"[0-9]{11,}", result.masked_pan)
