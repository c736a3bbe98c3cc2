"""Concert V2 link machines, driven byte by byte and timeout by timeout."""

from __future__ import annotations

import pytest

from tp_manager.concert_v2.codec import encode_frame
from tp_manager.concert_v2.constants import ControlCode, Timer
from tp_manager.concert_v2.link import (
    AnswerArrived,
    BadFrame,
    BadFrameReason,
    Completed,
    ControlByte,
    Effect,
    Exchange,
    ExchangePhase,
    Failed,
    Frame,
    FrameReceiver,
    LinkTimeouts,
    Listener,
    Milestone,
    Note,
    Probe,
    Probed,
    Released,
    Send,
    StartTimer,
)
from tp_manager.terminal.errors import (
    BadChecksum,
    Cancelled,
    LinkLost,
    MalformedMessage,
    ProtocolError,
    RequestRejected,
    TerminalBusy,
    TerminalNotResponding,
    TransactionTimeout,
)

STX, ETX, EOT, ENQ, ACK, NAK = b"\x02", b"\x03", b"\x04", b"\x05", b"\x06", b"\x15"
REQUEST = encode_frame("01000009991101978          A010B010")
ANSWER_TEXT = "010000009991978          "
ANSWER = encode_frame(ANSWER_TEXT)  # frame layout itself is pinned in test_codec.py
T = LinkTimeouts(control_byte=3.0, end_of_frame=3.0, transaction=120.0)


def sent(effects: list[Effect]) -> bytes:
    return b"".join(e.data for e in effects if isinstance(e, Send))


def timers(effects: list[Effect]) -> list[tuple[Timer, float]]:
    return [(e.timer, e.seconds) for e in effects if isinstance(e, StartTimer)]


def feed(machine: Exchange | Listener, data: bytes) -> list[Effect]:
    """``receive_data`` as the I/O layer runs it when writing an answer down is instant:
    each :class:`AnswerArrived` is followed by ``answer_kept()`` (its ACK)."""
    out = machine.receive_data(data)
    if any(isinstance(e, AnswerArrived) for e in out):
        out += machine.answer_kept()
    return out


def outcome(effects: list[Effect]) -> Completed | Failed | Probed | None:
    ends = [e for e in effects if isinstance(e, Completed | Failed | Probed)]
    assert len(ends) <= 1
    return ends[0] if ends else None


# --- FrameReceiver ---------------------------------------------------------------


def test_receiver_control_bytes() -> None:
    rx = FrameReceiver()
    assert rx.feed(ENQ + ACK + NAK + EOT) == [
        ControlByte(ControlCode.ENQ),
        ControlByte(ControlCode.ACK),
        ControlByte(ControlCode.NAK),
        ControlByte(ControlCode.EOT),
    ]


def test_receiver_frame_in_any_chunking() -> None:
    whole = FrameReceiver().feed(ANSWER)
    assert whole == [Frame(ANSWER_TEXT)]
    rx = FrameReceiver()
    events = []
    for i in range(len(ANSWER)):
        events += rx.feed(ANSWER[i : i + 1])
        assert events == ([] if i < len(ANSWER) - 1 else whole)
    assert rx.reset() == []  # nothing left half read
    for cut in range(1, len(ANSWER)):  # every proper prefix is held as a partial frame
        partial = FrameReceiver()
        assert partial.feed(ANSWER[:cut]) == []
        assert partial.reset() == [BadFrame(BadFrameReason.TRUNCATED, cut)]


def test_receiver_bad_lrc() -> None:
    bad = ANSWER[:-1] + bytes([ANSWER[-1] ^ 0x40])
    assert FrameReceiver().feed(bad) == [BadFrame(BadFrameReason.BAD_LRC, len(ANSWER))]


