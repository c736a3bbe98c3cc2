"""The control channel's envelope between the supervisor agent and tp-manager.

Requests are JSON ``{id, command, properties}``; replies are ``{id, ok, result}``
or ``{id, ok: false, error: {code, message, money_may_have_moved}}`` (the circus
control-channel shape).  Events go out on a separate PUB socket as two frames:
the topic (the event name, so subscribers can filter by prefix) and a JSON body.
Each command's own properties and result are in :mod:`common.commands`.

orjson writes and reads the JSON: a payment crosses the channel in two requests' worth
of messages and four events each way, and the standard library's encoder and decoder
were a few per cent of both processes' CPU per payment.  Keys that are not strings are
written as strings (``OPT_NON_STR_KEYS``), as the standard library does; a float that is
not a number is written ``null`` (standard JSON has no NaN) and an integer beyond 64 bits
is refused: neither is a message of this channel.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from common.commands.errors import money_may_have_moved as money_may_have_moved_default

# Event names published on the PUB socket.
EVENT_LINK_UP = "link.up"
EVENT_LINK_DOWN = "link.down"
EVENT_TERMINAL_BUSY = "terminal.busy"
EVENT_TERMINAL_IDLE = "terminal.idle"
EVENT_TRANSACTION_STARTED = "transaction.started"
# tp-manager holds a verdict the agent has not acknowledged (a late answer, a reply
# nobody read): a hint to send ``results``; the store, not this event, carries it.
EVENT_RESULT_PENDING = "transaction.result_pending"


_DUMP_OPTIONS: Final = orjson.OPT_NON_STR_KEYS


class MessageError(ValueError):
    """A frame on the channel that is not a well-formed message."""


def _dump(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, option=_DUMP_OPTIONS)


@dataclass(frozen=True, slots=True)
class Request:
    command: str
    properties: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def encode(self) -> bytes:
        return _dump({"id": self.id, "command": self.command, "properties": self.properties})

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
    money_may_have_moved: bool = False  # failures only: may the customer have paid

    @classmethod
    def success(cls, rid: str, result: dict[str, Any]) -> Reply:
        return cls(id=rid, ok=True, result=result)

    @classmethod
    def failure(
        cls, rid: str, code: str, message: str, money_may_have_moved: bool | None = None
    ) -> Reply:
        """``money_may_have_moved`` defaults to the code's (common.commands.errors)."""
        moved = (
            money_may_have_moved_default(code)
            if money_may_have_moved is None
            else bool(money_may_have_moved)
        )
        return cls(
            id=rid, ok=False, error_code=code, error_message=message, money_may_have_moved=moved
        )

    def encode(self) -> bytes:
        body: dict[str, Any] = {"id": self.id, "ok": self.ok}
        if self.ok:
            body["result"] = self.result or {}
        else:
            body["error"] = {
                "code": self.error_code,
                "message": self.error_message,
                "money_may_have_moved": self.money_may_have_moved,
            }
        return _dump(body)

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
        moved = err.get("money_may_have_moved")
        return cls.failure(
            rid,
            err["code"],
            str(err.get("message", "")),
            moved if isinstance(moved, bool) else None,
        )


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def frames(self) -> list[bytes]:
        body = {"event": self.name, "time": self.time, "data": self.data}
        return [self.name.encode(), _dump(body)]

    @classmethod
    def from_frames(cls, frames: list[bytes]) -> Event:
        if len(frames) != 2:
            raise MessageError(f"an event is 2 frames, got {len(frames)}")
        data = _load_object(frames[1])
        return cls(name=str(data.get("event")), data=data.get("data") or {}, time=data["time"])


def _load_object(raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:  # invalid UTF-8 included
        raise MessageError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MessageError("a message must be a JSON object")
    return data
