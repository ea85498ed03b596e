"""Reading and writing S3's XML documents.

Request bodies are parsed with entity expansion and network access off, and
elements are matched by local name so that bodies with or without S3's
namespace are both accepted (clients differ).
"""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from resilin.aws.query_xml import xml_chars
from resilin.storage.context import Response
from resilin.storage.errors import S3Error, malformed_xml

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_XML_BODY = 2 * 1024 * 1024
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)


def xml_text(value: str) -> str:
    """Text XML 1.0 can carry: characters it cannot are replaced (clients should use encoding-type=url)."""
    return xml_chars(value)


def root(tag: str, namespaced: bool = True) -> etree._Element:
    return etree.Element(tag, nsmap={None: NS}) if namespaced else etree.Element(tag)


def sub(parent: etree._Element, tag: str, text: str | int | None = None) -> etree._Element:
    # Children inherit the default namespace by name only when created with it.
    ns = parent.nsmap.get(None)
    child = etree.SubElement(parent, f"{{{ns}}}{tag}" if ns else tag)
    if text is not None:
        child.text = xml_text(str(text))
    return child


def subs(parent: etree._Element, items: Iterable[tuple[str, str | int | None]]) -> None:
    for tag, text in items:
        sub(parent, tag, text)


def response(element: etree._Element) -> Response:
    return Response(body=serialize(element), headers={"Content-Type": "application/xml"})


def error(exc: S3Error, resource: str, request_id: str, head: bool) -> Response:
    """``exc`` as S3's error document (none for HEAD: S3 says what went wrong in headers only)."""
    doc = root("Error", namespaced=False)
    subs(doc, [("Code", exc.code), ("Message", exc.message)])
    subs(doc, exc.extra.items())
    subs(doc, [("Resource", resource), ("RequestId", request_id)])
    headers = {"Content-Type": "application/xml", **exc.headers}
    return Response(exc.status, headers, b"" if head else serialize(doc))


def serialize(element: etree._Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(element, encoding="UTF-8")


def parse(body: bytes) -> etree._Element:
    if not body.strip() or len(body) > MAX_XML_BODY:
        raise malformed_xml()
    try:
        return etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        raise malformed_xml() from None


def local(element: etree._Element) -> str:
    tag = element.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def children(element: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in element if local(c) == name]


def child_text(element: etree._Element, name: str) -> str | None:
    found = children(element, name)
    return (found[0].text or "") if found else None
