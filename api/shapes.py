"""Validation of request parameters against the model's input shapes, and their conversion.

Parameters arrive as JSON values (a protocol front end decodes its wire format first).  They
come out as the core expects them: member names as in the model, timestamps as aware
datetimes, blobs as bytes.  Every violation is collected so the client gets one
``ValidationException`` listing them, worded as AWS words it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
from typing import Any

from botocore.model import Shape

from resilin.api.patterns import matches
from resilin.aws.shapes import ShapeWalker
from resilin.errors import ValidationError

MAX_LISTED_ERRORS = 10
_INT_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


class _Errors:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, value: Any, constraint: str) -> None:
        self.items.append(
            f"Value {_show(value)} at '{path}' failed to satisfy constraint: Member {constraint}"
        )


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | int | float):
        text = str(value)
    else:
        text = json.dumps(value, default=str)
    if len(text) > 100:
        text = text[:97] + "..."
    return f"'{text}'"


def _member_path(parent: str, name: str) -> str:
    # AWS paths spell members in lower camel case: Instances.InstanceCount -> instances.instanceCount
    name = name[:1].lower() + name[1:]
    return f"{parent}.{name}" if parent else name


def parse_input(shape: Shape | None, params: Any) -> dict[str, Any]:
    """Validated and converted parameters of an operation whose input shape is ``shape``."""
    errors = _Errors()
    if shape is None:
        # Operations without input accept only an empty object.
        if params not in (None, {}):
            errors.add("", params, "must be empty: the operation takes no parameters")
        result: dict[str, Any] = {}
    else:
        result = _Validator(errors).structure(shape, params, "")
    if errors.items:
        count = len(errors.items)
        listed = "; ".join(errors.items[:MAX_LISTED_ERRORS])
        noun = "error" if count == 1 else "errors"
        raise ValidationError(f"{count} validation {noun} detected: {listed}")
    return result


class _Validator(ShapeWalker[Any, Any]):
    """One request's walk: every violation is added to ``errors``, the converted value returned."""

    def __init__(self, errors: _Errors) -> None:
        self.errors = errors

    def structure(self, shape: Any, value: Any, path: str) -> dict[str, Any]:
        errors = self.errors
        if not isinstance(value, dict):
            errors.add(path, value, f"must be a structure ({shape.name})")
            return {}
        members = shape.members
        out: dict[str, Any] = {}
        for name, item in value.items():
            member_path = _member_path(path, name)
            if name not in members:
                errors.add(member_path, item, f"is not a known member of {shape.name}")
            elif item is not None:  # JSON null means "not given"
                out[name] = self.walk(members[name], item, member_path)
        for name in shape.required_members:
            if value.get(name) is None:
                errors.add(_member_path(path, name), None, "must not be null")
        return out

    def list(self, shape: Any, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            self.errors.add(path, value, "must be a list")
            return []
        _length(shape, value, len(value), path, self.errors)
        # AWS numbers list items from 1 and names them "member".
        return [self.walk(shape.member, item, f"{path}.{i}.member") for i, item in enumerate(value, 1)]

    def map(self, shape: Any, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.errors.add(path, value, "must be a map")
            return {}
        _length(shape, value, len(value), path, self.errors)
        out = {}
        for key, item in value.items():
            _string(shape.key, key, f"{path}.key", self.errors)
            out[key] = self.walk(shape.value, item, f"{path}.{key}")
        return out

    def scalar(self, shape: Shape, value: Any, path: str) -> Any:
        kind = shape.type_name
        errors = self.errors
        if kind == "string":
            return _string(shape, value, path, errors)
        if kind in _INT_RANGES:
            return _integer(shape, value, path, errors)
        if kind in ("float", "double"):
            return _float(shape, value, path, errors)
        if kind == "boolean":
            if not isinstance(value, bool):
                errors.add(path, value, "must be a boolean")
            return value
        if kind == "timestamp":
            return _timestamp(value, path, errors)
        if kind == "blob":
            return _blob(value, path, errors)
        return value  # documents: any JSON value


def _length(shape: Shape, value: Any, size: int, path: str, errors: _Errors) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        errors.add(path, value, f"must have length greater than or equal to {low}")
    if high is not None and size > high:
        errors.add(path, value, f"must have length less than or equal to {high}")


def _string(shape: Shape, value: Any, path: str, errors: _Errors) -> Any:
    if not isinstance(value, str):
        errors.add(path, value, "must be a string")
        return value
    enum = shape.enum
    if enum and value not in enum:
        errors.add(path, value, f"must satisfy enum value set: [{', '.join(enum)}]")
    _length(shape, value, len(value), path, errors)
    pattern = shape.metadata.get("pattern")
    if pattern and not matches(pattern, value):
        errors.add(path, value, f"must satisfy regular expression pattern: {pattern}")
    return value


def _range(shape: Shape, value: float, path: str, errors: _Errors) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and value < low:
        errors.add(path, value, f"must have value greater than or equal to {low}")
    if high is not None and value > high:
        errors.add(path, value, f"must have value less than or equal to {high}")


def _integer(shape: Shape, value: Any, path: str, errors: _Errors) -> Any:
    # bool is an int subclass in Python but not a number in JSON.
    if not isinstance(value, int) or isinstance(value, bool):
        errors.add(path, value, "must be an integer")
        return value
    low, high = _INT_RANGES[shape.type_name]
    if not low <= value <= high:
        errors.add(path, value, f"must be between {low} and {high} (the {shape.type_name} range)")
        return value
    _range(shape, value, path, errors)
    return value


def _float(shape: Shape, value: Any, path: str, errors: _Errors) -> Any:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        errors.add(path, value, "must be a number")
        return value
    _range(shape, value, path, errors)
    return float(value)


def _timestamp(value: Any, path: str, errors: _Errors) -> Any:
    # The JSON protocol sends epoch seconds; ISO 8601 text is accepted too, as AWS does.  The
    # Query decoder has already read the text it could into an aware datetime.
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return dt.datetime.fromtimestamp(value, dt.UTC)
        if isinstance(value, str):
            parsed = dt.datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    except (ValueError, OverflowError, OSError):
        pass
    errors.add(path, value, "must be a timestamp (epoch seconds or ISO 8601)")
    return value


def _blob(value: Any, path: str, errors: _Errors) -> Any:
    if isinstance(value, bytes):
        return value  # decoded by the Query decoder
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            pass
    errors.add(path, value, "must be base64-encoded binary data")
    return value
