"""Concert V2 wire constants: control bytes, timers, retry budgets, field sizes.

Every timer and retry count the link uses is named here, with the meaning it has
in the protocol (see /work/shared/protocol-notes.md).  Where public sources only
say "commonly", the value is our documented choice and the driver takes it as a
constructor argument so a site can change it.
"""

from __future__ import annotations

import enum
from typing import Final

# --- control bytes -------------------------------------------------------------
STX: Final = 0x02  # start of a frame
ETX: Final = 0x03  # end of the message; the LRC byte follows
EOT: Final = 0x04  # end of a session (the sender hands the line back)
ENQ: Final = 0x05  # "may I send?" that opens a session
ACK: Final = 0x06  # yes / frame received intact
NAK: Final = 0x15  # no / frame damaged, send it again

CONTROL_BYTES: Final = frozenset({EOT, ENQ, ACK, NAK})


class ControlCode(enum.IntEnum):
    """The single-byte signals that travel outside frames."""

    EOT = EOT
    ENQ = ENQ
    ACK = ACK
    NAK = NAK


# --- timers (seconds) ----------------------------------------------------------
# Wait for a control byte (ACK/NAK to our ENQ or frame, EOT after our ACK).
CONTROL_BYTE_TIMEOUT_S: Final = 3.0
# Wait for a whole frame once the peer has our ACK to its ENQ (STX..LRC).
END_OF_FRAME_TIMEOUT_S: Final = 3.0
# Wait for the terminal's answer once it has ACKed the request: customer time.
TRANSACTION_TIMEOUT_S: Final = 120.0
# A probe's wait for the answer (ACK/NAK) to each of its ENQs.  Shorter than the
# control-byte deadline so a status call never blocks for long, and so a payment that
# arrives during a keep-alive probe waits at most this long for the line.
PROBE_TIMEOUT_S: Final = 1.0
# How long the register holds its ACK of the answer frame while the layer above writes
# the answer down (the result store's commit and fsync, about 1 ms): once ACKed, the
# terminal forgets the answer, so a tp-manager killed between the ACK and the write
# would lose the verdict for good.  The terminal waits CONTROL_BYTE_TIMEOUT_S for that
# ACK, so the budget stays well inside it; past it the ACK goes anyway (a stalled disk
# must not make the terminal give up on an answer the driver holds in memory).
KEEP_ANSWER_BUDGET_S: Final = 1.0


class Timer(enum.StrEnum):
    """The deadlines the link state machines ask the I/O layer to run."""

    CONTROL_BYTE = "control_byte"
    END_OF_FRAME = "end_of_frame"
    TRANSACTION = "transaction"
    PROBE = "probe"
    KEEP_ANSWER = "keep_answer"


# --- retry budgets -------------------------------------------------------------
# ENQ sent at most this many times (first try included) before TerminalNotResponding.
ENQ_TRIES: Final = 3
# ENQs of one keep-alive probe before the terminal is called silent: pyTeliumManager
# retries ENQ up to 3 times, 1 s apart (PROBE_TIMEOUT_S): a USB link waking up may
# lose the first byte, and one lost byte must not report a link down.
PROBE_TRIES: Final = 3
# After a NAK (or no answer) to our request frame, resend it at most this many
# times; total frames sent is 1 + NAK_RESEND_TRIES, then RequestRejected.
NAK_RESEND_TRIES: Final = 3
# NAKs we send for a damaged answer frame (the terminal resends each time);
# one more damaged frame after that ends the pay with a ProtocolError.
RECEIVE_NAK_TRIES: Final = 3

# --- reconnect backoff (seconds) -----------------------------------------------
RECONNECT_INITIAL_DELAY_S: Final = 0.5
RECONNECT_BACKOFF_FACTOR: Final = 2.0
RECONNECT_MAX_DELAY_S: Final = 30.0

# --- field sizes (characters) ----------------------------------------------------
REQUEST_LENGTH: Final = 34
SHORT_ANSWER_LENGTH: Final = 25
FULL_ANSWER_LENGTH: Final = 80
REPORT_LENGTH: Final = 55
AMOUNT_LENGTH: Final = 8
PRIVATE_LENGTH: Final = 10

POS_NUMBER_MIN: Final = 1
POS_NUMBER_MAX: Final = 99
AMOUNT_MIN: Final = 1
AMOUNT_MAX: Final = 10**AMOUNT_LENGTH - 1  # 99_999_999 minor units

# Longest message the receiver buffers before declaring a frame malformed; a
# full answer is 80 characters, so anything far beyond is line noise.
MAX_MESSAGE_LENGTH: Final = 256

PROTOCOL_NAME: Final = "concert-v2"
