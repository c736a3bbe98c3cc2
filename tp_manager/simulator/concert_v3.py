"""The terminal side of Concert V3 (Caisse-AP over IP): a TCP server that pays.

Written apart from the driver (it imports nothing from ``tp_manager.concert_v3``
or ``tp_manager.terminal``) so the two implementations check each other.

One exchange, as this simulated terminal plays it:

1. the register connects and sends a request: fields ``tag(2) + length(3) +
   value``.  The request is taken as whole when its bytes parse into whole
   fields, every mandatory field (CZ CJ CA CB CD CE) is there and no more bytes
   come for ``REQUEST_SETTLE_S``; a request that stays without a mandatory
   field for ``REQUEST_QUIET_S`` is answered as it is.  A connection closed
   with no byte is a probe and is forgotten;
2. a request that breaks the format (bad bytes, CZ not first, a mandatory
   field missing or out of its range) gets ``AE=01 AF=09`` at once;
3. ``BA=1`` gets the immediate acknowledgement ``AE=11`` at once (the request
   echoed), then the exchange goes on as with ``BA=0``: the final answer
   follows on the same connection once the customer is done;
4. the customer pays (``pay_seconds``), the answer goes out: the request's
   fields echoed, CZ first, then AE and the terminal's own fields;
5. the terminal waits for the register to close (``LINGER_S`` at most).

Scenarios (``scenarios.scenario_for_amount`` picks one per request):

============== ==============================================================
approve        AE=10 with CC CI AC AA(masked) AI AB CF CG
refuse         AE=01 AF=04 (the card was read: CC CI AA come too)
not-verified   AE=01 with no AF: "not done", no reason given (AF=05
               forbidden is a refusal for the driver, so it is not used here)
abandon        AE=01 AF=11
terminal-timeout AE=01 AF=08
format-error   AE=01 AF=09
customer-slow  approve after ``slow_seconds``
never-answer   keep the connection open, never answer (``NEVER_ANSWER_HOLD_S``)
split          approve, sent in ``SPLIT_SEGMENTS`` writes cut inside fields,
               ``SPLIT_PAUSE_S`` apart
drop-link      send half of the approve answer (cut inside a field), close
garbage        line noise then the answer: a malformed answer over TCP
nak-first, bad-lrc-once  serial-only faults: approve
============== ==============================================================

The abandon answer has no ``CB``, as some terminals answer after a red-button cancel.

Which optional tags and ``CD`` actions it takes is its *family* (concert_v3_family.py:
a profile, or ``strict``: the six mandatory tags only).  It remembers every payment by
its ``CF`` in a ledger, answers ``CD=T`` (status of a transaction) from it, ``CD=I``
(identification), ``CD=B`` (remote collection), ``CD=R`` (reboot) and ``CD=3``
(duplicate of the last ticket), and sends tickets in ``AK`` when ``CK`` asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import Callable
from typing import Final

import structlog

from common.money import MoneyError, currency_by_numeric
from tp_manager.simulator.concert_v3_family import (
    PAYMENT_CODES,
    STATUS_CODE,
    Family,
    Ledger,
    ticket_field,
)
from tp_manager.simulator.scenarios import Scenario, scenario_for_amount

log = structlog.get_logger(__name__)

TAG_SIZE: Final = 2
LENGTH_SIZE: Final = 3
MAX_VALUE: Final = 999
MAX_REQUEST_BYTES: Final = 8192  # a request is under 100 bytes; more is noise
REQUEST_SETTLE_S: Final = 0.05  # after the mandatory fields, wait this long for more
REQUEST_QUIET_S: Final = 0.3  # whole fields but a mandatory one missing: answer after this
REQUEST_TIMEOUT_S: Final = 10.0  # connection open, request never finished: give up
LINGER_S: Final = 5.0  # after the answer, wait for the register to close
NEVER_ANSWER_HOLD_S: Final = 600.0  # never-answer: hold the connection at most this long
SPLIT_SEGMENTS: Final = 4
SPLIT_PAUSE_S: Final = 0.05
UNKNOWN_CURRENCY_EXPONENT: Final = 2
GARBAGE_BYTES: Final = b"\x00\x7f#~?\x00"
SHUTDOWN_WAIT_S: Final = 1.0  # on cancel, wait this long for sessions to unwind

MANDATORY: Final = ("CZ", "CJ", "CA", "CB", "CD", "CE")
VERSIONS: Final = ("0300", "0301", "0302", "0310", "0320")  # seen on the wire
CD_DUPLICATE: Final = "3"
CD_REMOTE_COLLECTION: Final = "B"
COLLECTED_APPLICATION: Final = "001"
CONTACTLESS_APPLICATIONS: Final = frozenset({"00B", "00D", "10E"})

AE_DONE: Final = "10"
AE_NOT_DONE: Final = "01"
AE_TAKEN: Final = "11"
AF_REFUSED: Final = "04"
AF_TIMEOUT: Final = "08"
AF_FORMAT: Final = "09"
AF_ABANDONED: Final = "11"

DEFAULT_APPLICATION: Final = "001"
CARD_MASKED_PAN: Final = "497010######1234"
CARD_AID: Final = "A0000000041010"
CARD_EXPIRY: Final = "2912"
MERCHANT_CONTRACT: Final = "1234567"

FAILURE_AF: Final[dict[Scenario, str | None]] = {
    Scenario.REFUSE: AF_REFUSED,
    Scenario.NOT_VERIFIED: None,
    Scenario.ABANDON: AF_ABANDONED,
    Scenario.TERMINAL_TIMEOUT: AF_TIMEOUT,
    Scenario.FORMAT_ERROR: AF_FORMAT,
}

_sequence = itertools.count(1)


class BadRequest(Exception):
    """The request breaks the field format; the terminal answers AF=09."""


class _FieldReader:
    """Incremental tag/length/value parser (the terminal's own, not the driver's)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.fields: dict[str, str] = {}
        self.order: list[str] = []

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= TAG_SIZE + LENGTH_SIZE:
            head = bytes(self.buffer[: TAG_SIZE + LENGTH_SIZE])
            if not head.isascii() or not head[:TAG_SIZE].isalnum():
                raise BadRequest(f"bad field header {head!r}")
            if not head[TAG_SIZE:].isdigit() or int(head[TAG_SIZE:]) == 0:
                raise BadRequest(f"bad field length {head[TAG_SIZE:]!r}")
            size = int(head[TAG_SIZE:])
            end = TAG_SIZE + LENGTH_SIZE + size
            if len(self.buffer) < end:
                return
            raw = bytes(self.buffer[TAG_SIZE + LENGTH_SIZE : end])
            if not raw.isascii():
                raise BadRequest("non-ASCII value")
            tag = head[:TAG_SIZE].decode("ascii")
            if tag in self.fields:
                raise BadRequest(f"tag {tag} twice")
            if not self.order and tag != "CZ":
                raise BadRequest(f"request starts with {tag}, not CZ")
            self.fields[tag] = raw.decode("ascii")
            self.order.append(tag)
            del self.buffer[:end]
        if self.buffer and not bytes(self.buffer).isascii():
            raise BadRequest("non-ASCII bytes")

    @property
    def whole(self) -> bool:
        return not self.buffer and bool(self.fields)

    @property
    def has_mandatory(self) -> bool:
        return all(tag in self.fields for tag in MANDATORY)


