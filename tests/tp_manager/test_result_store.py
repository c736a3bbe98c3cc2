"""The result store's lifecycle on a real SQLite file: begin, finish, late, ack, horizon,
and what a restart finds (a new store object on the same file, as a new process would)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from common import paths
from common.commands import errors as codes
from common.commands.results import ResultsReply
from tp_manager.result_records import (
    AWAITING_HORIZON_S,
    DEFAULT_TERMINAL,
    RecordState,
    ResultRecords,
)
from tp_manager.terminal.model import (
    PaymentRequest,
    PaymentResult,
    PaymentStatus,
    TransactionType,
)

EUR = "978"
V3 = "192.0.2.7:8888"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def request(order_id: str, amount: int = 999) -> PaymentRequest:
    return PaymentRequest(amount=amount, currency_numeric=EUR, order_id=order_id)


def verdict(amount: int = 999, status: PaymentStatus = PaymentStatus.ACCEPTED) -> PaymentResult:
    return PaymentResult(
        status=status,
        amount=amount,
        currency_numeric=EUR,
        transaction_type=TransactionType.DEBIT,
        protocol="concert-v2",
        masked_pan="497010######1234",
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[ResultRecords]:
    opened = ResultRecords(paths.tp_manager_results(tmp_path), clock=clock)
    yield opened
    opened.close()


def reopen(old: ResultRecords, clock: Clock) -> ResultRecords:
    old.close()
    return ResultRecords(old.path, clock=clock)


def test_the_file_is_in_the_data_dir_in_wal_mode(tmp_path: Path) -> None:
    store = ResultRecords.in_data_dir(tmp_path)
    store.close()
    assert store.path == tmp_path / "tp-manager-results.sqlite3"
    assert (tmp_path / "tp-manager-results.sqlite3").read_bytes()[18:20] == b"\x02\x02"  # WAL


def test_a_verdict_stays_until_acked_and_survives_a_restart(
    store: ResultRecords, clock: Clock
) -> None:
    a = store.begin("A", DEFAULT_TERMINAL, request("A"))
    assert store.pending() == []  # in flight: the pay reply will carry it
    clock.now += 3
    store.finish_result(a, verdict())
    [pending] = store.pending()
    assert pending.order_id == "A" and not pending.late
    assert pending.answered_at == clock.now and pending.result == verdict()
    store = reopen(store, clock)
    assert [p.order_id for p in store.pending()] == ["A"]
    assert store.ack(["A", "never-heard-of"]) == 1
    assert store.pending() == [] and store.state_of("A") is None
    assert store.ack(["A"]) == 0
    store.close()


def test_an_order_paid_again_keeps_both_verdicts_until_acked(store: ResultRecords) -> None:
    first = store.begin("H", DEFAULT_TERMINAL, request("H"))
    store.finish_result(first, verdict())
    again = store.begin("H", DEFAULT_TERMINAL, request("H", 50))
    store.finish_result(again, verdict(50, PaymentStatus.REFUSED))
    assert [p.result.amount for p in store.pending()] == [999, 50]
    assert store.ack(["H"]) == 2


def test_an_error_without_money_moved_is_not_kept(store: ResultRecords) -> None:
    b = store.begin("B", DEFAULT_TERMINAL, request("B"))
    store.finish_error(b, codes.TERMINAL_NOT_RESPONDING, money_may_have_moved=False)
    assert store.state_of("B") is None


def test_a_late_answer_settles_the_payment_that_awaits_it(
    store: ResultRecords, clock: Clock
) -> None:
    c = store.begin("C", DEFAULT_TERMINAL, request("C", 1234))
    store.finish_error(c, codes.TRANSACTION_TIMEOUT, money_may_have_moved=True)
    assert store.state_of("C") is RecordState.AWAITING and store.pending() == []
    assert store.late_answer(V3, verdict(1234)) is None  # another terminal: not its answer
    assert store.late_answer(DEFAULT_TERMINAL, verdict(99)) is None  # another amount
    clock.now += 40
    assert store.late_answer(DEFAULT_TERMINAL, verdict(1234)) == "C"
    [pending] = store.pending()
    assert pending.order_id == "C" and pending.late and pending.answered_at == clock.now
    assert store.late_answer(DEFAULT_TERMINAL, verdict(1234)) is None  # nothing awaits now
    # the reply shape the agent reads
    wire = ResultsReply(results=store.pending()).to_wire()
    assert ResultsReply.from_wire(wire).results == [pending]


def test_a_later_payment_that_reached_the_terminal_closes_the_wait(store: ResultRecords) -> None:
    d1 = store.begin("D1", DEFAULT_TERMINAL, request("D1"))
    store.finish_error(d1, codes.CANCELLED, money_may_have_moved=True)
    v = store.begin("V", V3, request("V"))  # another terminal: D1 still awaits
    store.finish_result(v, verdict())
    assert store.state_of("D1") is RecordState.AWAITING
    d2 = store.begin("D2", DEFAULT_TERMINAL, request("D2"))  # refused before the terminal
    store.finish_error(d2, codes.TERMINAL_NOT_RESPONDING, money_may_have_moved=False)
    assert store.state_of("D1") is RecordState.AWAITING
    d3 = store.begin("D3", DEFAULT_TERMINAL, request("D3"))
    store.finish_result(d3, verdict())
    assert store.state_of("D1") is None  # the terminal took D3: it owes D1 nothing any more
    assert {p.order_id for p in store.pending()} == {"V", "D3"}


def test_a_payment_cut_off_by_a_restart_awaits_its_late_answer(
    store: ResultRecords, clock: Clock
) -> None:
    store.begin("E", DEFAULT_TERMINAL, request("E", 500))
    store = reopen(store, clock)  # tp-manager was killed mid-payment
    assert store.state_of("E") is RecordState.AWAITING
    assert store.late_answer(DEFAULT_TERMINAL, verdict(500)) == "E"
    assert [(p.order_id, p.late) for p in store.pending()] == [("E", True)]
    store.close()


def test_waiting_ends_at_the_horizon(store: ResultRecords, clock: Clock) -> None:
    f = store.begin("F", DEFAULT_TERMINAL, request("F"))
    store.finish_error(f, codes.LINK_LOST, money_may_have_moved=True)
    clock.now += AWAITING_HORIZON_S + 1
    assert store.late_answer(DEFAULT_TERMINAL, verdict()) is None
    assert store.state_of("F") is None
    g = store.begin("G", DEFAULT_TERMINAL, request("G"))
    store.finish_error(g, codes.LINK_LOST, money_may_have_moved=True)
    clock.now += AWAITING_HORIZON_S + 1
    store = reopen(store, clock)  # also at start-up
    assert store.state_of("G") is None
    store.close()


def test_a_running_tp_manager_drops_waits_past_the_horizon_as_payments_go_on(
    store: ResultRecords, clock: Clock
) -> None:
    """No late answer and no restart: the next payment (any terminal) drops the wait, so
    the table does not keep every given-up payment for as long as tp-manager runs."""
    h = store.begin("H", V3, request("H"))
    store.finish_error(h, codes.TRANSACTION_TIMEOUT, money_may_have_moved=True)
    clock.now += AWAITING_HORIZON_S + 1
    store.begin("I", DEFAULT_TERMINAL, request("I"))
    assert store.state_of("H") is None
    assert store.awaiting() == []
    store.close()


PAN = "4970101234561235"  # Luhn-valid, as every real card number


def test_a_card_number_in_a_verdict_s_text_is_masked_on_disk(tmp_path: Path, clock: Clock) -> None:
    """Every text field of a verdict is masked before it is kept, as the journal masks
    it (common/redact.py ``mask_pans_in_texts``), not only the fields a protocol names
    for the card number: a terminal fills its free fields as it likes."""
    store = ResultRecords(paths.tp_manager_results(tmp_path), clock=clock)
    record = store.begin("P", V3, request("P"))
    full = PaymentResult(
        status=PaymentStatus.ACCEPTED,
        amount=999,
        currency_numeric=EUR,
        transaction_type=TransactionType.DEBIT,
        protocol="concert-v3",
        masked_pan="497010######1234",
        terminal_data=f"card={PAN}",
        merchant_contract=f"{PAN[:4]} {PAN[4:8]} {PAN[8:12]} {PAN[12:]}",
    )
    store.finish_result(record, full)
    [pending] = store.pending()
    assert pending.result.terminal_data == "card=497010######1235"
    assert pending.result.merchant_contract == "4970 10## #### 1235"
    assert pending.result.masked_pan == "497010######1234"
    store.close()
    on_disk = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("tp-manager-results*")))
    assert PAN.encode() not in on_disk
    assert b"4970 1012 3456 1235" not in on_disk


def test_a_late_answer_after_a_restart_is_kept_as_the_kind_of_payment_it_settles(
    store: ResultRecords, clock: Clock
) -> None:
    """A Concert V2 answer does not say debit or refund: the restarted driver, which never
    sent the request, reads it as a debit.  The store knows the payment it settles (a
    refund) and keeps the verdict as that, which reaches HiPay in terminal_result."""
    refund = PaymentRequest(
        amount=500, currency_numeric=EUR, order_id="R", transaction_type=TransactionType.CREDIT
    )
    store.begin("R", DEFAULT_TERMINAL, refund)
    store = reopen(store, clock)  # tp-manager was killed mid-refund
    assert store.late_answer(DEFAULT_TERMINAL, verdict(500)) == "R"
    [pending] = store.pending()
    assert pending.result.transaction_type is TransactionType.CREDIT
    store.close()
