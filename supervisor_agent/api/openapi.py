"""``GET /openapi.json``: an OpenAPI 3.1 document generated from the pydantic models.

The models that validate requests are the ones documented (JSON Schema 2020-12
is OpenAPI 3.1's schema dialect, so pydantic's output is used as is).  The
document describes the configured flavour; ``?flavour=desktop|kiosk`` gives
the other one.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from common import __version__
from supervisor_agent.api.examples import (
    desktop_example_request,
    kiosk_seed_request,
    pos_example_request,
)
from supervisor_agent.api.models_common import (
    SCHEMA_REF,
    BasketItem,
    CancelResult,
    CheckResult,
    ConfigInfo,
    DesktopVersionInfo,
    ErrorResponse,
    KioskConfigInfo,
    ResetResult,
    StopResult,
    TlcResult,
    VersionInfo,
)
from supervisor_agent.api.models_desktop import DesktopPaymentRequest, DesktopPaymentResponse
from supervisor_agent.api.models_kiosk import KioskPaymentRequest, KioskPaymentResponse
from supervisor_agent.api.models_pos import OrderResponse, RootOrder
from supervisor_agent.api.operator_openapi import operator_paths
from supervisor_agent.api.settings import Flavour

OPENAPI_VERSION = "3.1.0"
JSON = "application/json"
ANY_APPLICATION = "application/*"  # the POS API seed's postOrder body: any application type

_MODELS: list[type[BaseModel]] = [
    BasketItem,
    ErrorResponse,
    DesktopPaymentRequest,
    DesktopPaymentResponse,
    KioskPaymentRequest,
    KioskPaymentResponse,
    RootOrder,
    OrderResponse,
    VersionInfo,
    DesktopVersionInfo,
    ConfigInfo,
    KioskConfigInfo,
    StopResult,
    CancelResult,
    CheckResult,
    TlcResult,
    ResetResult,
]

_ERRORS = {
    400: "Invalid request: details name the field, the rule and the problem; MALFORMED_HTTP "
    "when the bytes are not HTTP/1.1 or a header is longer than 8190 bytes",
    401: "Missing or wrong HTTP Basic credentials",
    403: "Origin not in cors_origins, or terminal not allowed",
    404: "ORDER_NOT_FOUND: no such order in the journal",
    409: "TERMINAL_BUSY (a payment is in flight on the terminal), IN_PROGRESS (same order_id"
    " still at the terminal) or ORDER_ID_REUSED (same order_id, another payment)",
    408: "BODY_TIMEOUT: the body did not arrive whole within 10 s",
    413: "Body larger than 64 KiB",
    415: "Body is not in a media type the route takes (application/json; POST "
    "/v1/connector/order: any application/* type)",
    429: "TOO_MANY_ATTEMPTS: too many wrong credentials from this address for this user; "
    "wait Retry-After seconds",
    500: "Connector bug",
    501: "NOT_SUPPORTED: Concert V2/V3 have no such message",
    502: "The terminal or tp-manager failed",
    503: "tp-manager or the terminal link is unavailable, or TOO_MANY_CONNECTIONS from this "
    "client address (Retry-After)",
    504: "tp-manager did not answer in time",
}
# Any request can meet these, whatever its route: the HTTP parser, the connection cap.
TRANSPORT_ERRORS = (400, 503)
# ... and any authenticated one these.
AUTHENTICATED_ERRORS = (*TRANSPORT_ERRORS, 401, 403, 429, 500)
PAYMENT_ERRORS = (*AUTHENTICATED_ERRORS, 408, 409, 413, 415)
MAINTENANCE_ERRORS = AUTHENTICATED_ERRORS
TERMINAL_ERRORS = (501, 502, 503, 504)
LOOKUP_ERRORS = (*AUTHENTICATED_ERRORS, 404, 409)


def ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMA_REF.format(model=name)}


@functools.cache
def component_schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(model, "validation") for model in _MODELS], ref_template=SCHEMA_REF
    )
    schemas: dict[str, Any] = top.get("$defs", {})
    return schemas


def _errors(statuses: tuple[int, ...]) -> dict[str, Any]:
    return {
        str(status): {
            "description": _ERRORS[status],
            "content": {JSON: {"schema": ref("ErrorResponse")}},
        }
        for status in sorted(set(statuses))
    }


def _one_of_array(schema: dict[str, Any], flavour: Flavour) -> dict[str, Any]:
    if flavour == "desktop":
        return schema
    return {"type": "array", "items": schema, "minItems": 1, "maxItems": 1}


TERMINAL_PARAMETER: dict[str, Any] = {
    "name": "terminal",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "Addition: a terminal named in the config (terminals.<id>), or 'default' "
    "for the configured one; absent: the configured one (for /cancel: every payment in "
    "flight). Unknown: 403.",
}


def _maintenance(
    summary: str, schema: str, flavour: Flavour, terminal: bool = False
) -> dict[str, Any]:
    statuses = MAINTENANCE_ERRORS + (TERMINAL_ERRORS if terminal else ())
    named = [TERMINAL_PARAMETER] if terminal else []
    return {
        "get": {
            "summary": summary,
            "operationId": summary.split(":")[0].strip().lower().replace(" ", "_"),
            **({"parameters": named} if named else {}),
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {JSON: {"schema": _one_of_array(ref(schema), flavour)}},
                },
                **_errors(statuses),
            },
        }
    }


def _payment_op(flavour: Flavour, operation_id: str) -> dict[str, Any]:
    if flavour == "desktop":
        request, example = "DesktopPaymentRequest", desktop_example_request()
        summary = "Pay on the terminal (desktop connector request)"
    else:
        request, example = "KioskPaymentRequest", kiosk_seed_request()
        summary = "Pay on the terminal (kiosk connector request)"
    response = "DesktopPaymentResponse" if flavour == "desktop" else "KioskPaymentResponse"
    return {
        "summary": summary,
        "operationId": operation_id,
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": ref(request), "examples": {"seed": {"value": example}}}},
        },
        "responses": {
            "200": {
                "description": "The terminal's verdict (SUCCESS or FAILURE with errorCode)",
                "content": {JSON: {"schema": _one_of_array(ref(response), flavour)}},
            },
            **_errors(PAYMENT_ERRORS),
        },
    }


def _get(
    summary: str, operation_id: str, content: dict[str, Any], statuses: tuple[int, ...]
) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "operationId": operation_id,
            "responses": {"200": {"description": "OK", "content": content}, **_errors(statuses)},
        }
    }


_TRANSACTION_STATES = ["accepted", "refused", "failed", "unknown"]
_LOOKUP_ITEM = {
    "type": "object",
    "description": "The order's answer in the shape it was paid in (desktop object, kiosk "
    "array, or POS API OrderResponse), plus transactionState and, for unknown, advice.",
    "properties": {
        "transactionState": {"enum": _TRANSACTION_STATES},
        "advice": {"type": "string"},
    },
    "required": ["transactionState"],
}
_NOTIFICATION = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "order_id": {"type": "string"},
        "idempotency_key": {"type": "string"},
        "state": {"enum": ["pending", "delivered", "dead"]},
        "attempts": {"type": "integer"},
        "attempts_received": {"type": "integer"},
        "next_attempt_at": {"type": "number"},
        "last_error": {"type": ["string", "null"]},
        "last_status": {"type": ["integer", "null"]},
        "created_at": {"type": "number"},
        "updated_at": {"type": "number"},
        "delivered_at": {"type": ["number", "null"]},
    },
    "required": ["id", "order_id", "state", "attempts", "attempts_received"],
}


def _journal_paths() -> dict[str, Any]:
    lookup = _get(
        "Transaction: the journaled outcome of an order (never touches the terminal)",
        "transaction",
        {JSON: {"schema": {"oneOf": [_LOOKUP_ITEM, {"type": "array", "items": _LOOKUP_ITEM}]}}},
        LOOKUP_ERRORS,
    )
    lookup["get"]["parameters"] = [
        {"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    notifications = _get(
        "Notifications: HiPay notifications of the outbox",
        "notifications",
        {
            JSON: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "counts": {
                            "type": "object",
                            "additionalProperties": {"type": "integer"},
                        },
                        "notifications": {"type": "array", "items": _NOTIFICATION},
                    },
                    "required": ["counts", "notifications"],
                }
            }
        },
        AUTHENTICATED_ERRORS,
    )
    notifications["get"]["parameters"] = [
        {
            "name": "state",
            "in": "query",
            "required": False,
            "schema": {"enum": ["undelivered", "pending", "dead", "delivered", "all"]},
            "description": "Which ones (default: undelivered, i.e. pending and dead)",
        }
    ]
    metrics = _get(
        "Metrics: transactions by outcome, notifications by state, delivery latency",
        "metrics",
        {"text/plain": {"schema": {"type": "string"}}},
        AUTHENTICATED_ERRORS,
    )
    ticket = _get(
        "Ticket: reprint an order's ticket (the terminal's own, else composed)",
        "ticket",
        {JSON: {"schema": {"type": "object"}}},
        (401, 403, 404, 409, 500),
    )
    ticket["get"]["parameters"] = lookup["get"]["parameters"]
    return {
        "/transactions/{order_id}": lookup,
        "/transactions/{order_id}/ticket": ticket,
        "/notifications": notifications,
        "/metrics": metrics,
    }


def build_openapi(flavour: Flavour) -> dict[str, Any]:
    """The whole document for one flavour; POS API and maintenance routes are in both."""
    paths: dict[str, Any] = {
        "/": {"post": _payment_op(flavour, "payment")},
        "/payment": {"post": _payment_op(flavour, "paymentAlias")},
        "/v1/connector/order": {
            "post": {
                "summary": "Wake the terminal to pay an order (POS API RootOrder)",
                "operationId": "postOrder",
                "requestBody": {
                    "required": True,
                    "content": {
                        ANY_APPLICATION: {
                            "schema": ref("RootOrder"),
                            "examples": {"order": {"value": pos_example_request()}},
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "OK - the terminal's verdict",
                        "content": {JSON: {"schema": ref("OrderResponse")}},
                    },
                    **_errors(PAYMENT_ERRORS),
                },
            }
        },
        "/v1/connector/healthcheck": {
            "get": {
                "summary": "Health check (no authentication; reveals only health)",
                "operationId": "healthcheck",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Health check OK",
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "object",
                                    "properties": {"status": {"const": "OK"}},
                                    "required": ["status"],
                                    "additionalProperties": False,
                                }
                            }
                        },
                    },
                    **_errors(TRANSPORT_ERRORS),
                },
            }
        },
        "/version": _maintenance(
            "Version: {version}-{type}-{os}",
            "DesktopVersionInfo" if flavour == "desktop" else "VersionInfo",
            flavour,
        ),
        "/config": _maintenance(
            "Config: the terminal's serial number",
            "ConfigInfo" if flavour == "desktop" else "KioskConfigInfo",
            flavour,
        ),
        "/stop": _maintenance("Stop: stop tp-manager through supervisord", "StopResult", flavour),
        "/cancel": _maintenance(
            "Cancel: abort the transaction in flight", "CancelResult", flavour, terminal=True
        ),
        "/reset": _maintenance(
            "Reset: reboot the terminal (Concert V3 profiles with reboot; else NOT_SUPPORTED)",
            "ResetResult",
            flavour,
            terminal=True,
        ),
        "/tlc": _maintenance(
            "Tlc: telecollection (Concert V3 profiles with it; else NOT_SUPPORTED)",
            "TlcResult",
            flavour,
            terminal=True,
        ),
        "/check": _maintenance(
            "Check: terminal link and status", "CheckResult", flavour, terminal=True
        ),
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "parameters": [
                    {
                        "name": "flavour",
                        "in": "query",
                        "required": False,
                        "schema": {"enum": ["desktop", "kiosk"]},
                        "description": "Document the other flavour (default: the configured one)",
                    }
                ],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1 document",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    },
                    **_errors(AUTHENTICATED_ERRORS),
                },
            }
        },
        **_journal_paths(),
        **operator_paths(_errors(AUTHENTICATED_ERRORS)),
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": f"ECR connector local API ({flavour} flavour)",
            "version": __version__,
            "description": "Payments on a Concert V2/V3 terminal for a cash register or kiosk. "
            "Error codes: docs/error-codes.md.",
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "security": [{"BasicAuth": []}],
        "paths": paths,
        "components": {
            "schemas": component_schemas(),
            "securitySchemes": {"BasicAuth": {"type": "http", "scheme": "basic"}},
        },
    }
