"""ConcertV3Terminal over real loopback TCP: against the simulator, and against
tiny servers that misbehave on purpose (refuse, reset, stall, half answer...)."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import socket
import time

import pytest
import structlog

from common.concert_v3_profiles import profile_named
from common.logging import configure_logging
from tp_manager.concert_v3 import Contract
from tp_manager.concert_v3 import terminal as v3_terminal
from tp_manager.concert_v3.codec import BadTag, encode_fields
from tp_manager.concert_v3.transport import (
    ExchangeProgress,
    ExchangeTimeouts,
    _AnswerReader,
    connect_error,
)
from tp_manager.simulator.concert_v3_family import Ledger
from tp_manager.simulator.scenarios import Scenario
from tp_manager.terminal.errors import (
    AmountOutOfRange,
    Cancelled,
    ConnectionRefused,
    ConnectionReset,
    ConnectTimeout,
    HostUnreachable,
    IncompleteAnswer,
    LinkDown,
    LinkLost,
    MalformedMessage,
    TerminalBusy,
    TransactionTimeout,
)
from tp_manager.terminal.model import (
    FailureReason,
    LinkState,
    PaymentRequest,
    PaymentStatus,
    TransactionType,
)

from .conftest import (
    LOOPBACK,
    READY_TIMEOUT_S,
    StartServer,
    StartSimulator,
    dead_port,
    decode_whole,
    read_request,
    reset,
    terminal,
)

EUR = "978"
SILENT_SERVER_S = 60.0


def eur(amount: int, **kwargs: object) -> PaymentRequest:
    return PaymentRequest(amount=amount, currency_numeric=EUR, **kwargs)  # type: ignore[arg-type]


# --- against the simulator ------------------------------------------------------------


async def test_approved_payment_carries_every_answer_field(
    start_simulator: StartSimulator,
) -> None:
    port = await start_simulator()
    states: list[LinkState] = []
    term = terminal(port, on_link_state=lambda state, _detail: states.append(state))

    result = await term.pay(eur(999, order_id="order-1"))

    assert result.status is PaymentStatus.ACCEPTED
    assert result.failure_reason is None
    assert result.protocol == "concert-v3"
    assert (result.amount, result.currency_numeric, result.pos_number) == (999, EUR, 1)
    assert result.transaction_type is TransactionType.DEBIT
    assert result.payment_application == "001"
    assert result.reading_mode == "1"
    assert result.authorization_number is not None
    assert len(result.authorization_number) == 6
    assert result.masked_pan == "497010######1234"
    assert result.aid == "A0000000041010"
    assert result.card_expiry == "2912"
    assert result.terminal_data is not None and result.terminal_data.startswith("SIM")
    assert result.merchant_contract == "1234567"
    answer = dict(decode_whole(result.raw.encode("ascii")))
    assert answer["CZ"] == "0301" and answer["CB"] == "999" and answer["AE"] == "10"
    assert result.raw.startswith("CZ0040301")
    assert result.timings.total_ms >= result.timings.connect_ms > 0
    assert term.link_state is LinkState.UP and states == [LinkState.UP]
    assert not term.busy


@pytest.mark.parametrize(
    ("amount", "status", "reason"),
    [
        (100_001, PaymentStatus.REFUSED, FailureReason.REFUSED),
        (100_002, PaymentStatus.NOT_VERIFIED, FailureReason.OTHER),
        (100_009, PaymentStatus.NOT_VERIFIED, FailureReason.ABANDONED),
        (100_010, PaymentStatus.NOT_VERIFIED, FailureReason.TIMEOUT),
        (100_011, PaymentStatus.NOT_VERIFIED, FailureReason.FORMAT_ERROR),
    ],
)
async def test_magic_amounts_give_each_failure(
    start_simulator: StartSimulator,
    amount: int,
    status: PaymentStatus,
    reason: FailureReason,
) -> None:
    port = await start_simulator()
    result = await terminal(port).pay(eur(amount))
    assert (result.status, result.failure_reason) == (status, reason)
    assert result.amount == amount
    assert result.authorization_number is None


async def test_default_scenario_applies_below_the_magic_threshold(
    start_simulator: StartSimulator,
) -> None:
    port = await start_simulator(Scenario.ABANDON)
    result = await terminal(port).pay(eur(1_234))
    assert result.failure_reason is FailureReason.ABANDONED


async def test_customer_slow_answer_arrives_after_the_pause(
    start_simulator: StartSimulator,
) -> None:
    port = await start_simulator(Scenario.CUSTOMER_SLOW, slow_seconds=0.3)
    result = await terminal(port).pay(eur(500))
    assert result.accepted
    assert result.timings.wait_ms >= 300


async def test_customer_slower_than_transaction_timeout(start_simulator: StartSimulator) -> None:
    port = await start_simulator(Scenario.CUSTOMER_SLOW, slow_seconds=1.0)
    with pytest.raises(TransactionTimeout) as caught:
        await terminal(port, transaction_timeout=0.3).pay(eur(500))
    assert caught.value.money_may_have_moved


async def test_never_answer_times_out_and_link_stays_up(start_simulator: StartSimulator) -> None:
    port = await start_simulator()
    term = terminal(port, transaction_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(TransactionTimeout, match="no answer within the transaction timeout"):
        await term.pay(eur(100_004))
    assert 0.3 <= time.monotonic() - started < 2.0
    assert term.link_state is LinkState.UP  # we connected; the terminal just said nothing
    assert not term.busy


async def test_split_answer_is_reassembled(start_simulator: StartSimulator) -> None:
    port = await start_simulator()
    result = await terminal(port).pay(eur(100_012))
    assert result.accepted
    assert result.merchant_contract == "1234567"  # the last field, in the last segment
    assert result.terminal_data is not None


async def test_drop_link_is_an_incomplete_answer(start_simulator: StartSimulator) -> None:
    port = await start_simulator()
    term = terminal(port)
    with pytest.raises(IncompleteAnswer, match="incomplete answer") as caught:
        await term.pay(eur(100_008))
    assert caught.value.money_may_have_moved
    assert term.link_state is LinkState.DOWN


async def test_garbage_answer_is_malformed(start_simulator: StartSimulator) -> None:
    port = await start_simulator()
    with pytest.raises(BadTag):
        await terminal(port).pay(eur(100_007))


async def test_forced_application_and_refund(start_simulator: StartSimulator) -> None:
    port = await start_simulator()
    result = await terminal(port).pay(
        eur(2_500, transaction_type=TransactionType.CREDIT, payment_application="00B")
    )
    assert result.accepted
    assert result.transaction_type is TransactionType.CREDIT
    assert result.payment_application == "00B"
    assert result.reading_mode == "2"
    assert "CD0011" in result.raw and "CC00300B" in result.raw


async def test_configured_pos_number_register_id_and_version_name(
    start_simulator: StartSimulator,
) -> None:
    port = await start_simulator()
    term = terminal(port, version="ConcertV3.2", pos_number=7, register_id="CAISSE000042")
    result = await term.pay(eur(100, pos_number=3))
    answer = dict(decode_whole(result.raw.encode("ascii")))
    assert (answer["CZ"], answer["CA"], answer["CJ"]) == ("0302", "07", "CAISSE000042")
    assert result.pos_number == 7


@pytest.mark.parametrize("version", ["0300", "0301", "0302", "0310", "0320"])
async def test_every_version_seen_on_the_wire_pays(
    start_simulator: StartSimulator, version: str
) -> None:
    """The protocol notes saw 0310 and 0320 on the wire too: a terminal that speaks one of
    them must be configurable, and its CZ sent as is."""
    port = await start_simulator()
    result = await terminal(port, version=version).pay(eur(100))
    assert result.accepted
    assert dict(decode_whole(result.raw.encode("ascii")))["CZ"] == version


async def test_check_probes_and_start_sets_link_state(start_simulator: StartSimulator) -> None:
    port = await start_simulator()
    term = terminal(port)
    assert term.link_state is LinkState.DISCONNECTED
    await term.start()
    assert term.link_state is LinkState.UP
    status = await term.check()
    assert status.responding is True and status.link is LinkState.UP and not status.busy
    await term.close()
    await term.close()  # idempotent
    assert term.link_state is LinkState.DISCONNECTED


async def test_busy_then_cancel(start_simulator: StartSimulator) -> None:
    port = await start_simulator()
    term = terminal(port, transaction_timeout=30.0)
    first = asyncio.create_task(term.pay(eur(100_004, order_id="v3-order")))  # never answers
    try:
        for _ in range(100):  # until the request is on the wire (bounded: 1 s)
            if term.busy:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        with pytest.raises(TerminalBusy):
            await term.pay(eur(100))
        status = await term.check()
        assert status.busy and status.responding is None
        reply = await term.cancel()
        assert reply.cancelled and reply.order_id == "v3-order"
        assert reply.terminal_may_still_complete  # closing the connection aborts nothing
        with pytest.raises(Cancelled) as caught:
            await first
        assert caught.value.money_may_have_moved  # the request had reached the terminal
        assert not term.busy
        assert not (await term.cancel()).cancelled  # nothing in flight any more
        result = await term.pay(eur(100))  # the terminal is usable again
        assert result.accepted
    finally:
        first.cancel()


# --- faults made by hand -------------------------------------------------------------


async def test_connection_refused() -> None:
    term = terminal(dead_port())
    with pytest.raises(ConnectionRefused, match="refused the connection") as caught:
        await term.pay(eur(100))
    assert not caught.value.money_may_have_moved
    assert term.link_state is LinkState.DOWN
    status = await term.check()
    assert status.responding is False and status.link is LinkState.DOWN


async def test_amount_out_of_range_is_refused_before_connecting() -> None:
    term = terminal(dead_port())  # a connect attempt would raise ConnectionRefused
    for amount in (0, -5, 1_000_000_000_000):
        with pytest.raises(AmountOutOfRange):
            await term.pay(eur(amount))
    assert term.link_state is LinkState.DISCONNECTED


async def test_reset_after_request(start_server: StartServer) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        reset(writer)

    port = await start_server(handler)
    term = terminal(port)
    with pytest.raises(ConnectionReset) as caught:
        await term.pay(eur(100))
    assert caught.value.money_may_have_moved
    assert term.link_state is LinkState.DOWN


async def test_reset_at_once(start_server: StartServer) -> None:
    async def handler(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reset(writer)

    port = await start_server(handler)
    with pytest.raises(ConnectionReset):
        await terminal(port).pay(eur(100))


async def test_reset_after_a_complete_answer_keeps_the_answer(start_server: StartServer) -> None:
    """A terminal that ends with a TCP RST instead of a FIN (SO_LINGER 0, common in
    embedded stacks) after a whole answer: the answer stands, as after a close; reading
    it as 'connection reset' made an accepted payment unknown."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = dict((await read_request(reader)).fields)
        writer.write(_answer_to(request, AE="10", AC="123456"))
        await writer.drain()
        await asyncio.sleep(0.01)
        reset(writer)

    port = await start_server(handler)
    result = await terminal(port, settle=SILENT_SERVER_S).pay(eur(100))
    assert result.accepted and result.authorization_number == "123456"


