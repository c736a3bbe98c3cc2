"""Concert V3 terminal profiles: which optional tags and ``CD`` actions a terminal family takes.

Only six request tags are mandatory (CZ CJ CA CB CD CE).  Everything else (``BA``,
``CF``, ``CK``, the ``CD`` codes beyond debit/credit/cancel) is documented by some
vendors only, and a terminal that does not know a tag answers ``AE=01 AF=09``
(format error): a tag sent blindly fails a customer's payment.  So a terminal is
driven through a *profile* that says what it takes, chosen per terminal in the config
(``terminal_profile``, ``terminals.<id>.profile``).  The ``default`` profile sends the
mandatory tags only, which every terminal takes.  ``BF`` (partial payment) is in no
profile: newer Ingenico software refuses any request that carries it.

The config loader (names), tp-manager's driver (what to send, how to read ``AF``) and
the simulator (how to play a family) share this one table; docs/terminals.md
documents it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from common.payment import FailureReason, PaymentStatus


class Action(enum.StrEnum):
    """Optional ``CD`` transaction types (PayXpert's Concert V3 pages; reboot: Castles)."""

    IDENTIFICATION = "identification"  # CD=I: "who are you", a ping that reaches the application
    STATUS = "status"  # CD=T: the outcome of a past transaction, named by its CF
    REMOTE_COLLECTION = "remote_collection"  # CD=B: télécollecte
    REBOOT = "reboot"  # CD=R
    DUPLICATE_RECEIPT = "duplicate_receipt"  # CD=3: the last receipt again


ACTION_CODES: Final[Mapping[Action, str]] = MappingProxyType(
    {
        Action.IDENTIFICATION: "I",
        Action.STATUS: "T",
        Action.REMOTE_COLLECTION: "B",
        Action.REBOOT: "R",
        Action.DUPLICATE_RECEIPT: "3",
    }
)


class TicketCopies(enum.StrEnum):
    """``CK`` position 2: whose ticket the terminal sends back."""

    CUSTOMER = "0"
    MERCHANT = "1"
    BOTH = "2"


class TicketFormat(enum.StrEnum):
    """``CK`` position 3: how the ticket in ``AK`` is written (both base64 on the wire)."""

    LATIN1 = "0"
    HTML = "1"


TICKET_TO_REGISTER: Final = "1"  # CK position 1: the terminal sends the ticket to the register


@dataclass(frozen=True, slots=True)
class Tickets:
    copies: TicketCopies = TicketCopies.BOTH
    format: TicketFormat = TicketFormat.LATIN1

    @property
    def ck(self) -> str:
        """The ``CK`` value asking for these tickets."""
        return f"{TICKET_TO_REGISTER}{self.copies}{self.format}"


Reading = tuple[PaymentStatus, FailureReason]

# AF -> (status, reason).  Sources disagree on abandon (akretion's simulator: 11; other
# vendor pages: 06 abandon, 11 operator abort): both read as abandoned, as the protocol
# notes advise, unless a profile says otherwise.  Refused and forbidden are the card or
# the terminal saying no; the others mean the payment did not happen, no one refused it.
DEFAULT_FAILURES: Final[Mapping[str, Reading]] = MappingProxyType(
    {
        "04": (PaymentStatus.REFUSED, FailureReason.REFUSED),
        "05": (PaymentStatus.REFUSED, FailureReason.FORBIDDEN),
        "06": (PaymentStatus.NOT_VERIFIED, FailureReason.ABANDONED),
        "08": (PaymentStatus.NOT_VERIFIED, FailureReason.TIMEOUT),
        "09": (PaymentStatus.NOT_VERIFIED, FailureReason.FORMAT_ERROR),
        "11": (PaymentStatus.NOT_VERIFIED, FailureReason.ABANDONED),
        "13": (PaymentStatus.NOT_VERIFIED, FailureReason.OTHER),  # currency not accepted
    }
)
UNKNOWN_FAILURE: Final[Reading] = (PaymentStatus.NOT_VERIFIED, FailureReason.OTHER)


@dataclass(frozen=True, slots=True)
class Profile:
    """What one terminal family takes beyond the mandatory tags."""

    name: str
    summary: str
    reference: bool = False  # CF carries the order's own reference, echoed back
    answer_mode: bool = False  # BA=0 (answer at the end of the transaction) is sent
    actions: frozenset[Action] = frozenset()
    tickets: Tickets | None = None  # CK asks for the ticket in AK
    failures: Mapping[str, Reading] = field(default_factory=lambda: DEFAULT_FAILURES)

    def takes(self, action: Action) -> bool:
        return action in self.actions

    def reading(self, af: str | None) -> Reading:
        """How this family's ``AF`` reads; an unknown or missing one is "other"."""
        return self.failures.get(af or "", UNKNOWN_FAILURE)


DEFAULT_PROFILE: Final = "default"
_PAYXPERT_ACTIONS: Final = frozenset(
    {
        Action.IDENTIFICATION,
        Action.STATUS,
        Action.REMOTE_COLLECTION,
        Action.DUPLICATE_RECEIPT,
    }
)

PROFILES: Final[Mapping[str, Profile]] = MappingProxyType(
    {
        DEFAULT_PROFILE: Profile(
            DEFAULT_PROFILE,
            "the six mandatory tags only: every Concert V3 terminal takes it",
        ),
        "payxpert": Profile(
            "payxpert",
            "PayXpert's Concert V3: CF reference, BA, tickets (CK/AK), identification, "
            "transaction status, remote collection, duplicate receipt",
            reference=True,
            answer_mode=True,
            actions=_PAYXPERT_ACTIONS,
            tickets=Tickets(),
        ),
        "castles": Profile(
            "castles",
            "Castles terminals (PayXpert's pages): everything of payxpert, and reboot",
            reference=True,
            answer_mode=True,
            actions=_PAYXPERT_ACTIONS | {Action.REBOOT},
            tickets=Tickets(),
        ),
    }
)


def profile_named(name: str) -> Profile:
    """The built-in profile ``name`` (any case); ``ValueError`` naming the known ones."""
    profile = PROFILES.get(name.strip().lower())
    if profile is None:
        raise ValueError(f"must be one of {', '.join(PROFILES)}")
    return profile
