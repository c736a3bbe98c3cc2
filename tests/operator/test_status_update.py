"""The status page, ``/status.json`` and ``ecr-connector status`` say how the last
self-update run went (``<data_dir>/update/status.json``, written by the agent's update
and the switcher): a release rolled back because its health check failed is on the page a
technician opens, not "no self-update state".  The in-process API with its real journal
(whose directory is the data directory) and a real headless Chromium."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from supervisor_agent import cli_status
from supervisor_agent.update import state
from tests.api.conftest import RecordingTpManager, basic
from tests.operator.browser import headless_chromium
from tests.operator.conftest import serve_operator
from tests.operator.test_status_page import KIOSK, PAGE_TIMEOUT_S, needs_chromium

ROLLED_BACK = state.Status(
    run=4,
    state="rolled_back",
    running="0.1.0",
    available="0.1.1",
    reason="health check: tp-manager not RUNNING",
)


async def test_no_update_run_yet_is_said_so(tpm: RecordingTpManager) -> None:
    async with serve_operator(tpm) as served:
        async with served.session.get(served.base_url + "/status.json") as got:
            facts = await got.json()
    assert facts["connector"]["update"] is None


@needs_chromium
async def test_a_rolled_back_update_is_shown(tpm: RecordingTpManager, tmp_path: Path) -> None:
    async with serve_operator(tpm) as served:
        state.write_status(served.operator.status.journal.path.parent, ROLLED_BACK)
        async with served.session.get(served.base_url + "/status.json") as got:
            facts = await got.json()
        update = facts["connector"]["update"]
        assert update["state"] == "rolled_back" and update["run"] == 4
        assert update["available"] == "0.1.1" and update["reason"] == ROLLED_BACK.reason

        async with headless_chromium(tmp_path) as browser:
            await browser.open(served.base_url + "/status", {"Authorization": basic()}, *KIOSK)
            shown = await browser.wait_for(
                "document.getElementById('update').textContent", PAGE_TIMEOUT_S, "the update"
            )
    assert "rolled_back" in shown and "0.1.1" in shown and ROLLED_BACK.reason in shown, shown

    out = io.StringIO()
    cli_status.render(facts, Console(file=out, width=200, highlight=False))
    line = next(row for row in out.getvalue().splitlines() if row.startswith("Update"))
    assert "rolled_back" in line and "0.1.1" in line and ROLLED_BACK.reason in line, line
