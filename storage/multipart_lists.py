"""ListParts and ListMultipartUploads."""

from __future__ import annotations

from lxml import etree

from resilin.aws.timestamps import iso8601
from resilin.storage import s3xml
from resilin.storage.context import Call, Response
from resilin.storage.errors import invalid_argument
from resilin.storage.multipart_ops import upload_of
from resilin.storage.owners import add_owner


async def list_parts(call: Call) -> Response:
    bucket, upload_id, info = upload_of(call)
    try:
        max_parts = min(int(call.query.get("max-parts", "1000")), 1000)
        marker = int(call.query.get("part-number-marker", "0"))
    except ValueError:
        raise invalid_argument("max-parts and part-number-marker must be integers") from None
    parts = [(n, p) for n, p in call.store.parts(bucket, upload_id) if n > marker]
    shown, truncated = parts[: max(max_parts, 0)], len(parts) > max(max_parts, 0)
    doc = s3xml.root("ListPartsResult")
    s3xml.subs(
        doc, [("Bucket", bucket), ("Key", info["key"]), ("UploadId", upload_id), ("PartNumberMarker", marker)]
    )
    if shown:
        s3xml.sub(doc, "NextPartNumberMarker", shown[-1][0])
    s3xml.subs(doc, [("MaxParts", max_parts), ("IsTruncated", "true" if truncated else "false")])
    for number, part in shown:
        entry = s3xml.sub(doc, "Part")
        s3xml.subs(
            entry,
            [
                ("PartNumber", number),
                ("LastModified", iso8601(part.last_modified)),
                ("ETag", part.quoted_etag),
                ("Size", part.size),
            ],
        )
        if part.checksum:
            s3xml.sub(entry, f"Checksum{part.checksum['algorithm'].upper()}", part.checksum["value"])
    _people(doc, info["owner"], (info.get("acl") or {}).get("owner"))
    s3xml.sub(doc, "StorageClass", info.get("storage_class") or "STANDARD")
    if info.get("checksum_algorithm"):
        s3xml.sub(doc, "ChecksumAlgorithm", info["checksum_algorithm"].upper())
        s3xml.sub(doc, "ChecksumType", info.get("checksum_type") or "COMPOSITE")
    return s3xml.response(doc)


def _people(parent: etree._Element, account: str, owner: str | None = None) -> None:
    """Who started the upload, and who will own the object (the bucket's owner under its object
    ownership setting, else the same account)."""
    add_owner(parent, account, "Initiator")
    add_owner(parent, owner or account, "Owner")


async def list_uploads(call: Call) -> Response:
    bucket = call.owned_bucket().name
    prefix = call.query.get("prefix", "")
    key_marker = call.query.get("key-marker", "")
    id_marker = call.query.get("upload-id-marker", "")
    try:
        max_uploads = min(int(call.query.get("max-uploads", "1000")), 1000)
    except ValueError:
        raise invalid_argument("max-uploads must be an integer") from None
    found = sorted(
        (info["key"], info["initiated"], upload_id, info)
        for upload_id, info in call.store.uploads(bucket)
        if info["key"].startswith(prefix)
    )
    if key_marker:
        found = [
            u for u in found if u[0] > key_marker or (u[0] == key_marker and id_marker and u[2] > id_marker)
        ]
    shown, truncated = found[: max(max_uploads, 0)], len(found) > max(max_uploads, 0)
    doc = s3xml.root("ListMultipartUploadsResult")
    s3xml.subs(doc, [("Bucket", bucket), ("KeyMarker", key_marker), ("UploadIdMarker", id_marker)])
    if truncated and shown:
        s3xml.subs(doc, [("NextKeyMarker", shown[-1][0]), ("NextUploadIdMarker", shown[-1][2])])
    s3xml.subs(
        doc,
        [("Prefix", prefix), ("MaxUploads", max_uploads), ("IsTruncated", "true" if truncated else "false")],
    )
    for key, initiated, upload_id, info in shown:
        entry = s3xml.sub(doc, "Upload")
        s3xml.subs(entry, [("Key", key), ("UploadId", upload_id)])
        _people(entry, info["owner"], (info.get("acl") or {}).get("owner"))
        s3xml.subs(
            entry,
            [
                ("StorageClass", info.get("storage_class") or "STANDARD"),
                ("Initiated", iso8601(initiated)),
            ],
        )
        if info.get("checksum_algorithm"):
            s3xml.sub(entry, "ChecksumAlgorithm", info["checksum_algorithm"].upper())
    return s3xml.response(doc)
