"""Reading the Query protocol's flat parameters back into an operation's input, driven by its model.

The inverse of botocore's ``QuerySerializer`` and ``EC2Serializer``: dotted names become a
tree (``Steps.member.1.Name=…``), and the tree is walked with the input shape.  Scalars come
out typed (integers, floats, booleans, timestamps as aware datetimes, blobs as bytes).

The two protocols differ where botocore's serializers do, in methods the EC2 decoder
overrides: how a member is named (EC2 prefers ``queryName``, then the capitalised
``locationName``) and how list items are numbered (EC2 always flattened: ``InstanceId.1``).
They also differ in strictness.  :class:`QueryDecoder` (EMR) is lenient: what does not read
as its shape (``InstanceCount=three``, an unknown member) is passed on as it came, for the
service's validator to name with every other violation.  :class:`EC2QueryDecoder` refuses the
first such value with EC2's own error codes, as EC2 does.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import parse_qsl

from botocore.model import Shape

from resilin.aws.errors import AwsError
from resilin.aws.shapes import ShapeWalker
from resilin.aws.sigv2 import AUTH_PARAMETERS

_INTEGER = re.compile(r"^[+-]?\d{1,30}$")
MAX_DEPTH = 32  # dotted parts of one name; far deeper than any model


def parse_form(text: str) -> list[tuple[str, str]]:
    """``name=value&…`` pairs, percent-decoded as UTF-8; ValueError (or UnicodeDecodeError) when not."""
    return parse_qsl(text, keep_blank_values=True, strict_parsing=False, encoding="utf-8", errors="strict")


@dataclass
class QueryNode:
    """One dotted name's part: its value (when the name ends here) and the parts below it."""

    value: str | None = None
    children: dict[str, QueryNode] = field(default_factory=dict)

    def plain(self) -> Any:
        """The node as it came: its text, or a dict of its children's."""
        if self.children:
            return {name: child.plain() for name, child in self.children.items()}
        return self.value


class _AsItCame(Exception):
    """Raised by the lenient decoder where a value does not read as its shape."""


