"""GetObjectAttributes: an object's ETag, checksum, parts, storage class and size, without its data."""

from __future__ import annotations

from resilin.storage import conditions, s3xml, versioning
from resilin.storage.context import Call, Response
from resilin.storage.errors import invalid_argument
from resilin.storage.names import check_key

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
MAX_PARTS = 1000


def _header_number(call: Call, name: str, default: int) -> int:
    text = call.header(name)
    if text is None:
        return default
    if not text.isdigit():
        raise invalid_argument(f"{name} must be a non-negative integer", name, text)
    return int(text)


async def get_object_attributes(call: Call) -> Response:
    bucket, key = call.owned_bucket().name, call.key or ""
    check_key(key)
    wanted = [a.strip() for a in (call.header("x-amz-object-attributes") or "").split(",") if a.strip()]
    if not wanted:
        raise invalid_argument(
            "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty",
            "x-amz-object-attributes",
        )
    unknown = [a for a in wanted if a not in ATTRIBUTES]
    if unknown:
        raise invalid_argument("Invalid attribute name specified.", "x-amz-object-attributes", unknown[0])
    max_parts = min(_header_number(call, "x-amz-max-parts", MAX_PARTS), MAX_PARTS)
    marker = _header_number(call, "x-amz-part-number-marker", 0)
    version = versioning.object_version(call.store, bucket, key, call.query.get("versionId"), call.method)
    meta = version.meta
    assert meta is not None

    doc = s3xml.root("GetObjectAttributesResponse")
    if "ETag" in wanted:
        s3xml.sub(doc, "ETag", meta.etag)
    if "Checksum" in wanted and meta.checksum:
        checksum = s3xml.sub(doc, "Checksum")
        s3xml.sub(checksum, f"Checksum{meta.checksum['algorithm'].upper()}", meta.checksum["value"])
        s3xml.sub(checksum, "ChecksumType", meta.checksum.get("type", "FULL_OBJECT"))
    if "ObjectParts" in wanted and meta.part_sizes:
        numbered = list(enumerate(meta.part_sizes, 1))
        page = [(n, size) for n, size in numbered if n > marker][:max_parts]
        truncated = bool(page) and page[-1][0] < len(numbered)
        parts = s3xml.sub(doc, "ObjectParts")
        s3xml.subs(
            parts,
            [
                ("PartsCount", len(numbered)),  # TotalPartsCount in the API, PartsCount on the wire
                ("PartNumberMarker", marker),
                ("NextPartNumberMarker", page[-1][0] if page else marker),
                ("MaxParts", max_parts),
                ("IsTruncated", "true" if truncated else "false"),
            ],
        )
        for number, size in page:
            part = s3xml.sub(parts, "Part")
            s3xml.subs(part, [("PartNumber", number), ("Size", size)])
            if meta.checksum and len(meta.part_checksums) >= number:
                s3xml.sub(
                    part, f"Checksum{meta.checksum['algorithm'].upper()}", meta.part_checksums[number - 1]
                )
    if "StorageClass" in wanted:
        s3xml.sub(doc, "StorageClass", meta.storage_class)
    if "ObjectSize" in wanted:
        s3xml.sub(doc, "ObjectSize", meta.size)
    response = s3xml.response(doc)
    response.headers["Last-Modified"] = conditions.http_date(meta.last_modified)
    if meta.version_id or versioning.status(call.store, bucket):
        response.headers["x-amz-version-id"] = version.version_id
    return response
