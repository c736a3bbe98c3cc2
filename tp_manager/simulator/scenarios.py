"""Scenarios the terminal simulators can play, and the magic-amount table.

Amounts below 1000.00 (in the currency's major unit) follow the scenario chosen
with ``--scenario`` (default ``approve``).  Amounts of 1000.00 and above pick a
scenario by their last two digits of minor units, so a demo or a test can show
every outcome from the register alone: 1000.01 EUR is refused, 1000.08 EUR
drops the link...  README.md carries the same table; keep both in step.

A scenario the protocol has no way to express falls back to the nearest one the
protocol has (see ``describe`` below): e.g. Concert V2 has no "abandoned" code,
so it answers status 9 (not verified / other failure).
"""

from __future__ import annotations

import enum


class Scenario(enum.StrEnum):
    APPROVE = "approve"
    REFUSE = "refuse"
    NOT_VERIFIED = "not-verified"
    CUSTOMER_SLOW = "customer-slow"
    NEVER_ANSWER = "never-answer"
    NAK_FIRST = "nak-first"  # Concert V2: NAK the first request frame
    BAD_LRC_ONCE = "bad-lrc-once"  # Concert V2: first answer frame has a wrong LRC
    GARBAGE = "garbage"  # Concert V2: noise bytes before the answer
    DROP_LINK = "drop-link"  # link lost mid-exchange (pty closed / TCP closed mid-answer)
    ABANDON = "abandon"  # customer cancels on the terminal
    TERMINAL_TIMEOUT = "terminal-timeout"  # terminal-side timeout (Concert V3 AF=08)
    FORMAT_ERROR = "format-error"  # Concert V3 AF=09
    SPLIT = "split"  # Concert V3: answer sent in several TCP segments
    # Concert V2: the answer's EOT held back for slow_seconds once the register ACKed it
    # (a test kills the register in that window: the terminal considers it delivered)
    EOT_HELD = "eot-held"


# last two digits of the minor units -> scenario, for amounts >= 1000.00
MAGIC_CENTS: dict[int, Scenario] = {
    0: Scenario.APPROVE,
    1: Scenario.REFUSE,
    2: Scenario.NOT_VERIFIED,
    3: Scenario.CUSTOMER_SLOW,
    4: Scenario.NEVER_ANSWER,
    5: Scenario.NAK_FIRST,
    6: Scenario.BAD_LRC_ONCE,
    7: Scenario.GARBAGE,
    8: Scenario.DROP_LINK,
    9: Scenario.ABANDON,
    10: Scenario.TERMINAL_TIMEOUT,
    11: Scenario.FORMAT_ERROR,
    12: Scenario.SPLIT,
    13: Scenario.EOT_HELD,
}

MAGIC_THRESHOLD_MAJOR = 1000


def scenario_for_amount(amount_minor: int, exponent: int, default: Scenario) -> Scenario:
    """Pick the scenario for one request; unknown magic digits fall back to ``default``."""
    if amount_minor < MAGIC_THRESHOLD_MAJOR * 10**exponent:
        return default
    return MAGIC_CENTS.get(amount_minor % 100, default)


def magic_amount_table() -> list[tuple[str, Scenario]]:
    """Rows for README/--help: ("1000.01", Scenario.REFUSE)..."""
    return [(f"{MAGIC_THRESHOLD_MAJOR}.{cents:02d}", s) for cents, s in MAGIC_CENTS.items()]