class QueryDecoder(ShapeWalker[QueryNode, Any]):
    """The AWS Query protocol (EMR, SQS, IAM, …): lenient, the service's validator has the last word."""

    # Parameters of the protocol and of authentication, not of the operation.
    envelope: frozenset[str] = frozenset({"Action", "Version", "SecurityToken", *AUTH_PARAMETERS})

    def __init__(self, malformed: Callable[[str], AwsError]) -> None:
        self._malformed = malformed  # the service's error for names that cannot be read

    # -- entry point -----------------------------------------------------------------------

    def decode(self, pairs: Iterable[tuple[str, str]], shape: Shape | None) -> dict[str, Any]:
        """The operation input that ``pairs`` carry for the input ``shape``."""
        tree = self.tree(pairs)
        if shape is None:
            if tree.children:
                return self.unknown(next(iter(tree.children)), tree) or {}
            return {}
        decoded = self.walk(shape, tree, "")
        return decoded if isinstance(decoded, dict) else {}

    def tree(self, pairs: Iterable[tuple[str, str]]) -> QueryNode:
        root = QueryNode()
        for name, value in pairs:
            if name in self.envelope or name.startswith("X-Amz-"):
                continue
            parts = name.split(".")
            if len(parts) > MAX_DEPTH or not all(parts):
                self.malformed(f"Parameter name '{name[:200]}' is not valid.")
            node = root
            for part in parts[:-1]:
                node = node.children.setdefault(part, QueryNode())
                if node.value is not None:
                    self.malformed(f"Parameter '{name[:200]}' is given both as a value and as a structure.")
            node = node.children.setdefault(parts[-1], QueryNode())
            if node.children:
                self.malformed(f"Parameter '{name[:200]}' is given both as a value and as a structure.")
            if node.value is not None:
                self.malformed(f"Parameter '{name[:200]}' is given more than once.")
            node.value = value
        return root

    # -- where the protocols differ ----------------------------------------------------------

    def member_key(self, shape: Shape, name: str) -> str:
        """The name a structure member is sent under (botocore's ``_get_serialized_name``)."""
        if shape.type_name == "list" and shape.serialization.get("flattened"):
            # A flattened list whose items are named is sent under the items' name.
            return shape.member.serialization.get("name", shape.serialization.get("name", name))
        return shape.serialization.get("name", name)

    def list_items(self, shape: Any, node: QueryNode, path: str) -> tuple[QueryNode, str]:
        """The node numbering a list's items, and its path (``List.member`` unless flattened)."""
        if shape.serialization.get("flattened"):
            return node, path
        word = shape.member.serialization.get("name", "member")
        return self._only_child(node, word, path), f"{path}.{word}"

    def map_entries(self, shape: Any, node: QueryNode, path: str) -> tuple[QueryNode, str]:
        if shape.serialization.get("flattened"):
            return node, path
        return self._only_child(node, "entry", path), f"{path}.entry"

    def boolean(self, text: str) -> bool | None:
        return {"true": True, "false": False}.get(text)

    # -- how strict: the lenient decoder passes values on as they came -----------------------

    def malformed(self, message: str) -> NoReturn:
        raise self._malformed(message)

    def mismatch(self, path: str, value: object, why: str) -> NoReturn:
        raise _AsItCame()

    def unknown(self, path: str, node: QueryNode) -> Any:
        return node.plain()

    def absent(self, path: str) -> None:
        pass  # the validator names missing members

    def walk(self, shape: Shape, value: QueryNode, path: str) -> Any:
        try:
            return super().walk(shape, value, path)
        except _AsItCame:
            return value.plain()

    # -- the walk ----------------------------------------------------------------------------

    def _only_child(self, node: QueryNode, word: str, path: str) -> QueryNode:
        other = next((name for name in node.children if name != word), None)
        if other is not None:
            return self.unknown(f"{path}.{other}", node)  # the strict decoder raises here
        if word not in node.children:
            self.mismatch(path, node.value, "Expected a list.")
        return node.children[word]

    def structure(self, shape: Any, node: QueryNode, path: str) -> Any:
        if not node.children:
            if node.value is None:
                return {}
            self.mismatch(path, node.value, "Expected a structure.")
        prefix = f"{path}." if path else ""
        by_key = {self.member_key(s, n): (n, s) for n, s in shape.members.items()}
        result: dict[str, Any] = {}
        for key, child in node.children.items():
            if key in by_key:
                name, member = by_key[key]
                result[name] = self.walk(member, child, prefix + key)
            else:
                result[key] = self.unknown(prefix + key, child)
        for name in shape.required_members:
            if name not in result:
                self.absent(prefix + self.member_key(shape.members[name], name))
        return result

    def _numbered(self, node: QueryNode, path: str) -> list[QueryNode]:
        for key in node.children:
            if not (key.isdigit() and 0 < len(key) < 7):
                self.unknown(f"{path}.{key}", node)  # the strict decoder raises
                self.mismatch(path, node.value, "Expected a list.")
            if int(key) < 1:
                self.mismatch(path, int(key), "List indexes start at 1.")
        return [node.children[key] for key in sorted(node.children, key=int)]

    def list(self, shape: Any, node: QueryNode, path: str) -> Any:
        if not node.children:
            if node.value in (None, ""):
                return []
            self.mismatch(path, node.value, "Expected a list.")
        items, items_path = self.list_items(shape, node, path)
        if not isinstance(items, QueryNode):
            return items  # passed on as it came
        if not items.children:
            self.mismatch(path, items.value, "Expected a list.")
        return [
            self.walk(shape.member, item, f"{items_path}.{i}")
            for i, item in enumerate(self._numbered(items, items_path), 1)
        ]

    def map(self, shape: Any, node: QueryNode, path: str) -> Any:
        if not node.children:
            if node.value in (None, ""):
                return {}
            self.mismatch(path, node.value, "Expected a map.")
        entries, entries_path = self.map_entries(shape, node, path)
        if not isinstance(entries, QueryNode):
            return entries
        if not entries.children:
            self.mismatch(path, entries.value, "Expected a map.")
        key_name = self.member_key(shape.key, "key")
        value_name = self.member_key(shape.value, "value")
        out: dict[str, Any] = {}
        for i, entry in enumerate(self._numbered(entries, entries_path), 1):
            key, value = entry.children.get(key_name), entry.children.get(value_name)
            if key is None:
                self.absent(f"{path}.{i}.{key_name}")
                self.mismatch(path, node.value, "Expected a map entry.")
            if key.children or set(entry.children) - {key_name, value_name}:
                self.mismatch(path, node.value, "Expected a map entry.")
            out[self.scalar(shape.key, key, path)] = (
                None if value is None else self.walk(shape.value, value, path)
            )
        return out

    def scalar(self, shape: Shape, node: QueryNode, path: str) -> Any:
        if node.children:
            return self.unknown(f"{path}.{next(iter(node.children))}", node)
        text = node.value or ""
        kind = shape.type_name
        if kind in ("integer", "long"):
            if not _INTEGER.match(text):
                self.mismatch(path, text, "Expected an integer.")
            return int(text)
        if kind in ("float", "double"):
            try:
                return float(text)
            except ValueError:
                self.mismatch(path, text, "Expected a number.")
        if kind == "boolean":
            flag = self.boolean(text)
            if flag is None:
                self.mismatch(path, text, "Expected true or false.")
            return flag
        if kind == "timestamp":
            moment = _timestamp(text)
            if moment is None:
                self.mismatch(path, text, "Expected an ISO 8601 timestamp.")
            return moment
        if kind == "blob":
            try:
                return base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                self.mismatch(path, text, "Expected base64-encoded data.")
        return text


