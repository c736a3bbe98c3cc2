"""Each configured terminal's link, one record (supervisor_agent/terminal_links.py) read by
the link gauge and the status facts: fed by tp-manager's link events and by ``check``
answers over a real ZeroMQ peer (tests/api/conftest.py), bounded to the config's
terminals, and never set back by an answer older than an event."""

from __future__ import annotations

import asyncio

from common import messages
from common.config.model import CONCERT_V2, CONCERT_V3
from common.messages import Event, Reply, Request
from common.terminals import TerminalSpec
from supervisor_agent.terminal_links import TerminalLink, TerminalLinks
from tests.api.conftest import RecordingTpManager, default_responder
from tests.operator.conftest import Served, serve_operator

LANES = (
    TerminalSpec("lane2", CONCERT_V3, host="192.0.2.20", port=8888),
    TerminalSpec("lane3", CONCERT_V2, device="/dev/ttyUSB1"),
)
ANSWER_TIMEOUT_S = 10.0


def gauges(served: Served) -> dict[str, str]:
    prefix = 'ecr_terminal_link_up{terminal="'
    return {
        line[len(prefix) :].split('"')[0]: line.rpartition(" ")[2]
        for line in served.metrics.render().splitlines()
        if line.startswith(prefix)
    }


def tell(served: Served, terminal: str | None, link: str, detail: str = "") -> None:
    """A link event as the agent's subscriber hands it over (events.py)."""
    name = messages.EVENT_LINK_UP if link == "up" else messages.EVENT_LINK_DOWN
    data = {"link": link, "detail": detail}
    if terminal is not None:
        data["terminal"] = terminal
    served.operator.feed.tp_manager_handlers()[name](Event(name, data))


def since_of(served: Served, terminal: str) -> float | None:
    row = served.operator.status.links.get(terminal)
    assert row is not None
    return row.since


async def unavailable(request: Request) -> Reply:
    return Reply.failure(request.id, "LINK_DOWN", "tp-manager is restarting")


async def test_every_configured_terminal_has_a_row_and_only_those_a_series(
    tpm: RecordingTpManager,
) -> None:
    tpm.responders["check"] = unavailable  # what the rows show is what events told
    async with serve_operator(tpm, terminals=LANES, terminal_location="/dev/ttyACM0") as served:
        assert gauges(served) == {}  # nobody told anything: no series, no alert
        tell(served, None, "up", "/dev/ttyACM0 open")  # an older tp-manager: no key
        tell(served, "lane3", "down", "keep-alive: the terminal answered none of 3 ENQs")
        tell(served, "192.0.2.99:8888", "down", "refused")  # only an order named it
        assert gauges(served) == {"default": "1.0", "lane3": "0.0"}
        async with served.session.get(served.base_url + "/status.json") as facts:
            body = await facts.json()
    rows = {row["terminal"]: row for row in body["terminals"]}
    assert list(rows) == ["default", "lane2", "lane3"]
    assert rows["default"]["location"] == "/dev/ttyACM0"
    assert rows["default"]["protocol"] == "concert-v2" and rows["default"]["link"] == "up"
    assert rows["lane2"] == {
        "terminal": "lane2",
        "protocol": "concert-v3",
        "location": "192.0.2.20:8888",
        "link": "unknown",
        "since": None,
        "detail": "",
    }
    assert rows["lane3"]["link"] == "down" and rows["lane3"]["location"] == "/dev/ttyUSB1"
    assert "ENQ" in rows["lane3"]["detail"] and isinstance(rows["lane3"]["since"], float)
    assert body["terminal"]["link"] == "up"  # the configured one's, not lane3's


