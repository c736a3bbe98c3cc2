"""ConcertV2Terminal against a real pseudo-terminal.

The terminal side is a small byte script written here (not the project's codec),
over the master end of ``os.openpty()``; the driver opens the slave through a
symlink, the way udev names serial devices, so a test can "unplug" the device
(close the master: the driver's reads fail with EIO) and "plug it back" (a new
pty behind the same path).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import termios
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from common.config import ConfigError, load_config
from tests.backbone.test_config import BASE_YAML
from tp_manager.concert_v2.terminal import ConcertV2Terminal
from tp_manager.concert_v2.transport import SerialSettings, map_open_error, open_port
from tp_manager.terminal.errors import (
    AmountOutOfRange,
    BadChecksum,
    Cancelled,
    InvalidRequest,
    LinkDown,
    LinkLost,
    MalformedMessage,
    PortNotFound,
    PortSettingsRejected,
    RequestRejected,
    TerminalBusy,
    TerminalError,
    TerminalNotResponding,
    TransactionTimeout,
)
from tp_manager.terminal.factory import build_named, build_terminal
from tp_manager.terminal.model import (
    FailureReason,
    LinkState,
    PaymentRequest,
    PaymentResult,
    PaymentStatus,
    TransactionType,
)

# The config's credentials; each test adds its terminal's keys.
BASE_CREDENTIALS = "\n".join(BASE_YAML.splitlines()[1:]) + "\n"
STX, ETX, EOT, ENQ, ACK, NAK = b"\x02", b"\x03", b"\x04", b"\x05", b"\x06", b"\x15"
WAIT = 3.0  # upper bound for any single expectation in these tests
PAN = "4970101234567890"

# Short protocol timers so faults show up in a fraction of a second.
FAST = {
    "control_byte_timeout": 0.25,
    "end_of_frame_timeout": 0.25,
    "transaction_timeout": 2.0,
    "probe_timeout": 0.25,
    "reconnect_initial_delay": 0.05,
    "reconnect_max_delay": 0.2,
}


def frame(message: bytes, lrc_xor: int = 0) -> bytes:
    body = message + ETX
    return STX + body + bytes([functools.reduce(lambda a, b: a ^ b, body, 0) ^ lrc_xor])


def answer(
    status: str = "0",
    amount: int = 999,
    report: str | None = None,
    private: str = "",
    currency: str = "978",
) -> bytes:
    text = f"01{status}{amount:08d}1{report or ''}{currency}{private:<10}"
    return text.encode("ascii")


class FakeTerminal:
    """The terminal end of a pty, scripted by each test."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.buf = bytearray()
        self.changed = asyncio.Event()
        self.master = self.slave = -1
        self.plug()

    def plug(self) -> None:
        master, slave = os.openpty()
        os.set_blocking(master, False)
        self.master, self.slave = master, slave
        tmp = self.link.with_name(self.link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.link)
        asyncio.get_running_loop().add_reader(master, self._readable)

    def unplug(self) -> None:
        if self.master < 0:
            return
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)
        os.close(self.slave)
        self.master = self.slave = -1

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except OSError:
            return
        self.buf += data
        self.changed.set()

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    async def _wait_for(self, ready: int | None, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while ready is None or len(self.buf) < ready:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"terminal waited {timeout}s for {what}, has {bytes(self.buf)!r}"
                )
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
            if ready is None:
                return

    async def expect(self, data: bytes, timeout: float = WAIT) -> None:
        await self._wait_for(len(data), repr(data), timeout)
        got = bytes(self.buf[: len(data)])
        del self.buf[: len(data)]
        assert got == data, f"expected {data!r}, got {got!r}"

    async def read_frame(self, timeout: float = WAIT) -> bytes:
        """One request frame: checks STX/ETX/LRC itself and returns the message."""
        deadline = time.monotonic() + timeout
        while True:
            end = self.buf.find(ETX)
            if end >= 0 and len(self.buf) > end + 1:
                raw = bytes(self.buf[: end + 2])
                del self.buf[: end + 2]
                assert raw[:1] == STX, raw
                assert raw == frame(raw[1:end]), "request frame has a wrong LRC"
                return raw[1:end]
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no request frame, have {bytes(self.buf)!r}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)

    async def quiet(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        assert self.buf == b"", f"terminal got unexpected bytes {bytes(self.buf)!r}"

    async def take_request(self) -> bytes:
        """ENQ -> ACK -> request -> ACK -> EOT, as a terminal that accepts it."""
        await self.expect(ENQ)
        self.write(ACK)
        message = await self.read_frame()
        self.write(ACK)
        await self.expect(EOT)
        return message

    async def send_answer(self, message: bytes, before: bytes = b"") -> None:
        self.write(before + ENQ)
        await self.expect(ACK)
        self.write(frame(message))
        await self.expect(ACK)
        self.write(EOT)


@pytest.fixture
async def term(tmp_path: Path) -> AsyncIterator[FakeTerminal]:
    fake = FakeTerminal(tmp_path / "ttyCONCERT")
    try:
        yield fake
    finally:
        fake.unplug()


@pytest.fixture
async def states() -> list[tuple[LinkState, str]]:
    return []


@pytest.fixture
async def driver(
    term: FakeTerminal, states: list[tuple[LinkState, str]]
) -> AsyncIterator[ConcertV2Terminal]:
    drv = ConcertV2Terminal(
        str(term.link), on_link_state=lambda s, d: states.append((s, d)), **FAST
    )
    try:
        await drv.start()
        assert drv.link_state is LinkState.UP
        yield drv
    finally:
        await drv.close()


@pytest.fixture
async def patient(term: FakeTerminal) -> AsyncIterator[ConcertV2Terminal]:
    """As ``driver``, with the production probe deadline (1 s): for tests whose terminal
    answers between two probe ENQs, which a loaded machine must not turn into a third."""
    drv = ConcertV2Terminal(str(term.link), **{**FAST, "probe_timeout": 1.0})
    try:
        await drv.start()
        assert drv.link_state is LinkState.UP
        yield drv
    finally:
        await drv.close()


def pay_req(amount: int = 999, **kw: object) -> PaymentRequest:
    return PaymentRequest(amount=amount, currency_numeric="978", **kw)  # type: ignore[arg-type]


async def wait_state(drv: ConcertV2Terminal, state: LinkState, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while drv.link_state is not state:
        assert time.monotonic() < deadline, f"link stayed {drv.link_state}, wanted {state}"
        await asyncio.sleep(0.02)


# --- outcomes ------------------------------------------------------------------------


async def test_accepted_full_answer(driver: ConcertV2Terminal, term: FakeTerminal) -> None:
    task = asyncio.create_task(driver.pay(pay_req(2500, private="ORD42")))
    request = await term.take_request()
    assert request == b"0100002500110978ORD42     A010B010"
    report = f"{PAN} 2512 TID0042 AUTH123456".ljust(55)
    await term.send_answer(answer("0", 2500, report=report, private="ORD42"))
    result = await asyncio.wait_for(task, WAIT)
    assert result.status is PaymentStatus.ACCEPTED and result.accepted
    assert (result.amount, result.currency_numeric, result.private) == (2500, "978", "ORD42")
    assert result.masked_pan == "497010######7890"
    assert PAN not in result.raw and PAN not in (result.report or "")
    assert result.protocol == "concert-v2" and result.payment_mode == "1"
    t = result.timings
    assert t.total_ms > 0 and t.total_ms >= t.connect_ms + t.request_ms + t.wait_ms
    await term.quiet(0.1)  # nothing after the session ended
    assert not driver.busy


async def test_the_answer_is_acked_only_once_pays_keep_has_written_it(
    driver: ConcertV2Terminal, term: FakeTerminal
) -> None:
    """The terminal forgets an answer it has the ACK of: the driver ACKs only once the
    verdict handed to ``keep`` is written down (here: until the test lets the write end)."""
    kept: list[PaymentResult] = []
    arrived, written = asyncio.Event(), asyncio.Event()

    async def keep(result: PaymentResult) -> None:
        kept.append(result)
        arrived.set()
        await written.wait()

    task = asyncio.create_task(driver.pay(pay_req(2500, private="ORD43"), keep))
    await term.take_request()
    term.write(ENQ)
    await term.expect(ACK)
    term.write(frame(answer("0", 2500, private="ORD43")))
    await asyncio.wait_for(arrived.wait(), WAIT)
    assert kept[0].accepted and kept[0].amount == 2500
    await term.quiet(0.3)  # longer than FAST's control-byte deadline: no ACK yet
    assert driver.busy and not task.done()
    written.set()
    await term.expect(ACK)
    term.write(EOT)
    result = await asyncio.wait_for(task, WAIT)
    assert result is kept[0]


async def test_the_link_lost_while_the_answer_is_written_down_keeps_the_verdict(
    driver: ConcertV2Terminal, term: FakeTerminal
) -> None:
    """The answer frame is in and being written down when the line goes (USB unplugged):
    the payment is the terminal's verdict, not LINK_LOST (which the result store would
    then record over the verdict as a payment still owed its answer)."""
    arrived, written = asyncio.Event(), asyncio.Event()

    async def keep(result: PaymentResult) -> None:
        arrived.set()
        await written.wait()

    task = asyncio.create_task(driver.pay(pay_req(2700), keep))
    await term.take_request()
    term.write(ENQ)
    await term.expect(ACK)
    term.write(frame(answer("0", 2700)))
    await asyncio.wait_for(arrived.wait(), WAIT)
    term.unplug()
    result = await asyncio.wait_for(task, WAIT)
    assert result.accepted and result.amount == 2700
    written.set()


async def test_an_answer_whose_keep_stalls_is_acked_at_the_budget(
    tmp_path: Path, term: FakeTerminal
) -> None:
    """A write that never ends must not make the terminal give up its answer: the ACK
    goes at ``keep_answer_timeout``, and the payment gets its verdict."""
    drv = ConcertV2Terminal(str(term.link), keep_answer_timeout=0.2, **FAST)
    await drv.start()

    async def keep(result: PaymentResult) -> None:
        await asyncio.Event().wait()

    try:
        task = asyncio.create_task(drv.pay(pay_req(2600), keep))
        await term.take_request()
        await term.send_answer(answer("0", 2600))
        assert (await asyncio.wait_for(task, WAIT)).accepted
    finally:
        await drv.close()


@pytest.mark.parametrize(
    ("status", "expected", "reason"),
    [
        ("7", PaymentStatus.REFUSED, FailureReason.REFUSED),
        ("9", PaymentStatus.NOT_VERIFIED, FailureReason.OTHER),
    ],
)
async def test_refused_and_not_verified_short_answer(
    driver: ConcertV2Terminal,
    term: FakeTerminal,
    status: str,
    expected: PaymentStatus,
    reason: FailureReason,
) -> None:
    task = asyncio.create_task(
        driver.pay(pay_req(1234, full_answer=False, transaction_type=TransactionType.CREDIT))
    )
    request = await term.take_request()
    assert request[10:13] == b"011"  # short answer, card, credit
    await term.send_answer(answer(status, 1234))
    result = await asyncio.wait_for(task, WAIT)
    assert result.status is expected and result.failure_reason is reason
    assert result.report is None and result.masked_pan is None
    assert result.transaction_type is TransactionType.CREDIT


async def test_force_authorization_flag(driver: ConcertV2Terminal, term: FakeTerminal) -> None:
    task = asyncio.create_task(driver.pay(pay_req(5, force_authorization=True, pos_number=12)))
    request = await term.take_request()
    assert request.startswith(b"12") and request.endswith(b"A010B011")
    await term.send_answer(answer("0", 5).replace(b"01", b"12", 1))
    assert (await asyncio.wait_for(task, WAIT)).pos_number == 12


# --- refused before any byte -----------------------------------------------------------


@pytest.mark.parametrize(
    ("request_kw", "error"),
    [
        ({"amount": 0}, AmountOutOfRange),
        ({"amount": 100_000_000}, AmountOutOfRange),
        ({"amount": 5, "pos_number": 100}, InvalidRequest),
        ({"amount": 5, "private": "x" * 11}, InvalidRequest),
    ],
)
async def test_invalid_request_sends_nothing(
    driver: ConcertV2Terminal, term: FakeTerminal, request_kw: dict[str, object], error: type
) -> None:
    with pytest.raises(error):
        await driver.pay(PaymentRequest(currency_numeric="978", **request_kw))  # type: ignore[arg-type]
    await term.quiet(0.1)
    assert not driver.busy


# --- faults ----------------------------------------------------------------------------


async def test_no_ack_to_enq(driver: ConcertV2Terminal, term: FakeTerminal) -> None:
    with pytest.raises(TerminalNotResponding) as info:
        await asyncio.wait_for(driver.pay(pay_req()), WAIT)
    assert info.value.code == "TERMINAL_NOT_RESPONDING"
    # ENQ_TRIES tries, then the line is handed back (the last byte may still be in the pty)
    await term.expect(ENQ * 3 + EOT)
    await term.quiet(0.1)
    assert not driver.busy


async def test_nak_after_every_resend(driver: ConcertV2Terminal, term: FakeTerminal) -> None:
    task = asyncio.create_task(driver.pay(pay_req()))
    await term.expect(ENQ)
    term.write(ACK)
    for _ in range(4):  # the frame, then 3 resends
        await term.read_frame()
        term.write(NAK)
    await term.expect(EOT)
    with pytest.raises(RequestRejected):
        await asyncio.wait_for(task, WAIT)


async def test_a_request_frame_never_acked_may_have_been_taken(
    tmp_path: Path, term: FakeTerminal
) -> None:
    """The terminal ACKs the ENQ, takes the frame, and its ACK is lost on the line: it is
    in its transaction while the register hears nothing (nor to the resends).  The payment
    is unknown, never failed (a failed one is forgotten and its cashier charges again):
    and the terminal's answer, when the customer is done, settles it as a late answer."""
    late: list[PaymentResult] = []
    got_late = asyncio.Event()

    def on_late(result: PaymentResult) -> None:
        late.append(result)
        got_late.set()

    drv = ConcertV2Terminal(str(term.link), on_late_answer=on_late, **FAST)
    await drv.start()
    try:
        task = asyncio.create_task(drv.pay(pay_req(6161)))
        await term.expect(ENQ)
        term.write(ACK)
        first = await term.read_frame()  # taken; the ACK never reaches the register
        for _ in range(3):  # NAK_RESEND_TRIES resends, each unanswered
            assert await term.read_frame() == first
        await term.expect(EOT)
        with pytest.raises(TerminalNotResponding) as info:
            await asyncio.wait_for(task, WAIT)
        assert info.value.money_may_have_moved
        await term.send_answer(answer("0", 6161))  # the customer paid the first frame
        await asyncio.wait_for(got_late.wait(), WAIT)
        assert late[0].amount == 6161 and late[0].accepted
    finally:
        await drv.close()


async def test_nak_once_then_accepted(driver: ConcertV2Terminal, term: FakeTerminal) -> None:
    task = asyncio.create_task(driver.pay(pay_req()))
    await term.expect(ENQ)
    term.write(ACK)
    first = await term.read_frame()
    term.write(NAK)
    assert await term.read_frame() == first
    term.write(ACK)
    await term.expect(EOT)
    await term.send_answer(answer())
    assert (await asyncio.wait_for(task, WAIT)).accepted


async def test_bad_lrc_once_is_naked_and_resent(
    driver: ConcertV2Terminal, term: FakeTerminal
) -> None:
    task = asyncio.create_task(driver.pay(pay_req()))
    await term.take_request()
    term.write(ENQ)
    await term.expect(ACK)
    term.write(frame(answer(), lrc_xor=0x5A))
    await term.expect(NAK)
    term.write(frame(answer()))
    await term.expect(ACK)
    term.write(EOT)
    assert (await asyncio.wait_for(task, WAIT)).accepted


async def test_bad_lrc_every_time(driver: ConcertV2Terminal, term: FakeTerminal) -> None:
    task = asyncio.create_task(driver.pay(pay_req()))
    await term.take_request()
    term.write(ENQ)
    await term.expect(ACK)
    for _ in range(3):
        term.write(frame(answer(), lrc_xor=1))
        await term.expect(NAK)
    term.write(frame(answer(), lrc_xor=1))
    with pytest.raises(BadChecksum) as info:
        await asyncio.wait_for(task, WAIT)
    assert info.value.money_may_have_moved  # the terminal was answering


async def test_truncated_answer_frame(driver: ConcertV2Terminal, term: FakeTerminal) -> None:
    task = asyncio.create_task(driver.pay(pay_req()))
    await term.take_request()
    term.write(ENQ)
    await term.expect(ACK)
    for _ in range(3):
        term.write(frame(answer())[:10])  # then silence: end-of-frame deadline
        await term.expect(NAK)
    term.write(frame(answer())[:10])
    with pytest.raises(MalformedMessage):
        await asyncio.wait_for(task, WAIT)


async def test_malformed_answer_with_good_lrc(
    driver: ConcertV2Terminal, term: FakeTerminal
) -> None:
    task = asyncio.create_task(driver.pay(pay_req()))
    await term.take_request()
    await term.send_answer(b"01X0000099")  # LRC fine, layout wrong
    with pytest.raises(MalformedMessage) as info:
        await asyncio.wait_for(task, WAIT)
    assert info.value.money_may_have_moved


async def test_garbage_between_frames_is_tolerated(
    driver: ConcertV2Terminal, term: FakeTerminal
) -> None:
    task = asyncio.create_task(driver.pay(pay_req()))
    await term.take_request()
    term.write(b"\x00\xff\x80noise\x7f")
    await asyncio.sleep(0.05)
    await term.send_answer(answer(), before=b"#more#")
    assert (await asyncio.wait_for(task, WAIT)).accepted


async def test_transaction_timeout(driver: ConcertV2Terminal, term: FakeTerminal) -> None:
    started = time.monotonic()
    task = asyncio.create_task(driver.pay(pay_req()))
    await term.take_request()
    with pytest.raises(TransactionTimeout) as info:
        await asyncio.wait_for(task, WAIT + 2)
    assert time.monotonic() - started >= FAST["transaction_timeout"]
    assert info.value.money_may_have_moved


class LateAnswers:
    """``on_late_answer`` for a test: what the driver handed up, and a wait for the next."""

    def __init__(self) -> None:
        self.results: list[PaymentResult] = []
        self.arrived = asyncio.Event()

    def __call__(self, result: PaymentResult) -> None:
        self.results.append(result)
        self.arrived.set()

    async def next(self) -> PaymentResult:
        await asyncio.wait_for(self.arrived.wait(), WAIT)
        self.arrived.clear()
        return self.results[-1]


async def abandon_a_payment(drv: ConcertV2Terminal, term: FakeTerminal, amount: int) -> None:
    """A debit the terminal takes and the register gives up on (transaction timeout): the
    terminal still holds it (OCA pos #550) and will answer it later."""
    task = asyncio.create_task(drv.pay(pay_req(amount, order_id=f"ABANDONED-{amount}")))
    await term.take_request()
    with pytest.raises(TransactionTimeout) as info:
        await asyncio.wait_for(task, WAIT)
    assert info.value.money_may_have_moved


async def test_a_terminal_holding_an_abandoned_payment_ignores_the_next_one_and_answers_late(
    tmp_path: Path, term: FakeTerminal
) -> None:
    """OCA pos #550: the next request is ignored (its ENQs unanswered): it fails, nothing
    charged for it; the abandoned payment's answer, when it comes, is read as what it was
    (a debit of its amount), not as the refund the register asked for meanwhile."""
    late = LateAnswers()
    drv = ConcertV2Terminal(str(term.link), on_late_answer=late, **FAST)
    await drv.start()
    try:
        await abandon_a_payment(drv, term, 7070)
        refund = pay_req(1500, order_id="REFUND-1", transaction_type=TransactionType.CREDIT)
        with pytest.raises(TerminalNotResponding) as info:
            await asyncio.wait_for(drv.pay(refund), WAIT)
        assert not info.value.money_may_have_moved  # its request never left
        await term.expect(ENQ * 3 + EOT)
        await term.send_answer(answer("0", 7070))
        result = await late.next()
        assert (result.amount, result.transaction_type) == (7070, TransactionType.DEBIT)
    finally:
        await drv.close()


async def test_a_driver_started_mid_answer_takes_the_frame_the_terminal_resends(
    tmp_path: Path, term: FakeTerminal
) -> None:
    """tp-manager was killed after ACKing the terminal's ENQ, before ACKing its answer
    frame: the terminal resends the frame, with no ENQ, to the restarted driver, which
    takes it as a late answer (kept before its ACK) instead of ignoring it for good."""
    late = LateAnswers()
    drv = ConcertV2Terminal(str(term.link), on_late_answer=late, **FAST)
    await drv.start()
    try:
        term.write(frame(answer("0", 4242)))
        result = await late.next()
        assert (result.amount, result.accepted) == (4242, True)
        await term.expect(ACK)
        term.write(EOT)
    finally:
        await drv.close()


async def test_the_terminal_asking_for_the_line_with_a_late_answer_gets_it_before_a_payment(
    tmp_path: Path, term: FakeTerminal
) -> None:
    """The next payment's ENQ crosses the terminal's own ENQ (it has the abandoned
    payment's answer to give): the register gives it the line at once and reads that
    answer; the new payment is refused busy, nothing sent for it, and pays afterwards."""
    late = LateAnswers()
    drv = ConcertV2Terminal(str(term.link), on_late_answer=late, **FAST)
    await drv.start()
    try:
        await abandon_a_payment(drv, term, 8080)
        pay = asyncio.create_task(drv.pay(pay_req(2020, order_id="NEXT-1")))
        await term.expect(ENQ)  # the register asks for the line...
        term.write(ENQ)  # ...and so does the terminal, with its answer to give
        await term.expect(ACK)  # the register yields: the terminal's session goes first
        term.write(frame(answer("0", 8080)))
        await term.expect(ACK)
        term.write(EOT)
        result = await late.next()
        assert (result.amount, result.transaction_type) == (8080, TransactionType.DEBIT)
        with pytest.raises(TerminalBusy) as info:
            await asyncio.wait_for(pay, WAIT)
        assert not info.value.money_may_have_moved and "earlier" in info.value.message
        await term.quiet(0.05)  # no request frame went out for it
        again = asyncio.create_task(drv.pay(pay_req(2020, order_id="NEXT-1")))
        await term.take_request()
        await term.send_answer(answer("0", 2020))
        assert (await asyncio.wait_for(again, WAIT)).amount == 2020
    finally:
        await drv.close()


async def test_busy_while_paying(driver: ConcertV2Terminal, term: FakeTerminal) -> None:
    task = asyncio.create_task(driver.pay(pay_req()))
    await term.expect(ENQ)
    assert driver.busy
    with pytest.raises(TerminalBusy):
        await asyncio.wait_for(driver.pay(pay_req()), 0.1)
    status = await driver.check()
    assert status.busy and status.responding is None
    term.write(ACK)
    await term.read_frame()
    term.write(ACK)
    await term.expect(EOT)
    await term.send_answer(answer())
    assert (await asyncio.wait_for(task, WAIT)).accepted
    await term.quiet(0.05)  # no second transaction was started


async def test_cancel_keeps_the_terminal_busy_until_its_late_answer(
    tmp_path: Path, term: FakeTerminal
) -> None:
    late: list[PaymentResult] = []
    got_late = asyncio.Event()

    def on_late(result: PaymentResult) -> None:
        late.append(result)
        got_late.set()

    drv = ConcertV2Terminal(str(term.link), on_late_answer=on_late, **FAST)
    await drv.start()
    try:
        assert not (await drv.cancel()).cancelled  # nothing in flight
        task = asyncio.create_task(drv.pay(pay_req(777, private="LATE1", order_id="LATE-1")))
        await term.take_request()
        reply = await drv.cancel()
        assert reply.cancelled and reply.order_id == "LATE-1"
        assert reply.terminal_may_still_complete
        with pytest.raises(Cancelled) as info:
            await asyncio.wait_for(task, WAIT)
        assert info.value.money_may_have_moved
        # Concert V2 cannot abort: the terminal is still in its transaction
        assert drv.busy
        with pytest.raises(TerminalBusy, match="may still be completing order LATE-1"):
            await drv.pay(pay_req())
        await term.quiet(0.05)  # and no ENQ was sent into it
        await term.send_answer(answer("0", 777, private="LATE1"))
        await asyncio.wait_for(got_late.wait(), WAIT)
        assert late[0].amount == 777 and late[0].private == "LATE1" and late[0].accepted
        # handed up before its ACK; the terminal's EOT then ends the exchange
        deadline = time.monotonic() + WAIT
        while drv.busy:
            assert time.monotonic() < deadline, "the exchange never ended"
            await asyncio.sleep(0.01)
    finally:
        await drv.close()


async def test_link_lost_mid_exchange_then_recovers(
    driver: ConcertV2Terminal, term: FakeTerminal, states: list[tuple[LinkState, str]]
) -> None:
    task = asyncio.create_task(driver.pay(pay_req()))
    await term.take_request()
    term.unplug()  # the other end of the pty goes away: EIO on the driver's reads
    with pytest.raises(LinkLost) as info:
        await asyncio.wait_for(task, WAIT)
    assert info.value.money_may_have_moved
    await wait_state(driver, LinkState.DOWN)
    with pytest.raises(LinkDown):
        await driver.pay(pay_req())
    status = await driver.check()
    assert status.link is LinkState.DOWN and status.responding is None
    term.plug()  # the device is back, same path
    await wait_state(driver, LinkState.UP)
    task = asyncio.create_task(driver.pay(pay_req(4242)))
    await term.take_request()
    await term.send_answer(answer("0", 4242))
    assert (await asyncio.wait_for(task, WAIT)).amount == 4242
    seen = [s for s, _ in states]
    assert seen[:2] == [LinkState.CONNECTING, LinkState.UP]
    assert LinkState.DOWN in seen and seen[-1] is LinkState.UP


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_unplug_replug_and_silent_reopen_cycles_leak_no_descriptor_nor_task(
    driver: ConcertV2Terminal, term: FakeTerminal
) -> None:
    """Each cycle: the device unplugged and back (EIO, reopen), a payment, then the
    terminal reported silent (the port closed on purpose and reopened) and a probe
    answered.  After the first cycle, the process's open descriptors and asyncio tasks
    stay what they were: no port, pty or task is left behind by a reconnect."""
    seen: list[tuple[int, int]] = []
    for cycle in range(4):
        term.unplug()
        await wait_state(driver, LinkState.DOWN)
        term.plug()
        await wait_state(driver, LinkState.UP)
        task = asyncio.create_task(driver.pay(pay_req(100 + cycle)))
        await term.take_request()
        await term.send_answer(answer("0", 100 + cycle))
        assert (await asyncio.wait_for(task, WAIT)).amount == 100 + cycle
        assert driver.report_silent("terminal did not answer 3 keep-alive ENQs")
        await port_reopened(driver)
        probe = asyncio.create_task(driver.keepalive_probe())
        await term.expect(ENQ)
        term.write(ACK)
        await term.expect(EOT)
        assert (await asyncio.wait_for(probe, WAIT)).responding  # type: ignore[union-attr]
        await asyncio.sleep(0)  # the closed transports' last callbacks run
        seen.append((open_fds(), len(asyncio.all_tasks())))
    assert seen[1:] == [seen[0]] * 3, seen


async def test_check_probes_the_terminal(driver: ConcertV2Terminal, term: FakeTerminal) -> None:
    probe = asyncio.create_task(driver.check())
    await term.expect(ENQ)
    term.write(ACK)
    await term.expect(EOT)
    status = await asyncio.wait_for(probe, WAIT)
    assert status.responding is True and status.link is LinkState.UP and not status.busy
    # Silent terminal: ENQ unanswered, the probe gives up quickly and hands the line back.
    started = time.monotonic()
    status = await asyncio.wait_for(driver.check(), WAIT)
    assert status.responding is False
    assert time.monotonic() - started < 1.0
    await term.expect(ENQ + EOT)
    # A payment right after a probe works.
    task = asyncio.create_task(driver.pay(pay_req()))
    await term.take_request()
    await term.send_answer(answer())
    assert (await asyncio.wait_for(task, WAIT)).accepted


# --- opening the port ------------------------------------------------------------------


async def test_port_missing(tmp_path: Path) -> None:
    states: list[tuple[LinkState, str]] = []
    drv = ConcertV2Terminal(
        str(tmp_path / "ttyNOPE"), on_link_state=lambda s, d: states.append((s, d)), **FAST
    )
    await drv.start()
    try:
        assert drv.link_state is LinkState.DOWN
        assert states[-1][0] is LinkState.DOWN and "does not exist" in states[-1][1]
        with pytest.raises(PortNotFound) as info:
            await drv.pay(pay_req())
        assert info.value.code == "PORT_NOT_FOUND"
        status = await drv.check()
        assert status.link is LinkState.DOWN and "ttyNOPE" in status.detail
        # Once the device appears at that path, the backoff loop picks it up.
        fake = FakeTerminal(tmp_path / "ttyNOPE")
        try:
            await wait_state(drv, LinkState.UP)
            task = asyncio.create_task(drv.pay(pay_req()))
            await fake.take_request()
            await fake.send_answer(answer())
            assert (await asyncio.wait_for(task, WAIT)).accepted
        finally:
            fake.unplug()
    finally:
        await drv.close()
    assert drv.link_state is LinkState.DISCONNECTED


def _open_as_nobody(path: str) -> str:
    """Run the driver's real open in a child that dropped root; report what it raised."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                open_port(SerialSettings(path))
                text = "opened"
            except TerminalError as err:
                text = f"{type(err).__name__}|{err.message}"
            except BaseException as err:
                text = f"other|{err!r}"
            os.write(write_end, text.encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    deadline = time.monotonic() + WAIT
    try:
        while time.monotonic() < deadline:
            data = os.read(read_end, 4096)
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def test_permission_denied_real_eacces() -> None:
    master, slave = os.openpty()
    try:
        path = os.ttyname(slave)
        os.chmod(path, 0)
        if os.geteuid() == 0:
            text = _open_as_nobody(path)  # root bypasses modes: drop to uid 65534
        else:
            try:
                open_port(SerialSettings(path))
                text = "opened"
            except TerminalError as err:
                text = f"{type(err).__name__}|{err.message}"
        kind, _, message = text.partition("|")
        assert kind == "PortPermissionDenied", text
        assert "dialout" in message and "usermod -a -G dialout" in message
    finally:
        os.close(slave)
        os.close(master)


def test_open_error_mapping_with_real_os_errors(tmp_path: Path) -> None:
    try:
        os.open(tmp_path / "missing", os.O_RDWR)
    except OSError as err:
        mapped = map_open_error(err, "/dev/ttyX")
    assert isinstance(mapped, PortNotFound)
    with pytest.raises(LinkDown) as info:  # a directory: EISDIR, a plain LinkDown
        open_port(SerialSettings(str(tmp_path)))
    assert type(info.value) is LinkDown


def test_bad_settings_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="parity"):
        ConcertV2Terminal("/dev/null", parity="mark")
    with pytest.raises(ValueError, match="data bits"):
        ConcertV2Terminal("/dev/null", bytesize=6)


def pty_accepts_seven_bits_even_parity() -> bool:
    """Some kernels' ptys refuse CS7|PARENB (EINVAL); real UARTs and most ptys take it."""
    import termios

    master, slave = os.openpty()
    try:
        attrs = termios.tcgetattr(slave)
        attrs[2] = (attrs[2] & ~termios.CSIZE) | termios.CS7 | termios.PARENB
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        return True
    except termios.error:
        return False
    finally:
        os.close(master)
        os.close(slave)


SEVEN_E_ONE = pty_accepts_seven_bits_even_parity()


@pytest.mark.skipif(not SEVEN_E_ONE, reason="this kernel's ptys refuse 7 data bits, even parity")
async def test_seven_bit_even_parity_link(tmp_path: Path, term: FakeTerminal) -> None:
    drv = ConcertV2Terminal(str(term.link), bytesize=7, parity="even", stopbits=1, **FAST)
    await drv.start()
    try:
        assert drv.link_state is LinkState.UP
        task = asyncio.create_task(drv.pay(pay_req()))
        await term.take_request()
        await term.send_answer(answer())
        assert (await asyncio.wait_for(task, WAIT)).accepted
    finally:
        await drv.close()


@pytest.mark.skipif(SEVEN_E_ONE, reason="this kernel's ptys accept 7E1: nothing is refused")
async def test_line_settings_the_port_refuses_are_a_typed_fault(
    tmp_path: Path, term: FakeTerminal
) -> None:
    """The port refuses 7E1: a typed PORT_SETTINGS_REJECTED, link down, and the driver keeps
    retrying (its supervision does not die), so fixing the device brings it back."""
    drv = ConcertV2Terminal(str(term.link), bytesize=7, parity="even", stopbits=1, **FAST)
    await drv.start()
    try:
        assert drv.link_state is LinkState.DOWN
        with pytest.raises(PortSettingsRejected, match="dataBits"):
            await drv.pay(pay_req())
        await asyncio.sleep(0.3)  # several reconnect attempts
        assert drv._supervisor is not None and not drv._supervisor.done()
        assert bytes(term.buf) == b""  # nothing reached the terminal
    finally:
        await drv.close()


async def test_a_second_program_on_the_line_is_refused(
    driver: ConcertV2Terminal, term: FakeTerminal
) -> None:
    """Two readers on one serial line each get half of every exchange; the port is
    opened exclusively, so the second one is told instead."""
    second = ConcertV2Terminal(str(term.link), **FAST)
    try:
        await second.start()
        assert second.link_state is LinkState.DOWN
        with pytest.raises(LinkDown, match="in use by another program"):
            await second.pay(pay_req())
    finally:
        await second.close()
    task = asyncio.create_task(driver.pay(pay_req(4321)))  # the first one still owns it
    await term.take_request()
    await term.send_answer(answer("0", 4321))
    assert (await asyncio.wait_for(task, WAIT)).amount == 4321


# --- keep-alive probe: the driver's part (scheduling is tp_manager/keepalive.py's) -------


async def test_keepalive_probe_retries_then_reports_silent(
    driver: ConcertV2Terminal, term: FakeTerminal
) -> None:
    probe = asyncio.create_task(driver.keepalive_probe())
    await term.expect(ENQ * 3)  # PROBE_TRIES ENQs, each on its own deadline
    await term.expect(EOT)
    verdict = await asyncio.wait_for(probe, WAIT)
    assert verdict is not None
    assert (verdict.responding, verdict.tries, verdict.cut_short) == (False, 3, False)
    assert driver.link_state is LinkState.UP  # the driver does not judge; its caller does


async def test_keepalive_probe_answered_on_the_second_try(
    patient: ConcertV2Terminal, term: FakeTerminal
) -> None:
    probe = asyncio.create_task(patient.keepalive_probe())
    await term.expect(ENQ + ENQ)
    term.write(ACK)
    await term.expect(EOT)
    verdict = await asyncio.wait_for(probe, WAIT)
    assert verdict is not None and verdict.responding and verdict.tries == 2
    assert patient.idle_for() is not None and patient.idle_for() < WAIT  # type: ignore[operator]


async def test_a_payment_during_a_probe_waits_for_its_enq_then_the_probe_yields(
    patient: ConcertV2Terminal, term: FakeTerminal
) -> None:
    """The decided collision rule: a payment never cuts into the probe's handshake (an
    ACK on its way would be read as the answer to the payment's ENQ); it waits for the
    current ENQ's answer or deadline, and the probe sends no further ENQ."""
    probe = asyncio.create_task(patient.keepalive_probe())
    await term.expect(ENQ)
    assert patient.idle_for() is None  # the line is taken: no second probe, no payment ENQ
    pay = asyncio.create_task(patient.pay(pay_req(3131)))
    await term.expect(EOT)  # the probe's deadline passed: the line is handed back, no 2nd ENQ
    verdict = await asyncio.wait_for(probe, WAIT)
    assert verdict is not None and verdict.cut_short and verdict.tries == 1
    await term.take_request()  # and the payment starts from a clean line
    await term.send_answer(answer("0", 3131))
    assert (await asyncio.wait_for(pay, WAIT)).amount == 3131


async def test_a_payment_during_an_answered_probe_follows_its_eot(
    patient: ConcertV2Terminal, term: FakeTerminal
) -> None:
    probe = asyncio.create_task(patient.keepalive_probe())
    await term.expect(ENQ)
    pay = asyncio.create_task(patient.pay(pay_req(4141)))
    await asyncio.sleep(0.05)
    assert term.buf == b""  # the payment waits for the probe's answer, sends nothing
    term.write(ACK)
    await term.expect(EOT)
    verdict = await asyncio.wait_for(probe, WAIT)
    assert verdict is not None and verdict.responding
    await term.take_request()
    await term.send_answer(answer("0", 4141))
    assert (await asyncio.wait_for(pay, WAIT)).amount == 4141


async def test_a_payment_cancelled_while_it_waits_for_a_probe_never_starts(
    patient: ConcertV2Terminal, term: FakeTerminal
) -> None:
    """The payment is in flight (the terminal is busy) but has not asked anything yet: it
    waits for the probe's ENQ.  A cancel then is honoured: the payment ends cancelled,
    nothing was asked (no ENQ of its own, so 'failed', not 'unknown')."""
    probe = asyncio.create_task(patient.keepalive_probe())
    await term.expect(ENQ)
    pay = asyncio.create_task(patient.pay(pay_req(5252, order_id="WAITS-1")))
    await asyncio.sleep(0)  # the payment runs up to its wait for the probe
    assert patient.busy
    reply = await patient.cancel()
    assert reply.cancelled and reply.order_id == "WAITS-1"
    assert not reply.terminal_may_still_complete
    await term.expect(EOT)  # the probe's ENQ unanswered: the line handed back
    with pytest.raises(Cancelled) as info:
        await asyncio.wait_for(pay, WAIT)
    assert not info.value.money_may_have_moved
    assert (await asyncio.wait_for(probe, WAIT)).cut_short  # type: ignore[union-attr]
    await term.quiet(0.1)  # no ENQ for the cancelled payment
    assert not patient.busy


async def test_a_payment_waiting_for_a_probe_when_the_driver_closes_ends_at_once(
    patient: ConcertV2Terminal, term: FakeTerminal
) -> None:
    """tp-manager stops (the driver closes) while a payment waits for a probe's handshake:
    the payment ends LINK_DOWN, nothing asked, instead of sending its ENQ into a closing
    port and waiting forever for an exchange the closed driver no longer runs."""
    probe = asyncio.create_task(patient.keepalive_probe())
    await term.expect(ENQ)
    pay = asyncio.create_task(patient.pay(pay_req(6363)))
    await asyncio.sleep(0)  # the payment runs up to its wait for the probe
    assert patient.busy
    await patient.close()
    with pytest.raises(LinkDown) as info:
        await asyncio.wait_for(pay, WAIT)
    assert not info.value.money_may_have_moved
    assert (await asyncio.wait_for(probe, WAIT)).cut_short  # type: ignore[union-attr]
    await term.quiet(0.1)  # no ENQ of the payment's


async def test_no_probe_while_a_payment_runs(driver: ConcertV2Terminal, term: FakeTerminal) -> None:
    pay = asyncio.create_task(driver.pay(pay_req()))
    await term.expect(ENQ)
    assert driver.idle_for() is None
    assert await driver.keepalive_probe() is None
    assert not driver.report_silent("should be refused")  # a payment has its own outcome
    term.write(ACK)
    await term.read_frame()
    term.write(ACK)
    await term.expect(EOT)
    await term.send_answer(answer())
    assert (await asyncio.wait_for(pay, WAIT)).accepted
    assert driver.link_state is LinkState.UP


async def port_reopened(drv: ConcertV2Terminal) -> None:
    """Until the port is open again (a probe may run), bounded by WAIT."""
    deadline = time.monotonic() + WAIT
    while drv.idle_for() is None:
        assert time.monotonic() < deadline, "the port was not reopened"
        await asyncio.sleep(0.02)


async def test_reported_silent_the_link_is_down_reopened_and_up_at_the_first_answer(
    driver: ConcertV2Terminal, term: FakeTerminal, states: list[tuple[LinkState, str]]
) -> None:
    assert driver.report_silent("terminal did not answer 3 keep-alive ENQs")
    assert driver.link_state is LinkState.DOWN and driver.silent
    status = await driver.check()
    assert status.link is LinkState.DOWN and "keep-alive" in status.detail
    # the port is reopened, but the link stays down until the terminal answers
    await port_reopened(driver)
    assert driver.link_state is LinkState.DOWN and "reopened" in states[-1][1]
    probe = asyncio.create_task(driver.keepalive_probe())
    await term.expect(ENQ)
    term.write(ACK)
    await term.expect(EOT)
    assert (await asyncio.wait_for(probe, WAIT)).responding  # type: ignore[union-attr]
    assert driver.link_state is LinkState.UP and not driver.silent
    assert "answers again" in states[-1][1]


async def test_a_payment_to_a_silent_terminal_still_asks_and_brings_the_link_up(
    driver: ConcertV2Terminal, term: FakeTerminal
) -> None:
    assert driver.report_silent("terminal did not answer 3 keep-alive ENQs")
    await port_reopened(driver)
    task = asyncio.create_task(driver.pay(pay_req(5151)))
    await term.take_request()  # its ENQ is answered: the terminal is back
    assert driver.link_state is LinkState.UP
    await term.send_answer(answer("0", 5151))
    assert (await asyncio.wait_for(task, WAIT)).amount == 5151


async def test_a_line_that_holds_our_bytes_is_closed_and_reopened_and_gets_no_stale_bytes(
    driver: ConcertV2Terminal, term: FakeTerminal, tmp_path: Path
) -> None:
    """A line that takes no byte (RTS/CTS with the terminal off: CTS low; here the pty's
    output stopped, as XOFF does): the payment's and the probe's ENQs wait unsent in the
    port's queue.  The terminal reported silent, the port is still closed and reopened
    (closing does not wait for the queue to drain); when the line moves again, no stale
    ENQ of a finished exchange reaches the terminal; and a closed driver has let go of
    the port, so another program may open it."""
    termios.tcflow(term.slave, termios.TCOOFF)
    try:
        with pytest.raises(TerminalNotResponding):
            await asyncio.wait_for(driver.pay(pay_req()), WAIT)
        verdict = await asyncio.wait_for(driver.keepalive_probe(), WAIT)
        assert verdict is not None and not verdict.responding
        assert driver.report_silent("terminal did not answer 3 keep-alive ENQs")
        await port_reopened(driver)  # the old port was closed despite its queued bytes
    finally:
        termios.tcflow(term.slave, termios.TCOON)
    await term.quiet(0.1)  # nothing of the finished exchange and probe comes out late
    probe = asyncio.create_task(driver.keepalive_probe())
    await term.expect(ENQ)
    term.write(ACK)
    await term.expect(EOT)
    assert (await asyncio.wait_for(probe, WAIT)).responding  # type: ignore[union-attr]
    termios.tcflow(term.slave, termios.TCOOFF)  # held again, with a byte queued
    try:
        with pytest.raises(TerminalNotResponding):
            await asyncio.wait_for(driver.pay(pay_req()), WAIT)
        await driver.close()
        other = ConcertV2Terminal(str(term.link), **FAST)
        try:
            await other.start()
            assert other.link_state is LinkState.UP, other.link_state  # the port was let go
        finally:
            await other.close()
    finally:
        termios.tcflow(term.slave, termios.TCOON)
    await term.quiet(0.1)


async def test_a_payment_on_a_held_line_drops_the_bytes_an_earlier_exchange_left_unsent(
    driver: ConcertV2Terminal, term: FakeTerminal
) -> None:
    """The line holds our bytes (CTS low) through a failed payment: its ENQs and EOT wait
    unsent.  The next payment starts while the line is still held; when it moves, the
    terminal gets that payment's ENQ alone, not the failed one's first (whose ACKs the
    new payment would take for its own)."""
    termios.tcflow(term.slave, termios.TCOOFF)
    try:
        with pytest.raises(TerminalNotResponding):
            await asyncio.wait_for(driver.pay(pay_req()), WAIT)
        task = asyncio.create_task(driver.pay(pay_req(3434)))
        await asyncio.sleep(0)  # the task runs up to its wait: its ENQ is written (queued)
        assert driver.busy
    finally:
        termios.tcflow(term.slave, termios.TCOON)
    message = await term.take_request()  # ENQ first, then its frame: nothing stale before
    assert message[2:10] == b"00003434"
    await term.send_answer(answer("0", 3434))
    assert (await asyncio.wait_for(task, WAIT)).amount == 3434


# --- the configured line reaches the port ------------------------------------------------

LINE_CONFIGS = {
    # the configured terminal: a profile, with the baud rate and RTS/CTS set over it
    "top-level": "serial_port: {dev}\nserial_profile: usb-8n1\nbaudRate: 38400\nrtscts: yes\n",
    # a named terminal: the seeds' keys under terminals.<id>
    "named": (
        "serial_port: /dev/ttyUSB9\n"
        "terminals:\n"
        "  lane2: {{protocol: concert-v2, device: {dev}, baudRate: 19200, stopBits: 2, "
        "rtscts: true}}\n"
    ),
}
EXPECTED_LINE = {
    "top-level": (38400, 8, "N", 1, True),
    "named": (19200, 8, "N", 2, True),
}


def config_driver(tmp_path: Path, text: str) -> ConcertV2Terminal:
    """The driver tp-manager's factory builds from a real config file."""
    path = tmp_path / "config.yml"
    path.write_text(BASE_CREDENTIALS + text)
    config = load_config(path)
    if config.terminals:
        drv = build_named(config, config.terminals[0])
    else:
        drv = build_terminal(config, lambda state, detail: None)
    assert isinstance(drv, ConcertV2Terminal)
    return drv


async def test_a_pyserial_url_the_config_takes_is_opened_as_one(tmp_path: Path) -> None:
    """``serial_port`` may be a pyserial URL (docs/configuration.md): a terminal behind a
    serial-over-network box.  Here ``socket://`` to a real TCP peer on loopback that plays
    the terminal byte by byte; the port is opened as the URL, and a payment crosses it."""
    played: list[bytes] = []

    async def terminal(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readexactly(1) == ENQ
        writer.write(ACK)
        request = await reader.readuntil(ETX) + await reader.readexactly(1)
        played.append(request)
        writer.write(ACK)
        assert await reader.readexactly(1) == EOT
        writer.write(ENQ)
        assert await reader.readexactly(1) == ACK
        writer.write(frame(answer("0", 3838)))
        assert await reader.readexactly(1) == ACK
        writer.write(EOT)
        await writer.drain()
        await reader.read()  # until the register closes
        writer.close()

    server = await asyncio.start_server(terminal, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        drv = config_driver(tmp_path, f"serial_port: socket://127.0.0.1:{port}\n")
        await drv.start()
        try:
            assert drv.link_state is LinkState.UP, drv._detail
            result = await asyncio.wait_for(drv.pay(pay_req(3838)), WAIT)
            assert result.accepted and result.amount == 3838
            assert played and played[0] == frame(played[0][1:-2])
        finally:
            await drv.close()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("url", ["rfc2217://127.0.0.1:4000", "loop://"])
@pytest.mark.parametrize(
    "key", ["serial_port: {url}", "terminals: {{lane2: {{protocol: concert-v2, device: '{url}'}}}}"]
)
def test_a_pyserial_url_the_driver_cannot_run_is_refused_by_the_config(
    tmp_path: Path, url: str, key: str
) -> None:
    """pyserial's RFC 2217 and loop:// ports have no descriptor, and the driver reads its
    port on the event loop by descriptor: such a port could never open (LINK_DOWN, for
    good).  The config says so at once, naming what works."""
    path = tmp_path / "config.yml"
    path.write_text(
        BASE_CREDENTIALS
        + "serial_port: /dev/ttyUSB9\n" * ("terminals" in key)
        + key.format(url=url)
        + "\n"
    )
    with pytest.raises(ConfigError, match="socket://"):
        load_config(path)


@pytest.mark.parametrize("where", list(LINE_CONFIGS))
async def test_the_configured_line_is_what_the_port_is_opened_with(
    tmp_path: Path, term: FakeTerminal, where: str
) -> None:
    drv = config_driver(tmp_path, LINE_CONFIGS[where].format(dev=term.link))
    await drv.start()
    try:
        assert drv.link_state is LinkState.UP
        transport = drv._transport
        assert transport is not None
        got = transport.in_effect()  # what pyserial's opened Serial reports
        line = tuple(got[k] for k in ("baudrate", "bytesize", "parity", "stopbits", "rtscts"))
        assert line == EXPECTED_LINE[where]
        # and what the kernel's tty holds, read from the terminal's own end of the pty
        attrs = termios.tcgetattr(term.slave)
        cflag, ispeed, ospeed = attrs[2], attrs[4], attrs[5]
        baud = getattr(termios, f"B{EXPECTED_LINE[where][0]}")
        assert (ispeed, ospeed) == (baud, baud)
        assert cflag & termios.CSIZE == termios.CS8 and not cflag & termios.PARENB
        assert bool(cflag & termios.CSTOPB) is (EXPECTED_LINE[where][3] == 2)
        assert cflag & termios.CRTSCTS
        task = asyncio.create_task(drv.pay(pay_req(2222)))  # and a payment crosses it
        await term.take_request()
        await term.send_answer(answer("0", 2222))
        assert (await asyncio.wait_for(task, WAIT)).amount == 2222
    finally:
        await drv.close()


async def test_the_rs232_profile_asks_the_port_for_seven_bits_even_parity(
    tmp_path: Path, term: FakeTerminal
) -> None:
    """A pty cannot be a 7E1 line on most kernels; what is shown instead is that the
    profile's 7E1 reached the port: it is read back where the kernel takes it, and
    refused by name (PORT_SETTINGS_REJECTED, nothing sent) where it does not."""
    drv = config_driver(tmp_path, f"serial_port: {term.link}\nserial_profile: rs232-7e1\n")
    await drv.start()
    try:
        if SEVEN_E_ONE:
            assert drv._transport is not None
            got = drv._transport.in_effect()
            assert (got["bytesize"], got["parity"], got["stopbits"]) == (7, "E", 1)
        else:
            assert drv.link_state is LinkState.DOWN
            with pytest.raises(PortSettingsRejected, match="dataBits"):
                await drv.pay(pay_req())
            assert bytes(term.buf) == b""
    finally:
        await drv.close()
