"""Multipart uploads: create, upload (and copy) parts, abort.  Completing and listing live beside."""

from __future__ import annotations

import time
from typing import BinaryIO

from resilin.aws.timestamps import iso8601
from resilin.storage import (
    acl_ops,
    authorize,
    checksums,
    conditions,
    object_lock,
    objfile,
    requestmeta,
    s3xml,
)
from resilin.storage.context import Call, Response
from resilin.storage.errors import invalid_argument, invalid_request, no_such_upload
from resilin.storage.ingest import Ingested
from resilin.storage.names import check_key
from resilin.storage.object_ops import open_source, parse_copy_source
from resilin.storage.objfile import ObjectMeta
from resilin.storage.uploads import take_body
from resilin.storage.writes import copy_range, write_temp

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024**3
MAX_PARTS = 10000


def upload_of(call: Call) -> tuple[str, str, dict]:
    """Bucket, upload id and the upload's record, checking it belongs to this key."""
    bucket = call.owned_bucket().name
    upload_id = call.query.get("uploadId", "")
    info = call.store.upload_info(bucket, upload_id)
    if info["key"] != call.key:
        raise no_such_upload(upload_id)
    return bucket, upload_id, info


def _part_number(call: Call) -> int:
    text = call.query.get("partNumber", "")
    if not text.isdigit() or not 1 <= int(text) <= MAX_PARTS:
        raise invalid_argument(
            "Part number must be an integer between 1 and 10000, inclusive", "partNumber", text
        )
    return int(text)


async def create_upload(call: Call) -> Response:
    bucket_info = call.owned_bucket()
    bucket, key = bucket_info.name, call.key or ""
    check_key(key)
    requestmeta.check_object_controls(call)
    object_acl = acl_ops.new_object_acl(call, bucket_info)
    algorithm = (call.header("x-amz-checksum-algorithm") or "").lower()
    if algorithm and algorithm not in checksums.ALGORITHMS:
        raise invalid_request(f"Checksum algorithm {algorithm} is not supported")
    kind = (call.header("x-amz-checksum-type") or "").upper()
    if kind not in ("", "COMPOSITE", "FULL_OBJECT"):
        raise invalid_argument("Invalid checksum type", "x-amz-checksum-type", kind)
    if kind and not algorithm:
        raise invalid_request(
            "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
        )
    if algorithm and not kind:
        kind = "FULL_OBJECT" if algorithm == "crc64nvme" else "COMPOSITE"
    if kind == "FULL_OBJECT" and algorithm in ("sha1", "sha256"):
        raise invalid_request(
            f"The FULL_OBJECT checksum type cannot be used with the {algorithm} checksum algorithm."
        )
    info = {
        "key": key,
        "initiated": time.time(),
        "owner": call.account,
        "content_type": requestmeta.content_type(call),
        "headers": requestmeta.stored_headers(call),
        "user_meta": requestmeta.user_metadata(call),
        "checksum_algorithm": algorithm,
        "checksum_type": kind,
        "storage_class": requestmeta.storage_class(call),
        "acl": object_acl,
        "tags": requestmeta.request_tags(call),
        "lock": object_lock.lock_of_new_object(
            call.store.settings, bucket, {name: call.header(name) for name in requestmeta.OBJECT_LOCK_HEADERS}
        ),
    }
    upload_id = call.store.create_upload(bucket, info)
    doc = s3xml.root("InitiateMultipartUploadResult")
    s3xml.subs(doc, [("Bucket", bucket), ("Key", key), ("UploadId", upload_id)])
    response = s3xml.response(doc)
    if algorithm:
        response.headers["x-amz-checksum-algorithm"] = algorithm.upper()
        response.headers["x-amz-checksum-type"] = kind
    return response


async def upload_part(call: Call) -> Response:
    bucket, upload_id, info = upload_of(call)
    number = _part_number(call)
    spec = requestmeta.body_spec(call, max_size=min(MAX_PART_SIZE, call.store.max_object_size))
    wanted = info.get("checksum_algorithm") or None
    if spec.checksum_algorithm and wanted and spec.checksum_algorithm != wanted:
        raise invalid_request(
            f"Checksum Type mismatch occurred, expected checksum Type: {wanted}, "
            f"actual checksum Type: {spec.checksum_algorithm}"
        )
    spec.checksum_algorithm = spec.checksum_algorithm or wanted

    def describe(got: Ingested) -> ObjectMeta:
        checksum = {}
        if got.checksums:
            algorithm, value = next(iter(got.checksums.items()))
            checksum = {"algorithm": algorithm, "value": value, "type": "PART"}
        return ObjectMeta(size=got.size, etag=got.md5.hex(), last_modified=time.time(), checksum=checksum)

    tmp, meta = await take_body(call, spec, describe, "part")
    try:
        call.store.commit_part(bucket, upload_id, number, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    headers = {"ETag": meta.quoted_etag}
    if meta.checksum:
        headers[f"x-amz-checksum-{meta.checksum['algorithm']}"] = meta.checksum["value"]
    return Response(headers=headers)


def _copy_range(value: str | None, size: int) -> tuple[int, int]:
    if value is None:
        return 0, size
    text = value.strip()
    first, sep, last = text.removeprefix("bytes=").partition("-")
    if not text.startswith("bytes=") or not sep or not first.isdigit() or not last.isdigit():
        raise invalid_argument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last",
            "x-amz-copy-source-range",
            value,
        )
    start, end = int(first), int(last)
    if start > end or end >= size:
        raise invalid_argument(
            f"Range specified is not valid for source object of size: {size}",
            "x-amz-copy-source-range",
            value,
        )
    return start, end - start + 1


async def upload_part_copy(call: Call) -> Response:
    bucket, upload_id, info = upload_of(call)
    number = _part_number(call)
    src_bucket, src_key, src_version = parse_copy_source(call.header("x-amz-copy-source") or "")
    check_key(src_key)
    authorize.require(
        call, "s3:GetObject" if src_version is None else "s3:GetObjectVersion", src_bucket, src_key
    )
    algorithm = info.get("checksum_algorithm") or None
    source, meta = open_source(call, src_bucket, src_key, src_version)
    try:
        conditions.check_conditions(call.headers, meta.etag, meta.last_modified, prefix="x-amz-copy-source-")
        offset, length = _copy_range(call.header("x-amz-copy-source-range"), meta.size)
        if length > MAX_PART_SIZE:
            raise invalid_request("The specified copy range is larger than the maximum part size")

        def work(out: BinaryIO) -> ObjectMeta:
            md5, checksum = copy_range(source, offset, length, out, algorithm)
            part = ObjectMeta(
                size=length,
                etag=md5.hex(),
                last_modified=time.time(),
                checksum={"algorithm": algorithm, "value": checksum, "type": "PART"}
                if checksum and algorithm
                else {},
            )
            objfile.finish(out, part)
            return part

        tmp, part = await write_temp(call.store, work, "part")
    finally:
        source.close()
    try:
        call.store.commit_part(bucket, upload_id, number, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    doc = s3xml.root("CopyPartResult")
    s3xml.subs(doc, [("ETag", part.quoted_etag), ("LastModified", iso8601(part.last_modified))])
    if part.checksum:
        s3xml.sub(doc, f"Checksum{part.checksum['algorithm'].upper()}", part.checksum["value"])
    return s3xml.response(doc)


async def abort_upload(call: Call) -> Response:
    bucket, upload_id, _ = upload_of(call)
    call.store.remove_upload(bucket, upload_id)
    return Response(204)
