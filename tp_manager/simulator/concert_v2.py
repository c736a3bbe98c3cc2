"""The terminal side of Concert V2: what a payment terminal does on its serial line.

One exchange, as a real terminal plays it:

1. the register sends ENQ, the terminal ACKs; the register sends the request
   frame, the terminal ACKs it (NAK on a bad LRC or a malformed request, and
   the register resends); the register ends with EOT.  ENQ then EOT with no
   frame is a probe: ACKed and forgotten;
2. "the customer pays" (a pause), then the terminal sends the result: ENQ,
   waits for ACK (a few tries), the answer frame, waits for ACK (a NAK or no
   reply makes it resend, a few times), EOT.

The scenario (``scenarios.scenario_for_amount``) bends this to show a driver
every failure it must survive; docs/simulator.md has the full table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from common.money import MoneyError, currency_by_numeric
from tp_manager.simulator.byte_link import ByteLink, LinkClosed
from tp_manager.simulator.concert_v2_codec import (
    ACK,
    ENQ,
    EOT,
    ETX,
    NAK,
    STATUS_ACCEPTED,
    STATUS_NOT_VERIFIED,
    STATUS_REFUSED,
    STX,
    MalformedRequest,
    V2Request,
    build_answer,
    build_frame,
    lrc,
    parse_request,
)
from tp_manager.simulator.scenarios import Scenario, scenario_for_amount

log = structlog.get_logger(__name__)

MAX_ENQ_TRIES = 3  # answer ENQs sent before the terminal gives up on the register
MAX_ANSWER_SENDS = 3  # answer frames sent (first + resends after NAK/silence)
MAX_REQUEST_FRAMES = 10  # request frames NAKed in one exchange before going idle
MAX_STRAY_BYTES = 1024  # noise tolerated while waiting for a frame
MAX_FRAME_BYTES = 512  # a request is 34 chars; anything far longer is noise
UNKNOWN_CURRENCY_EXPONENT = 2  # for the magic-amount rule only
GARBAGE_BYTES = b"\x00\x7f#~?\x00"  # no control byte among them: pure line noise
DELAY_AT_ONCE = "A011"

# Concert V2 answers have a status only: every other failure becomes status 9.
SCENARIO_STATUS: dict[Scenario, str] = {
    Scenario.REFUSE: STATUS_REFUSED,
    Scenario.NOT_VERIFIED: STATUS_NOT_VERIFIED,
    Scenario.ABANDON: STATUS_NOT_VERIFIED,
    Scenario.TERMINAL_TIMEOUT: STATUS_NOT_VERIFIED,
    Scenario.FORMAT_ERROR: STATUS_NOT_VERIFIED,
}


@dataclass(frozen=True, slots=True)
class V2Timers:
    """Every wait of the terminal, in seconds; tests shorten them."""

    link_timeout: float = 3.0  # a control byte, the next byte of a frame, EOT
    pay_seconds: float = 1.0  # how long the customer takes in a normal payment
    slow_seconds: float = 5.0  # how long in the customer-slow scenario
    split_pause: float = 0.5  # gap between the two writes of the split scenario
    reopen_seconds: float = 1.0  # after drop-link, before the new pty/device opens


class DropLink(Exception):
    """The drop-link scenario asks the runner to close the line under the register."""


class ConcertV2Terminal:
    """Serves exchanges on one link after another; holds no state between them."""

    def __init__(self, default_scenario: Scenario, timers: V2Timers) -> None:
        self.default_scenario = default_scenario
        self.timers = timers
        self._sequence = 0  # terminal transaction counter, shown in full answers

    async def serve(self, link: ByteLink) -> None:
        """Run until the link closes (:class:`LinkClosed`) or a scenario drops it."""
        while True:
            byte = await link.read_byte(None)
            if byte != ENQ:
                log.debug("simulator.concert_v2.stray_byte", byte=byte)
                continue
            await link.write(bytes([ACK]))
            received = await self._receive_request(link)
            if received is not None:
                await self._play(link, *received)

    # -- register -> terminal ------------------------------------------------

    async def _receive_request(self, link: ByteLink) -> tuple[V2Request, Scenario] | None:
        nak_first_done = False
        frames = 0
        stray = 0
        while frames < MAX_REQUEST_FRAMES and stray < MAX_STRAY_BYTES:
            byte = await link.read_byte(self.timers.link_timeout)
            if byte is None:
                log.warning("simulator.concert_v2.request_timeout", frames=frames)
                return None
            if byte == EOT:
                if frames == 0:
                    log.info("simulator.concert_v2.probe")
                else:
                    log.info("simulator.concert_v2.request_given_up", frames=frames)
                return None
            if byte == ENQ:  # the register missed our ACK and asks again
                await link.write(bytes([ACK]))
                continue
            if byte != STX:
                stray += 1
                continue
            frames += 1
            message = await self._read_frame(link)
            if message is None:
                await link.write(bytes([NAK]))
                continue
            try:
                request = parse_request(message)
            except MalformedRequest as exc:
                log.warning("simulator.concert_v2.malformed_request", reason=str(exc))
                await link.write(bytes([NAK]))
                continue
            scenario = self._scenario_for(request)
            if scenario is Scenario.NAK_FIRST and not nak_first_done:
                nak_first_done = True
                log.info("simulator.concert_v2.nak_first", amount=request.amount)
                await link.write(bytes([NAK]))
                continue
            await link.write(bytes([ACK]))
            await self._await_eot(link)
            return request, scenario
        log.warning("simulator.concert_v2.request_abandoned", frames=frames, stray=stray)
        return None

    async def _read_frame(self, link: ByteLink) -> bytes | None:
        """After STX: the message up to ETX, then the LRC; ``None`` when unusable."""
        body = bytearray()
        while len(body) <= MAX_FRAME_BYTES:
            byte = await link.read_byte(self.timers.link_timeout)
            if byte is None:
                log.warning("simulator.concert_v2.frame_timeout", received=len(body))
                return None
            body.append(byte)
            if byte == ETX:
                break
        else:
            log.warning("simulator.concert_v2.frame_too_long", received=len(body))
            return None
        check = await link.read_byte(self.timers.link_timeout)
        if check is None:
            log.warning("simulator.concert_v2.frame_timeout", received=len(body))
            return None
        if check != lrc(bytes(body)):
            log.warning("simulator.concert_v2.bad_lrc", expected=lrc(bytes(body)), got=check)
            return None
        return bytes(body[:-1])

    async def _await_eot(self, link: ByteLink) -> None:
        """The register closes its turn with EOT; a terminal goes on without it."""
        if await self._await_byte(link, {EOT}) is None:
            log.warning("simulator.concert_v2.eot_timeout")

    def _scenario_for(self, request: V2Request) -> Scenario:
        try:
            exponent = currency_by_numeric(request.currency).exponent
        except MoneyError:
            exponent = UNKNOWN_CURRENCY_EXPONENT
        return scenario_for_amount(request.amount, exponent, self.default_scenario)

    # -- the customer, then terminal -> register -----------------------------

    async def _play(self, link: ByteLink, request: V2Request, scenario: Scenario) -> None:
        self._sequence += 1
        status = SCENARIO_STATUS.get(scenario, STATUS_ACCEPTED)
        if not _currency_known(request.currency):
            status = STATUS_NOT_VERIFIED  # a terminal cannot take a currency it does not know
        log.info(
            "simulator.concert_v2.request",
            amount=request.amount,
            currency=request.currency,
            pos=request.pos,
            transaction_type=request.transaction_type,
            payment_mode=request.payment_mode,
            full_answer=request.full_answer,
            delay=request.delay,
            authorization_mode=request.authorization,
            scenario=str(scenario),
        )
        if scenario is Scenario.NEVER_ANSWER:
            log.info("simulator.concert_v2.never_answer", amount=request.amount)
            return
        if scenario is Scenario.DROP_LINK:
            log.info("simulator.concert_v2.drop_link", amount=request.amount)
            raise DropLink
        if scenario is Scenario.CUSTOMER_SLOW:
            pause = self.timers.slow_seconds
        elif request.delay == DELAY_AT_ONCE:
            pause = 0.0
        else:
            pause = self.timers.pay_seconds
        await asyncio.sleep(pause)
        stale = link.drain_input()
        if stale:
            log.info("simulator.concert_v2.input_discarded", count=len(stale))
        if scenario is Scenario.GARBAGE:
            await link.write(GARBAGE_BYTES)
        delivered = await self._send_answer(
            link,
            build_answer(request, status, self._sequence),
            corrupt_first=scenario is Scenario.BAD_LRC_ONCE,
            split=scenario is Scenario.SPLIT,
            eot_held=scenario is Scenario.EOT_HELD,
        )
        log.info(
            "simulator.concert_v2.answer",
            amount=request.amount,
            scenario=str(scenario),
            status=status,
            full_answer=request.full_answer,
            delivered=delivered,
        )

    async def _send_answer(
        self, link: ByteLink, answer: str, corrupt_first: bool, split: bool, eot_held: bool
    ) -> bool:
        for attempt in range(1, MAX_ENQ_TRIES + 1):
            await link.write(bytes([ENQ]))
            if await self._await_byte(link, {ACK, NAK}) == ACK:
                break
            log.warning("simulator.concert_v2.enq_unanswered", tries=attempt)
        else:
            await link.write(bytes([EOT]))
            return False
        for attempt in range(1, MAX_ANSWER_SENDS + 1):
            frame = build_frame(answer, corrupt_lrc=corrupt_first and attempt == 1)
            if split:
                half = len(frame) // 2
                await link.write(frame[:half])
                await asyncio.sleep(self.timers.split_pause)
                await link.write(frame[half:])
            else:
                await link.write(frame)
            reply = await self._await_byte(link, {ACK, NAK})
            if reply == ACK:
                if eot_held:  # delivered, as far as this terminal knows: it forgets it
                    log.info("simulator.concert_v2.answer_acked", eot_in=self.timers.slow_seconds)
                    await asyncio.sleep(self.timers.slow_seconds)
                await link.write(bytes([EOT]))
                return True
            if reply == NAK:
                log.warning("simulator.concert_v2.answer_nak", tries=attempt)
            else:
                log.warning("simulator.concert_v2.answer_no_ack", tries=attempt)
        await link.write(bytes([EOT]))
        return False

    async def _await_byte(self, link: ByteLink, wanted: set[int]) -> int | None:
        """First byte in ``wanted`` within the link timeout; anything else is skipped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timers.link_timeout
        while (remaining := deadline - loop.time()) > 0:
            byte = await link.read_byte(remaining)
            if byte is None:
                return None
            if byte in wanted:
                return byte
        return None


