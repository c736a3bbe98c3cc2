"""Every ``errorCode`` / ``error.code`` the HTTP API can answer, in one table.

docs/error-codes.md is this table for humans; a test keeps the two in step and
checks that every ``TerminalError`` code of tp-manager is listed here.

The page's *outcome unknown* column marks codes after which the customer *may*
have been charged (the terminal had the transaction when contact was lost): the
register must check the terminal or HiPay before asking the customer to pay again.
It is not kept here: it is :data:`common.commands.errors.MONEY_MAY_HAVE_MOVED`, the
table both processes share (codes only the API answers never reached tp-manager:
no); one failure may still say otherwise (``money_may_have_moved`` in its reply),
and the payment answer's ``transactionState`` is always the one to trust.
``http_status`` is the status used when the code is answered as an error
(maintenance routes, 4xx); a payment that reached the terminal answers 200
with ``paymentStatus`` FAILURE and the code in ``errorCode`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    http_status: int
    description: str


# Request errors (never reach tp-manager).
INVALID_REQUEST = "INVALID_REQUEST"
UNSUPPORTED_FIELD = "UNSUPPORTED_FIELD"
UNAUTHORIZED = "UNAUTHORIZED"
ORIGIN_NOT_ALLOWED = "ORIGIN_NOT_ALLOWED"
TERMINAL_NOT_ALLOWED = "TERMINAL_NOT_ALLOWED"
NOT_FOUND = "NOT_FOUND"
ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
TICKET_NOT_FOUND = "TICKET_NOT_FOUND"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
BODY_TOO_LARGE = "BODY_TOO_LARGE"
BODY_TIMEOUT = "BODY_TIMEOUT"
UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
INVALID_JSON = "INVALID_JSON"
MALFORMED_HTTP = "MALFORMED_HTTP"
TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"
TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"
IN_PROGRESS = "IN_PROGRESS"
ORDER_ID_REUSED = "ORDER_ID_REUSED"
STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE"
INTERNAL_ERROR = "INTERNAL_ERROR"
# Payment verdicts of the terminal.
REFUSED = "REFUSED"
NOT_VERIFIED = "NOT_VERIFIED"
ABANDONED = "ABANDONED"
TERMINAL_TIMEOUT = "TERMINAL_TIMEOUT"
FORBIDDEN = "FORBIDDEN"
FORMAT_ERROR = "FORMAT_ERROR"
TERMINAL_BUSY = "TERMINAL_BUSY"
NOT_SUPPORTED = "NOT_SUPPORTED"

_TABLE: list[ErrorCode] = [
    # --- the request itself
    ErrorCode(
        INVALID_REQUEST,
        400,
        "A field breaks a rule (details name the field and rule), or the terminal protocol "
        "cannot carry it.",
    ),
    ErrorCode(UNSUPPORTED_FIELD, 400, "A valid field of the seed this connector cannot honour."),
    ErrorCode(
        INVALID_JSON,
        400,
        "The body is not JSON, not a JSON object, or nested more than 32 levels deep.",
    ),
    ErrorCode(
        MALFORMED_HTTP,
        400,
        "The bytes are not a valid HTTP/1.1 request, or its request line or a header is longer "
        "than 8190 bytes.",
    ),
    ErrorCode(UNAUTHORIZED, 401, "Missing or wrong HTTP Basic credentials."),
    ErrorCode(ORIGIN_NOT_ALLOWED, 403, "The browser Origin is not in cors_origins."),
    ErrorCode(
        TERMINAL_NOT_ALLOWED,
        403,
        "The order (or ?terminal=) names a terminal not in allowed_terminals or not named "
        "in the config.",
    ),
    ErrorCode(NOT_FOUND, 404, "No such route."),
    ErrorCode(ORDER_NOT_FOUND, 404, "GET /transactions/{order_id}: no such order in the journal."),
    ErrorCode(
        TICKET_NOT_FOUND,
        404,
        "GET /transactions/{order_id}/ticket: the terminal gave no verdict for this order.",
    ),
    ErrorCode(METHOD_NOT_ALLOWED, 405, "The route exists with another method."),
    ErrorCode(IN_PROGRESS, 409, "This order_id is being paid right now; wait for its answer."),
    ErrorCode(
        ORDER_ID_REUSED,
        409,
        "This order_id was already used for a different payment (details name the fields); "
        "nothing was sent.",
    ),
    ErrorCode(TERMINAL_BUSY, 409, "Another payment is in flight on the terminal; nothing sent."),
    ErrorCode(BODY_TOO_LARGE, 413, "The body is larger than 64 KiB."),
    ErrorCode(BODY_TIMEOUT, 408, "The body did not arrive whole within 10 s; nothing was sent."),
    ErrorCode(
        STORAGE_UNAVAILABLE,
        503,
        "The journal cannot be written (disk full or failing); nothing was sent to the terminal.",
    ),
    ErrorCode(
        UNSUPPORTED_MEDIA_TYPE,
        415,
        "The body is not application/json (POST /v1/connector/order: not an application/* type).",
    ),
    ErrorCode(
        TOO_MANY_ATTEMPTS,
        429,
        "Too many wrong credentials from this address for this user; wait Retry-After seconds.",
    ),
    ErrorCode(
        TOO_MANY_CONNECTIONS,
        503,
        "This client address holds too many open connections; close some and retry.",
    ),
    ErrorCode(
        INTERNAL_ERROR,
        500,
        "A bug in the connector; the logs hold the details. Mid-payment: the customer may "
        "have paid.",
    ),
    # --- the terminal's verdict (answered as paymentStatus FAILURE)
    ErrorCode(REFUSED, 200, "The terminal refused the payment (card or bank refusal)."),
    ErrorCode(
        NOT_VERIFIED,
        200,
        "The terminal could not complete the payment (Concert V2 status 9: not verified).",
    ),
    ErrorCode(ABANDONED, 200, "The customer cancelled the payment on the terminal."),
    ErrorCode(TERMINAL_TIMEOUT, 200, "The terminal gave up waiting (for the card or the bank)."),
    ErrorCode(FORBIDDEN, 200, "The terminal says this operation is forbidden."),
    ErrorCode(FORMAT_ERROR, 200, "The terminal rejected the request's format."),
    # --- tp-manager and the link (TerminalError codes, passed through)
    ErrorCode("AMOUNT_OUT_OF_RANGE", 400, "The amount does not fit the terminal protocol."),
    ErrorCode(
        "TERMINAL_NOT_RESPONDING",
        503,
        (
            "The terminal did not answer the call (off, busy on its own menu); nothing was "
            "paid. Concert V2: a request frame left and never answered may have been taken, "
            "so that payment is unknown."
        ),
    ),
    ErrorCode("REQUEST_REJECTED", 502, "The terminal rejected the request frame after retries."),
    ErrorCode(
        "PROTOCOL_ERROR",
        502,
        "The terminal sent bytes that break the protocol. Outcome unknown.",
    ),
    ErrorCode(
        "BAD_LRC",
        502,
        "A frame from the terminal had a wrong checksum. Outcome unknown.",
    ),
    ErrorCode(
        "MALFORMED_MESSAGE",
        502,
        "The terminal's answer could not be read. Outcome unknown.",
    ),
    ErrorCode(
        "TRANSACTION_TIMEOUT",
        504,
        "No result within the transaction timeout: the customer may have paid.",
    ),
    ErrorCode(
        "LINK_LOST",
        502,
        "The link to the terminal dropped mid-transaction: the customer may have paid.",
    ),
    ErrorCode(
        "CONNECTION_RESET",
        502,
        "The terminal reset the connection mid-transaction: the customer may have paid.",
    ),
    ErrorCode(
        "INCOMPLETE_ANSWER",
        502,
        "The connection closed with half an answer read: the customer may have paid.",
    ),
    ErrorCode("LINK_DOWN", 503, "The link to the terminal is down; nothing was sent."),
    ErrorCode("PORT_NOT_FOUND", 503, "The terminal's serial port does not exist; nothing sent."),
    ErrorCode("PORT_PERMISSION_DENIED", 503, "No permission on the serial port (dialout group?)."),
    ErrorCode(
        "PORT_SETTINGS_REJECTED",
        503,
        "The serial port refused baudRate/dataBits/parity/stopBits; nothing sent.",
    ),
    ErrorCode("CONNECTION_REFUSED", 503, "The terminal refused the TCP connection."),
    ErrorCode("HOST_UNREACHABLE", 503, "The terminal's host cannot be reached."),
    ErrorCode("CONNECT_TIMEOUT", 503, "Connecting to the terminal timed out; nothing sent."),
    ErrorCode(
        "CANCELLED",
        200,
        "Cancelled by GET /cancel before the terminal answered: the customer may have paid.",
    ),
    ErrorCode(
        NOT_SUPPORTED,
        501,
        "Concert V2/V3 have no documented message for this operation (reset, telecollection).",
    ),
    ErrorCode("TERMINAL_ERROR", 502, "Any other terminal fault: the customer may have paid."),
    # --- the channel to tp-manager
    ErrorCode(
        "TP_MANAGER_UNAVAILABLE",
        503,
        "tp-manager is not running; nothing was sent to the terminal.",
    ),
    ErrorCode(
        "TP_MANAGER_TIMEOUT",
        504,
        "tp-manager did not answer in time: the customer may have paid.",
    ),
    ErrorCode(
        "TP_MANAGER_RESTARTED",
        502,
        "tp-manager restarted during the payment: the customer may have paid.",
    ),
    ErrorCode(
        "RESULTS_UNAVAILABLE",
        503,
        "tp-manager cannot write its result store (disk full or locked); nothing was sent to "
        "the terminal.",
    ),
    # --- the journal's own verdicts (GET /transactions, replays)
    ErrorCode(
        "NOT_SENT_TO_TERMINAL",
        503,
        "The connector stopped before the payment reached the terminal; nothing was paid and "
        "the order id may be posted again.",
    ),
    ErrorCode(
        "INTERRUPTED",
        502,
        "The connector stopped while the payment was at the terminal: the customer may have "
        "paid; check the terminal's journal.",
    ),
    ErrorCode("SHUTTING_DOWN", 503, "tp-manager is stopping; try again in a few seconds."),
    ErrorCode("INVALID_PROPERTIES", 500, "tp-manager refused the API's command (a bug)."),
    ErrorCode("UNKNOWN_COMMAND", 500, "tp-manager does not know the command (version mismatch)."),
    ErrorCode("BAD_MESSAGE", 500, "tp-manager could not read the API's message (a bug)."),
]

CODES: dict[str, ErrorCode] = {entry.code: entry for entry in _TABLE}
FALLBACK = CODES["TERMINAL_ERROR"]


def lookup(code: str) -> ErrorCode:
    return CODES.get(code, FALLBACK)


def describe(code: str) -> str:
    entry = CODES.get(code)
    return entry.description if entry else ""
