"""A bucket's lifecycle rules: what PutBucketLifecycleConfiguration may say, and when they act.

Resilin acts on expiration (``Expiration`` by ``Days`` or ``Date``) and on incomplete multipart
uploads (``AbortIncompleteMultipartUpload``), filtered by key prefix, object size and tags: what
EMR users set on a ``LogUri`` bucket; and, in versioned buckets, on older versions
(``NoncurrentVersionExpiration``, keeping ``NewerNoncurrentVersions``) and on delete markers left
alone (``ExpiredObjectDeleteMarker``).  As on S3, an object's expiry is its creation plus the days,
rounded up to the next midnight UTC, and rules act some time after they are due (each sweep of
the bucket, :mod:`lifecycle_sweep`).  What it cannot act on is refused, never stored and ignored:
transitions (storage classes are labels here).
"""

from __future__ import annotations

import calendar
import math
import time
from dataclasses import asdict, dataclass

from lxml import etree

from resilin.storage import s3xml
from resilin.storage.errors import S3Error, invalid_argument, invalid_request, malformed_xml, not_implemented

DAY = 86400
MAX_RULES = 1000
REFUSED = {
    "Transition": "lifecycle transitions (storage classes are labels only here)",
    "NoncurrentVersionTransition": "noncurrent version transitions (storage classes are labels only here)",
}


@dataclass(frozen=True)
class Rule:
    rule_id: str
    enabled: bool
    prefix: str = ""
    size_greater_than: int | None = None
    size_less_than: int | None = None
    expire_days: int | None = None
    expire_date: str | None = None  # ISO 8601, midnight UTC
    abort_days: int | None = None
    legacy_prefix: bool = False  # given as <Prefix> outside a <Filter> (older clients)
    tags: tuple[tuple[str, str], ...] = ()  # the object must carry every one of these tags
    noncurrent_days: int | None = None  # older versions expire this long after they became older
    newer_noncurrent: int | None = None  # ... except this many of the newest older versions
    expire_delete_markers: bool = False  # a delete marker that is a key's only version goes

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Rule:
        tags = tuple((k, v) for k, v in data.get("tags", ()))
        return cls(**{**data, "tags": tags})

    def object_due(self, last_modified: float) -> float | None:
        """When an object written at ``last_modified`` expires under this rule (None: never)."""
        if self.expire_date is not None:
            return float(calendar.timegm(time.strptime(self.expire_date[:19], "%Y-%m-%dT%H:%M:%S")))
        if self.expire_days is not None:
            return _next_midnight(last_modified + self.expire_days * DAY)
        return None

    def noncurrent_due(self, noncurrent_since: float) -> float | None:
        """When a version that became noncurrent at ``noncurrent_since`` expires (None: never)."""
        if self.noncurrent_days is None:
            return None
        return _next_midnight(noncurrent_since + self.noncurrent_days * DAY)

    def upload_due(self, initiated: float) -> float | None:
        return None if self.abort_days is None else _next_midnight(initiated + self.abort_days * DAY)

    def covers(self, key: str, size: int | None = None, tags: dict[str, str] | None = None) -> bool:
        """Whether the rule applies to an object (``tags``: its tags; None: not known, which a rule
        filtering on tags never covers)."""
        if not key.startswith(self.prefix):
            return False
        if self.tags and (tags is None or any(tags.get(k) != v for k, v in self.tags)):
            return False
        if size is not None and self.size_greater_than is not None and size <= self.size_greater_than:
            return False
        return not (size is not None and self.size_less_than is not None and size >= self.size_less_than)


def _next_midnight(moment: float) -> float:
    return math.ceil(moment / DAY) * DAY


def _positive_int(element: etree._Element, tag: str) -> int | None:
    text = s3xml.child_text(element, tag)
    if text is None:
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise invalid_argument(f"'{tag}' for an expiration action must be a positive integer", tag, text)
    return int(text)


