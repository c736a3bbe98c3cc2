"""``results``: terminal verdicts tp-manager holds on disk until the agent acknowledges them.

Every payment's verdict is written to tp-manager's result store before it is
replied.  A verdict the agent could not take in its reply (the answer came after
the timeout or a cancel, the agent died, tp-manager restarted mid-answer) waits
there; the agent collects them at (re)connect, when tp-manager publishes
``transaction.result_pending`` (a hint: PUB drops messages nobody reads), and on a
slow poll, reconciles its journal, then sends ``ack``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from common.commands.wire import WireModel
from common.payment import PaymentResult

NAME: Final = "results"


@dataclass(frozen=True, slots=True)
class PendingResult(WireModel):
    order_id: str
    result: PaymentResult
    answered_at: float  # epoch seconds, when the terminal's answer arrived
    late: bool  # it arrived after the payment had been given up (timeout, cancel, restart)


@dataclass(frozen=True, slots=True)
class ResultsReply(WireModel):
    results: list[PendingResult] = field(default_factory=list)