def _currency_known(numeric: str) -> bool:
    try:
        currency_by_numeric(numeric)
    except MoneyError:
        return False
    return True


LinkOpener = Callable[[], Awaitable[tuple[ByteLink, str]]]


async def run_v2_simulator(
    terminal: ConcertV2Terminal,
    open_link: LinkOpener,
    on_ready: Callable[[str], None],
) -> None:
    """Serve until cancelled; after a drop, reopen the line and announce it again.

    ``open_link`` returns the link and what the register should open (``pty=/proc/<pid>/fd/<n>``).
    A first open that fails propagates (bad ``--device``); later ones are retried.
    """
    first = True
    while True:
        try:
            link, where = await open_link()
        except OSError as exc:
            if first:
                raise
            log.warning("simulator.link.reopen_failed", error=str(exc))
            await asyncio.sleep(terminal.timers.reopen_seconds)
            continue
        first = False
        log.info("simulator.link.ready", where=where)
        on_ready(where)
        try:
            await terminal.serve(link)
        except DropLink:
            pass
        except LinkClosed as exc:
            log.warning("simulator.link.closed", link=str(exc))
        finally:
            link.close()
        log.info("simulator.link.dropped", reopen_in=terminal.timers.reopen_seconds)
        await asyncio.sleep(terminal.timers.reopen_seconds)
