"""PutBucketTagging, GetBucketTagging and DeleteBucketTagging: a bucket's tag set, kept with the
bucket's settings.  (Object tags are not kept: their requests are refused, see the router.)"""

from __future__ import annotations

from resilin.storage import s3xml
from resilin.storage.bucket_setting_ops import deleting, get_setting, put_setting
from resilin.storage.context import Call, Response
from resilin.storage.errors import S3Error, malformed_xml

SETTING = "tagging"
MAX_TAGS = 50


def _invalid_tag(message: str) -> S3Error:
    return S3Error("InvalidTag", message, 400)


def parse_tag_set(body: bytes) -> dict[str, str]:
    """The tags of a Tagging document, checked as S3 checks them."""
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
    if len(tags) > MAX_TAGS:
        raise _invalid_tag(f"Bucket tag count cannot be greater than {MAX_TAGS}")
    return tags


async def put_bucket_tagging(call: Call) -> Response:
    put_setting(call, SETTING, parse_tag_set)
    return Response(204)


def _no_tag_set(bucket: str) -> S3Error:
    return S3Error("NoSuchTagSet", "The TagSet does not exist", 404, extra={"BucketName": bucket})


async def get_bucket_tagging(call: Call) -> Response:
    tags = get_setting(call, SETTING, _no_tag_set)
    doc = s3xml.root("Tagging")
    tag_set = s3xml.sub(doc, "TagSet")
    for key, value in tags.items():
        s3xml.subs(s3xml.sub(tag_set, "Tag"), [("Key", key), ("Value", value)])
    return s3xml.response(doc)


delete_bucket_tagging = deleting(SETTING)
