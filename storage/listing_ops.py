"""ListObjects (V1), ListObjectsV2 and ListObjectVersions: parameters in, the listing walk, XML out."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from urllib.parse import quote
from xml.sax.saxutils import escape

from lxml import etree

from resilin.aws.timestamps import iso8601
from resilin.storage import s3xml, versioning
from resilin.storage.context import Call, Response
from resilin.storage.errors import invalid_argument
from resilin.storage.listing import MAX_KEYS, list_keys
from resilin.storage.objfile import CorruptObject
from resilin.storage.owners import canonical_user_id
from resilin.storage.store import ListEntry
from resilin.storage.version_listing import MergedKeys, list_versions
from resilin.storage.versioning import Version


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


def _encoder(call: Call) -> Callable[[str], str]:
    encoding = call.query.get("encoding-type")
    if encoding is None:
        return lambda value: value
    if encoding.lower() != "url":
        raise invalid_argument("Invalid Encoding Method specified in Request", "encoding-type", encoding)
    return lambda value: quote(value, safe="/")


def _meta_reader(call: Call, bucket: str) -> Callable[[str], ListEntry | None]:
    def meta_of(key: str) -> ListEntry | None:
        try:
            return call.store.list_entry(bucket, key)
        except (CorruptObject, OSError):
            return None

    return meta_of


def _text(value: str) -> str:
    return escape(s3xml.xml_text(value))


def _contents(key: str, entry: ListEntry, encode: Callable[[str], str], owner_xml: str) -> str:
    """One <Contents> element, as text: a listing page has up to a thousand of them."""
    checksum = ""
    if entry.checksum_algorithm:
        checksum = (
            f"<ChecksumAlgorithm>{entry.checksum_algorithm.upper()}</ChecksumAlgorithm>"
            f"<ChecksumType>{entry.checksum_type}</ChecksumType>"
        )
    return (
        f"<Contents><Key>{_text(encode(key))}</Key>"
        f"<LastModified>{iso8601(entry.last_modified)}</LastModified>"
        f"<ETag>{_text(entry.quoted_etag)}</ETag>{checksum}<Size>{entry.size}</Size>{owner_xml}"
        f"<StorageClass>{_text(entry.storage_class)}</StorageClass></Contents>"
    )


def _owner_xml(account: str) -> str:
    return f"<Owner><ID>{canonical_user_id(account)}</ID><DisplayName>{_text(account)}</DisplayName></Owner>"


def continuation_token(last: str) -> str:
    """An opaque token for a listing that goes on after ``last`` (objects, or buckets)."""
    return base64.urlsafe_b64encode(("1\n" + last).encode()).decode()


def token_position(token: str) -> str:
    """Where a :func:`continuation_token` left off; InvalidArgument if it is not one."""
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
    if not token:  # none, or empty: from the start (S3 echoes an empty token back)
        after = start_after
    else:
        after = token_position(token)
        if start_after is not None and start_after > after:
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
    # ListObjects (V1) answers its Prefix as given even with encoding-type=url, as S3 does (SDKs
    # decode only Delimiter, Marker and NextMarker there); V2 encodes it.
    s3xml.subs(doc, [("Name", info.name), ("Prefix", encode(prefix) if v2 else prefix)])
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
        s3xml.sub(doc, "NextContinuationToken", continuation_token(result.last))
    fetch_owner = not v2 or call.query.get("fetch-owner", "").lower() == "true"
    owner_xml = _owner_xml(info.owner) if fetch_owner else ""
    items = [_contents(key, entry, encode, owner_xml) for key, entry in result.contents]
    return _listing_response(doc, items, result.common_prefixes, encode)


def _listing_response(
    doc: etree._Element, items: list[str], common_prefixes: list[str], encode: Callable[[str], str]
) -> Response:
    """The document with ``items`` (entries as XML text) and the common prefixes appended to its root.

    The head of the document comes from lxml; the entries, which are most of it, are appended as
    text.  (The root's default namespace covers them; Name is always there, so the root has a
    closing tag.)"""
    items = items + [
        f"<CommonPrefixes><Prefix>{_text(encode(p))}</Prefix></CommonPrefixes>" for p in common_prefixes
    ]
    head = s3xml.serialize(doc)
    closing = f"</{s3xml.local(doc)}>".encode()
    assert head.endswith(closing)
    body = head[: -len(closing)] + "".join(items).encode() + closing
    return Response(body=body, headers={"Content-Type": "application/xml"})


def _version(version: Version, encode: Callable[[str], str], latest: bool, owner_account: str) -> str:
    """One <Version> or <DeleteMarker> element."""
    head = (
        f"<Key>{_text(encode(version.key))}</Key><VersionId>{_text(version.version_id)}</VersionId>"
        f"<IsLatest>{'true' if latest else 'false'}</IsLatest>"
        f"<LastModified>{iso8601(version.last_modified)}</LastModified>"
    )
    if version.marker:
        return f"<DeleteMarker>{head}{_owner_xml(version.owner or owner_account)}</DeleteMarker>"
    meta = version.meta
    assert meta is not None
    checksum = (
        f"<ChecksumAlgorithm>{meta.checksum['algorithm'].upper()}</ChecksumAlgorithm>"
        if meta.checksum
        else ""
    )
    return (
        f"<Version>{head}<ETag>{_text(meta.quoted_etag)}</ETag>{checksum}<Size>{meta.size}</Size>"
        f"{_owner_xml(owner_account)}<StorageClass>{_text(meta.storage_class)}</StorageClass></Version>"
    )


async def list_object_versions(call: Call) -> Response:
    """ListObjectVersions: every version and delete marker, by key and then newest first, with
    prefix, delimiter and the key and version-id markers."""
    info = call.owned_bucket()
    prefix, delimiter = call.query.get("prefix", ""), call.query.get("delimiter", "")
    encode, max_keys = _encoder(call), _max_keys(call)
    key_marker = call.query.get("key-marker", "")
    version_marker = call.query.get("version-id-marker")
    if version_marker is not None:
        if not key_marker:
            raise invalid_argument(
                "A version-id marker cannot be specified without a key marker.",
                "version-id-marker",
                version_marker,
            )
        versioning.check_version_id(version_marker)
    store = call.store
    keys = MergedKeys(store.index(info.name), versioning.keys_with_versions(store, info.name))
    result = list_versions(
        keys,
        lambda key: versioning.versions_of(store, info.name, key),
        prefix=prefix,
        delimiter=delimiter,
        key_marker=key_marker or None,
        version_marker=version_marker or None,
        max_keys=max_keys,
    )
    doc = s3xml.root("ListVersionsResult")
    s3xml.subs(doc, [("Name", info.name), ("Prefix", encode(prefix)), ("KeyMarker", encode(key_marker))])
    s3xml.sub(doc, "VersionIdMarker", version_marker or "")
    if result.truncated and result.next_key is not None:
        s3xml.sub(doc, "NextKeyMarker", encode(result.next_key))
        if result.next_version is not None:
            s3xml.sub(doc, "NextVersionIdMarker", result.next_version)
    s3xml.sub(doc, "MaxKeys", max_keys)
    if delimiter:
        s3xml.sub(doc, "Delimiter", encode(delimiter))
    if "encoding-type" in call.query:
        s3xml.sub(doc, "EncodingType", "url")
    s3xml.sub(doc, "IsTruncated", "true" if result.truncated else "false")
    items = [_version(v, encode, latest, info.owner) for v, latest in result.versions]
    return _listing_response(doc, items, result.common_prefixes, encode)