def _date(text: str) -> str:
    try:
        parsed = time.strptime(text.strip()[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise invalid_argument("Invalid date: it must be in ISO 8601 format", "Date", text) from None
    if parsed.tm_hour or parsed.tm_min or parsed.tm_sec:
        raise invalid_argument("'Date' must be at midnight GMT", "Date", text)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", parsed)


def parse(body: bytes) -> list[Rule]:
    """The rules of a LifecycleConfiguration document, checked as S3 checks them."""
    doc = s3xml.parse(body)
    if s3xml.local(doc) != "LifecycleConfiguration":
        raise malformed_xml()
    elements = s3xml.children(doc, "Rule")
    if not elements or len(elements) > MAX_RULES:
        raise malformed_xml()
    rules = [_rule(element, n) for n, element in enumerate(elements, 1)]
    ids = [r.rule_id for r in rules]
    if len(set(ids)) != len(ids):
        raise invalid_argument("Rule ID must be unique. Found same ID for more than one rule", "ID")
    return rules


def _rule(element: etree._Element, number: int) -> Rule:
    for transition in s3xml.children(element, "Transition"):
        date = s3xml.child_text(transition, "Date")
        if date is not None:
            _date(date)  # a bad date is the client's error before it is a refused action
    for tag, what in REFUSED.items():
        if s3xml.children(element, tag):
            raise not_implemented(f"Lifecycle {what}")
    rule_id = s3xml.child_text(element, "ID") or f"rule-{number}"
    if len(rule_id) > 255:
        raise invalid_argument("ID length should not exceed allowed limit of 255", "ID", rule_id)
    status = s3xml.child_text(element, "Status")
    if status not in ("Enabled", "Disabled"):
        raise malformed_xml()
    prefix, greater, less, legacy, tags = _filter(element)
    expire_days = expire_date = None
    markers = False
    for expiration in s3xml.children(element, "Expiration"):
        expire_days = _positive_int(expiration, "Days")
        date = s3xml.child_text(expiration, "Date")
        expire_date = _date(date) if date is not None else None
        marker_text = s3xml.child_text(expiration, "ExpiredObjectDeleteMarker")
        if marker_text is not None and marker_text.strip().lower() not in ("true", "false"):
            raise malformed_xml()
        markers = (marker_text or "").strip().lower() == "true"
        given = [expire_days is not None, expire_date is not None, marker_text is not None]
        if sum(given) != 1:
            raise malformed_xml()
        if markers and tags:
            raise invalid_request("ExpiredObjectDeleteMarker cannot be specified with Tags.")
    noncurrent_days = newer_noncurrent = None
    for noncurrent in s3xml.children(element, "NoncurrentVersionExpiration"):
        noncurrent_days = _positive_int(noncurrent, "NoncurrentDays")
        newer_noncurrent = _positive_int(noncurrent, "NewerNoncurrentVersions")
        if noncurrent_days is None:
            raise malformed_xml()
    abort_days = None
    for abort in s3xml.children(element, "AbortIncompleteMultipartUpload"):
        abort_days = _positive_int(abort, "DaysAfterInitiation")
        if abort_days is None:
            raise malformed_xml()
    if tags and abort_days is not None:
        raise invalid_request("AbortIncompleteMultipartUpload cannot be specified with Tags.")
    if (
        expire_days is None
        and expire_date is None
        and abort_days is None
        and noncurrent_days is None
        and not markers
    ):
        raise invalid_argument("At least one action needs to be specified in a rule", "Action")
    return Rule(
        rule_id,
        status == "Enabled",
        prefix,
        greater,
        less,
        expire_days,
        expire_date,
        abort_days,
        legacy,
        tags,
        noncurrent_days,
        newer_noncurrent,
        markers,
    )


def _filter(element: etree._Element) -> tuple[str, int | None, int | None, bool, tuple[tuple[str, str], ...]]:
    """(prefix, size greater than, size less than, prefix given the old way, tags) of a rule."""
    filters = s3xml.children(element, "Filter")
    legacy = s3xml.child_text(element, "Prefix")
    if filters and legacy is not None:
        raise malformed_xml()
    if not filters:
        return legacy or "", None, None, legacy is not None, ()
    scope = filters[0]
    ands = s3xml.children(scope, "And")
    if ands:
        scope = ands[0]
    elif len(s3xml.children(scope, "Tag")) > 1:
        raise malformed_xml()  # several tags go in an <And>
    tags: dict[str, str] = {}
    for tag_element in s3xml.children(scope, "Tag"):
        key, value = s3xml.child_text(tag_element, "Key"), s3xml.child_text(tag_element, "Value")
        if key is None or value is None:
            raise malformed_xml()
        if key in tags:
            raise invalid_argument("Duplicate Tag Keys are not allowed.", "Tag", key)
        tags[key] = value
    sizes = []
    for tag in ("ObjectSizeGreaterThan", "ObjectSizeLessThan"):
        text = s3xml.child_text(scope, tag)
        if text is not None and not text.strip().isdigit():
            raise invalid_argument(f"{tag} must be a non-negative integer", tag, text)
        sizes.append(int(text) if text is not None else None)
    return s3xml.child_text(scope, "Prefix") or "", sizes[0], sizes[1], False, tuple(tags.items())


def to_xml(rules: list[Rule]) -> etree._Element:
    doc = s3xml.root("LifecycleConfiguration")
    for rule in rules:
        element = s3xml.sub(doc, "Rule")
        s3xml.sub(element, "ID", rule.rule_id)
        if rule.legacy_prefix:
            s3xml.sub(element, "Prefix", rule.prefix)
        else:
            scope = s3xml.sub(element, "Filter")
            sized = rule.size_greater_than is not None or rule.size_less_than is not None
            if sized or len(rule.tags) > 1 or (rule.tags and rule.prefix):
                scope = s3xml.sub(scope, "And")
            if rule.prefix or not rule.tags:
                s3xml.sub(scope, "Prefix", rule.prefix)
            for key, value in rule.tags:
                s3xml.subs(s3xml.sub(scope, "Tag"), [("Key", key), ("Value", value)])
            if rule.size_greater_than is not None:
                s3xml.sub(scope, "ObjectSizeGreaterThan", rule.size_greater_than)
            if rule.size_less_than is not None:
                s3xml.sub(scope, "ObjectSizeLessThan", rule.size_less_than)
        s3xml.sub(element, "Status", "Enabled" if rule.enabled else "Disabled")
        if rule.expire_days is not None or rule.expire_date is not None:
            expiration = s3xml.sub(element, "Expiration")
            if rule.expire_days is not None:
                s3xml.sub(expiration, "Days", rule.expire_days)
            else:
                s3xml.sub(expiration, "Date", rule.expire_date)
        elif rule.expire_delete_markers:
            s3xml.sub(s3xml.sub(element, "Expiration"), "ExpiredObjectDeleteMarker", "true")
        if rule.noncurrent_days is not None:
            noncurrent = s3xml.sub(element, "NoncurrentVersionExpiration")
            s3xml.sub(noncurrent, "NoncurrentDays", rule.noncurrent_days)
            if rule.newer_noncurrent is not None:
                s3xml.sub(noncurrent, "NewerNoncurrentVersions", rule.newer_noncurrent)
        if rule.abort_days is not None:
            s3xml.sub(
                s3xml.sub(element, "AbortIncompleteMultipartUpload"), "DaysAfterInitiation", rule.abort_days
            )
    return doc


def no_configuration(bucket: str) -> S3Error:
    return S3Error(
        "NoSuchLifecycleConfiguration",
        "The lifecycle configuration does not exist",
        404,
        extra={"BucketName": bucket},
    )
