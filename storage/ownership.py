"""Object ownership (a bucket's OwnershipControls): who owns new objects, and whether ACLs count.

* ObjectWriter (what a bucket without the setting does): the account that writes an object owns it.
* BucketOwnerPreferred: the bucket's owner owns objects written with the
  ``bucket-owner-full-control`` canned ACL; the writer owns the others.
* BucketOwnerEnforced: the bucket's owner owns every object and ACLs are disabled: they grant
  nothing, and requests setting any ACL but ``private`` / ``bucket-owner-full-control`` are
  refused with 400 AccessControlListNotSupported.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from resilin.storage import s3xml
from resilin.storage.bucket_settings import BucketSettings
from resilin.storage.errors import S3Error, malformed_xml

SETTING = "ownership"
ENFORCED = "BucketOwnerEnforced"
PREFERRED = "BucketOwnerPreferred"
OBJECT_WRITER = "ObjectWriter"
CHOICES = (ENFORCED, PREFERRED, OBJECT_WRITER)


def of_bucket(settings: BucketSettings, bucket: str) -> str | None:
    """The bucket's setting, or None when it has none (objects then belong to their writers)."""
    document: Any = settings.get(bucket, SETTING)
    return document["ObjectOwnership"] if document else None


def check_choice(value: str) -> str:
    if value not in CHOICES:
        raise S3Error(
            "InvalidArgument", f"Invalid x-amz-object-ownership value {value!r}", 400,
            extra={"ArgumentName": "x-amz-object-ownership", "ArgumentValue": value},
        )  # fmt: skip
    return value


def from_xml(body: bytes) -> str:
    doc = s3xml.parse(body)
    if s3xml.local(doc) != "OwnershipControls":
        raise malformed_xml()
    rules = s3xml.children(doc, "Rule")
    if len(rules) != 1:
        raise malformed_xml()
    value = s3xml.child_text(rules[0], "ObjectOwnership")
    if value is None or value.strip() not in CHOICES:
        raise malformed_xml()
    return value.strip()


def to_xml(value: str) -> etree._Element:
    doc = s3xml.root("OwnershipControls")
    s3xml.sub(s3xml.sub(doc, "Rule"), "ObjectOwnership", value)
    return doc


def acls_not_supported() -> S3Error:
    return S3Error("AccessControlListNotSupported", "The bucket does not allow ACLs", 400)


def not_found(bucket: str) -> S3Error:
    return S3Error(
        "OwnershipControlsNotFoundError",
        "The bucket ownership controls were not found",
        404,
        extra={"BucketName": bucket},
    )