async def test_reset_after_an_answer_without_cb_keeps_the_answer(
    start_server: StartServer,
) -> None:
    """After a red-button cancel some terminals answer without CB; then the RST."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = dict((await read_request(reader)).fields)
        del request["CB"]
        writer.write(_answer_to(request, AE="01", AF="11"))
        await writer.drain()
        await asyncio.sleep(0.01)
        reset(writer)

    port = await start_server(handler)
    result = await terminal(port, echo_grace=SILENT_SERVER_S).pay(eur(100))
    assert result.status is PaymentStatus.NOT_VERIFIED
    assert result.failure_reason is FailureReason.ABANDONED and result.amount == 100


async def test_reset_inside_an_answer_is_unknown(start_server: StartServer) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = dict((await read_request(reader)).fields)
        data = _answer_to(request, AE="10", AC="123456")
        writer.write(data[:-3])  # ends inside AC
        await writer.drain()
        await asyncio.sleep(0.01)
        reset(writer)

    port = await start_server(handler)
    with pytest.raises(ConnectionReset) as caught:
        await terminal(port).pay(eur(100))
    assert caught.value.money_may_have_moved


@pytest.mark.parametrize(
    "lost",
    [
        TimeoutError(errno.ETIMEDOUT, "Connection timed out"),
        OSError(errno.EHOSTUNREACH, "No route to host"),
    ],
)
async def test_a_line_lost_inside_an_answer_is_unknown_and_named(lost: OSError) -> None:
    # what the loop hands the protocol when the kernel gives up on the connection (TCP
    # retransmissions or keep-alives unanswered, a route gone): loopback cannot lose a
    # line, so the reader is told as asyncio tells it
    reader = _AnswerReader(LOOPBACK, 8888, (), ExchangeTimeouts(), ExchangeProgress())
    reader.received(_answer_to({"CJ": "012345678901", "CZ": "0300"}, AE="10")[:7])
    reader.ended(lost)
    with pytest.raises(LinkLost) as caught:
        await reader.answer()
    assert caught.value.money_may_have_moved
    assert lost.strerror in caught.value.message and "may have paid" in caught.value.message


async def test_silent_server_times_out(start_server: StartServer) -> None:
    async def handler(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    port = await start_server(handler)
    started = time.monotonic()
    with pytest.raises(TransactionTimeout):
        await terminal(port, transaction_timeout=0.25).pay(eur(100))
    assert time.monotonic() - started < 2.0


def _answer_to(request: dict[str, str], **extra: str) -> bytes:
    return encode_fields([*request.items(), *extra.items()])


async def test_half_answer_then_close(start_server: StartServer) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = dict((await read_request(reader)).fields)
        data = _answer_to(request, AE="10", CC="001")
        writer.write(data[: len(data) - 3])  # ends inside the CC field
        await writer.drain()
        writer.close()

    port = await start_server(handler)
    with pytest.raises(IncompleteAnswer):
        await terminal(port).pay(eur(100))


async def test_close_without_any_answer_is_link_lost(start_server: StartServer) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    port = await start_server(handler)
    with pytest.raises(LinkLost, match="without answering") as caught:
        await terminal(port).pay(eur(100))
    assert not isinstance(caught.value, IncompleteAnswer)


async def test_answer_in_tiny_segments_is_reassembled(start_server: StartServer) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = dict((await read_request(reader)).fields)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # AE first: the status arrives long before the echo is complete
        data = encode_fields([("AE", "10"), *request.items(), ("AC", "123456"), ("CG", "C1")])
        for start in range(0, len(data), 3):
            writer.write(data[start : start + 3])
            await writer.drain()
            await asyncio.sleep(0.005)
        await asyncio.sleep(1)

    port = await start_server(handler)
    result = await terminal(port).pay(eur(4_200))
    assert result.accepted
    assert (result.authorization_number, result.merchant_contract) == ("123456", "C1")


async def test_trailing_fields_after_a_pause_are_kept(start_server: StartServer) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = dict((await read_request(reader)).fields)
        writer.write(_answer_to(request, AE="10"))  # complete by the rule...
        await writer.drain()
        await asyncio.sleep(0.02)  # ...but within the settle time more comes
        writer.write(encode_fields([("AC", "654321")]))
        await writer.drain()
        await asyncio.sleep(1)

    port = await start_server(handler)
    result = await terminal(port, settle=0.2).pay(eur(100))
    assert result.authorization_number == "654321"


async def test_answer_without_echo_is_accepted_after_grace(start_server: StartServer) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(encode_fields([("AE", "10"), ("CC", "001")]))
        await writer.drain()
        await asyncio.sleep(2)  # keeps the connection open: only the grace ends the read

    port = await start_server(handler)
    contracts = [Contract("001", "7654321", "001"), Contract("002", "1111111", "002")]
    started = time.monotonic()
    result = await terminal(port, echo_grace=0.2, contracts=contracts).pay(eur(321))
    assert time.monotonic() - started >= 0.2
    assert result.accepted and result.amount == 321 and result.currency_numeric == EUR
    assert result.merchant_contract == "7654321"  # no CG: taken from the configured contract


async def test_answer_warnings_carry_the_payment_s_log_context(start_server: StartServer) -> None:
    """The answer is read in the connection's callbacks, not in the payment's task: their
    lines still carry what the control server bound (order id, command)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(encode_fields([("AE", "10")]))  # no echo: a warning after the grace
        await writer.drain()
        await asyncio.sleep(2)

    port = await start_server(handler)
    stream = io.StringIO()
    configure_logging("tp-manager", "info", stream=stream)  # tests/conftest.py restores it
    with structlog.contextvars.bound_contextvars(command="pay", order_id="CTX-1"):
        result = await terminal(port, echo_grace=0.1).pay(eur(100))
    assert result.accepted
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [warning] = [line for line in lines if line["event"] == "concert_v3.answer.echo_missing"]
    assert (warning["order_id"], warning["command"]) == ("CTX-1", "pay")