def test_receiver_lrc_may_equal_a_control_byte() -> None:
    # "\x01"-free message whose LRC is 0x02 (STX): the byte after ETX is always the LRC.
    msg = b"A" + bytes([0x41 ^ 0x03 ^ 0x02])  # xor(msg + ETX) == 0x02
    frame = STX + msg + ETX + bytes([0x02])
    assert FrameReceiver().feed(frame + ACK) == [Frame(msg.decode()), ControlByte(ControlCode.ACK)]


def test_receiver_garbage_between_frames() -> None:
    events = FrameReceiver().feed(b"\xff\x00zz" + ANSWER + b"noise" + ENQ)
    assert events == [
        BadFrame(BadFrameReason.GARBAGE, 4),
        Frame(ANSWER_TEXT),
        BadFrame(BadFrameReason.GARBAGE, 5),
        ControlByte(ControlCode.ENQ),
    ]


def test_receiver_truncated_by_new_stx_or_control_byte() -> None:
    rx = FrameReceiver()
    assert rx.feed(STX + b"0100" + ANSWER) == [
        BadFrame(BadFrameReason.TRUNCATED, 5),
        Frame(ANSWER_TEXT),
    ]
    assert rx.feed(STX + b"01" + EOT) == [
        BadFrame(BadFrameReason.TRUNCATED, 3),
        ControlByte(ControlCode.EOT),
    ]


def test_receiver_truncated_by_deadline() -> None:
    rx = FrameReceiver()
    assert rx.feed(ANSWER[:10]) == []
    assert rx.reset() == [BadFrame(BadFrameReason.TRUNCATED, 10)]
    assert rx.reset() == []  # dropped once: nothing held any more
    assert rx.feed(ANSWER) == [Frame(ANSWER_TEXT)]


def test_receiver_non_ascii_inside_frame() -> None:
    body = b"01\xe9" + ETX
    frame = STX + body + bytes([body[0] ^ body[1] ^ body[2] ^ body[3]])
    assert FrameReceiver().feed(frame) == [BadFrame(BadFrameReason.NON_ASCII, len(frame))]


def test_receiver_too_long() -> None:
    rx = FrameReceiver(max_message_length=8)
    events = rx.feed(STX + b"x" * 20 + ENQ)
    assert events == [
        BadFrame(BadFrameReason.TOO_LONG, 9),
        BadFrame(BadFrameReason.GARBAGE, 12),
        ControlByte(ControlCode.ENQ),
    ]


def test_bad_frame_errors_are_typed() -> None:
    assert isinstance(BadFrame(BadFrameReason.BAD_LRC, 3).error(), BadChecksum)
    for reason in (BadFrameReason.TRUNCATED, BadFrameReason.NON_ASCII, BadFrameReason.TOO_LONG):
        assert isinstance(BadFrame(reason, 3).error(), MalformedMessage)


# --- Exchange: the happy path ----------------------------------------------------


def run_to_request_acked(ex: Exchange) -> None:
    assert sent(ex.start()) == ENQ
    assert sent(feed(ex, ACK)) == REQUEST
    out = feed(ex, ACK)
    assert sent(out) == EOT
    assert timers(out) == [(Timer.TRANSACTION, 120.0)]
    assert ex.phase is ExchangePhase.RECEIVE


def test_exchange_happy_path_bytes_and_milestones() -> None:
    ex = Exchange(REQUEST, T)
    start = ex.start()
    assert sent(start) == ENQ and timers(start) == [(Timer.CONTROL_BYTE, 3.0)]
    out = feed(ex, ACK)
    assert sent(out) == REQUEST and Milestone("enq_acked") in out
    out = feed(ex, ACK)
    assert sent(out) == EOT and Milestone("request_acked") in out
    out = feed(ex, ENQ)
    assert sent(out) == ACK and timers(out) == [(Timer.END_OF_FRAME, 3.0)]
    out = ex.receive_data(ANSWER)
    assert AnswerArrived(ANSWER_TEXT) in out and Milestone("answer_received") in out
    assert sent(out) == b"" and timers(out) == [(Timer.KEEP_ANSWER, 1.0)]
    out = ex.answer_kept()
    assert sent(out) == ACK and timers(out) == [(Timer.CONTROL_BYTE, 3.0)]
    assert outcome(out) is None
    out = feed(ex, EOT)
    assert outcome(out) == Completed(ANSWER_TEXT)
    assert ex.finished and ex.phase is ExchangePhase.DONE
    assert feed(ex, ENQ) == [] and ex.timeout(Timer.CONTROL_BYTE) == []


