"""Writing Query-protocol answers: an operation's output shape as the XML botocore's parsers read.

The Query protocol (EMR) wraps the result: ``<OpResponse xmlns=…><OpResult>…</OpResult>
<ResponseMetadata><RequestId>…</RequestId></ResponseMetadata></OpResponse>``, list items as
``<member>``, map entries as ``<entry><key/><value/></entry>``; errors as ``<ErrorResponse>
<Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>``.  EC2's dialect, in the
methods :class:`EC2XmlWriter` overrides, puts ``<requestId>`` and the members straight in the
response element, names list items ``<item>`` and answers errors as ``<Response><Errors>
<Error>…</Error></Errors><RequestID/></Response>``.  Elements are named by each member's
``locationName``, else its member name; booleans are lower case, timestamps ISO 8601.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from botocore.model import OperationModel, Shape

from resilin.aws.errors import AwsError
from resilin.aws.shapes import ShapeWalker
from resilin.aws.timestamps import iso8601

CONTENT_TYPE = "text/xml"
_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
# Characters XML 1.0 cannot carry at all; replaced rather than producing a document no parser reads.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_chars(value: str) -> str:
    """``value`` with the characters XML 1.0 cannot carry replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", value)


def xml_text(value: str) -> str:
    """``value`` escaped as element text."""
    text = xml_chars(value)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def member_tag(shape: Shape, name: str) -> str:
    """The element a structure member is written as (as botocore's XML parsers look it up)."""
    if shape.type_name == "list" and shape.serialization.get("flattened"):
        return shape.member.serialization.get("name", shape.serialization.get("name", name))
    return shape.serialization.get("name", name)


class QueryXmlWriter(ShapeWalker[Any, str]):
    """The AWS Query protocol's answers (EMR)."""

    list_item = "member"  # a list item's element unless the model names it

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    # -- documents ---------------------------------------------------------------------------

    def response(self, operation: OperationModel, result: dict[str, Any], request_id: str) -> bytes:
        """The answer to ``operation`` carrying ``result`` (already converted, see ``api/results``)."""
        name = operation.name
        shape = operation.output_shape
        body = ""
        if shape is not None:
            wrapper = shape.serialization.get("resultWrapper", f"{name}Result")
            body = f"<{wrapper}>{self.structure(shape, result, '')}</{wrapper}>"
        metadata = f"<ResponseMetadata><RequestId>{xml_text(request_id)}</RequestId></ResponseMetadata>"
        return self._document(f"{name}Response", body + metadata)

    def error(self, error: AwsError, request_id: str, code: str | None = None) -> bytes:
        """``error`` as the protocol's error document; ``code`` when the protocol names it otherwise."""
        kind = "Receiver" if error.status >= 500 else "Sender"
        error_code = getattr(error, "error_code", None)  # a modeled ErrorCode member (EMR's)
        extra = f"<ErrorCode>{xml_text(error_code)}</ErrorCode>" if error_code else ""
        body = (
            f"<Error><Type>{kind}</Type><Code>{xml_text(code or error.code)}</Code>"
            f"<Message>{xml_text(error.message)}</Message>{extra}</Error>"
            f"<RequestId>{xml_text(request_id)}</RequestId>"
        )
        return self._document("ErrorResponse", body)

    def _document(self, tag: str, body: str, namespaced: bool = True) -> bytes:
        xmlns = f' xmlns="{self.namespace}"' if namespaced else ""
        return f"{_DECLARATION}<{tag}{xmlns}>{body}</{tag}>".encode()

    # -- the walk ----------------------------------------------------------------------------

    def structure(self, shape: Any, value: dict[str, Any], path: str) -> str:
        members = shape.members
        unknown = set(value) - set(members)
        if unknown:  # a typo in a handler would otherwise silently vanish from the answer
            raise KeyError(f"{shape.name} has no member(s) {sorted(unknown)}")
        out = []
        for name, member in members.items():
            item = value.get(name)
            if item is None:
                continue
            tag = member_tag(member, name)
            if member.type_name in ("list", "map") and member.serialization.get("flattened"):
                out.append(self._flattened(tag, member, item))
            else:
                out.append(f"<{tag}>{self.walk(member, item, name)}</{tag}>")
        return "".join(out)

    def _flattened(self, tag: str, shape: Any, value: Any) -> str:
        # Flattened lists and maps repeat the member's own element instead of wrapping items.
        if shape.type_name == "list":
            return "".join(f"<{tag}>{self.walk(shape.member, item, tag)}</{tag}>" for item in value)
        return "".join(f"<{tag}>{self._entry(shape, key, item)}</{tag}>" for key, item in value.items())

    def list(self, shape: Any, value: list[Any], path: str) -> str:
        tag = shape.member.serialization.get("name", self.list_item)
        return "".join(f"<{tag}>{self.walk(shape.member, item, path)}</{tag}>" for item in value)

    def map(self, shape: Any, value: dict[Any, Any], path: str) -> str:
        return "".join(f"<entry>{self._entry(shape, key, item)}</entry>" for key, item in value.items())

    def _entry(self, shape: Any, key: Any, item: Any) -> str:
        key_tag = shape.key.serialization.get("name", "key")
        value_tag = shape.value.serialization.get("name", "value")
        return (
            f"<{key_tag}>{self.scalar(shape.key, key, '')}</{key_tag}>"
            f"<{value_tag}>{self.walk(shape.value, item, '')}</{value_tag}>"
        )

    def scalar(self, shape: Shape, value: Any, path: str) -> str:
        kind = shape.type_name
        if kind == "boolean":
            return "true" if value else "false"
        if kind == "timestamp" and not isinstance(value, str):
            return iso8601(value)
        if kind == "blob":
            data = value if isinstance(value, bytes) else str(value).encode()
            return base64.b64encode(data).decode("ascii")
        if kind in ("integer", "long") and not isinstance(value, str):
            return str(int(value))
        if isinstance(value, bool):
            return "true" if value else "false"
        return xml_text(value if isinstance(value, str) else str(value))


class EC2XmlWriter(QueryXmlWriter):
    """EC2's dialect: no result wrapper, ``<requestId>`` first, list items as ``<item>``."""

    list_item = "item"

    def response(self, operation: OperationModel, result: dict[str, Any], request_id: str) -> bytes:
        shape = operation.output_shape
        if shape is None and result:
            raise KeyError(f"{operation.name} has no output, got {sorted(result)}")
        members = self.structure(shape, result, "") if shape is not None else ""
        return self._document(
            f"{operation.name}Response", f"<requestId>{xml_text(request_id)}</requestId>{members}"
        )

    def error(self, error: AwsError, request_id: str, code: str | None = None) -> bytes:
        body = (
            f"<Errors><Error><Code>{xml_text(code or error.code)}</Code>"
            f"<Message>{xml_text(error.message)}</Message></Error></Errors>"
            f"<RequestID>{xml_text(request_id)}</RequestID>"
        )
        return self._document("Response", body, namespaced=False)
