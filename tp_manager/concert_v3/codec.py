"""Concert V3 (Caisse-AP over IP) field codec, without any I/O.

A message is a run of fields, each ``tag`` (2 chars) + ``length`` (3 digits,
zero-padded) + ``value`` (1..999 chars), with no frame around the whole and no
terminator.  TCP may deliver it in any number of segments, so decoding is an
incremental state machine (:class:`FieldStreamDecoder`) that is fed bytes as
they arrive, whatever their split.

Strictness (every violation raises a :class:`MalformedMessage` subclass, at
the first offending byte, whatever the segmentation):

* bytes must be ASCII; a tag is two of ``A-Z`` / ``0-9``; a length is three
  ASCII digits and not ``000``; a value is printable ASCII (0x20..0x7E);
* a tag appears at most once per message (the answer *echoes* the request's
  fields and *adds* its own, so a repeated tag is not a valid answer);
* a message that ends inside a field, or holds no field, is truncated.

When is an answer complete?  The wire has no length prefix and no terminator,
so completeness is a rule over what has been parsed (see
:func:`answer_progress`):

* ``PARTIAL``  - a field is half read, or the status field ``AE`` is absent;
* ``USABLE``   - only whole fields, ``AE`` present, but some request field is
  not echoed yet;
* ``COMPLETE`` - only whole fields, ``AE`` present and every request field
  echoed.

The transport reads until ``COMPLETE`` and then for a short settle time (a
terminal may send its own fields after the echo), or accepts ``USABLE`` after a
quiet grace period (a terminal that does not echo everything).  Timers live in
the transport; this module only says what the bytes hold.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Final

from tp_manager.terminal.errors import InvalidRequest, MalformedMessage

TAG_SIZE: Final = 2
LENGTH_SIZE: Final = 3
MIN_VALUE_SIZE: Final = 1
MAX_VALUE_SIZE: Final = 999
STATUS_TAG: Final = "AE"

Field = tuple[str, str]

_TAG_BYTES: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_DIGIT_BYTES: Final = frozenset(b"0123456789")
_PRINTABLE_MIN: Final = 0x20
_PRINTABLE_MAX: Final = 0x7E
_ASCII_MAX: Final = 0x7F
_NOT_PRINTABLE: Final = re.compile(rb"[^\x20-\x7e]")


class NonAsciiByte(MalformedMessage):
    """A byte above 0x7F: Caisse-AP messages are ASCII."""


class BadTag(MalformedMessage):
    """A tag character outside ``A-Z0-9``."""


class BadLength(MalformedMessage):
    """A length that is not three digits, or is ``000``."""


class BadValue(MalformedMessage):
    """A control character inside a value."""


class DuplicateTag(MalformedMessage):
    """The same tag twice in one message (``tag``): raised at the tag's second byte."""

    def __init__(self, tag: str, message: str) -> None:
        super().__init__(message)
        self.tag = tag


class TruncatedMessage(MalformedMessage):
    """The bytes end inside a field, or there are none."""


class _State(enum.Enum):
    TAG = enum.auto()
    LENGTH = enum.auto()
    VALUE = enum.auto()