def test_exchange_all_bytes_in_one_chunk() -> None:
    ex = Exchange(REQUEST, T)
    ex.start()
    feed(ex, ACK)
    out = feed(ex, ACK + ENQ + ANSWER)
    assert sent(out) == EOT + ACK + ACK
    assert outcome(feed(ex, EOT)) == Completed(ANSWER_TEXT)


def test_exchange_missing_final_eot_still_completes() -> None:
    ex = Exchange(REQUEST, T)
    run_to_request_acked(ex)
    feed(ex, ENQ + ANSWER)
    out = ex.timeout(Timer.CONTROL_BYTE)
    assert Note("concert_v2.link.eot_missing") in out
    assert outcome(out) == Completed(ANSWER_TEXT)


# --- the answer's ACK waits until the answer is written down -----------------------


def test_the_answer_is_acked_only_once_kept() -> None:
    """The terminal forgets an answer once it has the ACK: the machine holds the ACK
    until the layer above says the answer is written down, whatever comes meanwhile."""
    ex = Exchange(REQUEST, T)
    run_to_request_acked(ex)
    feed(ex, ENQ)
    out = ex.receive_data(ANSWER)
    assert AnswerArrived(ANSWER_TEXT) in out and sent(out) == b""
    assert sent(ex.receive_data(ANSWER + ENQ + EOT)) == b""  # nothing before it is kept
    assert not ex.finished and ex.answered
    assert sent(ex.answer_kept()) == ACK
    assert ex.answer_kept() == []  # once
    assert outcome(feed(ex, EOT)) == Completed(ANSWER_TEXT)


def test_an_answer_not_kept_within_the_budget_is_acked_all_the_same() -> None:
    """A stalled disk must not make the terminal give up on an answer held in memory."""
    ex = Exchange(REQUEST, T)
    run_to_request_acked(ex)
    ex.receive_data(ENQ + ANSWER)
    out = ex.timeout(Timer.KEEP_ANSWER)
    assert Note("concert_v2.link.acked_unkept") in out and sent(out) == ACK
    assert ex.answer_kept() == []  # the write that ends later sends nothing more
    assert outcome(feed(ex, EOT)) == Completed(ANSWER_TEXT)


def test_a_cancel_once_the_answer_is_in_cancels_nothing() -> None:
    ex = Exchange(REQUEST, T)
    run_to_request_acked(ex)
    ex.receive_data(ENQ + ANSWER)
    assert ex.cancel() == [] and not ex.released
    assert sent(ex.answer_kept()) == ACK
    assert outcome(feed(ex, EOT)) == Completed(ANSWER_TEXT)


def test_the_listener_holds_a_late_answers_ack_too() -> None:
    li = Listener(T)
    li.receive_data(ENQ)
    out = li.receive_data(ANSWER)
    assert AnswerArrived(ANSWER_TEXT) in out and sent(out) == b"" and li.in_session
    assert sent(li.answer_kept()) == ACK
    assert outcome(li.receive_data(EOT)) == Completed(ANSWER_TEXT)


# --- Exchange: faults --------------------------------------------------------------


