"""benchmarks/many_terminals.py's report of where the time went (``--slowest``,
``--phases``), on payments whose phases are known."""

from __future__ import annotations

from benchmarks.many_terminals import SLOW_GAPS, Setup, phase_table, slowest_payments

LABELS = [label for _, _, label in SLOW_GAPS]


def _setup(added: dict[str, float], sent: dict[str, float]) -> Setup:
    setup = Setup("lanes", terminals=2, rounds=10, customer_s=2.0, budget_s=3.0)
    for order_id, ms in added.items():
        setup.terminal_ms[order_id] = 100.0
        setup.round_trips[order_id] = 100.0 + ms
        setup.sent[order_id] = (sent[order_id], sent[order_id] + 0.2)
    return setup


def test_the_phase_table_gives_each_phase_percentiles_and_where_the_slow_ones_lost_time() -> None:
    # 20 payments: every phase 1 ms, but the slowest one lost 30 ms in back+journal
    added = {f"P{n:02d}": 6.0 + n * 0.01 for n in range(19)}
    added["SLOW"] = 36.0
    gaps = {order_id: dict.fromkeys(LABELS, 1.0) for order_id in added}
    gaps["SLOW"]["back+journal"] = 31.0
    del gaps["P00"]["HiPay"]  # a line missing from the log: that gap is left out
    setup = _setup(added, {order_id: n * 1.0 for n, order_id in enumerate(added)})
    table = phase_table(setup, gaps)
    assert table[0].split()[:5] == ["phase", "p50", "p90", "p99", "max"]
    rows = {line[:14].strip(): [float(x) for x in line[14:].split()] for line in table[1:]}
    assert list(rows) == LABELS
    assert rows["back+journal"] == [1.0, 1.0, 31.0, 31.0, 16.0]  # the top: SLOW and P18
    assert rows["in"] == [1.0, 1.0, 1.0, 1.0, 1.0]
    assert rows["HiPay"][:4] == [1.0, 1.0, 1.0, 1.0]


def test_the_slowest_come_first_with_their_phases_and_neighbours() -> None:
    added = {"A": 10.0, "B": 25.0, "C": 12.0}
    sent = {"A": 100.0, "B": 100.01, "C": 200.0}  # A within 20 ms of B; C alone
    gaps = {order_id: {"in": 1.0, "HiPay": ms - 1.0} for order_id, ms in added.items()}
    lines = slowest_payments(_setup(added, sent), gaps, 2)
    assert lines == [
        "B: added 25.0 ms = in 1.0 HiPay 24.0; 1 other payments sent within 20 ms",
        "C: added 12.0 ms = in 1.0 HiPay 11.0; 0 other payments sent within 20 ms",
    ]
