"""Decode EC2 Query protocol parameters into a dict shaped like the operation's input.

The ec2 protocol flattens a request into dotted names: a member is named by its
``queryName``, else its capitalised ``locationName``, else its member name;
list elements are numbered from 1 (``InstanceId.1``, ``Filter.1.Value.2``).
This is the inverse of botocore's ``EC2Serializer``, driven by the same model,
so the result uses the model's member names, exactly as boto3 callers write them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.model import Shape, StructureShape

from resilin.provisioners.localcloud.errors import EC2Error, invalid, missing

# Parameters that belong to the envelope, not the operation's input.
ENVELOPE = {"Action", "Version"}


@dataclass
class _Node:
    value: str | None = None
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(params: Iterable[tuple[str, str]]) -> _Node:
    root = _Node()
    for name, value in params:
        if name in ENVELOPE or name.startswith("X-Amz-"):
            continue
        node = root
        for part in name.split("."):
            node = node.children.setdefault(part, _Node())
        node.value = value
    return root


def serialized_name(shape: Shape, member_name: str) -> str:
    if "queryName" in shape.serialization:
        return shape.serialization["queryName"]
    if "name" in shape.serialization:
        name = shape.serialization["name"]
        return name[0].upper() + name[1:]
    return member_name


def decode(params: Iterable[tuple[str, str]], shape: StructureShape | None) -> dict[str, Any]:
    """The operation input for ``params``; raises EC2Error on unknown, missing or mistyped values."""
    tree = _tree(params)
    if shape is None:
        if tree.children:
            raise _unknown(next(iter(tree.children)))
        return {}
    return _structure(shape, tree, "")


def _unknown(name: str) -> EC2Error:
    return EC2Error("UnknownParameter", f"The parameter {name} is not recognized")


def _structure(shape: StructureShape, node: _Node, prefix: str) -> dict[str, Any]:
    if node.value is not None and not node.children:
        raise invalid(prefix.rstrip("."), node.value, "Expected a structure.")
    by_name = {serialized_name(s, n): (n, s) for n, s in shape.members.items()}
    result: dict[str, Any] = {}
    for key, child in node.children.items():
        if key not in by_name:
            raise _unknown(prefix + key)
        member_name, member_shape = by_name[key]
        result[member_name] = _value(member_shape, child, prefix + key)
    for required in shape.required_members:
        if required not in result:
            raise missing(prefix + serialized_name(shape.members[required], required))
    return result


def _indexed(node: _Node, path: str) -> list[_Node]:
    try:
        numbered = sorted((int(k), child) for k, child in node.children.items())
    except ValueError:
        bad = next(k for k in node.children if not k.isdigit())
        raise _unknown(f"{path}.{bad}") from None
    if any(i < 1 for i, _ in numbered):
        raise invalid(path, numbered[0][0], "List indexes start at 1.")
    return [child for _, child in numbered]


def _value(shape: Shape, node: _Node, path: str) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return _structure(shape, node, path + ".")  # type: ignore[arg-type]
    if kind == "list":
        if node.value not in (None, "") and not node.children:
            raise invalid(path, node.value, "Expected a list.")
        return [_value(shape.member, child, f"{path}.{i}") for i, child in enumerate(_indexed(node, path), 1)]  # type: ignore[attr-defined]
    if kind == "map":
        key_name = serialized_name(shape.key, "key")  # type: ignore[attr-defined]
        value_name = serialized_name(shape.value, "value")  # type: ignore[attr-defined]
        entries = node.children.get("entry", node)
        out = {}
        for i, entry in enumerate(_indexed(entries, path), 1):
            k, v = entry.children.get(key_name), entry.children.get(value_name)
            if k is None:
                raise missing(f"{path}.{i}.{key_name}")
            out[_scalar(shape.key, k, path)] = _scalar(shape.value, v, path) if v else None  # type: ignore[attr-defined]
        return out
    if node.children:
        raise _unknown(f"{path}.{next(iter(node.children))}")
    return _scalar(shape, node, path)


def _scalar(shape: Shape, node: _Node, path: str) -> Any:
    text = node.value or ""
    kind = shape.type_name
    if kind in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            raise invalid(path, text, "Expected an integer.") from None
    if kind in ("float", "double"):
        try:
            return float(text)
        except ValueError:
            raise invalid(path, text, "Expected a number.") from None
    if kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise invalid(path, text, "Expected true or false.")
        return text.lower() == "true"
    if kind == "timestamp":
        try:
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise invalid(path, text, "Expected an ISO 8601 timestamp.") from None
    if kind == "blob":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise invalid(path, text, "Expected base64-encoded data.") from None
    return text
