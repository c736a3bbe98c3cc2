"""The control channel between the supervisor agent and tp-manager.

Requests are JSON ``{id, command, properties}``; replies are ``{id, ok, result}``
or ``{id, ok: false, error: {code, message}}`` (the circus control-channel
shape).  Events go out on a separate PUB socket as two frames: the topic (the
event name, so subscribers can filter by prefix) and a JSON body.  This module
is the only place these shapes are written down.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

# Commands tp-manager serves (one module each in tp_manager/commands/).
COMMANDS = ("pay", "cancel", "check", "info", "reset", "telecollect", "shutdown")

# Error codes of the channel itself; terminal faults use TerminalError.code.
BAD_MESSAGE = "BAD_MESSAGE"
UNKNOWN_COMMAND = "UNKNOWN_COMMAND"
INVALID_PROPERTIES = "INVALID_PROPERTIES"
INTERNAL_ERROR = "INTERNAL_ERROR"
SHUTTING_DOWN = "SHUTTING_DOWN"
TP_MANAGER_UNAVAILABLE = "TP_MANAGER_UNAVAILABLE"
TP_MANAGER_TIMEOUT = "TP_MANAGER_TIMEOUT"
TP_MANAGER_RESTARTED = "TP_MANAGER_RESTARTED"

# Failures after which the terminal certainly did nothing: the payment may be
# tried again under the same order id, and HiPay has nothing to learn.  Every
# other failure of a payment leaves its outcome *unknown* (the customer may have
# paid).  Keep in step with the TerminalError classes whose
# ``money_may_have_moved`` is False (tests/backbone/test_not_sent_codes.py).
NOTHING_SENT_CODES = frozenset(
    {
        "NOT_SENT_TO_TERMINAL",
        "AMOUNT_OUT_OF_RANGE",
        "INVALID_REQUEST",
        "TERMINAL_BUSY",
        "TERMINAL_NOT_RESPONDING",
        "REQUEST_REJECTED",
        "LINK_DOWN",
        "PORT_NOT_FOUND",
        "PORT_PERMISSION_DENIED",
        "PORT_SETTINGS_REJECTED",
        "CONNECTION_REFUSED",
        "HOST_UNREACHABLE",
        "CONNECT_TIMEOUT",
        "NOT_SUPPORTED",
        "TERMINAL_NOT_ALLOWED",
        BAD_MESSAGE,
        UNKNOWN_COMMAND,
        INVALID_PROPERTIES,
        SHUTTING_DOWN,
        TP_MANAGER_UNAVAILABLE,
    }
)

# Event names published on the PUB socket.
EVENT_LINK_UP = "link.up"
EVENT_LINK_DOWN = "link.down"
EVENT_TERMINAL_BUSY = "terminal.busy"
EVENT_TERMINAL_IDLE = "terminal.idle"
EVENT_TRANSACTION_STARTED = "transaction.started"
EVENT_TRANSACTION_FINISHED = "transaction.finished"
# The terminal answered a payment after the connector had given up on it (timeout, cancel):
# the real outcome of an order journaled ``unknown``.
EVENT_LATE_ANSWER = "transaction.late_answer"


class MessageError(ValueError):
    """A frame on the channel that is not a well-formed message."""


@dataclass(frozen=True, slots=True)
class Request:
    command: str
    properties: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def encode(self) -> bytes:
        return json.dumps(
            {"id": self.id, "command": self.command, "properties": self.properties},
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Request:
        data = _load_object(raw)
        rid, command, props = data.get("id"), data.get("command"), data.get("properties", {})
        if not isinstance(rid, str) or not rid:
            raise MessageError("request needs a non-empty string 'id'")
        if not isinstance(command, str) or not command:
            raise MessageError("request needs a non-empty string 'command'")
        if not isinstance(props, dict):
            raise MessageError("'properties' must be an object")
        return cls(command=command, properties=props, id=rid)


@dataclass(frozen=True, slots=True)
class Reply:
    id: str
    ok: bool
    result: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None

    @classmethod
    def success(cls, rid: str, result: dict[str, Any]) -> Reply:
        return cls(id=rid, ok=True, result=result)

    @classmethod
    def failure(cls, rid: str, code: str, message: str) -> Reply:
        return cls(id=rid, ok=False, error_code=code, error_message=message)

    def encode(self) -> bytes:
        body: dict[str, Any] = {"id": self.id, "ok": self.ok}
        if self.ok:
            body["result"] = self.result or {}
        else:
            body["error"] = {"code": self.error_code, "message": self.error_message}
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Reply:
        data = _load_object(raw)
        rid, ok = data.get("id"), data.get("ok")
        if not isinstance(rid, str) or not isinstance(ok, bool):
            raise MessageError("reply needs string 'id' and boolean 'ok'")
        if ok:
            result = data.get("result", {})
            if not isinstance(result, dict):
                raise MessageError("'result' must be an object")
            return cls.success(rid, result)
        err = data.get("error")
        if not isinstance(err, dict) or not isinstance(err.get("code"), str):
            raise MessageError("failed reply needs 'error' with a string 'code'")
        return cls.failure(rid, err["code"], str(err.get("message", "")))


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def frames(self) -> list[bytes]:
        body = {"event": self.name, "time": self.time, "data": self.data}
        return [self.name.encode(), json.dumps(body, separators=(",", ":")).encode()]

    @classmethod
    def from_frames(cls, frames: list[bytes]) -> Event:
        if len(frames) != 2:
            raise MessageError(f"an event is 2 frames, got {len(frames)}")
        data = _load_object(frames[1])
        return cls(name=str(data.get("event")), data=data.get("data") or {}, time=data["time"])


def _load_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MessageError("a message must be a JSON object")
    return data
