"""The tp-manager process: owns the terminal link, serves the control channel.

A routine stop (SIGTERM from supervisord) never cuts off a customer's payment:
new payments are refused with SHUTTING_DOWN, the one in flight runs to its end
(bounded by the transaction timeout) and gets its reply, then the process
exits.  supervisord's ``stopwaitsecs`` for this program is the transaction
timeout plus a margin (common/supervisord.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import structlog
import zmq

from common import event_loop, heartbeat, paths
from common.config import ConfigError, ConnectorConfig, load_config_arg
from common.logging import configure_logging, log_file_of, secrets_of
from tp_manager.context import ServerContext
from tp_manager.result_store import DEFAULT_TERMINAL, ResultStore
from tp_manager.server import ControlServer
from tp_manager.status_recovery import StatusRecovery
from tp_manager.terminal.factory import (
    TargetTerminals,
    build_keepalives,
    build_terminal,
    describe_device,
)
from tp_manager.terminal.model import LinkState, PaymentResult

log = structlog.get_logger(__name__)

DRAIN_MARGIN_S = 5.0  # beyond the transaction timeout, for the reply to go out
IDLE_POLL_S = 0.1  # while a cancelled Concert V2 exchange runs to its end at a stop


async def _until_idle(ctx: ServerContext, timeout_s: float) -> bool:
    """Wait for the terminals to end their exchanges (a cancelled Concert V2 payment runs
    on to the terminal's answer, which the result store must get); False on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while ctx.busy_terminals():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(IDLE_POLL_S)
    return True


async def serve(config: ConnectorConfig) -> int:
    def on_link_state(state: LinkState, detail: str) -> None:
        ctx.link_state(DEFAULT_TERMINAL, state, detail)

    async def on_late_answer(result: PaymentResult) -> None:
        """Only the configured terminal (Concert V2) answers late."""
        await ctx.late_answer(DEFAULT_TERMINAL, result)

    terminal = build_terminal(config, on_link_state, on_late_answer)
    targets = TargetTerminals(
        config,
        terminal,
        on_late_answer=lambda key, result: ctx.late_answer(key, result),
        on_link_state=lambda key, state, detail: ctx.link_state(key, state, detail),
    )
    keepalives = build_keepalives(config, targets)
    ctx = ServerContext(
        terminal=terminal,
        publish=lambda name, data: None,
        results=ResultStore.in_data_dir(config.data_dir),
        serial_number=config.serial_number or "",
        device=describe_device(config),
        transaction_timeout_s=config.transaction_timeout,
        terminal_factory=targets,
    )
    ctx.recovery = StatusRecovery(ctx.recovered)
    zctx = zmq.Context()
    server = ControlServer(ctx, config.control_endpoint, config.events_endpoint, zctx)
    await server.start()
    for each in targets.all():
        await each.start()
    for keepalive in keepalives:
        keepalive.start()
    await ctx.resume_status_recovery()

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiters = [
        asyncio.create_task(stop.wait()),
        asyncio.create_task(ctx.shutdown_requested.wait()),
    ]
    # `run` kills and restarts a tp-manager whose loop stops beating: a hang, not a payment
    beating = asyncio.create_task(
        heartbeat.beat(config.data_dir, "tp-manager", config.hang_timeout), name="heartbeat"
    )
    log.info("tp_manager.started", protocol=terminal.protocol, device=ctx.device)
    event_loop.started()
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for w in waiters:
        w.cancel()
    ctx.shutdown_requested.set()
    for keepalive in keepalives:  # no new probe while the last payment drains
        await keepalive.close()

    in_flight = bool(ctx.busy_terminals())
    if in_flight:
        log.warning("tp_manager.stopping.waiting_for_payment", timeout_s=config.transaction_timeout)
    budget_s = config.transaction_timeout + DRAIN_MARGIN_S
    started = loop.time()
    drained = await server.drain(budget_s)
    drained = await _until_idle(ctx, budget_s - (loop.time() - started)) and drained
    if not drained:
        log.error("tp_manager.stopping.drain_timeout")
    await ctx.recovery.close()
    await server.close()
    # term() blocks until the last replies have left (the router's linger): in a thread
    await asyncio.to_thread(zctx.term)
    for each in targets.all():
        await each.close()
    ctx.results.close()
    beating.cancel()
    log.info("tp_manager.stopped", waited_for_payment=in_flight)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tp-manager", description=__doc__)
    parser.add_argument("--config", default="demo", help="config.yml/config.txt, or 'demo'")
    args = parser.parse_args(argv)
    try:
        config = load_config_arg(args.config)
    except ConfigError as exc:
        print(f"tp-manager: {exc}", file=sys.stderr)
        return 2
    os.umask(paths.PRIVATE_UMASK)  # journal, results, logs: this user only
    configure_logging(
        "tp-manager", config.log_level, secrets=secrets_of(config), log_file=log_file_of(config)
    )
    return event_loop.run(serve(config))
