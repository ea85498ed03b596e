"""The Query protocol's flat parameters mapped onto the model's input shapes.

botocore's EMR model is written for the JSON protocol; the Query protocol sends the same
members flattened the standard way: ``Instances.MasterInstanceType=…``, lists as
``Steps.member.1.Name=…`` (an empty value for an empty list), maps as
``Properties.entry.1.key=…``/``.value=…``, and every scalar as text.  The parameters become
the same JSON-like values the JSON protocol decodes, so one validator checks both.  Text
that does not read as its shape's type (``InstanceCount=three``) is passed on as it came,
for the validator to name; so are members the shape does not have.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from botocore.model import Shape

from resilin.api.errors import MalformedQueryString
from resilin.errors import ValidationError

# Parameters of the protocol and of authentication, not of the operation.
RESERVED = frozenset(
    {
        "Action",
        "Version",
        "AWSAccessKeyId",
        "SignatureVersion",
        "SignatureMethod",
        "Signature",
        "Timestamp",
        "Expires",
        "SecurityToken",
    }
)
# Parameters that old Query clients send and EMR accepted without a member in today's model:
# boto 2's run_jobflow always sends a top-level ActionOnFailure (the steps carry their own).
LEGACY_IGNORED = {"RunJobFlow": frozenset({"ActionOnFailure"})}
_INTEGER = re.compile(r"^[+-]?\d{1,30}$")
_MAX_DEPTH = 32


def decode_form(text: str, what: str) -> list[tuple[str, str]]:
    """``name=value&…`` pairs, percent-decoded as UTF-8; MalformedQueryString when they are not."""
    try:
        return parse_qsl(
            text, keep_blank_values=True, strict_parsing=False, encoding="utf-8", errors="strict"
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedQueryString(f"The {what} is not valid form encoding: {exc}") from None


def is_reserved(name: str) -> bool:
    return name in RESERVED or name.startswith("X-Amz-")


def members(operation: str, shape: Shape | None, pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The operation's parameters as the JSON protocol would have sent them."""
    tree: dict[str, Any] = {}
    ignored = LEGACY_IGNORED.get(operation, frozenset())
    for name, value in pairs:
        if is_reserved(name) or name in ignored:
            continue
        parts = name.split(".")
        if len(parts) > _MAX_DEPTH or not all(parts):
            raise ValidationError(f"Parameter name '{name[:200]}' is not valid.")
        node = tree
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValidationError(
                    f"Parameter '{name[:200]}' is given both as a value and as a structure."
                )
            node = child
        last = parts[-1]
        if isinstance(node.get(last), dict):
            raise ValidationError(f"Parameter '{name[:200]}' is given both as a value and as a structure.")
        if last in node:
            raise ValidationError(f"Parameter '{name[:200]}' is given more than once.")
        node[last] = value
    if shape is None:
        return tree  # the validator refuses anything for an operation without input
    converted = _value(shape, tree)
    return converted if isinstance(converted, dict) else {}


def _value(shape: Shape, node: Any) -> Any:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(node, dict):
            return node
        known = shape.members
        return {name: _value(known[name], item) if name in known else item for name, item in node.items()}
    if kind == "list":
        if node == "":
            return []
        items = _indexed(node, "member")
        return node if items is None else [_value(shape.member, item) for item in items]
    if kind == "map":
        if node == "":
            return {}
        entries = _indexed(node, "entry")
        if entries is None or not all(isinstance(e, dict) and set(e) == {"key", "value"} for e in entries):
            return node
        return {e["key"]: _value(shape.value, e["value"]) for e in entries if isinstance(e["key"], str)}
    if not isinstance(node, str):
        return node
    if kind in ("integer", "long"):
        return int(node) if _INTEGER.match(node) else node
    if kind in ("float", "double"):
        try:
            number = float(node)
        except ValueError:
            return node
        return number if math.isfinite(number) else node
    if kind == "boolean":
        return {"true": True, "false": False}.get(node, node)
    if kind == "timestamp" and _INTEGER.match(node):
        return int(node)  # epoch seconds; ISO 8601 text is read by the validator
    return node


def _indexed(node: Any, word: str) -> list[Any] | None:
    """The items of ``{word: {"1": …, "2": …}}`` in index order; None when it is not that."""
    if not isinstance(node, dict) or set(node) != {word} or not isinstance(node[word], dict):
        return None
    numbered = node[word]
    if not all(key.isdigit() and 0 < len(key) < 7 and int(key) > 0 for key in numbered):
        return None
    return [numbered[key] for key in sorted(numbered, key=int)]
