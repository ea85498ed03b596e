"""Bucket operations: create, head, list, delete, location, and the object listings."""

from __future__ import annotations

import base64
import binascii
import hashlib
from urllib.parse import quote

from resilin.storage import s3xml
from resilin.storage.bodies import require_integrity_header, small_body
from resilin.storage.context import Call, Response
from resilin.storage.errors import S3Error, invalid_argument, malformed_xml
from resilin.storage.listing import MAX_KEYS, list_keys
from resilin.storage.names import check_bucket_name, check_key
from resilin.storage.objfile import CorruptObject, ObjectMeta

XML = {"Content-Type": "application/xml"}
MAX_DELETE_KEYS = 1000


def canonical_user_id(account: str) -> str:
    """S3 identifies owners by a 64-hex-digit canonical ID; ours is derived from the account."""
    return hashlib.sha256(f"resilin-account:{account}".encode()).hexdigest()


def _owner(parent, account: str) -> None:
    owner = s3xml.sub(parent, "Owner")
    s3xml.subs(owner, [("ID", canonical_user_id(account)), ("DisplayName", account)])


def _xml(doc) -> Response:
    return Response(body=s3xml.serialize(doc), headers=dict(XML))


async def list_buckets(call: Call) -> Response:
    doc = s3xml.root("ListAllMyBucketsResult")
    _owner(doc, call.account)
    buckets = s3xml.sub(doc, "Buckets")
    for info in call.store.buckets_of(call.account):
        entry = s3xml.sub(buckets, "Bucket")
        s3xml.subs(
            entry,
            [
                ("Name", info.name),
                ("CreationDate", s3xml.iso8601(info.created)),
                ("BucketRegion", info.region),
            ],
        )
    return _xml(doc)


def _location_constraint(call: Call) -> str | None:
    body = small_body(call)
    if not body.strip():
        return None
    doc = s3xml.parse(body)
    if s3xml.local(doc) != "CreateBucketConfiguration":
        raise malformed_xml()
    return s3xml.child_text(doc, "LocationConstraint")


async def create_bucket(call: Call) -> Response:
    name = call.bucket or ""
    check_bucket_name(name)
    constraint = _location_constraint(call)
    if constraint is not None:
        if call.region == "us-east-1" and constraint == "us-east-1":
            raise S3Error("InvalidLocationConstraint", "The specified location-constraint is not valid", 400)
        if constraint and constraint != call.region:
            raise S3Error(
                "IllegalLocationConstraintException",
                f"The {constraint} location constraint is incompatible for the region specific endpoint "
                "this request was sent to.",
                400,
            )
    existing = call.store.bucket(name)
    if existing is not None:
        if existing.owner != call.account:
            raise S3Error(
                "BucketAlreadyExists",
                "The requested bucket name is not available. The bucket namespace is shared by all users "
                "of the system. Please select a different name and try again.",
                409,
                extra={"BucketName": name},
            )
        # S3 answers 200 to the owner re-creating a bucket in us-east-1 (a legacy of that
        # region) and 409 BucketAlreadyOwnedByYou everywhere else; we do the same.
        if call.region != "us-east-1":
            raise S3Error(
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own it.",
                409,
                extra={"BucketName": name},
            )
    else:
        call.store.create_bucket(name, call.account)
    return Response(headers={"Location": f"/{name}"})


async def head_bucket(call: Call) -> Response:
    info = call.owned_bucket()
    return Response(headers={"x-amz-bucket-region": info.region, "x-amz-access-point-alias": "false"})


async def delete_bucket(call: Call) -> Response:
    call.owned_bucket()
    call.store.delete_bucket(call.bucket or "")
    return Response(204)


async def get_location(call: Call) -> Response:
    info = call.owned_bucket()
    doc = s3xml.root("LocationConstraint")
    if info.region != "us-east-1":
        doc.text = info.region
    return _xml(doc)


async def get_versioning(call: Call) -> Response:
    call.owned_bucket()
    return _xml(s3xml.root("VersioningConfiguration"))


# -- listings ---------------------------------------------------------------------


def _max_keys(call: Call) -> int:
    text = call.query.get("max-keys", str(MAX_KEYS))
    try:
        value = int(text)
    except ValueError:
        raise invalid_argument(
            "Provided max-keys not an integer or within integer range", "max-keys", text
        ) from None
    if value < 0:
        raise invalid_argument(
            "Argument maxKeys must be an integer between 0 and 2147483647", "max-keys", text
        )
    return min(value, MAX_KEYS)


def _encoder(call: Call):
    encoding = call.query.get("encoding-type")
    if encoding is None:
        return lambda value: value
    if encoding.lower() != "url":
        raise invalid_argument("Invalid Encoding Method specified in Request", "encoding-type", encoding)
    return lambda value: quote(value, safe="/")


