"""``python -m common simulate --protocol concert-v3``: the real process, paid through."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from pathlib import Path

from tp_manager.concert_v3 import ConcertV3Terminal
from tp_manager.terminal.model import FailureReason, PaymentRequest, PaymentStatus

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 20.0  # interpreter start on a loaded machine
EXIT_TIMEOUT_S = 5.0
READY = re.compile(rb"READY tcp=(?P<host>[^:\s]+):(?P<port>\d+)\s*$")


async def test_simulate_cli_serves_concert_v3_over_tcp() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "common",
        "simulate",
        "--protocol",
        "concert-v3",
        "--listen",
        "127.0.0.1:0",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(READY_TIMEOUT_S):
            line = await proc.stdout.readline()
        match = READY.match(line)
        assert match, f"unexpected first line {line!r}"
        host, port = match["host"].decode(), int(match["port"])
        assert host == "127.0.0.1" and port > 0

        term = ConcertV3Terminal(host, port, "ConcertV3.1", transaction_timeout=10.0, settle=0.05)
        approved = await term.pay(PaymentRequest(amount=1_050, currency_numeric="978"))
        assert approved.status is PaymentStatus.ACCEPTED
        assert approved.masked_pan is not None and "#" in approved.masked_pan
        refused = await term.pay(PaymentRequest(amount=100_001, currency_numeric="978"))
        assert refused.failure_reason is FailureReason.REFUSED
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(EXIT_TIMEOUT_S):
                await proc.wait()
        except TimeoutError:
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert proc.returncode == 0