def _timestamp(text: str) -> dt.datetime | None:
    """ISO 8601 (UTC when no zone is given) or epoch seconds."""
    try:
        if _INTEGER.match(text) or text.replace(".", "", 1).isdigit():
            return dt.datetime.fromtimestamp(float(text), dt.UTC)
        moment = dt.datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class EC2QueryDecoder(QueryDecoder):
    """EC2's dialect of the Query protocol, strict, answering with EC2's error codes."""

    envelope = frozenset({"Action", "Version"})

    def __init__(self, error: Callable[[str, str], AwsError]) -> None:
        super().__init__(lambda message: error("InvalidParameterValue", message))
        self._error = error

    def member_key(self, shape: Shape, name: str) -> str:
        # botocore's EC2Serializer._get_serialized_name
        if "queryName" in shape.serialization:
            return shape.serialization["queryName"]
        if "name" in shape.serialization:
            named = shape.serialization["name"]
            return named[0].upper() + named[1:]
        return name

    def list_items(self, shape: Any, node: QueryNode, path: str) -> tuple[QueryNode, str]:
        return node, path  # EC2 lists are always flattened: Name.1, Name.2

    def map_entries(self, shape: Any, node: QueryNode, path: str) -> tuple[QueryNode, str]:
        return node.children.get("entry", node), path

    def boolean(self, text: str) -> bool | None:
        return {"true": True, "false": False}.get(text.lower())

    def mismatch(self, path: str, value: object, why: str) -> NoReturn:
        raise self._error("InvalidParameterValue", f"Value ({value}) for parameter {path} is invalid. {why}")

    def unknown(self, path: str, node: QueryNode) -> NoReturn:
        raise self._error("UnknownParameter", f"The parameter {path} is not recognized")

    def absent(self, path: str) -> NoReturn:
        raise self._error("MissingParameter", f"The request must contain the parameter {path}")
