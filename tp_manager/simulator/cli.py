"""``ecr-connector simulate``: a payment terminal to develop and test against.

stdout carries only ``READY pty=<path>`` / ``READY device=<path>`` /
``READY tcp=<host>:<port>`` lines (a new one after each drop-link), so a script
or a test can wait for it; logs go to stderr.  Runs until SIGTERM or SIGINT,
then exits 0.  Heavy imports wait for ``main`` so ``ecr-connector --help``
stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from tp_manager.simulator.scenarios import Scenario, magic_amount_table

PROTOCOL_V2 = "concert-v2"
PROTOCOL_V3 = "concert-v3"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def configure(parser: argparse.ArgumentParser) -> None:
    magic = ", ".join(f"{amount}={scenario}" for amount, scenario in magic_amount_table())
    parser.epilog = (
        "Amounts of 1000.00 and above pick the scenario by their last two digits: "
        f"{magic}. Below, --scenario applies."
    )
    parser.add_argument("--protocol", choices=[PROTOCOL_V2, PROTOCOL_V3], default=PROTOCOL_V2)
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--pty", action="store_true", help="concert-v2: create a pseudo-terminal to open"
    )
    where.add_argument("--device", metavar="PATH", help="concert-v2: serve this serial device")
    where.add_argument("--listen", metavar="HOST:PORT", help="concert-v3: TCP address (port 0 ok)")
    parser.add_argument("--baudrate", type=int, default=9600)
    parser.add_argument("--bytesize", type=int, choices=[5, 6, 7, 8], default=8)
    parser.add_argument("--parity", choices=["N", "E", "O", "M", "S"], default="N")
    parser.add_argument("--stopbits", type=float, choices=[1, 1.5, 2], default=1)
    parser.add_argument(
        "--pace", action="store_true", help="send bytes at the baud rate, like a real cable"
    )
    parser.add_argument(
        "--scenario",
        type=Scenario,
        choices=list(Scenario),
        default=Scenario.APPROVE,
        help="outcome for amounts below 1000.00 (default: approve)",
    )
    parser.add_argument(
        "--slow-seconds", type=float, default=5.0, help="customer-slow delay (default 5)"
    )
    parser.add_argument(
        "--pay-seconds", type=float, default=1.0, help="normal customer time (default 1)"
    )
    parser.add_argument(
        "--link-timeout",
        type=float,
        default=3.0,
        help="concert-v2 wait for a control byte or the rest of a frame (default 3)",
    )
    parser.add_argument(
        "--reopen-seconds",
        type=float,
        default=1.0,
        help="concert-v2 drop-link: pause before the new pty/device is opened (default 1)",
    )
    parser.add_argument(
        "--link",
        metavar="PATH",
        help="concert-v2 --pty: keep a symlink at PATH pointing at the current pty, so a "
        "supervised tp-manager finds the simulator at a stable path (also after drop-link)",
    )
    parser.add_argument(
        "--profile",
        default="castles",
        help="concert-v3: the terminal family it plays (default, payxpert, castles; "
        "default: castles, which takes every documented tag and action)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="concert-v3: take only the six mandatory tags; AF=09 to anything else",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (stderr)")


def main(args: argparse.Namespace) -> int:
    from tp_manager.simulator.log_setup import configure_logging

    configure_logging(args.log_level)
    if args.protocol == PROTOCOL_V2 and not (args.pty or args.device):
        print("simulate --protocol concert-v2 needs --pty or --device PATH", file=sys.stderr)
        return EXIT_USAGE
    if args.protocol == PROTOCOL_V3 and not args.listen:
        print("simulate --protocol concert-v3 needs --listen HOST:PORT", file=sys.stderr)
        return EXIT_USAGE
    if args.protocol == PROTOCOL_V3:
        try:
            host, port = parse_listen(args.listen)
        except ValueError as exc:
            print(f"simulate: {exc}", file=sys.stderr)
            return EXIT_USAGE
        server = _v3_server(args, host, port)
    else:
        if args.listen:
            print("simulate: --listen is for --protocol concert-v3", file=sys.stderr)
            return EXIT_USAGE
        server = _v2_server(args)
    if server is None:
        return EXIT_USAGE
    return asyncio.run(_serve_until_signal(server))


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8888`` for IPv6) -> (host, port)."""
    host, sep, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"--listen wants HOST:PORT, got {text!r}")
    return host, int(port_text)


def point_symlink(link: Path, target: str) -> None:
    """Atomically (re)point ``link`` at ``target``: a reader never sees it missing."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(target)
    tmp.replace(link)


def announce(where: str) -> None:
    """The one thing written to stdout."""
    print(f"READY {where}", flush=True)


def _v2_server(args: argparse.Namespace) -> Any:
    from tp_manager.simulator.byte_link import ByteLink, LineSettings
    from tp_manager.simulator.concert_v2 import ConcertV2Terminal, V2Timers, run_v2_simulator
    from tp_manager.simulator.link_openers import open_pty_link, open_serial_link

    settings = LineSettings(args.baudrate, args.bytesize, args.parity, args.stopbits)
    timers = V2Timers(
        link_timeout=args.link_timeout,
        pay_seconds=args.pay_seconds,
        slow_seconds=args.slow_seconds,
        reopen_seconds=args.reopen_seconds,
    )
    terminal = ConcertV2Terminal(args.scenario, timers)
    device: str | None = args.device

    async def open_link() -> tuple[ByteLink, str]:
        if device is not None:
            return open_serial_link(device, settings, args.pace), f"device={device}"
        link, path = open_pty_link(settings, args.pace)
        if args.link:
            point_symlink(Path(args.link), path)
        return link, f"pty={path}"

    return run_v2_simulator(terminal, open_link, announce)


def _v3_server(args: argparse.Namespace, host: str, port: int) -> Any:
    try:
        from tp_manager.simulator.concert_v3 import run_tcp_simulator
        from tp_manager.simulator.concert_v3_family import Family
    except ImportError as exc:
        print(f"simulate: the Concert V3 simulator is not available ({exc})", file=sys.stderr)
        return None

    def on_ready(actual_host: str, actual_port: int) -> None:
        shown = f"[{actual_host}]" if ":" in actual_host else actual_host
        announce(f"tcp={shown}:{actual_port}")

    from common.concert_v3_profiles import PROFILES

    if args.profile not in PROFILES:
        print(f"simulate: --profile must be one of {', '.join(PROFILES)}", file=sys.stderr)
        return None
    return run_tcp_simulator(
        host,
        port,
        args.scenario,
        args.slow_seconds,
        on_ready,
        pay_seconds=args.pay_seconds,
        family=Family.named(args.profile, strict=args.strict),
    )


async def _serve_until_signal(server: Any) -> int:
    """Run the server coroutine until SIGTERM/SIGINT (exit 0) or until it fails (exit 1)."""
    import structlog

    log = structlog.get_logger(__name__)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    serving = asyncio.ensure_future(server)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        log.info("simulator.stopping")
        serving.cancel()
        try:
            await serving
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            log.warning("simulator.stop_error", error=repr(exc))
        return EXIT_OK
    stopping.cancel()
    try:
        serving.result()
    except Exception as exc:
        log.error("simulator.failed", error=repr(exc))
        return EXIT_FAILURE
    return EXIT_OK