async def test_the_first_check_makes_each_link_known_and_a_state_told_again_keeps_its_since(
    tpm: RecordingTpManager,
) -> None:
    async def lane3_down(request: Request) -> Reply:
        if request.properties.get("terminal") == "lane3":
            return Reply.success(
                request.id,
                {"protocol": "concert-v2", "link": "down", "busy": False, "detail": "unplugged"},
            )
        return await default_responder(request)

    tpm.responders["check"] = lane3_down
    async with serve_operator(tpm, terminals=LANES) as served:
        await served.operator.status.refresh_metrics(served.metrics)
        assert gauges(served) == {"default": "1.0", "lane2": "1.0", "lane3": "0.0"}
        asked = [r.properties.get("terminal") for r in tpm.received if r.command == "check"]
        assert sorted(asked, key=str) == sorted([None, "lane2", "lane3"], key=str)
        since = since_of(served, "lane3")
        await served.operator.status.refresh_metrics(served.metrics)  # all known: no check
        assert len([r for r in tpm.received if r.command == "check"]) == 3
        tell(served, "lane3", "down", "still unplugged")
        assert since_of(served, "lane3") == since
        tell(served, "lane3", "up", "/dev/ttyUSB1 open")
        assert gauges(served)["lane3"] == "1.0"


async def test_page_loads_check_only_links_not_heard_of_lately(tpm: RecordingTpManager) -> None:
    """A check can hold an idle Concert V3 terminal busy, and the page reloads after every
    finished payment: loads within RECHECK_AFTER_S of the last news ask nothing."""
    async with serve_operator(tpm, terminals=LANES) as served:
        for _ in range(3):
            async with served.session.get(served.base_url + "/status.json") as facts:
                assert facts.status == 200
        asked = [r.properties.get("terminal") for r in tpm.received if r.command == "check"]
        assert sorted(asked, key=str) == sorted([None, "lane2", "lane3"], key=str)  # once each


def test_a_link_is_due_for_a_check_when_unknown_or_not_heard_of_for_the_max_age() -> None:
    now = [1000.0]
    links = TerminalLinks(
        [
            TerminalLink("default", CONCERT_V2, "/dev/ttyACM0"),
            TerminalLink("lane2", CONCERT_V3, "192.0.2.20:8888"),
        ],
        clock=lambda: now[0],
    )
    assert links.due(60.0) == ["default", "lane2"]
    links.told("default", "up", "open")
    token = links.asking("lane2")
    links.answered("lane2", token, "down", "refused")
    assert links.due(60.0) == []
    now[0] += 30.0
    links.told("default", "up", "open")  # the same state told again is news too
    now[0] += 31.0
    assert links.due(60.0) == ["lane2"]


def test_since_is_when_the_agent_learned_the_current_state() -> None:
    ticks = iter(range(100, 200))
    links = TerminalLinks(
        [TerminalLink("default", CONCERT_V2, "/dev/ttyACM0")], lambda: next(ticks)
    )
    links.told("default", "up", "open")
    links.told("default", "up", "open")  # told again: same state, same since
    token = links.asking("default")
    assert links.answered("default", token, "up", "answered")
    assert links.get("default") == TerminalLink(
        "default", CONCERT_V2, "/dev/ttyACM0", "up", 100, "answered", learned_at=102
    )
    links.told("default", "down", "cable")
    assert links.get("default") == TerminalLink(
        "default", CONCERT_V2, "/dev/ttyACM0", "down", 103, "cable", learned_at=103
    )
    assert not links.answered("default", token, "up", "stale")  # an event came since
    assert not links.told("lane9", "up", "")  # not configured: not kept
    assert [row.terminal for row in links.rows()] == ["default"]


async def test_a_check_answer_does_not_undo_an_event_that_came_while_it_was_asked(
    tpm: RecordingTpManager,
) -> None:
    asked, release = asyncio.Event(), asyncio.Event()

    async def slow_up(request: Request) -> Reply:
        asked.set()
        await release.wait()  # the answer is made now, but travels behind the event
        return await default_responder(request)

    tpm.responders["check"] = slow_up
    async with serve_operator(tpm) as served:
        refresh = asyncio.create_task(served.operator.status.refresh_metrics(served.metrics))
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            await asked.wait()
        tell(served, "default", "down", "cable")  # newer than the answer on its way
        release.set()
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            await refresh
        assert gauges(served) == {"default": "0.0"}
