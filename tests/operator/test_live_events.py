"""``GET /events``: a payment's events come from its journal writes, in order, with ids a
reconnecting client resumes from; lost ones are announced; heartbeats; credentials."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest
import zmq
import zmq.asyncio
from aiohttp import web

from common import messages
from common.config.model import CONCERT_V2
from common.messages import Event
from common.terminals import TerminalSpec
from supervisor_agent import event_log, live_feed
from supervisor_agent.api.app import bound_port
from supervisor_agent.api.live_events import LiveEvents
from supervisor_agent.event_log import EventLog
from supervisor_agent.events import EventSubscriber
from supervisor_agent.journal import TransactionRecord, TxState
from supervisor_agent.live_feed import LiveFeed, transaction_facts
from supervisor_agent.metrics import Metrics
from supervisor_agent.sse_client import SseEvent
from supervisor_agent.terminal_links import TerminalLinks
from tests.api.conftest import RecordingTpManager, settings
from tests.operator.conftest import collect, for_order, names, serve_operator

PUB_TRIES = 200


def finished(order_id: str) -> Callable[[SseEvent], bool]:
    return lambda e: (
        e.name == event_log.TRANSACTION_FINISHED and e.payload()["order_id"] == order_id
    )


async def test_a_payment_streams_started_then_finished_with_the_journal_state(
    tpm: RecordingTpManager,
) -> None:
    async with serve_operator(tpm) as served:
        async with served.session.get(served.base_url + "/events") as stream:
            assert stream.status == 200
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            async with served.session.post(
                served.base_url + "/", json={"amount": "9.99", "order_id": "SSE-1"}
            ) as paid:
                answer = await paid.json()
            events = await collect(stream, finished("SSE-1"))
        ours = for_order(events, "SSE-1")
        assert names(ours) == ["transaction.started", "transaction.finished"]
        seqs = [int(e.id.rsplit("-", 1)[1]) for e in ours if e.id]
        assert seqs == sorted(seqs) and len(set(seqs)) == 2
        started, done = ours[0].payload(), ours[1].payload()
        assert started["state"] == "at_terminal" and started["amount_text"] == "9.99 EUR"
        async with served.session.get(served.base_url + "/transactions/SSE-1") as looked:
            journaled = await looked.json()
        assert done["state"] == answer["transactionState"] == journaled["transactionState"]
        assert done["state"] == "accepted"
        assert done["masked_pan"] == "497010######1234"


async def test_last_event_id_resumes_after_the_given_event(tpm: RecordingTpManager) -> None:
    async with serve_operator(tpm) as served:
        url = served.base_url + "/events"
        async with served.session.get(url) as stream:
            await served.session.post(
                served.base_url + "/", json={"amount": "1", "order_id": "R-1"}
            )
            first = await collect(stream, finished("R-1"))
        started_id = for_order(first, "R-1")[0].id
        assert started_id is not None
        # while no client listens, another payment
        async with served.session.post(
            served.base_url + "/", json={"amount": "2", "order_id": "R-2"}
        ) as paid:
            assert paid.status == 200
        async with served.session.get(url, headers={"Last-Event-ID": started_id}) as resumed:
            again = await collect(resumed, finished("R-2"))
        assert "stream.gap" not in names(again)
        assert [(e.name, e.payload()["order_id"]) for e in again] == [
            ("transaction.finished", "R-1"),
            ("transaction.started", "R-2"),
            ("transaction.finished", "R-2"),
        ]
        assert again[0].id == for_order(first, "R-1")[1].id  # the same event, the same id
        # the query parameter does what the header does (a browser's first connection)
        async with served.session.get(url, params={"lastEventId": started_id}) as by_query:
            assert names(await collect(by_query, finished("R-2")))[0] == "transaction.finished"


async def test_an_id_the_log_no_longer_has_gets_a_gap_event_first(tpm: RecordingTpManager) -> None:
    async with serve_operator(tpm) as served:
        await served.session.post(served.base_url + "/", json={"amount": "1", "order_id": "G-1"})
        headers = {"Last-Event-ID": "an-agent-before-a-restart-7"}
        async with served.session.get(served.base_url + "/events", headers=headers) as stream:
            events = await collect(stream, finished("G-1"))
        assert events[0].name == "stream.gap"
        assert "reload" in events[0].payload()["advice"]
        assert names(events[1:]) == ["transaction.started", "transaction.finished"]


def test_the_buffer_is_bounded_and_says_when_it_lost_events() -> None:
    log = EventLog(capacity=3, boot="b")
    for n in range(5):
        log.publish(event_log.LINK_UP, {"n": n})
    lost = log.backlog("b-1")
    assert lost.gap and [e.data["n"] for e in lost.events] == [2, 3, 4]
    kept = log.backlog("b-3")
    assert not kept.gap and [e.data["n"] for e in kept.events] == [3, 4]
    assert log.backlog(None).events == [] and log.backlog("b-5").events == []


def test_a_terminal_hint_after_the_journal_finished_the_order_is_dropped() -> None:
    log = EventLog(boot="b")
    log.publish(event_log.TRANSACTION_STARTED, {"order_id": "O"})
    log.publish(event_log.TRANSACTION_FINISHED, {"order_id": "O", "state": "accepted"})
    assert log.publish(event_log.TRANSACTION_WAITING_FOR_CARD, {"order_id": "O"}) is None
    assert log.publish(event_log.TERMINAL_IDLE, {"order_id": "O"}) is not None
    log.publish(event_log.TRANSACTION_STARTED, {"order_id": "O"})  # a failed order paid again
    assert log.publish(event_log.TRANSACTION_WAITING_FOR_CARD, {"order_id": "O"}) is not None


def test_a_journal_row_s_facts_are_made_once_when_first_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = EventLog(boot="b")
    feed = LiveFeed(log)
    now = 1_700_000_000.0
    row = TransactionRecord(
        order_id="L",
        flavour="desktop",
        request={"order_id": "L", "amount": 999, "currency": "EUR", "transaction_type": "debit"},
        state=TxState.ACCEPTED,
        result={"masked_pan": "4970101234561234"},
        error_code=None,
        error_message=None,
        created_at=now,
        updated_at=now,
        finished_at=now,
    )
    calls: list[TransactionRecord] = []

    def counted(record: TransactionRecord) -> dict[str, object]:
        calls.append(record)
        return transaction_facts(record)

    monkeypatch.setattr(live_feed, "transaction_facts", counted)
    feed.journal_changed("finished", row)
    assert calls == []  # nothing rendered on the payment's path
    (event,) = log.after(0)
    assert event.name == event_log.TRANSACTION_FINISHED
    assert event.data == transaction_facts(row) and event.to_dict()["data"] is event.data
    assert event.data["amount_text"] == "9.99 EUR"
    assert event.data["masked_pan"] == "497010######1234"
    assert calls == [row]  # made once, whoever reads it next
    # the order is finished for the hints, as with an event published with its data
    assert log.publish(event_log.TRANSACTION_WAITING_FOR_CARD, {"order_id": "L"}) is None


async def test_an_idle_stream_gets_heartbeats(tpm: RecordingTpManager) -> None:
    async with serve_operator(tpm, heartbeat_s=0.2) as served:
        async with served.session.get(served.base_url + "/events") as stream:
            lines = []
            async for raw in stream.content:
                lines.append(raw.decode().strip())
                if lines[-1] == ": heartbeat" or len(lines) > 50:
                    break
        assert lines[0].startswith("retry: ") and lines[-1] == ": heartbeat"


async def test_streams_end_when_the_agent_stops_so_a_stop_is_not_held_up(
    tpm: RecordingTpManager,
) -> None:
    async with serve_operator(tpm) as served:
        async with served.session.get(served.base_url + "/events") as stream:
            served.operator.events.close()
            rest = await stream.content.read()
        assert b"event:" not in rest


async def test_events_and_status_need_credentials(tpm: RecordingTpManager) -> None:
    async with serve_operator(tpm) as served:
        for path in ("/events", "/status", "/status.json"):
            async with served.session.get(
                served.base_url + path, headers={"Authorization": "Basic eDp5"}
            ) as refused:
                assert refused.status == 401, path
                assert (await refused.json())["error"]["code"] == "UNAUTHORIZED"


async def test_tp_manager_events_reach_the_log_and_the_link_metric() -> None:
    """Over a real PUB/SUB pair, through the agent's one subscriber (events.py)."""
    ctx = zmq.asyncio.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind("tcp://127.0.0.1:*")
    log, metrics = EventLog(boot="b"), Metrics()
    links = TerminalLinks.of(
        settings(terminals=(TerminalSpec("lane2", CONCERT_V2, device="/dev/x"),))
    )
    metrics.watch_links(links)
    feed = LiveFeed(log, metrics, links)
    subscriber = EventSubscriber(
        pub.getsockopt_string(zmq.LAST_ENDPOINT), feed.tp_manager_handlers(), ctx
    )
    subscriber.start()
    try:
        link = Event(messages.EVENT_LINK_DOWN, {"link": "down", "detail": "cable"})
        for _ in range(PUB_TRIES):  # the slow joiner: until the subscription is in place
            await pub.send_multipart(link.frames())
            if log.latest(event_log.LINK_DOWN) is not None:
                break
            await asyncio.sleep(0.05)
        await pub.send_multipart(
            Event(messages.EVENT_TRANSACTION_STARTED, {"order_id": "W", "amount": 999}).frames()
        )
        await pub.send_multipart(
            Event(messages.EVENT_LINK_UP, {"link": "up", "detail": ""}).frames()
        )
        for _ in range(PUB_TRIES):
            if log.latest(event_log.LINK_UP) is not None:
                break
            await asyncio.sleep(0.05)
        assert 'ecr_terminal_link_up{terminal="default"} 1.0' in metrics.render().splitlines()
        # a named terminal's link: in the stream with its id, and its own series
        named = {"terminal": "lane2", "link": "down", "detail": "keep-alive: silent"}
        await pub.send_multipart(Event(messages.EVENT_LINK_DOWN, named).frames())
        for _ in range(PUB_TRIES):
            latest = log.latest(event_log.LINK_DOWN)
            if latest is not None and latest.data["terminal"] == "lane2":
                break
            await asyncio.sleep(0.05)
    finally:
        await subscriber.close()
        pub.close(linger=0)
        ctx.term()
    downs = [e.data for e in log.after(0) if e.name == event_log.LINK_DOWN]
    # an event without a terminal (an older tp-manager) is the configured terminal's
    cable = {"terminal": "default", "link": "down", "detail": "cable"}
    assert downs[0] == cable and downs[-1] == named  # (the first one may have been sent twice)
    assert all(d in (cable, named) for d in downs)
    waiting = log.latest(event_log.TRANSACTION_WAITING_FOR_CARD)
    assert waiting is not None and waiting.data == {"order_id": "W", "amount": 999}
    lines = metrics.render().splitlines()
    assert 'ecr_terminal_link_up{terminal="default"} 1.0' in lines
    assert 'ecr_terminal_link_up{terminal="lane2"} 0.0' in lines


async def test_an_open_stream_that_falls_behind_the_buffer_is_told_of_the_gap() -> None:
    """A stream is woken after a burst bigger than the buffer (a client whose socket was
    full, the journal's writer thread publishing meanwhile): it says what it lost with a
    ``stream.gap``, as a reconnecting client is told, instead of skipping on silently."""
    log = EventLog(capacity=4, boot="b")
    app = web.Application()
    app.router.add_get("/events", LiveEvents(log, heartbeat_s=0.5).stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{bound_port(runner)}/events") as stream:
                async for raw in stream.content:
                    if raw.startswith(b": connected"):
                        break
                for n in range(10):  # one burst, before the stream runs again
                    log.publish(event_log.LINK_UP, {"n": n})
                events = await collect(stream, lambda e: e.payload().get("n") == 9)
    finally:
        await runner.cleanup()
    assert names(events) == ["stream.gap", *["link.up"] * 4], names(events)
    assert events[0].payload()["after"] == "b-0"
    assert [e.payload()["n"] for e in events[1:]] == [6, 7, 8, 9]
