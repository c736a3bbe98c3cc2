"""The supervisor agent process: the local HTTP API, the journal and the HiPay notifier.

Start-up order matters for money:

1. open the journal and close what a crash left open (``recover_interrupted``)
   *before* the API serves, so a register asking about an interrupted order
   gets ``unknown`` and not a stale ``at_terminal``; each such order is logged
   at error level and queued for HiPay;
2. start the notifier (it resumes the outbox where the last process left it);
3. connect to tp-manager, collect the verdicts it holds (a payment the crash cut
   off may have been accepted: reconciler.py), and serve the API;
4. schedule the self-update (``supervisor_agent/update/``), off without ``update_url``.

On SIGTERM the API stops taking requests, a payment in flight gets its answer
(aiohttp's shutdown waits for handlers), then the notifier and journal close.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from datetime import timedelta

import structlog

from common import __version__, event_loop, heartbeat, messages, paths
from common.concert_v3_versions import protocol_name
from common.config import ConfigError, ConnectorConfig, load_config_arg
from common.config.model import CONCERT_V3
from common.logging import configure_logging, log_file_of, secrets_of
from supervisor_agent.api import create_app, start_server
from supervisor_agent.api.operator import OperatorView
from supervisor_agent.api.settings import api_settings
from supervisor_agent.client import TerminalClient
from supervisor_agent.events import EventSubscriber
from supervisor_agent.hipay_payload import Contract, PosContext
from supervisor_agent.journal import Journal, TxState
from supervisor_agent.metrics import Metrics
from supervisor_agent.notifier import HipayEndpoint, Notifier, NotifierAlreadyRunning
from supervisor_agent.recent_problems import RecentProblems
from supervisor_agent.reconciler import Reconciler
from supervisor_agent.tp_manager_control import stopper
from supervisor_agent.update import schedule as update_schedule

log = structlog.get_logger(__name__)

PURGE_INTERVAL_S = 24 * 3600.0
PURGE_FIRST_DELAY_S = 60.0  # not in the start-up rush
DAYS_PER_MONTH = 30.44
SHUTDOWN_GRACE_S = 10.0


def pos_context(config: ConnectorConfig) -> PosContext:
    """What every notification says about this connector and its terminal."""
    protocol = None  # the POS API's enum has no Concert V2 value: leave the field out
    if config.terminal_protocol == CONCERT_V3:
        protocol = protocol_name(config.concert_v3_version)
    return PosContext(
        serial_number=config.serial_number or None,
        protocol=protocol,
        contracts=tuple(
            Contract(
                merchant_contract=c.merchant_id,
                rank=c.rank,
                payment_application=c.payment_application,
            )
            for c in config.contracts
        ),
    )


def shutdown_timeout(config: ConnectorConfig) -> float:
    """How long a stop waits for a payment in flight: its result, journal and HiPay budget."""
    return api_settings(config).payment_timeout_s + config.notification_budget + SHUTDOWN_GRACE_S


def retention(config: ConnectorConfig) -> timedelta:
    return timedelta(days=round(config.retention_months * DAYS_PER_MONTH))


async def purge_daily(journal: Journal, keep: timedelta) -> None:
    """Delete delivered transactions past retention, once a day; undelivered and
    ``unknown`` ones stay (``Journal.purge``)."""
    await asyncio.sleep(PURGE_FIRST_DELAY_S)
    while True:
        try:
            await asyncio.to_thread(journal.purge, keep)
        except Exception as exc:  # a busy database: try again tomorrow, never die of it
            log.warning("agent.journal.purge_failed", error=repr(exc))
        await asyncio.sleep(PURGE_INTERVAL_S)


def recover(journal: Journal) -> None:
    for record in journal.recover_interrupted():
        if record.state is TxState.UNKNOWN:
            log.error(
                "agent.journal.recovered_unknown",
                order_id=record.order_id,
                error_code=record.error_code,
                advice="the customer may have paid: check the terminal's journal",
            )
        else:
            log.warning(
                "agent.journal.recovered_not_sent",
                order_id=record.order_id,
                error_code=record.error_code,
            )


async def serve(config: ConnectorConfig) -> int:
    metrics = Metrics()
    journal = Journal.open(
        config.data_dir,
        context=pos_context(config),
        on_finished=lambda state: metrics.transaction_finished(str(state)),
        on_reconciled=lambda state: metrics.transaction_reconciled(str(state)),
    )
    recover(journal)
    password = config.hipay_password.get_secret_value() if config.hipay_password else ""
    notifier = Notifier(
        journal.outbox,
        HipayEndpoint(config.hipay_url, config.hipay_login or "", password),
        metrics=metrics,
        lock_path=paths.notifier_lock(config.data_dir),
    )
    try:
        await notifier.start()
    except NotifierAlreadyRunning as exc:
        log.error("agent.notifier.already_running", error=str(exc))
        journal.close()
        return 1
    client = TerminalClient(config.control_endpoint)
    reconciler = Reconciler(client, journal, notifier)
    client.on_connected = reconciler.hint
    operator = OperatorView.for_app(
        api_settings(config), client, journal, metrics=metrics, problems=RecentProblems.install()
    )
    events = EventSubscriber(
        config.events_endpoint,
        {
            **operator.feed.tp_manager_handlers(),
            messages.EVENT_RESULT_PENDING: lambda event: reconciler.hint(),
        },
        on_connected=operator.status.relearn_links,
    )
    await client.start()
    events.start()
    reconciler.start()
    app = create_app(
        config,
        client,
        stopper(paths.supervisord_socket(config.data_dir)),
        journal=journal,
        notifier=notifier,
        metrics=metrics,
        acknowledge=reconciler.acknowledge,
        operator=operator,
    )
    background = [
        asyncio.create_task(purge_daily(journal, retention(config)), name="journal-purge"),
        asyncio.create_task(
            metrics.log_periodically(refresh=journal.outbox.counts), name="metrics-log"
        ),
        asyncio.create_task(operator.status.keep_metrics_fresh(metrics), name="metrics-facts"),
        # `run` kills and restarts an agent whose loop stops beating: a hang, not a payment
        asyncio.create_task(
            heartbeat.beat(config.data_dir, "supervisor-agent", config.hang_timeout),
            name="heartbeat",
        ),
    ]
    # the journal is the one owner of "a payment is in flight": the update asks it
    update_task = update_schedule.start(config, __version__, busy=lambda: bool(journal.in_flight()))
    if update_task is not None:
        background.append(update_task)
    try:
        runner = await start_server(
            app, config.bind_address, config.local_port, shutdown_timeout(config)
        )
    except OSError as exc:
        log.error(
            "agent.api.cannot_listen",
            host=config.bind_address,
            port=config.local_port,
            error=str(exc),
        )
        await _close(background, reconciler, events, client, notifier, journal)
        return 1
    log.info(
        "agent.started",
        api=f"http://{config.bind_address}:{config.local_port}/",
        flavour=config.api_flavour,
        hipay=config.hipay_url,
    )
    event_loop.started()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("agent.stopping")
    await runner.cleanup()  # waits for handlers in flight (a payment's answer)
    await reconciler.flush()  # the last payments' acknowledgements
    await _close(background, reconciler, events, client, notifier, journal)
    log.info("agent.stopped")
    return 0


async def _close(
    background: list[asyncio.Task[None]],
    reconciler: Reconciler,
    events: EventSubscriber,
    client: TerminalClient,
    notifier: Notifier,
    journal: Journal,
) -> None:
    for task in background:
        task.cancel()
    for task in background:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await reconciler.stop()
    await events.close()
    await client.close()
    await notifier.stop()
    journal.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="supervisor-agent", description=__doc__)
    parser.add_argument("--config", default="demo", help="config.yml/config.txt, or 'demo'")
    args = parser.parse_args(argv)
    try:
        config = load_config_arg(args.config)
    except ConfigError as exc:
        print(f"supervisor-agent: {exc}", file=sys.stderr)
        return 2
    os.umask(paths.PRIVATE_UMASK)  # journal, results, logs: this user only
    configure_logging(
        "supervisor-agent",
        config.log_level,
        secrets=secrets_of(config),
        log_file=log_file_of(config),
    )
    return event_loop.run(serve(config))