def _meta_reader(call: Call, bucket: str):
    def meta_of(key: str) -> ObjectMeta | None:
        try:
            return call.store.head_object(bucket, key)
        except (CorruptObject, OSError):
            return None

    return meta_of


def _contents(parent, key: str, meta: ObjectMeta, encode, owner: str | None) -> None:
    entry = s3xml.sub(parent, "Contents")
    s3xml.subs(
        entry,
        [
            ("Key", encode(key)),
            ("LastModified", s3xml.iso8601(meta.last_modified)),
            ("ETag", meta.quoted_etag),
        ],
    )
    if meta.checksum:
        s3xml.sub(entry, "ChecksumAlgorithm", meta.checksum["algorithm"].upper())
        s3xml.sub(entry, "ChecksumType", meta.checksum.get("type", "FULL_OBJECT"))
    s3xml.sub(entry, "Size", meta.size)
    if owner is not None:
        _owner(entry, owner)
    s3xml.sub(entry, "StorageClass", meta.storage_class)


def _token(last: str) -> str:
    return base64.urlsafe_b64encode(("1\n" + last).encode()).decode()


def _untoken(token: str) -> str:
    try:
        text = base64.urlsafe_b64decode(token.encode("ascii")).decode()
    except (binascii.Error, ValueError, UnicodeError):
        text = ""
    if not text.startswith("1\n"):
        raise invalid_argument("The continuation token provided is incorrect", "continuation-token", token)
    return text[2:]


async def list_objects(call: Call) -> Response:
    info = call.owned_bucket()
    v2 = call.query.get("list-type") == "2"
    if "list-type" in call.query and not v2:
        raise invalid_argument("Invalid List Type specified in Request", "list-type", call.query["list-type"])
    prefix, delimiter = call.query.get("prefix", ""), call.query.get("delimiter", "")
    encode, max_keys = _encoder(call), _max_keys(call)
    token = call.query.get("continuation-token") if v2 else None
    start_after = call.query.get("start-after" if v2 else "marker") or None
    after = _untoken(token) if token is not None else start_after
    if token is not None and start_after is not None and start_after > after:
        after = start_after
    result = list_keys(
        call.store.index(info.name),
        _meta_reader(call, info.name),
        prefix=prefix,
        delimiter=delimiter,
        after=after,
        max_keys=max_keys,
    )

    doc = s3xml.root("ListBucketResult")
    s3xml.subs(doc, [("Name", info.name), ("Prefix", encode(prefix))])
    if v2:
        if token is not None:
            s3xml.sub(doc, "ContinuationToken", token)
        if start_after is not None:
            s3xml.sub(doc, "StartAfter", encode(start_after))
        s3xml.sub(doc, "KeyCount", len(result.contents) + len(result.common_prefixes))
    else:
        s3xml.sub(doc, "Marker", encode(start_after or ""))
        if result.truncated and delimiter and result.last is not None:
            s3xml.sub(doc, "NextMarker", encode(result.last))
    s3xml.sub(doc, "MaxKeys", max_keys)
    if delimiter:
        s3xml.sub(doc, "Delimiter", encode(delimiter))
    if "encoding-type" in call.query:
        s3xml.sub(doc, "EncodingType", "url")
    s3xml.sub(doc, "IsTruncated", "true" if result.truncated else "false")
    if v2 and result.truncated and result.last is not None:
        s3xml.sub(doc, "NextContinuationToken", _token(result.last))
    fetch_owner = not v2 or call.query.get("fetch-owner", "").lower() == "true"
    for key, meta in result.contents:
        _contents(doc, key, meta, encode, info.owner if fetch_owner else None)
    for common in result.common_prefixes:
        s3xml.sub(s3xml.sub(doc, "CommonPrefixes"), "Prefix", encode(common))
    return _xml(doc)


# -- DeleteObjects ------------------------------------------------------------------


async def delete_objects(call: Call) -> Response:
    info = call.owned_bucket()
    require_integrity_header(call)
    doc = s3xml.parse(small_body(call))
    if s3xml.local(doc) != "Delete":
        raise malformed_xml()
    quiet = (s3xml.child_text(doc, "Quiet") or "").strip().lower() == "true"
    objects = s3xml.children(doc, "Object")
    if not objects or len(objects) > MAX_DELETE_KEYS:
        raise malformed_xml()

    result = s3xml.root("DeleteResult")
    for obj in objects:
        key = s3xml.child_text(obj, "Key")
        if key is None:
            raise malformed_xml()
        try:
            check_key(key)
            call.store.delete_object(info.name, key)
        except S3Error as exc:
            error = s3xml.sub(result, "Error")
            s3xml.subs(error, [("Key", key), ("Code", exc.code), ("Message", exc.message)])
            continue
        if not quiet:
            s3xml.sub(s3xml.sub(result, "Deleted"), "Key", key)
    return _xml(result)
