"""Reading a Server-Sent Events stream (``GET /events``) with aiohttp: the CLI's side.

The format is the WHATWG one: ``field: value`` lines, an event ends at a blank
line, ``:`` lines are comments (the heartbeats).  Only what ``/events`` sends is
handled: ``id``, ``event``, ``data`` (several ``data`` lines join with ``\\n``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True, slots=True)
class SseEvent:
    id: str | None
    name: str
    data: str

    def payload(self) -> dict[str, Any]:
        """The event's own fields (the JSON's ``data``), {} when it is not JSON."""
        try:
            body = json.loads(self.data)
        except ValueError:
            return {}
        inner = body.get("data") if isinstance(body, dict) else None
        return inner if isinstance(inner, dict) else {}


async def read_events(response: aiohttp.ClientResponse) -> AsyncIterator[SseEvent]:
    event_id: str | None = None
    name = "message"
    data: list[str] = []
    async for raw in response.content:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                yield SseEvent(event_id, name, "\n".join(data))
            event_id, name, data = None, "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "id":
            event_id = value
        elif field == "event":
            name = value
        elif field == "data":
            data.append(value)
