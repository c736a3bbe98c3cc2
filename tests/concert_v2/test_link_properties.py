"""Property tests: no input breaks the receiver or the machines; codecs round-trip."""

from __future__ import annotations

import re
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from tp_manager.concert_v2.codec import (
    decode_answer,
    decode_frame,
    decode_request,
    encode_answer,
    encode_frame,
    encode_request,
    lrc,
)
from tp_manager.concert_v2.constants import AMOUNT_MAX, Timer
from tp_manager.concert_v2.link import (
    BadFrame,
    Completed,
    ControlByte,
    Effect,
    Exchange,
    Failed,
    Frame,
    FrameReceiver,
    LinkTimeouts,
    Listener,
    Probe,
    Probed,
    Released,
    Send,
)
from tp_manager.terminal.errors import ProtocolError, TerminalError
from tp_manager.terminal.model import PaymentRequest, PaymentStatus, TransactionType

PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
private_field = st.text(PRINTABLE, max_size=10).map(lambda s: s.rstrip(" "))

requests = st.builds(
    PaymentRequest,
    amount=st.integers(1, AMOUNT_MAX),
    currency_numeric=st.text(string.digits, min_size=3, max_size=3),
    transaction_type=st.sampled_from(list(TransactionType)),
    force_authorization=st.booleans(),
    pos_number=st.integers(1, 99),
    full_answer=st.booleans(),
    private=private_field,
)


@given(st.lists(st.binary(max_size=64), max_size=20))
def test_receiver_accepts_any_bytes_in_any_chunks(chunks: list[bytes]) -> None:
    rx = FrameReceiver()
    for chunk in chunks:
        for event in rx.feed(chunk):
            assert isinstance(event, ControlByte | Frame | BadFrame)
            if isinstance(event, BadFrame):
                assert isinstance(event.error(), ProtocolError)
    for event in rx.reset():
        assert isinstance(event, BadFrame)
    assert not rx.in_frame


@given(st.text(PRINTABLE, max_size=120), st.binary(max_size=30), st.integers(1, 10))
def test_good_frame_survives_noise_and_chunking(message: str, noise: bytes, step: int) -> None:
    # Noise made only of bytes that cannot open a frame or signal anything.
    noise = bytes(b for b in noise if b not in (0x02, 0x03, 0x04, 0x05, 0x06, 0x15))
    data = noise + encode_frame(message)
    rx = FrameReceiver()
    events = []
    for i in range(0, len(data), step):
        events += rx.feed(data[i : i + step])
    frames = [e for e in events if isinstance(e, Frame)]
    assert frames == [Frame(message)]


@given(st.binary(max_size=100))
def test_lrc_properties(data: bytes) -> None:
    # XOR: appending the LRC to the data gives 0, and one flipped bit always shows.
    assert lrc(data + bytes([lrc(data)])) == 0
    if data:
        flipped = bytes([data[0] ^ 0x01]) + data[1:]
        assert lrc(flipped) != lrc(data)


@given(st.text(PRINTABLE, max_size=100), st.integers(1, 255))
def test_frame_round_trip_and_corruption(message: str, flip: int) -> None:
    frame = encode_frame(message)
    assert decode_frame(frame) == message
    corrupted = frame[:-1] + bytes([frame[-1] ^ flip])
    try:
        decode_frame(corrupted)
    except ProtocolError:
        pass
    else:  # pragma: no cover - would mean a wrong LRC was accepted
        raise AssertionError("corrupted LRC accepted")


@given(requests, st.sampled_from(list("19CAZ")))
def test_request_round_trip(request: PaymentRequest, mode: str) -> None:
    text = encode_request(request, payment_mode=mode)
    assert len(text) == 34 and text.isascii()
    decoded = decode_request(text)
    assert decoded.request == request
    assert decoded.payment_mode == mode


@given(
    status=st.sampled_from(list(PaymentStatus)),
    amount=st.integers(0, AMOUNT_MAX),
    currency=st.text(string.digits, min_size=3, max_size=3),
    pos=st.integers(1, 99),
    mode=PRINTABLE,
    private=private_field,
    report=st.none() | st.text(st.sampled_from("ABC XYZ/:-."), min_size=55, max_size=55),
)
def test_answer_round_trip(
    status: PaymentStatus,
    amount: int,
    currency: str,
    pos: int,
    mode: str,
    private: str,
    report: str | None,
) -> None:
    text = encode_answer(
        status=status,
        amount=amount,
        currency_numeric=currency,
        pos_number=pos,
        payment_mode=mode,
        private=private,
        report=report,
    )
    assert len(text) == (80 if report is not None else 25)
    answer = decode_answer(text)
    assert (answer.status, answer.amount, answer.currency_numeric) == (status, amount, currency)
    assert (answer.pos_number, answer.payment_mode, answer.private) == (pos, mode, private)
    assert answer.report == report  # no digits in these reports: nothing to mask
    assert answer.raw == text