def test_no_ack_to_enq_retries_then_not_responding() -> None:
    ex = Exchange(REQUEST, LinkTimeouts(enq_tries=3))
    assert sent(ex.start()) == ENQ
    assert sent(ex.timeout(Timer.CONTROL_BYTE)) == ENQ
    assert sent(ex.timeout(Timer.CONTROL_BYTE)) == ENQ
    out = ex.timeout(Timer.CONTROL_BYTE)
    assert sent(out) == EOT
    end = outcome(out)
    assert isinstance(end, Failed) and isinstance(end.error, TerminalNotResponding)
    assert end.error.money_may_have_moved is False


def test_the_terminals_enq_before_our_request_left_gives_it_the_line() -> None:
    ex = Exchange(REQUEST, T)
    ex.start()
    out = feed(ex, ENQ)
    assert sent(out) == b""  # no EOT: the terminal's session is about to start
    end = outcome(out)
    assert isinstance(end, Failed) and isinstance(end.error, TerminalBusy)
    assert end.error.money_may_have_moved is False and ex.terminal_asked
    listener = Listener(T)
    assert sent(listener.take_enq()) == ACK and listener.in_session


def test_stale_timer_is_ignored() -> None:
    ex = Exchange(REQUEST, T)
    ex.start()
    feed(ex, ACK)  # now waiting for the frame ACK, same timer name
    feed(ex, ACK)  # transaction timer now
    assert ex.timeout(Timer.CONTROL_BYTE) == []
    assert ex.phase is ExchangePhase.RECEIVE


def test_nak_resends_then_rejected() -> None:
    ex = Exchange(REQUEST, LinkTimeouts(nak_resend_tries=3))
    ex.start()
    assert sent(feed(ex, ACK)) == REQUEST
    for _ in range(3):
        assert sent(feed(ex, NAK)) == REQUEST
    out = feed(ex, NAK)
    assert sent(out) == EOT
    end = outcome(out)
    assert isinstance(end, Failed) and isinstance(end.error, RequestRejected)


def test_nak_then_ack_goes_on() -> None:
    ex = Exchange(REQUEST, T)
    ex.start()
    feed(ex, ACK)
    assert sent(feed(ex, NAK)) == REQUEST
    assert sent(feed(ex, ACK)) == EOT
    assert ex.phase is ExchangePhase.RECEIVE


def test_no_answer_to_request_frame() -> None:
    ex = Exchange(REQUEST, LinkTimeouts(nak_resend_tries=1))
    ex.start()
    feed(ex, ACK)
    assert sent(ex.timeout(Timer.CONTROL_BYTE)) == REQUEST
    end = outcome(ex.timeout(Timer.CONTROL_BYTE))
    assert isinstance(end, Failed) and isinstance(end.error, TerminalNotResponding)
    assert end.error.money_may_have_moved  # a frame left and was never answered


def test_a_frame_naked_every_time_was_not_taken() -> None:
    ex = Exchange(REQUEST, LinkTimeouts(nak_resend_tries=1))
    ex.start()
    feed(ex, ACK)
    assert sent(feed(ex, NAK)) == REQUEST
    end = outcome(feed(ex, NAK))
    assert isinstance(end, Failed) and isinstance(end.error, RequestRejected)
    assert end.error.money_may_have_moved is False


def test_a_frame_unanswered_once_then_naked_may_have_been_taken() -> None:
    ex = Exchange(REQUEST, LinkTimeouts(nak_resend_tries=1))
    ex.start()
    feed(ex, ACK)
    assert sent(ex.timeout(Timer.CONTROL_BYTE)) == REQUEST
    end = outcome(feed(ex, NAK))
    assert isinstance(end, Failed) and isinstance(end.error, RequestRejected)
    assert end.error.money_may_have_moved


def test_transaction_timeout() -> None:
    ex = Exchange(REQUEST, T)
    run_to_request_acked(ex)
    assert feed(ex, b"zz") != []  # garbage is only noted
    end = outcome(ex.timeout(Timer.TRANSACTION))
    assert isinstance(end, Failed) and isinstance(end.error, TransactionTimeout)
    assert end.error.money_may_have_moved


