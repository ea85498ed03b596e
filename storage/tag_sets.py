"""Tag sets, as buckets and objects have them: the Tagging document, each tag checked as S3 checks
it, and the answer that lists them."""

from __future__ import annotations

from resilin.storage import s3xml
from resilin.storage.context import Response
from resilin.storage.errors import S3Error, malformed_xml

MAX_TAGS = 50  # a bucket's


def _invalid_tag(message: str) -> S3Error:
    return S3Error("InvalidTag", message, 400)


def parse_tag_set(body: bytes, limit: int = MAX_TAGS, kind: str = "Bucket") -> dict[str, str]:
    """The tags of a Tagging document, checked as S3 checks them (at most ``limit`` of them)."""
    doc = s3xml.parse(body)
    if s3xml.local(doc) != "Tagging":
        raise malformed_xml()
    sets = s3xml.children(doc, "TagSet")
    if len(sets) != 1:
        raise malformed_xml()
    tags: dict[str, str] = {}
    for tag in s3xml.children(sets[0], "Tag"):
        key, value = s3xml.child_text(tag, "Key"), s3xml.child_text(tag, "Value")
        if key is None or value is None:
            raise malformed_xml()
        add_tag(tags, key, value)
    check_count(tags, limit, kind)
    return tags


def add_tag(tags: dict[str, str], key: str, value: str) -> None:
    """One more tag, checked as S3 checks each."""
    if not key:
        raise _invalid_tag("The TagKey you have provided is invalid")
    if len(key) > 128:
        raise _invalid_tag("The TagKey you have provided is too long, max 128")
    if len(value) > 256:
        raise _invalid_tag("The TagValue you have provided is too long, max 256")
    if key.lower().startswith("aws:"):
        raise _invalid_tag("System tags cannot be added/updated by requester")
    if key in tags:
        raise _invalid_tag("Cannot provide multiple Tags with the same key")
    tags[key] = value


def check_count(tags: dict[str, str], limit: int, kind: str) -> None:
    if len(tags) > limit:
        raise _invalid_tag(f"{kind} tags cannot be greater than {limit}")


def tag_set_response(tags: dict[str, str]) -> Response:
    doc = s3xml.root("Tagging")
    tag_set = s3xml.sub(doc, "TagSet")
    for key, value in tags.items():
        s3xml.subs(s3xml.sub(tag_set, "Tag"), [("Key", key), ("Value", value)])
    return s3xml.response(doc)
