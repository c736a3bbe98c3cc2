"""``WireModel``: a frozen dataclass that crosses the control channel as a JSON object.

``from_wire`` validates with pydantic against the dataclass's own annotations, so
a command's shape is written once, as the dataclass, and a peer that sends
something else gets a ``ValueError`` instead of a half-read object.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Self

from pydantic import TypeAdapter


@functools.cache
def _adapter(cls: type) -> TypeAdapter[Any]:
    return TypeAdapter(cls)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, str):
        return str(value)  # a StrEnum member becomes its value
    return value


class WireModel:
    """Mixin for the command dataclasses of :mod:`common.commands`."""

    __slots__ = ()

    def to_wire(self) -> dict[str, Any]:
        data = _plain(self)
        assert isinstance(data, dict)
        return data

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        """``ValueError`` (pydantic's ValidationError is one) for anything else."""
        adapter: TypeAdapter[Self] = _adapter(cls)  # type: ignore[arg-type]
        result: Self = adapter.validate_python(data)
        return result
