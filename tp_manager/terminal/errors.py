"""Typed terminal faults.

Each fault a register can meet has its own class and a stable ``code`` that
travels over ZeroMQ and maps to the HTTP API's ``errorCode`` table
(docs/error-codes.md).  ``money_may_have_moved`` tells the layers above whether
the customer could have been charged: if it is true the outcome is *unknown*,
never *failed*.
"""

from __future__ import annotations


class TerminalError(Exception):
    code = "TERMINAL_ERROR"
    money_may_have_moved = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AmountOutOfRange(TerminalError):
    """Refused before any byte is sent."""

    code = "AMOUNT_OUT_OF_RANGE"


class InvalidRequest(TerminalError):
    """A request field the wire format cannot carry (POS number, private field...)."""

    code = "INVALID_REQUEST"


class TerminalBusy(TerminalError):
    """A transaction is already in flight on this terminal."""

    code = "TERMINAL_BUSY"


class TerminalNotResponding(TerminalError):
    """No ACK to ENQ (Concert V2) or no connection (Concert V3): busy or off."""

    code = "TERMINAL_NOT_RESPONDING"


class RequestRejected(TerminalError):
    """The terminal NAKed the request frame after every retry."""

    code = "REQUEST_REJECTED"


class ProtocolError(TerminalError):
    """Bytes that break the protocol: bad LRC, malformed or truncated frame, garbage.

    Such bytes come from the terminal, so the request may have been taken and
    the customer may have paid: the outcome is unknown, never "failed".
    """

    code = "PROTOCOL_ERROR"
    money_may_have_moved = True


class BadChecksum(ProtocolError):
    code = "BAD_LRC"


class MalformedMessage(ProtocolError):
    code = "MALFORMED_MESSAGE"


class TransactionTimeout(TerminalError):
    """No result within the transaction timeout: the customer may have paid."""

    code = "TRANSACTION_TIMEOUT"
    money_may_have_moved = True


class LinkLost(TerminalError):
    """The device vanished or the connection dropped mid-exchange."""

    code = "LINK_LOST"
    money_may_have_moved = True


class LinkDown(TerminalError):
    """The link is not up (reconnecting); nothing was sent."""

    code = "LINK_DOWN"


class PortNotFound(LinkDown):
    code = "PORT_NOT_FOUND"


class PortPermissionDenied(LinkDown):
    code = "PORT_PERMISSION_DENIED"


class PortSettingsRejected(LinkDown):
    """The serial device refused the configured baud rate, data bits, parity or stop bits."""

    code = "PORT_SETTINGS_REJECTED"


class ConnectionRefused(LinkDown):
    code = "CONNECTION_REFUSED"


class HostUnreachable(LinkDown):
    code = "HOST_UNREACHABLE"


class ConnectTimeout(LinkDown):
    code = "CONNECT_TIMEOUT"


class ConnectionReset(LinkLost):
    code = "CONNECTION_RESET"


class IncompleteAnswer(LinkLost):
    """The connection closed with half an answer read."""

    code = "INCOMPLETE_ANSWER"


class Cancelled(TerminalError):
    """The transaction was cancelled by the register before the terminal answered."""

    code = "CANCELLED"
    money_may_have_moved = True


class TerminalNotAllowed(TerminalError):
    """An order named a terminal that is not in ``allowed_terminals``; nothing was sent."""

    code = "TERMINAL_NOT_ALLOWED"


class NotSupported(TerminalError):
    """The terminal protocol has no such operation."""

    code = "NOT_SUPPORTED"