def test_bad_lrc_is_naked_and_resend_accepted() -> None:
    ex = Exchange(REQUEST, T)
    run_to_request_acked(ex)
    feed(ex, ENQ)
    bad = ANSWER[:-1] + bytes([ANSWER[-1] ^ 1])
    out = feed(ex, bad)
    assert sent(out) == NAK
    assert Note("concert_v2.link.nak_sent", {"reason": "bad_lrc", "tries": 1}) in out
    assert sent(feed(ex, ANSWER)) == ACK
    assert outcome(feed(ex, EOT)) == Completed(ANSWER_TEXT)


def test_bad_lrc_every_time_fails_with_bad_checksum() -> None:
    ex = Exchange(REQUEST, LinkTimeouts(receive_nak_tries=2))
    run_to_request_acked(ex)
    feed(ex, ENQ)
    bad = ANSWER[:-1] + bytes([ANSWER[-1] ^ 1])
    assert sent(feed(ex, bad)) == NAK
    assert sent(feed(ex, bad)) == NAK
    end = outcome(feed(ex, bad))
    assert isinstance(end, Failed) and isinstance(end.error, BadChecksum)
    assert end.error.money_may_have_moved


def test_truncated_frame_by_deadline_is_naked() -> None:
    ex = Exchange(REQUEST, LinkTimeouts(receive_nak_tries=1))
    run_to_request_acked(ex)
    feed(ex, ENQ + ANSWER[:12])
    assert sent(ex.timeout(Timer.END_OF_FRAME)) == NAK
    feed(ex, ANSWER[:5])
    end = outcome(ex.timeout(Timer.END_OF_FRAME))
    assert isinstance(end, Failed) and isinstance(end.error, MalformedMessage)


def test_garbage_before_answer_is_tolerated() -> None:
    ex = Exchange(REQUEST, T)
    run_to_request_acked(ex)
    out = feed(ex, b"\x00\xff#garbage#" + ENQ + b"\x7f\x7f" + ANSWER)
    assert Note("concert_v2.link.discarded", {"reason": "garbage", "size": 11}) in out
    assert outcome(feed(ex, EOT)) == Completed(ANSWER_TEXT)


def test_terminal_eot_without_frame() -> None:
    ex = Exchange(REQUEST, T)
    run_to_request_acked(ex)
    feed(ex, ENQ)
    end = outcome(feed(ex, EOT))
    assert isinstance(end, Failed) and type(end.error) is ProtocolError


def test_lost_ack_repeated_enq_and_frame() -> None:
    ex = Exchange(REQUEST, T)
    run_to_request_acked(ex)
    assert sent(feed(ex, ENQ)) == ACK
    assert sent(feed(ex, ENQ)) == ACK  # our first ACK was lost
    assert sent(feed(ex, ANSWER)) == ACK
    assert sent(feed(ex, ANSWER)) == ACK  # and again
    assert outcome(feed(ex, EOT)) == Completed(ANSWER_TEXT)


def test_cancel_while_waiting_for_answer_releases_and_runs_on() -> None:
    ex = Exchange(REQUEST, T)
    run_to_request_acked(ex)
    out = ex.cancel()
    assert sent(out) == b""  # nothing to say: Concert V2 has no cancel message
    assert len(out) == 1 and isinstance(out[0], Released)
    assert isinstance(out[0].error, Cancelled) and out[0].error.money_may_have_moved
    assert ex.released and not ex.finished  # the terminal still has the customer
    assert ex.cancel() == []
    # its answer is still read to the end
    assert sent(feed(ex, ENQ)) == ACK
    assert sent(feed(ex, ANSWER)) == ACK
    assert outcome(feed(ex, EOT)) == Completed(ANSWER_TEXT)


def test_cancel_while_waiting_for_answer_ends_at_the_transaction_timeout() -> None:
    ex = Exchange(REQUEST, T)
    run_to_request_acked(ex)
    ex.cancel()
    end = outcome(ex.timeout(Timer.TRANSACTION))
    assert isinstance(end, Failed) and isinstance(end.error, TransactionTimeout)


