"""Checking the core's results against the model's output shapes while converting them.

A result that does not fit its shape is a bug in the core: it raises ResultShapeError, which
the front end answers as an internal error (the detail is logged, never sent).  Scalars that
each protocol writes its own way (timestamps, blobs) go through the protocol's converters.

Every answer goes through here, so each output shape is compiled once into nested
converter functions; where a value went wrong is worked out only when one does.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.model import Shape

from resilin.aws.shapes import ShapeWalker

Converter = Callable[[Any], Any]


class ResultShapeError(Exception):
    """The core answered something its operation's output shape does not allow."""

    def __init__(self, detail: str, path: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.path = path

    def within(self, step: str) -> ResultShapeError:
        return ResultShapeError(self.detail, step + self.path)

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}" if self.path else self.detail


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
    try:
        return _compiled(shape, scalars)(result)
    except ResultShapeError as exc:
        raise exc.within(shape.name) from None


def _fail(expected: str, value: Any) -> ResultShapeError:
    return ResultShapeError(f"expected {expected}, got {type(value).__name__} {value!r:.200}")


_CACHE: dict[tuple[int, str, str], Converter] = {}
# Converters are registered before their members are compiled (shapes can be recursive), so
# they are built aside, one thread at a time, and published together once complete: other
# threads read _CACHE without a lock and never see one half-built.
_COMPILING = threading.Lock()
_PENDING: dict[tuple[int, str, str], Converter] = {}


def _compiled(shape: Shape, scalars: Scalars) -> Converter:
    key = (id(scalars), shape.name, shape.type_name)
    converter = _CACHE.get(key)
    if converter is None:
        with _COMPILING:
            converter = _CACHE.get(key)
            if converter is None:
                try:
                    converter = _Compiler(scalars).walk(shape, None, shape.name)
                    _CACHE.update(_PENDING)
                finally:
                    _PENDING.clear()
    return converter


class _Compiler(ShapeWalker[None, Converter]):
    """Walks an output shape once, into a converter function; only while the lock is held."""

    def __init__(self, scalars: Scalars) -> None:
        self.scalars = scalars

    def _key(self, shape: Shape) -> tuple[int, str, str]:
        return (id(self.scalars), shape.name, shape.type_name)

    def walk(self, shape: Shape, value: None, path: str) -> Converter:
        key = self._key(shape)
        converter = _CACHE.get(key) or _PENDING.get(key)
        if converter is None:
            converter = super().walk(shape, value, path)
            _PENDING[key] = converter
        return converter

    def structure(self, shape: Any, value: None, path: str) -> Converter:
        # Recursive shapes (a Configuration holds Configurations) reach this key again while
        # it is being compiled: they find the converter already registered.
        members: dict[str, Converter] = {}
        required = tuple(shape.required_members)
        name = shape.name

        def structure(value: Any) -> dict[str, Any]:
            if type(value) is not dict:
                raise _fail(f"a {name} structure", value)
            out = {}
            for member, item in value.items():
                convert = members.get(member)
                if convert is None:
                    raise ResultShapeError(f"{member!r} is not a member of {name}")
                if item is not None:
                    try:
                        out[member] = convert(item)
                    except ResultShapeError as exc:
                        raise exc.within("." + member) from None
            for member in required:
                if member not in out:
                    missing = [m for m in required if m not in out]
                    raise ResultShapeError(f"required member(s) missing: {', '.join(missing)}")
            return out

        _PENDING[self._key(shape)] = structure
        for member, member_shape in shape.members.items():
            members[member] = self.walk(member_shape, None, member)
        return structure

    def list(self, shape: Any, value: None, path: str) -> Converter:
        _PENDING[self._key(shape)] = lambda value: item_list(value)  # placeholder while the member compiles
        convert_item = self.walk(shape.member, None, path)

        def item_list(value: Any) -> list[Any]:
            if type(value) is not list and type(value) is not tuple:
                raise _fail("a list", value)
            out = []
            for i, item in enumerate(value):
                try:
                    out.append(convert_item(item))
                except ResultShapeError as exc:
                    raise exc.within(f"[{i}]") from None
            return out

        return item_list

    def map(self, shape: Any, value: None, path: str) -> Converter:
        _PENDING[self._key(shape)] = lambda value: mapping(value)
        convert_key = self.walk(shape.key, None, path)
        convert_value = self.walk(shape.value, None, path)

        def mapping(value: Any) -> dict[str, Any]:
            if type(value) is not dict:
                raise _fail("a map", value)
            out = {}
            for k, v in value.items():
                if v is None:
                    continue
                try:
                    out[convert_key(k)] = convert_value(v)
                except ResultShapeError as exc:
                    raise exc.within(f"[{k!r}]") from None
            return out

        return mapping

    def scalar(self, shape: Shape, value: None, path: str) -> Converter:
        return _scalar(shape, self.scalars)


def _scalar(shape: Shape, scalars: Scalars) -> Converter:
    kind = shape.type_name
    if kind == "string":
        enum = frozenset(shape.enum or ())
        listed = list(shape.enum or ())

        def string(value: Any) -> str:
            if type(value) is not str:
                if not isinstance(value, str):
                    raise _fail("a string", value)
                value = str(value)  # a StrEnum member (a state, a reason code): its plain value
            if enum and value not in enum:
                raise _fail(f"one of {listed}", value)
            return value

        return string
    if kind in ("integer", "long"):

        def integer(value: Any) -> int:
            if type(value) is not int:
                raise _fail("an integer", value)
            return value

        return integer
    if kind in ("float", "double"):

        def number(value: Any) -> float:
            if type(value) is not int and type(value) is not float:
                raise _fail("a number", value)
            return float(value)

        return number
    if kind == "boolean":

        def boolean(value: Any) -> bool:
            if type(value) is not bool:
                raise _fail("a boolean", value)
            return value

        return boolean
    if kind == "timestamp":
        write_time = scalars.timestamp

        def timestamp(value: Any) -> Any:
            # Naive datetimes are ambiguous; the core must say which zone it means.
            if not isinstance(value, dt.datetime) or value.tzinfo is None:
                raise _fail("an aware datetime", value)
            return write_time(value)

        return timestamp
    if kind == "blob":
        write_blob = scalars.blob

        def blob(value: Any) -> Any:
            if type(value) is not bytes:
                raise _fail("bytes", value)
            return write_blob(value)

        return blob
    return lambda value: value  # documents
