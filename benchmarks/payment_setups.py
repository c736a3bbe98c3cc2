"""The three ways fast_path.py pays, and how it runs their payments.

A setup pays one 9.99 EUR debit per call and raises when it did not come back approved
for its order; :func:`pay_many` times each call alone and counts every failure, and
:func:`take_turns` interleaves the setups so that load on a shared machine hits them alike.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math
import time
from collections.abc import Sequence
from typing import Final

from benchmarks import log_phases
from benchmarks.concert_v2_client import ConcertV2Client
from benchmarks.harness import (
    AMOUNT_MINOR,
    AMOUNT_TEXT,
    CURRENCY_NUMERIC,
    PACED_BAUDRATE,
    percentile,
)
from benchmarks.register_http import Register

HTTP_TIMEOUT_S: Final = 30.0  # one payment through the connector
DIRECT_CONTROL_TIMEOUT_S: Final = 3.0  # pyTeliumManager's wait for a control byte
DIRECT_ANSWER_TIMEOUT_S: Final = 30.0  # pyTeliumManager's wait for the terminal's answer
MAX_CONSECUTIVE_FAILURES: Final = 3  # the connector setup stops after so many in a row


class PaymentFailed(Exception):
    """A payment that did not come back approved for its order."""


class OwnClientSetup:
    key = "own"
    label = "minimal direct client"
    stops_on_failure = True

    def __init__(self, pty: str) -> None:
        self.client = ConcertV2Client(pty)

    def pay(self, order_id: str) -> None:
        answer = self.client.pay(AMOUNT_MINOR, CURRENCY_NUMERIC)
        if not answer.accepted or answer.amount != AMOUNT_MINOR:
            raise PaymentFailed(f"status {answer.status}, amount {answer.amount}")

    def close(self) -> None:
        self.client.close()


def telium_version() -> str | None:
    try:
        return importlib.metadata.version("pyTeliumManager")
    except importlib.metadata.PackageNotFoundError:
        return None


class TeliumSetup:
    """pyTeliumManager as its README uses it: new_payment, ask, verify."""

    key = "telium"
    label = "pyTeliumManager"
    stops_on_failure = True

    def __init__(self, pty: str) -> None:
        import telium

        self.telium = telium
        self.device = telium.Telium(pty, baudrate=PACED_BAUDRATE, timeout=DIRECT_CONTROL_TIMEOUT_S)
        self.amount = float(AMOUNT_TEXT)  # the library's amounts are floats

    def pay(self, order_id: str) -> None:
        ask = self.telium.TeliumAsk.new_payment(
            self.amount, payment_mode="debit", target_currency=CURRENCY_NUMERIC
        )
        if not self.device.ask(ask):
            raise PaymentFailed("request not acknowledged")
        answer = self.device.verify(ask, waiting_timeout=DIRECT_ANSWER_TIMEOUT_S)
        if answer is None:
            raise PaymentFailed("no answer")
        if not answer.has_succeeded or round(answer.amount * 100) != AMOUNT_MINOR:
            raise PaymentFailed(f"status {answer.transaction_result}, amount {answer.amount}")

    def close(self) -> None:
        self.device.close()


class ConnectorSetup:
    key = "connector"
    label = "connector, POST /"
    stops_on_failure = False

    def __init__(self, register: Register) -> None:
        self.register = register
        self.payments: list[log_phases.Payment] = []

    def pay(self, order_id: str) -> None:
        reply = self.register.pay(order_id, AMOUNT_TEXT, HTTP_TIMEOUT_S)
        if not reply.paid(order_id):
            raise PaymentFailed(f"HTTP {reply.status}: {str(reply.body)[:200]}")
        self.payments.append(log_phases.Payment(order_id, reply.sent_at, reply.received_at))

    def close(self) -> None:
        pass


Setup = OwnClientSetup | TeliumSetup | ConnectorSetup


@dataclasses.dataclass
class Series:
    """Payments of one setup in one part of the run."""

    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    failures: list[str] = dataclasses.field(default_factory=list)
    cpu_s: float = 0.0  # this process's CPU during the payments (the direct clients')
    wall_s: float = 0.0
    broken: bool = False
    in_a_row: int = 0

    def p(self, pct: float) -> float | None:
        return percentile(self.latencies_ms, pct) if self.latencies_ms else None


def pay_many(setup: Setup, series: Series, count: int, prefix: str) -> None:
    """``count`` payments one after the other, each timed alone; failures counted."""
    if series.broken:
        return
    for _ in range(count):
        order_id = f"{prefix}-{len(series.latencies_ms) + len(series.failures)}"
        c0, t0 = time.process_time(), time.perf_counter()
        try:
            setup.pay(order_id)
            why = None
        except Exception as exc:  # every failure is counted and shown, never dropped
            why = f"{type(exc).__name__}: {exc}"
        t1, c1 = time.perf_counter(), time.process_time()
        series.wall_s += t1 - t0
        series.cpu_s += c1 - c0
        if why is None:
            series.latencies_ms.append((t1 - t0) * 1000.0)
            series.in_a_row = 0
            continue
        series.failures.append(why)
        series.in_a_row += 1
        if setup.stops_on_failure or series.in_a_row >= MAX_CONSECUTIVE_FAILURES:
            series.broken = True
            return


def take_turns(setups: Sequence[Setup], per_setup: int, block: int, tag: str) -> dict[str, Series]:
    """Each setup pays ``per_setup`` times, ``block`` at a time, the order rotating every
    round: a machine that slows down for a while slows every setup alike."""
    series = {setup.key: Series() for setup in setups}
    rounds = math.ceil(per_setup / block)
    for round_no in range(rounds):
        count = min(block, per_setup - round_no * block)
        shift = round_no % len(setups)
        for setup in [*setups[shift:], *setups[:shift]]:
            pay_many(setup, series[setup.key], count, f"{tag}-{setup.key}")
    return series