def encode(fields: dict[str, str]) -> bytes:
    out = bytearray()
    for tag, value in fields.items():
        value = value[:MAX_VALUE]
        out += f"{tag}{len(value):03d}{value}".encode("ascii")
    return bytes(out)


def format_problem(fields: dict[str, str]) -> str | None:
    """Why the request is not one this terminal can run, or None."""
    missing = [tag for tag in MANDATORY if tag not in fields]
    if missing:
        return f"missing {','.join(missing)}"
    checks = {
        "CZ": fields["CZ"] in VERSIONS,
        "CJ": len(fields["CJ"]) == 12,
        "CA": len(fields["CA"]) == 2 and fields["CA"].isdigit(),
        "CB": 2 <= len(fields["CB"]) <= 12 and fields["CB"].isdigit(),
        "CD": len(fields["CD"]) == 1,
        "CE": len(fields["CE"]) == 3 and fields["CE"].isdigit(),
        "BA": fields.get("BA", "0") in ("0", "1"),
    }
    bad = [tag for tag, ok in checks.items() if not ok]
    return f"bad {','.join(bad)}" if bad else None


def pick_scenario(fields: dict[str, str], default: Scenario) -> Scenario:
    try:
        exponent = currency_by_numeric(fields["CE"]).exponent
    except MoneyError:
        exponent = UNKNOWN_CURRENCY_EXPONENT
    return scenario_for_amount(int(fields["CB"]), exponent, default)


def build_answer(request: dict[str, str], scenario: Scenario) -> dict[str, str]:
    """Echo the request (CZ first, as received) and add the terminal's fields; the
    ticket (``AK``) when ``CK`` asks for it."""
    answer = _decide(request, scenario)
    ck = request.get("CK")
    ticket = ticket_field(ck, answer) if ck and "AA" in answer else None
    if ticket is not None:
        answer["AK"] = ticket
    return answer


