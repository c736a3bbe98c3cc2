"""The OpenAPI description of the operator's routes (api/operator.py).

Kept beside those routes rather than in openapi.py, which only adds them; the
error responses are given by openapi.py (those of every authenticated route), so
every route shares one shape.
"""

from __future__ import annotations

from typing import Any

_EVENT_NAMES = [
    "link.up",
    "link.down",
    "terminal.busy",
    "terminal.idle",
    "transaction.started",
    "transaction.waiting_for_card",
    "transaction.finished",
    "transaction.reconciled",
    "notification.delivered",
    "notification.dead",
    "stream.gap",
]
_FACTS = {
    "type": "object",
    "description": "The status page's facts: connector, terminal (link from tp-manager's "
    "check), agent uptime, disk, the last 20 transactions (masked), the outbox, the last "
    "problems, and last_event_id to follow /events from.",
    "properties": {
        "generated_at": {"type": "number"},
        "last_event_id": {"type": "string"},
        "connector": {"type": "object"},
        "terminal": {"type": "object"},
        "agent": {"type": "object"},
        "disk": {"type": "object"},
        "transactions": {"type": "array", "items": {"type": "object"}},
        "outbox": {"type": "object"},
        "problems": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["last_event_id", "connector", "terminal", "transactions", "outbox"],
}


def operator_paths(errors: dict[str, Any]) -> dict[str, Any]:
    resume = {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "Resume after this event id (browsers send it when they reconnect)",
    }
    return {
        "/events": {
            "get": {
                "summary": "Events: live Server-Sent Events (link, terminal, transactions, "
                "notifications); ids resume with Last-Event-ID",
                "operationId": "events",
                "parameters": [
                    resume,
                    {
                        "name": "lastEventId",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "Same as the Last-Event-ID header, for a first connection",
                    },
                ],
                "responses": {
                    "200": {
                        "description": "An endless text/event-stream; event names: "
                        + ", ".join(_EVENT_NAMES)
                        + ". Each data line is JSON {id, event, time, data}.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **errors,
                },
            }
        },
        "/status": {
            "get": {
                "summary": "Status: one self-contained HTML page, live from /events",
                "operationId": "status",
                "responses": {
                    "200": {
                        "description": "HTML page",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    **errors,
                },
            }
        },
        "/status.json": {
            "get": {
                "summary": "Status facts: what the status page and `ecr-connector status` show",
                "operationId": "statusFacts",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": _FACTS}},
                    },
                    **errors,
                },
            }
        },
    }