async def test_full_pan_from_terminal_is_masked(start_server: StartServer) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = dict((await read_request(reader)).fields)
        writer.write(_answer_to(request, AE="10", AA="4970101234565678"))
        await writer.drain()

    port = await start_server(handler)
    result = await terminal(port).pay(eur(100))
    assert result.masked_pan == "497010######5678"
    assert "4970101234565678" not in result.raw and "AA016497010######5678" in result.raw


async def test_unexpected_acknowledgement_then_result(start_server: StartServer) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = dict((await read_request(reader)).fields)
        writer.write(_answer_to(request, AE="11"))
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.write(_answer_to(request, AE="01", AF="04"))
        await writer.drain()

    port = await start_server(handler)
    result = await terminal(port, settle=0.05).pay(eur(100))
    assert result.status is PaymentStatus.REFUSED


async def test_acknowledgement_and_result_in_one_segment(start_server: StartServer) -> None:
    """A quick terminal's ``AE=11`` and its result can reach the register in one TCP
    segment: the result starts where the acknowledgement's first tag comes again."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = dict((await read_request(reader)).fields)
        writer.write(_answer_to(request, AE="11") + _answer_to(request, AE="01", AF="04"))
        await writer.drain()
        await asyncio.sleep(1)

    port = await start_server(handler)
    result = await terminal(port).pay(eur(100))
    assert result.status is PaymentStatus.REFUSED and result.failure_reason is FailureReason.REFUSED


def _ack_without_cb(request: dict[str, str]) -> bytes:
    return _answer_to({tag: value for tag, value in request.items() if tag != "CB"}, AE="11")


async def test_acknowledgement_missing_an_echo_is_not_the_result(
    start_server: StartServer,
) -> None:
    """An ``AE=11`` that does not echo every field is still only 'taken into account':
    read as the answer after the echo grace, it made a payment the customer was about to
    make 'not verified'."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = dict((await read_request(reader)).fields)
        writer.write(_ack_without_cb(request))
        await writer.drain()
        await asyncio.sleep(0.3)  # the customer pays, well past the echo grace
        writer.write(_answer_to(request, AE="10", AC="123456"))
        await writer.drain()
        await asyncio.sleep(1)

    port = await start_server(handler)
    result = await terminal(port, echo_grace=0.05).pay(eur(100))
    assert result.accepted and result.authorization_number == "123456"


