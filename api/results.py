"""Checking the core's results against the model's output shapes while converting them.

A result that does not fit its shape is a bug in the core: it raises ResultShapeError, which
the front end answers as an internal error (the detail is logged, never sent).  Scalars that
each protocol writes its own way (timestamps, blobs) go through the protocol's converters.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.model import Shape


class ResultShapeError(Exception):
    """The core answered something its operation's output shape does not allow."""


@dataclass(frozen=True)
class Scalars:
    """How a protocol writes the scalars that have no single natural form."""

    timestamp: Callable[[dt.datetime], Any]
    blob: Callable[[bytes], Any] = lambda data: base64.b64encode(data).decode("ascii")


def epoch_seconds(value: dt.datetime) -> float:
    return value.timestamp()


JSON_SCALARS = Scalars(timestamp=epoch_seconds)


def serialize_output(shape: Shape | None, result: Any, scalars: Scalars) -> dict[str, Any]:
    """``result`` converted for the wire; ResultShapeError when it does not fit ``shape``."""
    if shape is None:
        if result not in (None, {}):
            raise ResultShapeError(f"operation has no output but the core returned {result!r:.200}")
        return {}
    if result is None:
        result = {}
    return _structure(shape, result, shape.name, scalars)


def _fail(path: str, expected: str, value: Any) -> ResultShapeError:
    return ResultShapeError(f"{path}: expected {expected}, got {type(value).__name__} {value!r:.200}")


def _value(shape: Shape, value: Any, path: str, scalars: Scalars) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return _structure(shape, value, path, scalars)
    if kind == "list":
        if not isinstance(value, list | tuple):
            raise _fail(path, "a list", value)
        return [_value(shape.member, item, f"{path}[{i}]", scalars) for i, item in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            raise _fail(path, "a map", value)
        return {
            _value(shape.key, k, f"{path} key", scalars): _value(shape.value, v, f"{path}[{k!r}]", scalars)
            for k, v in value.items()
            if v is not None
        }
    if kind == "string":
        if not isinstance(value, str):
            raise _fail(path, "a string", value)
        if shape.enum and value not in shape.enum:
            raise _fail(path, f"one of {shape.enum}", value)
        return value
    if kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _fail(path, "an integer", value)
        return value
    if kind in ("float", "double"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise _fail(path, "a number", value)
        return float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _fail(path, "a boolean", value)
        return value
    if kind == "timestamp":
        # Naive datetimes are ambiguous; the core must say which zone it means.
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise _fail(path, "an aware datetime", value)
        return scalars.timestamp(value)
    if kind == "blob":
        if not isinstance(value, bytes):
            raise _fail(path, "bytes", value)
        return scalars.blob(value)
    return value  # documents


def _structure(shape: Shape, value: Any, path: str, scalars: Scalars) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, f"a {shape.name} structure", value)
    members = shape.members
    out: dict[str, Any] = {}
    for name, item in value.items():
        if name not in members:
            raise ResultShapeError(f"{path}: {name!r} is not a member of {shape.name}")
        if item is not None:
            out[name] = _value(members[name], item, f"{path}.{name}", scalars)
    missing = [name for name in shape.required_members if name not in out]
    if missing:
        raise ResultShapeError(f"{path}: required member(s) missing: {', '.join(missing)}")
    return out
