"""Typed terminal faults.

Each fault a register can meet has its own class and a stable ``code`` that
travels over ZeroMQ and maps to the HTTP API's ``errorCode`` table
(docs/error-codes.md).  ``money_may_have_moved`` tells the layers above whether
the customer could have been charged: if it is true the outcome is *unknown*,
never *failed*.  Codes and their defaults are defined once, in
:mod:`common.commands.errors`.
"""

from __future__ import annotations

from common.commands import errors as codes


class TerminalError(Exception):
    """``money_may_have_moved`` is the code's default (common.commands.errors, the one
    table); a driver sets it on the instance when it knows better for one failure."""

    code: str = codes.TERMINAL_ERROR
    money_may_have_moved: bool = codes.money_may_have_moved(codes.TERMINAL_ERROR)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.money_may_have_moved = codes.money_may_have_moved(cls.code)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AmountOutOfRange(TerminalError):
    """Refused before any byte is sent."""

    code = codes.AMOUNT_OUT_OF_RANGE


class InvalidRequest(TerminalError):
    """A request field the wire format cannot carry (POS number, private field...)."""

    code = codes.INVALID_REQUEST


class TerminalBusy(TerminalError):
    """A transaction is already in flight on this terminal."""

    code = codes.TERMINAL_BUSY


class TerminalNotResponding(TerminalError):
    """No ACK to ENQ (Concert V2) or no connection (Concert V3): busy or off."""

    code = codes.TERMINAL_NOT_RESPONDING


class RequestRejected(TerminalError):
    """The terminal NAKed the request frame after every retry."""

    code = codes.REQUEST_REJECTED


class ProtocolError(TerminalError):
    """Bytes that break the protocol: bad LRC, malformed or truncated frame, garbage.

    Such bytes come from the terminal, so the request may have been taken and
    the customer may have paid: the outcome is unknown, never "failed".
    """

    code = codes.PROTOCOL_ERROR


class BadChecksum(ProtocolError):
    code = codes.BAD_LRC


class MalformedMessage(ProtocolError):
    code = codes.MALFORMED_MESSAGE


class TransactionTimeout(TerminalError):
    """No result within the transaction timeout: the customer may have paid."""

    code = codes.TRANSACTION_TIMEOUT


class LinkLost(TerminalError):
    """The device vanished or the connection dropped mid-exchange."""

    code = codes.LINK_LOST


class LinkDown(TerminalError):
    """The link is not up (reconnecting); nothing was sent."""

    code = codes.LINK_DOWN


class PortNotFound(LinkDown):
    code = codes.PORT_NOT_FOUND


class PortPermissionDenied(LinkDown):
    code = codes.PORT_PERMISSION_DENIED


class PortSettingsRejected(LinkDown):
    """The serial device refused the configured baud rate, data bits, parity or stop bits."""

    code = codes.PORT_SETTINGS_REJECTED


class ConnectionRefused(LinkDown):
    code = codes.CONNECTION_REFUSED


class HostUnreachable(LinkDown):
    code = codes.HOST_UNREACHABLE


class ConnectTimeout(LinkDown):
    code = codes.CONNECT_TIMEOUT


class ConnectionReset(LinkLost):
    code = codes.CONNECTION_RESET


class IncompleteAnswer(LinkLost):
    """The connection closed with half an answer read."""

    code = codes.INCOMPLETE_ANSWER


class Cancelled(TerminalError):
    """The transaction was cancelled by the register before the terminal answered."""

    code = codes.CANCELLED


class TerminalNotAllowed(TerminalError):
    """An order named a terminal that is not in ``allowed_terminals``; nothing was sent."""

    code = codes.TERMINAL_NOT_ALLOWED


class NotSupported(TerminalError):
    """The terminal protocol has no such operation."""

    code = codes.NOT_SUPPORTED
