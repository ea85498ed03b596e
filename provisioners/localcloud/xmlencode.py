"""Encode a result dict as an EC2 Query protocol XML response, driven by the operation's output shape.

Elements are named by each member's ``locationName`` (else its member name),
list elements are ``<item>``, booleans are lower case and timestamps ISO 8601:
what botocore's ``EC2QueryParser`` reads with the same model.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from botocore.model import OperationModel, Shape
from lxml import etree

from resilin.provisioners.localcloud import ec2model


def _name(shape: Shape, member_name: str) -> str:
    return shape.serialization.get("name", member_name)


def _timestamp(value: dt.datetime | float | int) -> str:
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _text(shape: Shape, value: Any) -> str:
    kind = shape.type_name
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "timestamp":
        return _timestamp(value)
    if kind == "blob":
        return base64.b64encode(value if isinstance(value, bytes) else str(value).encode()).decode()
    if kind in ("integer", "long"):
        return str(int(value))
    return str(value)


def _encode(parent: etree._Element, tag: str, shape: Shape, value: Any) -> None:
    el = etree.SubElement(parent, tag)
    kind = shape.type_name
    if kind == "structure":
        _members(el, shape, value)
    elif kind == "list":
        member = shape.member  # type: ignore[attr-defined]
        for item in value:
            _encode(el, _name(member, "item"), member, item)
    elif kind == "map":
        for key, item in value.items():
            entry = etree.SubElement(el, "entry")
            _encode(entry, _name(shape.key, "key"), shape.key, key)  # type: ignore[attr-defined]
            _encode(entry, _name(shape.value, "value"), shape.value, item)  # type: ignore[attr-defined]
    else:
        el.text = _text(shape, value)


def _members(el: etree._Element, shape: Shape, value: dict[str, Any]) -> None:
    members = shape.members  # type: ignore[attr-defined]
    unknown = set(value) - set(members)
    if unknown:  # a typo in a handler would otherwise silently vanish from the response
        raise KeyError(f"{shape.name} has no member(s) {sorted(unknown)}")
    for member_name, member_shape in members.items():
        if value.get(member_name) is not None:
            _encode(el, _name(member_shape, member_name), member_shape, value[member_name])


def response(op: OperationModel, result: dict[str, Any], request_id: str) -> bytes:
    root = etree.Element(f"{op.name}Response", nsmap={None: ec2model.namespace()})
    etree.SubElement(root, "requestId").text = request_id
    if op.output_shape is not None:
        _members(root, op.output_shape, result)
    elif result:
        raise KeyError(f"{op.name} has no output, got {sorted(result)}")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def error(code: str, message: str, request_id: str) -> bytes:
    root = etree.Element("Response")
    err = etree.SubElement(etree.SubElement(root, "Errors"), "Error")
    etree.SubElement(err, "Code").text = code
    etree.SubElement(err, "Message").text = message
    etree.SubElement(root, "RequestID").text = request_id
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
