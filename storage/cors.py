"""A bucket's CORS configuration: what it may say, and which rule lets a browser's request through.

A web page on another origin reaches storage only as the bucket's CORS rules allow: the browser
asks first (an ``OPTIONS`` preflight, which carries no credentials and changes nothing) and
then sends the request with an ``Origin`` header; both answers carry the ``Access-Control-*``
headers of the first rule matching the origin, the method and the requested headers.  The rules
and their evaluation follow S3's (AllowedOrigin and AllowedHeader may hold one ``*`` wildcard;
headers compare without case; a request no rule matches gets no CORS headers, a preflight 403).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from resilin.storage import s3xml
from resilin.storage.errors import S3Error, invalid_request, malformed_xml

METHODS = ("GET", "PUT", "POST", "DELETE", "HEAD")
MAX_RULES = 100


@dataclass(frozen=True)
class CorsRule:
    origins: tuple[str, ...]
    methods: tuple[str, ...]
    headers: tuple[str, ...] = ()
    expose: tuple[str, ...] = ()
    max_age: int | None = None
    rule_id: str | None = None

    def to_json(self) -> dict:
        return {
            "origins": list(self.origins),
            "methods": list(self.methods),
            "headers": list(self.headers),
            "expose": list(self.expose),
            "max_age": self.max_age,
            "rule_id": self.rule_id,
        }

    @classmethod
    def from_json(cls, data: dict) -> CorsRule:
        return cls(
            tuple(data["origins"]),
            tuple(data["methods"]),
            tuple(data.get("headers") or ()),
            tuple(data.get("expose") or ()),
            data.get("max_age"),
            data.get("rule_id"),
        )


def parse(body: bytes) -> list[CorsRule]:
    """The rules of a PutBucketCors body; MalformedXML or InvalidRequest if it is not a valid one."""
    doc = s3xml.parse(body)
    if s3xml.local(doc) != "CORSConfiguration":
        raise malformed_xml()
    elements = s3xml.children(doc, "CORSRule")
    if not elements or len(elements) > MAX_RULES:
        raise malformed_xml()
    return [_rule(element) for element in elements]


def _texts(element: etree._Element, tag: str) -> tuple[str, ...]:
    return tuple((child.text or "").strip() for child in s3xml.children(element, tag))


def _rule(element: etree._Element) -> CorsRule:
    origins, methods = _texts(element, "AllowedOrigin"), _texts(element, "AllowedMethod")
    if not origins or not methods:
        raise malformed_xml()
    for method in methods:
        if method not in METHODS:
            raise invalid_request(
                f"Found unsupported HTTP method in CORS config. Unsupported method is {method}"
            )
    headers = _texts(element, "AllowedHeader")
    for value, what in [(o, "AllowedOrigin") for o in origins] + [(h, "AllowedHeader") for h in headers]:
        if value.count("*") > 1:
            raise invalid_request(f'{what} "{value}" can not have more than one wildcard.')
    max_age_text = s3xml.child_text(element, "MaxAgeSeconds")
    max_age = None
    if max_age_text is not None:
        if not max_age_text.strip().isdigit():
            raise malformed_xml()
        max_age = int(max_age_text)
    return CorsRule(
        origins, methods, headers, _texts(element, "ExposeHeader"), max_age, s3xml.child_text(element, "ID")
    )


def to_xml(rules: list[CorsRule]) -> etree._Element:
    doc = s3xml.root("CORSConfiguration")
    for rule in rules:
        element = s3xml.sub(doc, "CORSRule")
        if rule.rule_id is not None:
            s3xml.sub(element, "ID", rule.rule_id)
        for tag, values in (
            ("AllowedHeader", rule.headers),
            ("AllowedMethod", rule.methods),
            ("AllowedOrigin", rule.origins),
            ("ExposeHeader", rule.expose),
        ):
            for value in values:
                s3xml.sub(element, tag, value)
        if rule.max_age is not None:
            s3xml.sub(element, "MaxAgeSeconds", rule.max_age)
    return doc


def _matches(pattern: str, value: str) -> bool:
    """A pattern with at most one ``*``, which stands for any run of characters."""
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), value) is not None


@dataclass
class Decision:
    rule: CorsRule
    origin: str
    requested_headers: list[str] = field(default_factory=list)

    def headers(self, preflight: bool) -> dict[str, str]:
        wildcard = "*" in self.rule.origins and not any(
            o != "*" and _matches(o, self.origin) for o in self.rule.origins
        )
        out = {
            "Access-Control-Allow-Origin": "*" if wildcard else self.origin,
            "Access-Control-Allow-Methods": ", ".join(self.rule.methods),
            "Vary": "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
        }
        if not wildcard:
            out["Access-Control-Allow-Credentials"] = "true"
        if self.rule.expose:
            out["Access-Control-Expose-Headers"] = ", ".join(self.rule.expose)
        if self.rule.max_age is not None:
            out["Access-Control-Max-Age"] = str(self.rule.max_age)
        if preflight and self.requested_headers:
            out["Access-Control-Allow-Headers"] = ", ".join(self.requested_headers)
        return out


def decide(rules: list[CorsRule], origin: str, method: str, requested_headers: list[str]) -> Decision | None:
    """The first rule letting ``origin`` use ``method`` with ``requested_headers``; None if none does."""
    wanted = [h.strip().lower() for h in requested_headers if h.strip()]
    for rule in rules:
        if method not in rule.methods or not any(_matches(o, origin) for o in rule.origins):
            continue
        allowed = [h.lower() for h in rule.headers]
        if all(any(_matches(pattern, header) for pattern in allowed) for header in wanted):
            return Decision(rule, origin, wanted)
    return None


def preflight_refusal() -> S3Error:
    return S3Error(
        "AccessForbidden",
        "CORSResponse: This CORS request is not allowed. This is usually because the evaluation of Origin, "
        "request method / Access-Control-Request-Method or Access-Control-Request-Headers are not "
        "whitelisted by the resource's CORS spec.",
        403,
    )
