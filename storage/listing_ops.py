"""ListObjects (V1) and ListObjectsV2: parameters in, the listing walk, XML out."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import quote

from resilin.storage import s3xml
from resilin.storage.context import Call, Response
from resilin.storage.errors import invalid_argument
from resilin.storage.listing import MAX_KEYS, list_keys
from resilin.storage.objfile import CorruptObject, ObjectMeta
from resilin.storage.owners import add_owner


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
        add_owner(entry, owner)
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
    return s3xml.response(doc)