def test_cancel_after_the_request_left_stops_resending_it() -> None:
    ex = Exchange(REQUEST, T)
    ex.start()
    feed(ex, ACK)  # ENQ acknowledged: the request frame is out
    out = ex.cancel()
    assert isinstance(out[0], Released) and out[0].error.money_may_have_moved
    out = feed(ex, NAK)  # the terminal did not take it: no resend, line handed back
    assert sent(out) == EOT
    assert isinstance(outcome(out), Failed)


def test_cancel_before_request_sent_hands_line_back() -> None:
    ex = Exchange(REQUEST, T)
    ex.start()
    out = ex.cancel()
    assert sent(out) == EOT
    end = outcome(out)
    assert isinstance(end, Failed) and isinstance(end.error, Cancelled)
    assert end.error.money_may_have_moved is False


@pytest.mark.parametrize("acked", [False, True])
def test_the_link_lost_once_the_answer_is_in_ends_with_that_answer(acked: bool) -> None:
    """Not LINK_LOST (unknown, which would overwrite the verdict already written down)."""
    ex = Exchange(REQUEST, T)
    run_to_request_acked(ex)
    ex.receive_data(ENQ + ANSWER)
    if acked:
        ex.answer_kept()
    out = ex.link_lost("EIO")
    assert Note("concert_v2.link.lost_after_answer") in out
    assert outcome(out) == Completed(ANSWER_TEXT)


@pytest.mark.parametrize(("acks", "moved"), [(0, False), (1, True), (2, True)])
def test_link_lost(acks: int, moved: bool) -> None:
    ex = Exchange(REQUEST, T)
    ex.start()
    for _ in range(acks):
        feed(ex, ACK)
    end = outcome(ex.link_lost("EIO"))
    assert isinstance(end, Failed) and isinstance(end.error, LinkLost)
    assert end.error.money_may_have_moved is moved


# --- Listener and Probe ------------------------------------------------------------


def test_listener_reads_a_late_answer() -> None:
    li = Listener(T)
    assert not li.in_session
    assert sent(feed(li, ENQ)) == ACK
    assert li.in_session
    assert sent(feed(li, ANSWER)) == ACK
    assert outcome(feed(li, EOT)) == Completed(ANSWER_TEXT)


def test_listener_takes_a_resent_answer_whose_enq_it_never_saw() -> None:
    """A tp-manager killed after the terminal's ENQ (its ACK sent, the frame not ACKed):
    the terminal resends the frame, with no ENQ, to the restarted driver's listener."""
    li = Listener(T)
    out = li.receive_data(ANSWER)
    assert Note("concert_v2.link.frame_without_enq") in out
    assert AnswerArrived(ANSWER_TEXT) in out and sent(out) == b"" and li.in_session
    assert sent(li.answer_kept()) == ACK
    assert outcome(li.receive_data(EOT)) == Completed(ANSWER_TEXT)


def test_an_exchange_waiting_for_its_answer_ignores_a_frame_without_enq() -> None:
    """While a payment waits, a bare frame is not its answer (the terminal speaks first)."""
    ex = Exchange(REQUEST, T)
    run_to_request_acked(ex)
    out = ex.receive_data(ANSWER)
    assert not any(isinstance(e, AnswerArrived) for e in out) and sent(out) == b""


def test_listener_waits_forever_for_enq() -> None:
    li = Listener(T)
    assert feed(li, b"xx" + ACK) != []
    assert not li.finished


def test_probe_answered() -> None:
    p = Probe(0.5)
    out = p.start()
    assert sent(out) == ENQ and timers(out) == [(Timer.PROBE, 0.5)]
    out = p.receive_data(ACK)
    assert sent(out) == EOT and outcome(out) == Probed(True)