def _decide(request: dict[str, str], scenario: Scenario) -> dict[str, str]:
    answer = dict(request)
    seq = next(_sequence)
    application = request.get("CC", DEFAULT_APPLICATION)
    reading = "2" if application in CONTACTLESS_APPLICATIONS else "1"
    if scenario in FAILURE_AF:
        answer["AE"] = AE_NOT_DONE
        af = FAILURE_AF[scenario]
        if af is not None:
            answer["AF"] = af
        if scenario is Scenario.REFUSE:
            answer.update(CC=application, CI=reading, AA=CARD_MASKED_PAN)
        if scenario is Scenario.ABANDON:
            del answer["CB"]  # red-button cancel: some terminals answer without CB
        return answer
    answer.update(
        AE=AE_DONE,
        CC=application,
        CI=reading,
        AC=f"{seq % 1_000_000:06d}",
        AA=CARD_MASKED_PAN,
        AI=CARD_AID,
        AB=CARD_EXPIRY,
        CF=request.get("CF", f"SIM{seq:09d}"),  # the register's reference, echoed
        CG=MERCHANT_CONTRACT,
    )
    return answer


def status_answer(request: dict[str, str], ledger: Ledger) -> dict[str, str]:
    """``CD=T``: the request echoed with the named transaction's outcome, or ``AE=01``
    without ``AF`` when the terminal has no verdict for that reference."""
    answer = dict(request)
    known = ledger.answers.get(request.get("CF", ""))
    if known is None:
        answer["AE"] = AE_NOT_DONE
        return answer
    own = {tag: value for tag, value in known.items() if tag not in request and tag != "AK"}
    answer.update(own)
    return answer


def action_answer(request: dict[str, str], ledger: Ledger) -> dict[str, str]:
    """``CD`` I, B, R, 3: done (with the collected application, or the last ticket)."""
    answer = dict(request)
    answer["AE"] = AE_DONE
    if request["CD"] == CD_REMOTE_COLLECTION:
        answer["CC"] = COLLECTED_APPLICATION
    if request["CD"] == CD_DUPLICATE and ledger.last_ticket is not None:
        answer["AK"] = ledger.last_ticket
    return answer


def format_error_answer(request: dict[str, str]) -> dict[str, str]:
    answer = {tag: request[tag] for tag in request}
    answer.update(AE=AE_NOT_DONE, AF=AF_FORMAT)
    return answer


def cut_points(fields: dict[str, str], parts: int) -> list[int]:
    """Offsets that cut the encoded answer into ``parts``, never on a field boundary."""
    boundaries = set(itertools.accumulate(5 + len(v[:MAX_VALUE]) for v in fields.values()))
    total = max(boundaries)
    cuts = []
    for k in range(1, parts):
        at = total * k // parts
        while at in boundaries:
            at += 1
        cuts.append(at)
    return sorted(set(cuts))


