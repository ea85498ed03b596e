"""Block Public Access for a bucket: its four switches, their XML document, and what public means.

* BlockPublicAcls: a request setting a public ACL (granting to everyone or to every AWS account)
  is refused with 403 AccessDenied.
* IgnorePublicAcls: public grants are set aside when requests are decided.
* BlockPublicPolicy: a bucket policy allowing everyone is refused with 403 AccessDenied.
* RestrictPublicBuckets: while the bucket's policy is public, its Allows count only for the
  owner's account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree

from resilin.storage import s3xml
from resilin.storage.bucket_settings import BucketSettings
from resilin.storage.errors import S3Error, malformed_xml

SETTING = "public-access-block"
FIELDS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


@dataclass(frozen=True)
class Blocks:
    block_public_acls: bool = False
    ignore_public_acls: bool = False
    block_public_policy: bool = False
    restrict_public_buckets: bool = False

    def to_json(self) -> dict[str, bool]:
        return {name: getattr(self, _attribute(name)) for name in FIELDS}


NONE = Blocks()


def _attribute(field: str) -> str:
    """``BlockPublicAcls`` -> ``block_public_acls``."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in field).lstrip("_")


def of_bucket(settings: BucketSettings, bucket: str) -> Blocks:
    document: Any = settings.get(bucket, SETTING)
    if not document:
        return NONE
    return Blocks(**{_attribute(name): bool(document.get(name)) for name in FIELDS})


def from_xml(body: bytes) -> Blocks:
    doc = s3xml.parse(body)
    if s3xml.local(doc) != "PublicAccessBlockConfiguration":
        raise malformed_xml()
    values = {}
    for element in doc:
        if not isinstance(element.tag, str):
            continue
        name = s3xml.local(element)
        text = (element.text or "").strip().lower()
        if name not in FIELDS or name in values or text not in ("true", "false"):
            raise malformed_xml()
        values[name] = text == "true"
    return Blocks(**{_attribute(name): value for name, value in values.items()})


def to_xml(blocks: Blocks) -> etree._Element:
    doc = s3xml.root("PublicAccessBlockConfiguration")
    s3xml.subs(doc, [(name, "true" if value else "false") for name, value in blocks.to_json().items()])
    return doc


def no_configuration(bucket: str) -> S3Error:
    return S3Error(
        "NoSuchPublicAccessBlockConfiguration",
        "The public access block configuration was not found",
        404,
        extra={"BucketName": bucket},
    )
