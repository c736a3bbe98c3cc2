"""Every error code a command can answer, and whether the customer may have paid after it.

A failed reply carries ``money_may_have_moved`` itself (the driver knows per failure:
a link lost before or after the request was taken); this table is the default for a
code, used by tp-manager's error classes and for replies that do not say (the
channel's own failures, raised in the agent).  One rule (``pay.transaction_state``)
turns a failed reply into ``failed`` (nothing happened at the terminal) or
``unknown`` (the customer may have paid).
"""

from __future__ import annotations

from typing import Final

# tp-manager's typed terminal faults (tp_manager/terminal/errors.py).
TERMINAL_ERROR: Final = "TERMINAL_ERROR"
AMOUNT_OUT_OF_RANGE: Final = "AMOUNT_OUT_OF_RANGE"
INVALID_REQUEST: Final = "INVALID_REQUEST"
TERMINAL_BUSY: Final = "TERMINAL_BUSY"
TERMINAL_NOT_RESPONDING: Final = "TERMINAL_NOT_RESPONDING"
REQUEST_REJECTED: Final = "REQUEST_REJECTED"
PROTOCOL_ERROR: Final = "PROTOCOL_ERROR"
BAD_LRC: Final = "BAD_LRC"
MALFORMED_MESSAGE: Final = "MALFORMED_MESSAGE"
TRANSACTION_TIMEOUT: Final = "TRANSACTION_TIMEOUT"
LINK_LOST: Final = "LINK_LOST"
LINK_DOWN: Final = "LINK_DOWN"
PORT_NOT_FOUND: Final = "PORT_NOT_FOUND"
PORT_PERMISSION_DENIED: Final = "PORT_PERMISSION_DENIED"
PORT_SETTINGS_REJECTED: Final = "PORT_SETTINGS_REJECTED"
CONNECTION_REFUSED: Final = "CONNECTION_REFUSED"
HOST_UNREACHABLE: Final = "HOST_UNREACHABLE"
CONNECT_TIMEOUT: Final = "CONNECT_TIMEOUT"
CONNECTION_RESET: Final = "CONNECTION_RESET"
INCOMPLETE_ANSWER: Final = "INCOMPLETE_ANSWER"
CANCELLED: Final = "CANCELLED"
TERMINAL_NOT_ALLOWED: Final = "TERMINAL_NOT_ALLOWED"
NOT_SUPPORTED: Final = "NOT_SUPPORTED"
# The channel and tp-manager itself.
BAD_MESSAGE: Final = "BAD_MESSAGE"
UNKNOWN_COMMAND: Final = "UNKNOWN_COMMAND"
INVALID_PROPERTIES: Final = "INVALID_PROPERTIES"
INTERNAL_ERROR: Final = "INTERNAL_ERROR"
SHUTTING_DOWN: Final = "SHUTTING_DOWN"
TP_MANAGER_UNAVAILABLE: Final = "TP_MANAGER_UNAVAILABLE"
TP_MANAGER_TIMEOUT: Final = "TP_MANAGER_TIMEOUT"
TP_MANAGER_RESTARTED: Final = "TP_MANAGER_RESTARTED"
# tp-manager could not write a payment down before waking the terminal (a full or locked
# result store): the terminal was not asked.
RESULTS_UNAVAILABLE: Final = "RESULTS_UNAVAILABLE"
# The journal's verdicts for payments a crash cut off (supervisor_agent/journal.py).
NOT_SENT_TO_TERMINAL: Final = "NOT_SENT_TO_TERMINAL"
INTERRUPTED: Final = "INTERRUPTED"

# code -> may the customer have paid after it (the default; a reply may say otherwise).
MONEY_MAY_HAVE_MOVED: Final[dict[str, bool]] = {
    TERMINAL_ERROR: True,  # an unclassified fault: assume the worst
    AMOUNT_OUT_OF_RANGE: False,
    INVALID_REQUEST: False,
    TERMINAL_BUSY: False,
    TERMINAL_NOT_RESPONDING: False,
    REQUEST_REJECTED: False,
    PROTOCOL_ERROR: True,
    BAD_LRC: True,
    MALFORMED_MESSAGE: True,
    TRANSACTION_TIMEOUT: True,
    LINK_LOST: True,
    LINK_DOWN: False,
    PORT_NOT_FOUND: False,
    PORT_PERMISSION_DENIED: False,
    PORT_SETTINGS_REJECTED: False,
    CONNECTION_REFUSED: False,
    HOST_UNREACHABLE: False,
    CONNECT_TIMEOUT: False,
    CONNECTION_RESET: True,
    INCOMPLETE_ANSWER: True,
    CANCELLED: True,
    TERMINAL_NOT_ALLOWED: False,
    NOT_SUPPORTED: False,
    BAD_MESSAGE: False,
    UNKNOWN_COMMAND: False,
    INVALID_PROPERTIES: False,
    INTERNAL_ERROR: True,  # a bug in tp-manager mid-payment: assume the worst
    SHUTTING_DOWN: False,
    TP_MANAGER_UNAVAILABLE: False,
    TP_MANAGER_TIMEOUT: True,
    TP_MANAGER_RESTARTED: True,
    RESULTS_UNAVAILABLE: False,
    NOT_SENT_TO_TERMINAL: False,
    INTERRUPTED: True,
}


def money_may_have_moved(code: str) -> bool:
    """The default for ``code``; an unknown code may have moved money (the safe side)."""
    return MONEY_MAY_HAVE_MOVED.get(code, True)