def test_probe_silent() -> None:
    p = Probe(0.5)
    p.start()
    out = p.timeout(Timer.PROBE)
    assert sent(out) == EOT and outcome(out) == Probed(False)


# --- the keep-alive probe: tries, deadlines, giving the line to a payment -------------


def test_probe_tries_each_enq_on_its_own_deadline_then_gives_up() -> None:
    p = Probe(1.0, tries=3)
    out = p.start()
    assert sent(out) == ENQ and timers(out) == [(Timer.PROBE, 1.0)]
    for n in (2, 3):
        out = p.timeout(Timer.PROBE)
        assert sent(out) == ENQ and timers(out) == [(Timer.PROBE, 1.0)]
        assert Note("concert_v2.link.probe_retry", {"tries": n}) in out
        assert outcome(out) is None
    out = p.timeout(Timer.PROBE)
    assert sent(out) == EOT and timers(out) == []
    assert outcome(out) == Probed(False, tries=3, cut_short=False)
    assert p.finished and p.timeout(Timer.PROBE) == []  # nothing after the end


def test_probe_answered_on_a_later_try_counts_its_tries() -> None:
    p = Probe(1.0, tries=3)
    p.start()
    p.timeout(Timer.PROBE)
    out = p.receive_data(b"\x00" + ACK)  # noise first: noted, then the answer
    assert sent(out) == EOT and outcome(out) == Probed(True, tries=2)


@pytest.mark.parametrize("answer", [ACK, NAK, ENQ])
def test_any_answer_but_eot_means_the_terminal_is_there(answer: bytes) -> None:
    """NAK: there but not ready.  ENQ: it wants the line to send something; our EOT ends
    our turn and the driver's Listener takes the terminal's next ENQ."""
    p = Probe(1.0, tries=3)
    p.start()
    out = p.receive_data(answer)
    assert sent(out) == EOT and outcome(out) == Probed(True, tries=1)


def test_probe_ignores_eot_frames_and_noise() -> None:
    p = Probe(1.0, tries=2)
    p.start()
    out = p.receive_data(EOT + ANSWER + b"zz")
    assert sent(out) == b"" and outcome(out) is None and not p.finished
    assert all(isinstance(e, Note) for e in out)


def test_a_stale_timer_is_ignored() -> None:
    p = Probe(1.0, tries=2)
    p.start()
    assert p.timeout(Timer.CONTROL_BYTE) == []  # not the timer the probe runs
    assert not p.finished


def test_yield_line_sends_no_further_enq_and_ends_at_this_deadline() -> None:
    p = Probe(1.0, tries=3)
    p.start()
    p.yield_line()  # a payment waits for the line
    out = p.timeout(Timer.PROBE)
    assert sent(out) == EOT  # no second ENQ
    assert outcome(out) == Probed(False, tries=1, cut_short=True)


def test_yield_line_still_takes_the_answer_to_the_enq_in_flight() -> None:
    p = Probe(1.0, tries=3)
    p.start()
    p.timeout(Timer.PROBE)
    p.yield_line()
    out = p.receive_data(ACK)  # the answer to the second ENQ: the handshake completes
    assert sent(out) == EOT and outcome(out) == Probed(True, tries=2)


def test_yield_on_the_last_try_is_a_full_verdict() -> None:
    p = Probe(1.0, tries=2)
    p.start()
    p.timeout(Timer.PROBE)
    p.yield_line()
    assert outcome(p.timeout(Timer.PROBE)) == Probed(False, tries=2, cut_short=False)


def test_probe_link_lost_is_no_verdict() -> None:
    p = Probe(1.0, tries=3)
    p.start()
    assert outcome(p.link_lost()) == Probed(False, tries=1, cut_short=True)
    assert p.finished and p.link_lost() == []


def test_probe_needs_one_try() -> None:
    with pytest.raises(ValueError):
        Probe(1.0, tries=0)