@given(
    pan=st.text(string.digits, min_size=13, max_size=19),
    filler=st.text(st.sampled_from("AB :/-0123456789"), min_size=55, max_size=55),
    at=st.integers(0, 36),
)
def test_no_full_pan_survives_decoding(pan: str, filler: str, at: int) -> None:
    report = (filler[:at] + pan + filler[at:])[:55]
    answer = decode_answer("010000001001" + report + "978" + " " * 10)
    assert answer.report is not None
    assert re.search(r"[0-9]{13,}", answer.report) is None
    for field in (answer.raw[12:], answer.report, answer.masked_pan or ""):
        assert pan not in field


steps = st.lists(
    st.one_of(
        st.binary(max_size=40).map(lambda b: ("data", b)),
        st.sampled_from(list(Timer)).map(lambda t: ("timeout", t)),
        st.just(("cancel", None)),
    ),
    max_size=60,
)


@settings(max_examples=300)
@given(steps, st.booleans())
def test_exchange_never_raises_and_ends_once(
    script: list[tuple[str, object]], use_timers: bool
) -> None:
    timeouts = LinkTimeouts(enq_tries=2, nak_resend_tries=2, receive_nak_tries=2)
    ex = Exchange(encode_frame("X" * 34), timeouts)
    ends = releases = 0
    effects = ex.start()
    for kind, arg in script:
        if kind == "data":
            effects = ex.receive_data(arg)  # type: ignore[arg-type]
        elif kind == "timeout":
            effects = ex.timeout(arg)  # type: ignore[arg-type]
        else:
            effects = ex.cancel() if not use_timers else []
        for e in effects:
            if isinstance(e, Failed | Released):
                assert isinstance(e.error, TerminalError)
            ends += isinstance(e, Completed | Failed)
            releases += isinstance(e, Released)
    assert ends <= 1 and releases <= 1
    # Whatever happened, the machine ends within a bounded number of deadlines.
    for _ in range(20):
        if ex.finished:
            break
        for timer in Timer:
            ends += sum(isinstance(e, Completed | Failed) for e in ex.timeout(timer))
    assert ex.finished and ends == 1


@given(st.lists(st.binary(max_size=40), max_size=30))
def test_listener_never_raises(chunks: list[bytes]) -> None:
    li = Listener(LinkTimeouts())
    for chunk in chunks:
        for e in li.receive_data(chunk):
            if isinstance(e, Failed):
                assert isinstance(e.error, TerminalError)
    for timer in Timer:
        li.timeout(timer)


@settings(max_examples=300)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=8).map(lambda b: ("data", b)),
            st.sampled_from(list(Timer)).map(lambda t: ("timeout", t)),
            st.just(("yield", None)),
        ),
        max_size=40,
    ),
    st.integers(1, 4),
)
def test_probe_ends_once_within_its_tries_and_always_hands_the_line_back(
    script: list[tuple[str, object]], tries: int
) -> None:
    p = Probe(1.0, tries)
    effects = p.start()
    enqs = effects.count(Send(b"\x05", "enq"))
    ends: list[Probed] = []
    eots = 0

    def take(out: list[Effect]) -> None:
        nonlocal enqs, eots
        enqs += sum(1 for e in out if e == Send(b"\x05", "enq"))
        eots += sum(1 for e in out if e == Send(b"\x04", "eot"))
        ends.extend(e for e in out if isinstance(e, Probed))

    for kind, arg in script:
        if kind == "data":
            take(p.receive_data(arg))  # type: ignore[arg-type]
        elif kind == "timeout":
            take(p.timeout(arg))  # type: ignore[arg-type]
        else:
            p.yield_line()
    for _ in range(tries):  # at most ``tries`` probe deadlines end it, whatever came
        take(p.timeout(Timer.PROBE))
    assert p.finished and len(ends) == 1 and eots == 1
    assert 1 <= enqs <= tries and ends[0].tries == enqs
