"""``GET /status`` in a real headless Chromium: it renders the facts, follows ``/events``
and shows a payment made while it is open without a reload, asks nothing from any other
origin, shows card numbers masked; screenshots are kept (tests/artifacts/)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from common import messages
from common.messages import Event, Reply, Request
from supervisor_agent.api.status_page import CSP, render_page
from tests.api.conftest import RecordingTpManager, basic, payment_result
from tests.operator.browser import chromium_path, headless_chromium
from tests.operator.conftest import serve_operator

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
UNMASKED = "4111111111111111"  # Luhn-valid: what a terminal with masking off would send
MASKED = "411111######1111"
PAGE_TIMEOUT_S = 30.0
PHONE = (412, 915)
KIOSK = (1024, 600)

needs_chromium = pytest.mark.skipif(
    chromium_path() is None,
    reason="chromium not installed (Debian's 'chromium' package; tests/run.sh installs it "
    "when apt-get can)",
)


async def _pays_with_an_unmasked_card(request: Request) -> Reply:
    if request.command == "pay":
        return Reply.success(request.id, payment_result(request.properties, masked_pan=UNMASKED))
    from tests.api.conftest import default_responder

    return await default_responder(request)


def _row_state(order_id: str) -> str:
    return (
        f"(document.querySelector('tr[data-order-id=\"{order_id}\"] [data-state]') || {{}})"
        ".textContent"
    )


@needs_chromium
async def test_the_page_shows_a_payment_made_while_it_is_open(
    tpm: RecordingTpManager, tmp_path: Path
) -> None:
    tpm.responders["pay"] = _pays_with_an_unmasked_card
    async with serve_operator(tpm) as served:
        before = await served.session.post(
            served.base_url + "/", json={"amount": "4.50", "order_id": "BEFORE-1"}
        )
        assert before.status == 200
        async with headless_chromium(tmp_path) as browser:
            await browser.open(served.base_url + "/status", {"Authorization": basic()}, *PHONE)
            await browser.wait_for(
                "document.getElementById('live').className === 'on'",
                PAGE_TIMEOUT_S,
                "the page's event stream to connect",
            )
            assert await browser.evaluate("document.getElementById('serial').textContent") == (
                "SN-TEST-0001"
            )
            assert await browser.evaluate("document.getElementById('link').textContent") == "up"
            assert await browser.evaluate(_row_state("BEFORE-1")) == "accepted"
            await browser.evaluate("window.__sameDocument = 'yes'")

            paid = await served.session.post(
                served.base_url + "/", json={"amount": "12.34", "order_id": "LIVE-1"}
            )
            assert paid.status == 200
            await browser.wait_for(
                f"{_row_state('LIVE-1')} === 'accepted'", PAGE_TIMEOUT_S, "the live payment"
            )
            row = await browser.evaluate(
                "document.querySelector('tr[data-order-id=\"LIVE-1\"]').textContent"
            )
            assert "12.34 EUR" in row and MASKED in row
            assert await browser.evaluate("window.__sameDocument") == "yes"  # no reload
            text = await browser.evaluate("document.body.textContent")
            assert UNMASKED not in text and MASKED in text

            phone = await browser.screenshot(tmp_path / "status-phone.png")
            await browser.size(*KIOSK)
            kiosk = await browser.screenshot(tmp_path / "status-kiosk.png")
            urls = browser.requested_urls()
    for shot in (phone, kiosk):
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(shot, ARTIFACTS / shot.name)
    assert urls and all(u.startswith(served.base_url + "/") for u in urls), urls
    assert any("/events?lastEventId=" in u for u in urls)


async def test_the_page_is_self_contained_and_its_facts_cannot_break_out(
    tpm: RecordingTpManager,
) -> None:
    async with serve_operator(tpm) as served:
        async with served.session.get(served.base_url + "/status") as page:
            html = await page.text()
            assert page.headers["Content-Security-Policy"] == CSP
            assert page.headers["Content-Type"].startswith("text/html")
        async with served.session.get(served.base_url + "/status.json") as facts:
            body = await facts.json()
    assert "http" not in html.split('<script id="facts"')[0].replace("http-equiv", "")
    assert "<link" not in html and " src=" not in html
    assert body["terminal"]["serial_number"] == "SN-TEST-0001"
    assert set(body["outbox"]["counts"]) == {"pending", "delivered", "dead"}
    rendered = render_page({"order_id": "</script><script>alert(1)</script>"})
    embedded = rendered.split('<script id="facts" type="application/json">')[1].split("</script>")[
        0
    ]
    assert json.loads(embedded) == {"order_id": "</script><script>alert(1)</script>"}


async def unavailable_check(request: Request) -> Reply:
    return Reply.failure(request.id, "LINK_DOWN", "tp-manager is restarting")


async def test_without_tp_manager_the_page_shows_the_configured_terminals_last_link(
    tpm: RecordingTpManager,
) -> None:
    """When ``check`` fails the page falls back on the last link event, and that must be
    the configured terminal's: named terminals publish their own link events too."""

    tpm.responders["check"] = unavailable_check
    async with serve_operator(tpm) as served:
        handle = served.operator.feed.tp_manager_handlers()
        silent = {"link": "down", "detail": "keep-alive: the terminal answered none of 3 ENQs"}
        handle[messages.EVENT_LINK_DOWN](Event(messages.EVENT_LINK_DOWN, silent))
        lane2 = {"terminal": "lane2", "link": "up", "detail": "/dev/ttyUSB1 open"}
        handle[messages.EVENT_LINK_UP](Event(messages.EVENT_LINK_UP, lane2))
        async with served.session.get(served.base_url + "/status.json") as facts:
            body = await facts.json()
    assert body["terminal"]["link"] == "down"
    assert body["terminal"]["detail"] == silent["detail"]  # heard of just now: not re-asked


async def test_a_failed_check_shows_the_last_told_link_and_why_it_was_not_confirmed(
    tpm: RecordingTpManager,
) -> None:
    tpm.responders["check"] = unavailable_check
    async with serve_operator(tpm) as served:
        async with served.session.get(served.base_url + "/status.json") as facts:
            body = await facts.json()
    assert body["terminal"]["link"] == "unknown"
    assert "did not answer the check: LINK_DOWN" in body["terminal"]["detail"]