async def test_acknowledgement_missing_an_echo_then_result_byte_by_byte(
    start_server: StartServer,
) -> None:
    """The result's first tag split across two segments, right after an acknowledgement
    that cannot be seen to be whole (no CB): its two bytes still start the result."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = dict((await read_request(reader)).fields)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = _ack_without_cb(request) + _answer_to(request, AE="01", AF="04")
        for at in range(len(data)):
            writer.write(data[at : at + 1])
            await writer.drain()
            await asyncio.sleep(0.001)
        await asyncio.sleep(1)

    port = await start_server(handler)
    result = await terminal(port, echo_grace=SILENT_SERVER_S).pay(eur(100))
    assert result.status is PaymentStatus.REFUSED and result.amount == 100


async def test_close_after_only_an_acknowledgement_is_link_lost(
    start_server: StartServer,
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = dict((await read_request(reader)).fields)
        writer.write(_ack_without_cb(request))
        await writer.drain()
        writer.close()

    port = await start_server(handler)
    with pytest.raises(LinkLost) as caught:
        await terminal(port, echo_grace=SILENT_SERVER_S).pay(eur(100))
    assert caught.value.money_may_have_moved


async def test_malformed_answer_from_server(start_server: StartServer) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"AE0x210")
        await writer.drain()
        await asyncio.sleep(1)

    port = await start_server(handler)
    with pytest.raises(MalformedMessage, match="non-digit"):
        await terminal(port).pay(eur(100))


def _full_backlog() -> tuple[socket.socket, list[socket.socket]]:
    """A listener that never accepts, with its backlog filled: a further connect hangs."""
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(0)
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(listener.getsockname())
        fillers.append(s)
    time.sleep(0.05)
    return listener, fillers


async def test_connect_timeout() -> None:
    listener, fillers = _full_backlog()
    try:
        term = terminal(listener.getsockname()[1], connect_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(ConnectTimeout, match="no TCP connection") as caught:
            await term.pay(eur(100))
        assert 0.25 <= time.monotonic() - started < 2.0
        assert not caught.value.money_may_have_moved
        assert term.link_state is LinkState.DOWN
    finally:
        for s in [*fillers, listener]:
            s.close()


async def test_cancel_while_connecting_means_nothing_was_sent() -> None:
    listener, fillers = _full_backlog()
    try:
        term = terminal(listener.getsockname()[1], connect_timeout=5.0)
        paying = asyncio.create_task(term.pay(eur(100)))
        await asyncio.sleep(0.1)
        reply = await term.cancel()
        assert reply.cancelled and not reply.terminal_may_still_complete
        with pytest.raises(Cancelled) as caught:
            await paying
        assert not caught.value.money_may_have_moved
    finally:
        for s in [*fillers, listener]:
            s.close()


def test_connect_errors_are_named() -> None:
    unreachable = connect_error(OSError(errno.EHOSTUNREACH, "No route to host"), "10.0.0.9", 8888)
    assert isinstance(unreachable, HostUnreachable) and "unreachable" in unreachable.message
    unresolved = connect_error(socket.gaierror(-2, "Name or service not known"), "tpe", 8888)
    assert isinstance(unresolved, HostUnreachable) and "resolve" in unresolved.message
    refused = connect_error(ConnectionRefusedError(errno.ECONNREFUSED, "x"), "h", 1)
    assert isinstance(refused, ConnectionRefused)
    other = connect_error(OSError(errno.EACCES, "Permission denied"), "h", 1)
    assert type(other) is LinkDown


async def test_outer_cancellation_is_not_turned_into_cancelled(
    start_simulator: StartSimulator,
) -> None:
    port = await start_simulator()
    term = terminal(port, transaction_timeout=30.0)
    paying = asyncio.create_task(term.pay(eur(100_004)))
    await asyncio.sleep(0.2)
    paying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await paying
    assert not term.busy


# --- a check and a payment on one terminal -------------------------------------------


async def gated_proxy(
    start_server: StartServer, target_port: int, first_answer_held: asyncio.Event
) -> tuple[int, asyncio.Event]:
    """A TCP relay to the simulator that holds the first connection's answer until the
    returned gate opens; ``first_answer_held`` is set once that answer is waiting."""
    gate = asyncio.Event()
    connections = 0

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        hold = connections == 1
        up_reader, up_writer = await asyncio.open_connection(LOOPBACK, target_port)

        async def upstream() -> None:
            for _ in range(1000):  # bounded: a request is a few chunks
                chunk = await reader.read(1024)
                if not chunk:
                    break
                up_writer.write(chunk)
                await up_writer.drain()

        async def downstream() -> None:
            for _ in range(1000):
                chunk = await up_reader.read(1024)
                if not chunk:
                    break
                if hold:
                    first_answer_held.set()
                    await gate.wait()
                writer.write(chunk)
                await writer.drain()

        try:
            await asyncio.gather(upstream(), downstream())
        finally:
            up_writer.transport.abort()

    return await start_server(relay), gate


async def test_a_payment_waits_for_an_identification_instead_of_being_turned_away(
    start_simulator: StartSimulator, start_server: StartServer
) -> None:
    """The status page's check identifies the terminal; a customer paying at that moment
    is served once the identification is answered, not refused TERMINAL_BUSY."""
    held = asyncio.Event()
    port, gate = await gated_proxy(start_server, await start_simulator(), held)
    term = terminal(port, profile=profile_named("castles"))
    check = asyncio.create_task(term.check())
    async with asyncio.timeout(READY_TIMEOUT_S):
        await held.wait()  # the terminal has answered; the answer is on its way
    assert not term.busy  # tp-manager lets the order through to the driver
    payment = asyncio.create_task(term.pay(eur(999, order_id="during-check")))
    for _ in range(20):  # it would have raised TerminalBusy at its first step
        await asyncio.sleep(0)
    assert not payment.done()
    gate.set()
    async with asyncio.timeout(READY_TIMEOUT_S):
        status = await check
        result = await payment
    assert status.responding is True and "CD=I" in status.detail
    assert result.accepted and result.amount == 999


async def test_a_payment_waiting_for_an_identification_is_busy_and_cancellable(
    start_simulator: StartSimulator, start_server: StartServer
) -> None:
    """While a payment waits behind a look, the terminal is taken: a second order is
    refused at once, and a cancel stops that payment before it asks anything (not "no
    transaction in flight" while it is about to charge the customer)."""
    held, ledger = asyncio.Event(), Ledger()
    port, gate = await gated_proxy(start_server, await start_simulator(ledger=ledger), held)
    term = terminal(port, profile=profile_named("castles"))
    check = asyncio.create_task(term.check())
    async with asyncio.timeout(READY_TIMEOUT_S):
        await held.wait()
    payment = asyncio.create_task(term.pay(eur(999, order_id="waits")))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not payment.done() and term.busy
    assert "waits" in term.busy_reason()
    with pytest.raises(TerminalBusy):
        await term.pay(eur(500, order_id="second"))
    reply = await term.cancel()
    assert (reply.cancelled, reply.order_id, reply.terminal_may_still_complete) == (
        True,
        "waits",
        False,
    )
    gate.set()
    async with asyncio.timeout(READY_TIMEOUT_S):
        status = await check
        with pytest.raises(Cancelled) as cancelled:
            await payment
    assert status.responding is True
    assert not cancelled.value.money_may_have_moved
    assert not term.busy
    assert [r["CD"] for r in ledger.requests if r.get("CD") != "I"] == []  # nothing asked
    assert (await term.cancel()).cancelled is False


async def test_an_identification_the_terminal_never_answers_ends_on_its_own_timer(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not on the payment's 120 s: a payment may be waiting behind it."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(SILENT_SERVER_S)  # never answers; aborted after the test

    monkeypatch.setattr(v3_terminal, "IDENTIFICATION_ANSWER_S", 0.3)
    port = await start_server(silent)
    term = terminal(port, profile=profile_named("castles"), transaction_timeout=120.0)
    async with asyncio.timeout(SILENT_SERVER_S / 2):
        status = await term.check()
    assert status.responding is False and not term.busy
