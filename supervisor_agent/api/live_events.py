"""``GET /events``: the live events as Server-Sent Events.

Each event is ``id: <boot>-<seq>``, ``event: <name>``, ``data: <JSON>`` (the JSON
carries the id, name and time too, for clients that read only ``data``).  A
reconnecting client sends ``Last-Event-ID`` (browsers do it by themselves; the
``lastEventId`` query parameter does the same for a first connection) and gets
what it missed from the agent's bounded buffer, or a ``stream.gap`` event first
when some of it is gone; an open stream that fell behind the buffer (a burst while its
client read slowly) is told so the same way, never skipping on silently.  A comment
line every ``heartbeat_s`` keeps proxies from closing an idle stream and lets the
server notice a client that left.
"""

from __future__ import annotations

import json

from aiohttp import web

from supervisor_agent import event_log
from supervisor_agent.event_log import EventLog, LiveEvent

HEARTBEAT_S = 15.0
RETRY_MS = 2000  # how soon a browser reconnects after the stream broke
LAST_EVENT_ID_MAX_CHARS = 64


def encode(event: LiveEvent) -> bytes:
    body = json.dumps(event.to_dict(), separators=(",", ":"), default=str)
    return f"id: {event.id}\nevent: {event.name}\ndata: {body}\n\n".encode()


def encode_gap(missed_after: str) -> bytes:
    body = json.dumps(
        {
            "event": event_log.STREAM_GAP,
            "data": {
                "after": missed_after,
                "advice": "some events were lost (agent restarted or too far behind): "
                "reload the state (GET /status.json)",
            },
        },
        separators=(",", ":"),
    )
    return f"event: {event_log.STREAM_GAP}\ndata: {body}\n\n".encode()


class LiveEvents:
    def __init__(self, events: EventLog, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.events = events
        self.heartbeat_s = heartbeat_s

    async def stream(self, request: web.Request) -> web.StreamResponse:
        last_id = request.headers.get("Last-Event-ID") or request.query.get("lastEventId") or ""
        last_id = last_id[:LAST_EVENT_ID_MAX_CHARS]
        backlog = self.events.backlog(last_id or None)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache, no-store",
                "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
            }
        )
        await response.prepare(request)
        try:
            await response.write(f"retry: {RETRY_MS}\n: connected\n\n".encode())
            if backlog.gap:
                await response.write(encode_gap(last_id))
            for event in backlog.events:
                await response.write(encode(event))
            cursor = backlog.cursor
            while not self.events.closed:
                await self.events.wait(cursor, self.heartbeat_s)
                fresh = self.events.after(cursor)
                if fresh and fresh[0].seq > cursor + 1:  # the buffer moved on meanwhile
                    await response.write(encode_gap(f"{self.events.boot}-{cursor}"))
                for event in fresh:
                    await response.write(encode(event))
                if fresh:
                    cursor = fresh[-1].seq
                elif not self.events.closed:
                    await response.write(b": heartbeat\n\n")
        except ConnectionError:  # the client left: nothing to answer
            pass
        return response
