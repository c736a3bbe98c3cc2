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
import signal
import sys

import structlog
import zmq.asyncio

from common import messages
from common.config import ConfigError, ConnectorConfig, load_config_arg
from common.logging import configure_logging, secrets_of
from tp_manager.context import ServerContext
from tp_manager.server import ControlServer
from tp_manager.terminal.factory import TargetTerminals, build_terminal, describe_device
from tp_manager.terminal.model import LinkState, PaymentResult

log = structlog.get_logger(__name__)

DRAIN_MARGIN_S = 5.0  # beyond the transaction timeout, for the reply to go out


async def serve(config: ConnectorConfig) -> int:
    server: ControlServer | None = None

    def on_link_state(state: LinkState, detail: str) -> None:
        event = messages.EVENT_LINK_UP if state is LinkState.UP else messages.EVENT_LINK_DOWN
        log.info("tp_manager.link.state", link=str(state), detail=detail)
        if server is not None:
            server.publish(event, {"link": str(state), "detail": detail})

    def on_late_answer(result: PaymentResult) -> None:
        """The real outcome of a payment already reported ``unknown``: a person reconciles."""
        order_id = ctx.unanswered_order_id
        log.error(
            "tp_manager.transaction.late_answer",
            order_id=order_id,
            status=str(result.status),
            amount=result.amount,
            masked_pan=result.masked_pan,
            advice="the order was reported unknown; this is the terminal's real verdict",
        )
        if server is not None:
            server.publish(
                messages.EVENT_RESULT_PENDING, {"order_id": order_id, **result.to_dict()}
            )

    terminal = build_terminal(config, on_link_state, on_late_answer)
    targets = TargetTerminals(config, terminal)
    ctx = ServerContext(
        terminal=terminal,
        publish=lambda name, data: None,
        serial_number=config.serial_number or "",
        device=describe_device(config),
        transaction_timeout_s=config.transaction_timeout,
        terminal_factory=targets,
    )
    zctx = zmq.asyncio.Context()
    server = ControlServer(ctx, config.control_endpoint, config.events_endpoint, zctx)
    await server.start()
    await terminal.start()

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiters = [
        asyncio.create_task(stop.wait()),
        asyncio.create_task(ctx.shutdown_requested.wait()),
    ]
    log.info("tp_manager.started", protocol=terminal.protocol, device=ctx.device)
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for w in waiters:
        w.cancel()
    ctx.shutdown_requested.set()

    in_flight = ctx.payment_in_flight.is_set()
    if in_flight:
        log.warning("tp_manager.stopping.waiting_for_payment", timeout_s=config.transaction_timeout)
    drained = await server.drain(config.transaction_timeout + DRAIN_MARGIN_S)
    if not drained:
        log.error("tp_manager.stopping.drain_timeout")
    await server.close()
    # term() blocks until the last replies have left (the router's linger): in a thread
    await asyncio.to_thread(zctx.term)
    for each in targets.all():
        await each.close()
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
    configure_logging("tp-manager", config.log_level, secrets=secrets_of(config))
    return asyncio.run(serve(config))
