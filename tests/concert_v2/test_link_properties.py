"""Property tests: no input breaks the receiver or the machines; the driver's codec and
the simulator's (tp_manager/simulator/concert_v2_codec.py, written apart) read each other."""

from __future__ import annotations

import re
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from tp_manager.concert_v2.codec import (
    decode_answer,
    encode_frame,
    encode_request,
    lrc,
)
from tp_manager.concert_v2.constants import AMOUNT_MAX, ControlCode, Timer
from tp_manager.concert_v2.link import (
    BadFrame,
    BadFrameReason,
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
    Released,
    Send,
)
from tp_manager.simulator import concert_v2_codec as sim
from tp_manager.terminal.errors import ProtocolError, TerminalError
from tp_manager.terminal.model import PaymentRequest, PaymentStatus, Probed, TransactionType

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
payment_modes = st.sampled_from(list(string.digits + string.ascii_uppercase))

# The wire's codes, as protocol-notes.md gives them (not read from either codec).
TRANSACTION_CODE = {
    TransactionType.DEBIT: "0",
    TransactionType.CREDIT: "1",
    TransactionType.CANCEL: "2",
}
STATUS_CHAR = {
    PaymentStatus.ACCEPTED: "0",
    PaymentStatus.REFUSED: "7",
    PaymentStatus.NOT_VERIFIED: "9",
}


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
    assert rx.reset() == []  # nothing held after a reset


class ByteAtATimeReceiver:
    """The receiver's rules as protocol-notes.md words them, one byte at a time: the
    reference the run-by-run :class:`FrameReceiver` must agree with."""

    def __init__(self, max_message_length: int) -> None:
        self.max = max_message_length
        self.state = "idle"
        self.body = bytearray()
        self.garbage = 0

    def feed(self, data: bytes) -> list[object]:
        events: list[object] = []
        for byte in data:
            self.byte(byte, events)
        self.flush(events)
        return events

    def flush(self, events: list[object]) -> None:
        if self.garbage:
            events.append(BadFrame(BadFrameReason.GARBAGE, self.garbage))
            self.garbage = 0

    def byte(self, byte: int, events: list[object]) -> None:
        if self.state == "lrc":
            self.state = "idle"
            body, size = bytes(self.body), len(self.body) + 3
            self.body.clear()
            if lrc(body + b"\x03") != byte:
                events.append(BadFrame(BadFrameReason.BAD_LRC, size))
            elif any(b < 0x20 or b > 0x7E for b in body):
                events.append(BadFrame(BadFrameReason.NON_ASCII, size))
            else:
                events.append(Frame(body.decode("ascii")))
            return
        if self.state == "frame":
            if byte == 0x03:
                self.state = "lrc"
                return
            if byte in SIGNIFICANT:
                events.append(BadFrame(BadFrameReason.TRUNCATED, len(self.body) + 1))
                self.body.clear()
                self.state = "idle"
            elif len(self.body) >= self.max:
                events.append(BadFrame(BadFrameReason.TOO_LONG, len(self.body) + 1))
                self.body.clear()
                self.state = "idle"
                self.garbage = 1
                return
            else:
                self.body.append(byte)
                return
        if byte == 0x02:
            self.flush(events)
            self.state = "frame"
        elif byte in SIGNIFICANT:
            self.flush(events)
            events.append(ControlByte(ControlCode(byte)))
        else:
            self.garbage += 1


SIGNIFICANT = frozenset({0x02, 0x04, 0x05, 0x06, 0x15})  # STX, EOT, ENQ, ACK, NAK
# Bytes drawn mostly from what the receiver reacts to, so frames, cuts and noise mix.
wire_bytes = st.lists(
    st.one_of(
        st.sampled_from([0x02, 0x03, 0x04, 0x05, 0x06, 0x15, 0x41, 0x00]), st.integers(0, 255)
    ),
    max_size=80,
).map(bytes)


@given(st.lists(wire_bytes, max_size=8), st.integers(1, 12))
def test_receiver_agrees_with_the_byte_at_a_time_rules(chunks: list[bytes], limit: int) -> None:
    rx, reference = FrameReceiver(max_message_length=limit), ByteAtATimeReceiver(limit)
    for chunk in chunks:
        assert rx.feed(chunk) == reference.feed(chunk)


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
def test_frames_agree_with_the_simulator_and_a_bad_lrc_shows(message: str, flip: int) -> None:
    frame = encode_frame(message)
    assert frame == sim.build_frame(message)
    assert FrameReceiver().feed(frame) == [Frame(message)]
    corrupted = frame[:-1] + bytes([frame[-1] ^ flip])
    assert FrameReceiver().feed(corrupted) == [BadFrame(BadFrameReason.BAD_LRC, len(frame))]
    simulated_bad = sim.build_frame(message, corrupt_lrc=True)
    assert FrameReceiver().feed(simulated_bad) == [BadFrame(BadFrameReason.BAD_LRC, len(frame))]


@given(requests, payment_modes)
def test_the_simulator_reads_every_request_the_driver_writes(
    request: PaymentRequest, mode: str
) -> None:
    text = encode_request(request, payment_mode=mode)
    parsed = sim.parse_request(text.encode("ascii"))
    assert parsed == sim.V2Request(
        pos=f"{request.pos_number:02d}",
        amount=request.amount,
        answer_flag="1" if request.full_answer else "0",
        payment_mode=mode,
        transaction_type=TRANSACTION_CODE[request.transaction_type],
        currency=request.currency_numeric,
        private=request.private.ljust(10),
        delay="A010",  # the answer at the end of the transaction
        authorization="B011" if request.force_authorization else "B010",
    )


@given(requests, payment_modes, st.sampled_from(list(PaymentStatus)), st.integers(0, 10**7))
def test_the_driver_reads_every_answer_the_simulator_writes(
    request: PaymentRequest, mode: str, status: PaymentStatus, sequence: int
) -> None:
    parsed = sim.parse_request(encode_request(request, payment_mode=mode).encode("ascii"))
    text = sim.build_answer(parsed, STATUS_CHAR[status], sequence)
    answer = decode_answer(text)
    assert (answer.status, answer.amount, answer.currency_numeric) == (
        status,
        request.amount,
        request.currency_numeric,
    )
    assert (answer.pos_number, answer.payment_mode, answer.private) == (
        request.pos_number,
        mode,
        request.private,
    )
    if request.full_answer:
        assert answer.report == sim.build_report(parsed, STATUS_CHAR[status], sequence)
    else:
        assert answer.report is None
    assert answer.raw == text  # the simulator's report holds no card number to mask


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
        st.just(("kept", None)),
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
        elif kind == "kept":
            effects = ex.answer_kept()
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
