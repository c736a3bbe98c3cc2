"""``GET /status`` (one HTML page) and ``GET /status.json`` (its facts).

The page is self-contained (inline style and script, no external asset: it must
work on a kiosk with no internet) and its Content-Security-Policy says so, so a
browser refuses anything else.  The facts are embedded in the page, then the
page follows ``/events`` from the id they were read at; every value reaches the
DOM through ``textContent``, never as markup.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from aiohttp import web

from supervisor_agent.api.wire_json import json_response
from supervisor_agent.status_facts import StatusSource

TEMPLATE = "status_page.html"
FACTS_MARK = "__FACTS__"
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _template() -> str:
    return resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")


def render_page(facts: dict[str, Any]) -> str:
    """The page with ``facts`` inside its JSON script block (``<`` escaped: no ``</script>``)."""
    embedded = json.dumps(facts, default=str).replace("<", "\\u003c")
    return _template().replace(FACTS_MARK, embedded, 1)


class StatusPage:
    def __init__(self, source: StatusSource) -> None:
        self.source = source

    async def page(self, request: web.Request) -> web.Response:
        html = render_page(await self.source.collect())
        return web.Response(
            text=html,
            content_type="text/html",
            headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"},
        )

    async def facts(self, request: web.Request) -> web.Response:
        response = json_response(await self.source.collect())
        response.headers["Cache-Control"] = "no-store"
        return response