class _Session:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        default: Scenario,
        slow_seconds: float,
        pay_seconds: float,
        family: Family,
        ledger: Ledger,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.default = default
        self.family = family
        self.ledger = ledger
        self.slow_seconds = slow_seconds
        self.pay_seconds = pay_seconds
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"

    async def run(self) -> None:
        try:
            request = await self._read_request()
        except BadRequest as exc:
            log.info("simulator.concert_v3.request.malformed", peer=self.peer, error=str(exc))
            await self._send(encode({"AE": AE_NOT_DONE, "AF": AF_FORMAT}))
            return
        if request is None:
            return
        problem = format_problem(request) or self.family.problem(request)
        if problem is not None:
            log.info("simulator.concert_v3.request.format_error", peer=self.peer, problem=problem)
            await self._send(encode(format_error_answer(request)))
            await self._linger()
            return
        if request["CD"] not in PAYMENT_CODES:
            await self._act(request)
            return
        scenario = pick_scenario(request, self.default)
        log.info(
            "simulator.concert_v3.request.received",
            peer=self.peer,
            scenario=str(scenario),
            version=request["CZ"],
            amount=int(request["CB"]),
            currency=request["CE"],
            answer_mode=request.get("BA", "0"),
        )
        if request.get("BA") == "1":
            ack = dict(request)
            ack["AE"] = AE_TAKEN
            await self._send(encode(ack))
            log.info("simulator.concert_v3.answer.ack_sent", peer=self.peer)
        await self._play(request, scenario)

    async def _act(self, request: dict[str, str]) -> None:
        if request["CD"] == STATUS_CODE:
            answer = status_answer(request, self.ledger)
        else:
            answer = action_answer(request, self.ledger)
        await self._send(encode(answer))
        log.info(
            "simulator.concert_v3.action.answered",
            peer=self.peer,
            cd=request["CD"],
            ae=answer["AE"],
            reference=request.get("CF"),
        )
        await self._linger()

    async def _play(self, request: dict[str, str], scenario: Scenario) -> None:
        self.ledger.started(request)
        if scenario is Scenario.NEVER_ANSWER:
            log.info("simulator.concert_v3.answer.withheld", peer=self.peer)
            await self._linger(NEVER_ANSWER_HOLD_S)
            return
        await asyncio.sleep(
            self.slow_seconds if scenario is Scenario.CUSTOMER_SLOW else self.pay_seconds
        )
        answer = build_answer(request, scenario)
        self.ledger.decided(request, answer)
        data = encode(answer)
        if scenario is Scenario.DROP_LINK:
            half = cut_points(answer, 2)[0]
            await self._send(data[:half])
            log.info("simulator.concert_v3.link.dropped", peer=self.peer, sent=half, of=len(data))
            return
        if scenario is Scenario.SPLIT:
            start = 0
            for cut in [*cut_points(answer, SPLIT_SEGMENTS), len(data)]:
                await self._send(data[start:cut])
                start = cut
                if cut < len(data):
                    await asyncio.sleep(SPLIT_PAUSE_S)
        elif scenario is Scenario.GARBAGE:
            await self._send(GARBAGE_BYTES + data)
        else:
            await self._send(data)
        log.info(
            "simulator.concert_v3.answer.sent",
            peer=self.peer,
            scenario=str(scenario),
            ae=answer["AE"],
            af=answer.get("AF"),
        )
        await self._linger()

    async def _read_request(self) -> dict[str, str] | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REQUEST_TIMEOUT_S
        parser = _FieldReader()
        received = 0
        while True:  # bounded: each pass reads bytes or ends; REQUEST_TIMEOUT_S caps it
            if parser.whole and parser.has_mandatory:
                wait = REQUEST_SETTLE_S
            elif parser.whole:
                wait = REQUEST_QUIET_S
            else:
                wait = deadline - loop.time()
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    chunk = await self.reader.read(1024)
            except TimeoutError:
                if parser.whole:
                    return parser.fields
                log.info("simulator.concert_v3.request.timeout", peer=self.peer, bytes=received)
                return None
            if not chunk:
                if received:
                    log.info(
                        "simulator.concert_v3.request.abandoned", peer=self.peer, bytes=received
                    )
                else:
                    log.debug("simulator.concert_v3.probe", peer=self.peer)
                return None
            received += len(chunk)
            if received > MAX_REQUEST_BYTES:
                raise BadRequest("request too long")
            parser.feed(chunk)

    async def _send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def _linger(self, seconds: float = LINGER_S) -> None:
        """Wait for the register to close (it reads one answer and hangs up)."""
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(seconds):
                while await self.reader.read(1024):  # bounded by the timeout
                    pass


async def run_tcp_simulator(
    host: str,
    port: int,
    default_scenario: Scenario,
    slow_seconds: float,
    on_ready: Callable[[str, int], None],
    *,
    pay_seconds: float = 0.0,
    family: Family | None = None,
    ledger: Ledger | None = None,
) -> None:
    """Serve Concert V3 on ``host:port`` (0: a free port) until cancelled; ``family``
    defaults to the lenient one (every documented tag), ``ledger`` to a fresh one."""
    family = family or Family.named()
    ledger = ledger if ledger is not None else Ledger()
    sessions: set[asyncio.Task[None]] = set()
    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            sessions.add(task)
        writers.add(writer)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = _Session(
            reader, writer, default_scenario, slow_seconds, pay_seconds, family, ledger
        )
        log.debug("simulator.concert_v3.connection.open", peer=session.peer)
        try:
            await session.run()
        except ConnectionError as exc:
            log.info("simulator.concert_v3.connection.lost", peer=session.peer, error=str(exc))
        except asyncio.CancelledError:
            # Simulator shutting down.  Not re-raised: asyncio's stream callback
            # (3.11) calls task.exception() on this task and would log a traceback.
            writer.transport.abort()
        finally:
            writers.discard(writer)
            if task is not None:
                sessions.discard(task)
            writer.close()
            log.debug("simulator.concert_v3.connection.closed", peer=session.peer)

    server = await asyncio.start_server(handle, host, port)
    actual_port = server.sockets[0].getsockname()[1]
    log.info("simulator.concert_v3.listening", host=host, port=actual_port)
    on_ready(host, actual_port)
    try:
        # Not serve_forever(): on Python >= 3.12 its cancellation waits for every
        # open connection, and a never-answer session may hold one for minutes.
        await asyncio.get_running_loop().create_future()
    finally:
        server.close()
        for writer in list(writers):
            writer.transport.abort()
        for task in list(sessions):
            task.cancel()
        if sessions:
            await asyncio.wait(set(sessions), timeout=SHUTDOWN_WAIT_S)
        log.info("simulator.concert_v3.stopped", host=host, port=actual_port)