class FieldStreamDecoder:
    """Incremental decoder for one message.

    ``feed`` may be called with any split of the bytes (one byte at a time, a
    whole message, TCP segments); errors are raised at the first bad byte and
    stay raised (a broken decoder refuses further input).
    """

    def __init__(self) -> None:
        self._fields: list[Field] = []
        self._tags: set[str] = set()
        self._state = _State.TAG
        self._tag = bytearray()
        self._length_digits = bytearray()
        self._length = 0
        self._value = bytearray()
        self._offset = 0  # bytes consumed so far, for error messages
        self._error: MalformedMessage | None = None

    @property
    def fields(self) -> tuple[Field, ...]:
        """The whole fields parsed so far, in wire order."""
        return tuple(self._fields)

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(self._tags)

    @property
    def byte_count(self) -> int:
        return self._offset

    @property
    def has_partial_field(self) -> bool:
        """True when bytes of a field that is not finished are held."""
        return self._state is not _State.TAG or bool(self._tag)

    def feed(self, data: bytes) -> None:
        """Tags and lengths byte by byte (five bytes a field); a value's bytes as one run:
        one regex search and one copy, not a Python step per byte."""
        if self._error is not None:
            raise self._error
        at, size = 0, len(data)
        try:
            while at < size:
                if self._state is _State.VALUE:
                    at = self._feed_value(data, at)
                else:
                    self._step(data[at])
                    self._offset += 1
                    at += 1
        except MalformedMessage as exc:
            self._error = exc
            raise

    def _feed_value(self, data: bytes, at: int) -> int:
        """As many bytes of the current value as ``data`` holds from ``at``; where to go on."""
        run = data[at : at + self._length - len(self._value)]
        bad = _NOT_PRINTABLE.search(run)
        if bad is not None:  # the value up to it is taken, then the byte is refused
            self._value += run[: bad.start()]
            self._offset += bad.start()
            self._step(run[bad.start()])
            raise AssertionError("_step takes no byte outside 0x20..0x7E in a value")
        self._value += run
        self._offset += len(run)
        if len(self._value) == self._length:
            self._end_field()
        return at + len(run)

    def finish(self) -> tuple[Field, ...]:
        """The message, if the bytes fed so far are whole fields and at least one."""
        if self._error is not None:
            raise self._error
        if self.has_partial_field:
            where = self._tag.decode("ascii") or "?"
            raise TruncatedMessage(
                f"message ends inside field {where!s} after {self._offset} bytes"
            )
        if not self._fields:
            raise TruncatedMessage("empty message: no field")
        return self.fields

    def _step(self, byte: int) -> None:
        if byte > _ASCII_MAX:
            raise NonAsciiByte(f"non-ASCII byte 0x{byte:02X} at offset {self._offset}")
        if self._state is _State.TAG:
            if byte not in _TAG_BYTES:
                raise BadTag(f"bad tag character {chr(byte)!r} at offset {self._offset}")
            self._tag.append(byte)
            if len(self._tag) == TAG_SIZE:
                tag = self._tag.decode("ascii")
                if tag in self._tags:
                    raise DuplicateTag(tag, f"tag {tag} appears twice (offset {self._offset - 1})")
                self._state = _State.LENGTH
        elif self._state is _State.LENGTH:
            if byte not in _DIGIT_BYTES:
                raise BadLength(
                    f"length of field {self._tag.decode('ascii')} has non-digit "
                    f"{chr(byte)!r} at offset {self._offset}"
                )
            self._length_digits.append(byte)
            if len(self._length_digits) == LENGTH_SIZE:
                self._length = int(self._length_digits)
                if self._length < MIN_VALUE_SIZE:
                    raise BadLength(
                        f"field {self._tag.decode('ascii')} has length 000 "
                        f"(offset {self._offset - LENGTH_SIZE + 1})"
                    )
                self._state = _State.VALUE
        else:
            if byte < _PRINTABLE_MIN or byte > _PRINTABLE_MAX:
                raise BadValue(
                    f"control byte 0x{byte:02X} in field {self._tag.decode('ascii')} "
                    f"at offset {self._offset}"
                )
            self._value.append(byte)
            if len(self._value) == self._length:
                self._end_field()

    def _end_field(self) -> None:
        tag = self._tag.decode("ascii")
        self._fields.append((tag, self._value.decode("ascii")))
        self._tags.add(tag)
        self._tag.clear()
        self._length_digits.clear()
        self._value.clear()
        self._state = _State.TAG


def encode_field(tag: str, value: str) -> bytes:
    """One field on the wire; :class:`InvalidRequest` if the wire cannot carry it."""
    if len(tag) != TAG_SIZE or any(ord(c) not in _TAG_BYTES for c in tag):
        raise InvalidRequest(f"tag must be two of A-Z0-9, got {tag!r}")
    if not MIN_VALUE_SIZE <= len(value) <= MAX_VALUE_SIZE:
        raise InvalidRequest(
            f"field {tag} value must be {MIN_VALUE_SIZE}..{MAX_VALUE_SIZE} chars, got {len(value)}"
        )
    if any(not _PRINTABLE_MIN <= ord(c) <= _PRINTABLE_MAX for c in value):
        raise InvalidRequest(f"field {tag} value must be printable ASCII")
    return f"{tag}{len(value):0{LENGTH_SIZE}d}{value}".encode("ascii")


def encode_fields(fields: Iterable[Field]) -> bytes:
    """A message from fields in the given order (no duplicate tags)."""
    seen: set[str] = set()
    out = bytearray()
    for tag, value in fields:
        if tag in seen:
            raise InvalidRequest(f"tag {tag} given twice")
        seen.add(tag)
        out += encode_field(tag, value)
    if not out:
        raise InvalidRequest("a message needs at least one field")
    return bytes(out)


def as_mapping(fields: Iterable[Field]) -> Mapping[str, str]:
    """Tag -> value; tags are unique in a decoded message, so nothing is lost."""
    return dict(fields)


class AnswerProgress(enum.Enum):
    PARTIAL = "partial"
    USABLE = "usable"
    COMPLETE = "complete"


def answer_progress(decoder: FieldStreamDecoder, echo_tags: Collection[str]) -> AnswerProgress:
    """Apply the completeness rule in this module's docstring."""
    tags = decoder.tags  # a new frozenset each time: taken once
    if decoder.has_partial_field or STATUS_TAG not in tags:
        return AnswerProgress.PARTIAL
    if all(tag in tags for tag in echo_tags):
        return AnswerProgress.COMPLETE
    return AnswerProgress.USABLE
