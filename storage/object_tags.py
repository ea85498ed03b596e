"""An object's tags as requests give them: the ``x-amz-tagging`` header of PutObject,
CreateMultipartUpload and CopyObject (a URL-encoded query string, ``k1=v1&k2``), or a Tagging
document (PutObjectTagging, a POST form's ``tagging`` field).  At most 10 per object."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from resilin.storage.errors import S3Error
from resilin.storage.tag_sets import add_tag, check_count, parse_tag_set

MAX_OBJECT_TAGS = 10


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def from_header(value: str) -> dict[str, str]:
    try:
        if _BAD_ESCAPE.search(value):
            raise ValueError("a % not followed by two hex digits")
        pairs = parse_qsl(value, keep_blank_values=True, errors="strict")  # "k" alone: an empty value
    except (ValueError, UnicodeDecodeError):
        raise S3Error("InvalidArgument", "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded "
                      "URL query parameters without tag name duplicates.", 400) from None  # fmt: skip
    tags: dict[str, str] = {}
    for key, value_ in pairs:
        add_tag(tags, key, value_)
    check_count(tags, MAX_OBJECT_TAGS, "Object")
    return tags


def from_document(body: bytes) -> dict[str, str]:
    return parse_tag_set(body, MAX_OBJECT_TAGS, "Object")


def count_header(tags: dict[str, str]) -> dict[str, str]:
    """``x-amz-tagging-count`` on a GET or HEAD of an object with tags."""
    return {"x-amz-tagging-count": str(len(tags))} if tags else {}
