"""Status recovery's questions (``CD=T``) against a terminal played byte for byte on
loopback TCP: an answer that is no verdict on the payment leaves it unknown, and a
question the terminal never answers ends on its own timers, not the payment's."""

from __future__ import annotations

import asyncio

import pytest

from common.concert_v3_profiles import profile_named
from tp_manager.concert_v3 import terminal as v3_terminal
from tp_manager.concert_v3.codec import encode_fields
from tp_manager.status_recovery import RecoveryTimers, StatusRecovery
from tp_manager.terminal.errors import TransactionTimeout
from tp_manager.terminal.model import FailureReason, PaymentRequest, PaymentStatus

from .conftest import Handler, StartServer, read_request, terminal

EUR = "978"
ORDER = "ORD-STATUS-1"
SILENT_SERVER_S = 60.0
PAYXPERT = profile_named("payxpert")


def payment() -> PaymentRequest:
    return PaymentRequest(amount=1_250, currency_numeric=EUR, order_id=ORDER)


def answering(**answer: str) -> Handler:
    """A terminal that answers the status question: the request echoed, then ``answer``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = dict((await read_request(reader)).fields)
        assert (request["CD"], request["CF"]) == ("T", ORDER)
        writer.write(encode_fields([*request.items(), *answer.items()]))
        await writer.drain()
        await asyncio.sleep(1)

    return handler


@pytest.mark.parametrize(
    "answer",
    [
        {"AE": "01", "AF": "09"},  # format error: the question was not understood
        {"AE": "01", "AF": "77"},  # a code this profile does not know: no such transaction?
        {"AE": "01"},  # no verdict for that reference
    ],
    ids=["format-error", "unknown-af", "no-af"],
)
async def test_a_status_answer_that_says_nothing_of_the_payment_is_no_verdict(
    start_server: StartServer, answer: dict[str, str]
) -> None:
    """The status answer's AF says why the *question* failed as much as how the payment
    ended: only codes that describe a payment's outcome are a verdict.  Anything else
    leaves the order unknown, for a person to check, rather than 'failed' while the
    customer may have paid."""
    port = await start_server(answering(**answer))
    verdict = await terminal(port, profile=PAYXPERT).transaction_status(payment())
    assert verdict is None


@pytest.mark.parametrize(
    ("answer", "status", "reason"),
    [
        ({"AE": "10", "AC": "123456"}, PaymentStatus.ACCEPTED, None),
        ({"AE": "01", "AF": "04"}, PaymentStatus.REFUSED, FailureReason.REFUSED),
        ({"AE": "01", "AF": "11"}, PaymentStatus.NOT_VERIFIED, FailureReason.ABANDONED),
    ],
    ids=["accepted", "refused", "abandoned"],
)
async def test_a_status_answer_about_the_payment_is_its_verdict(
    start_server: StartServer,
    answer: dict[str, str],
    status: PaymentStatus,
    reason: FailureReason | None,
) -> None:
    port = await start_server(answering(**answer))
    verdict = await terminal(port, profile=PAYXPERT).transaction_status(payment())
    assert verdict is not None
    assert (verdict.status, verdict.failure_reason, verdict.amount) == (status, reason, 1_250)


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await asyncio.sleep(SILENT_SERVER_S)  # never answers; aborted after the test


async def test_a_status_question_never_answered_ends_on_its_own_timer(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not on the payment's transaction timeout (120 s by default): no customer is
    involved, and the question holds the terminal busy, turning the next customer away."""
    monkeypatch.setattr(v3_terminal, "STATUS_ANSWER_S", 0.3)
    port = await start_server(_silent)
    term = terminal(port, profile=PAYXPERT, transaction_timeout=SILENT_SERVER_S * 2)
    async with asyncio.timeout(SILENT_SERVER_S / 2):
        with pytest.raises(TransactionTimeout):
            await term.transaction_status(payment())
    assert not term.busy


async def test_status_recovery_asks_within_its_budget(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget bounds the whole recovery, the questions' own waits included: a
    question asked near its end gets only what is left of it."""
    monkeypatch.setattr(v3_terminal, "STATUS_ANSWER_S", SILENT_SERVER_S * 2)
    closed = asyncio.Event()

    async def silent_until_closed(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_request(reader)
        await reader.read()  # the register hanging up ends it
        closed.set()

    port = await start_server(silent_until_closed)
    term = terminal(port, profile=PAYXPERT, transaction_timeout=SILENT_SERVER_S * 2)
    verdicts: list[object] = []
    timers = RecoveryTimers(tries=1, first_delay_s=0.0, spacing_s=0.0, budget_s=0.3)
    recovery = StatusRecovery(lambda *args: verdicts.append(args), timers)
    assert recovery.start("lane1", term, payment())
    try:
        async with asyncio.timeout(SILENT_SERVER_S / 2):
            await closed.wait()
    finally:
        await recovery.close()
    assert not verdicts and not term.busy
