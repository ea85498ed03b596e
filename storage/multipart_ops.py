"""Multipart uploads: create, upload (and copy) parts, complete, abort, and list them."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import BinaryIO

from resilin.storage import checksums, conditions, objfile, requestmeta, s3xml
from resilin.storage.bodies import small_body
from resilin.storage.bucket_ops import canonical_user_id
from resilin.storage.context import Call, Response
from resilin.storage.errors import S3Error, invalid_argument, invalid_request, malformed_xml, no_such_upload
from resilin.storage.ingest import ingest
from resilin.storage.names import check_key
from resilin.storage.object_ops import checksum_headers, parse_copy_source, write_precondition
from resilin.storage.objfile import ObjectMeta
from resilin.storage.writes import copy_range, publish_object, write_temp

XML = {"Content-Type": "application/xml"}
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024**3
MAX_PARTS = 10000


def _xml(doc) -> Response:
    return Response(body=s3xml.serialize(doc), headers=dict(XML))


def _upload(call: Call) -> tuple[str, str, dict]:
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
    bucket, key = call.owned_bucket().name, call.key or ""
    check_key(key)
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
    }
    upload_id = call.store.create_upload(bucket, info)
    doc = s3xml.root("InitiateMultipartUploadResult")
    s3xml.subs(doc, [("Bucket", bucket), ("Key", key), ("UploadId", upload_id)])
    response = _xml(doc)
    if algorithm:
        response.headers["x-amz-checksum-algorithm"] = algorithm.upper()
        response.headers["x-amz-checksum-type"] = kind
    return response


async def upload_part(call: Call) -> Response:
    bucket, upload_id, info = _upload(call)
    number = _part_number(call)
    spec = requestmeta.body_spec(call, max_size=min(MAX_PART_SIZE, call.store.max_object_size))
    wanted = info.get("checksum_algorithm") or None
    if spec.checksum_algorithm and wanted and spec.checksum_algorithm != wanted:
        raise invalid_request(
            f"Checksum Type mismatch occurred, expected checksum Type: {wanted}, "
            f"actual checksum Type: {spec.checksum_algorithm}"
        )
    spec.checksum_algorithm = spec.checksum_algorithm or wanted

    body = call.body_file()

    def work(out: BinaryIO) -> ObjectMeta:
        with body:
            got = ingest(body, out, spec)
        checksum = {}
        if got.checksums:
            algorithm, value = next(iter(got.checksums.items()))
            checksum = {"algorithm": algorithm, "value": value, "type": "PART"}
        meta = ObjectMeta(size=got.size, etag=got.md5.hex(), last_modified=time.time(), checksum=checksum)
        objfile.finish(out, meta)
        return meta

    tmp, meta = await write_temp(call.store, work, "part")
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
    bucket, upload_id, info = _upload(call)
    number = _part_number(call)
    src_bucket, src_key = parse_copy_source(call.header("x-amz-copy-source") or "")
    call.owned_bucket(src_bucket)
    check_key(src_key)
    algorithm = info.get("checksum_algorithm") or None
    source, meta = call.store.open_object(src_bucket, src_key)
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
                checksum={"algorithm": algorithm, "value": checksum, "type": "PART"} if checksum else {},
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
    s3xml.subs(doc, [("ETag", part.quoted_etag), ("LastModified", s3xml.iso8601(part.last_modified))])
    if part.checksum:
        s3xml.sub(doc, f"Checksum{part.checksum['algorithm'].upper()}", part.checksum["value"])
    return _xml(doc)


def _requested_parts(call: Call, algorithm: str | None) -> list[tuple[int, str, str | None]]:
    """(part number, ETag, checksum) for each <Part> of a CompleteMultipartUpload body."""
    doc = s3xml.parse(small_body(call))
    if s3xml.local(doc) != "CompleteMultipartUpload":
        raise malformed_xml()
    parts = []
    for part in s3xml.children(doc, "Part"):
        number, etag = s3xml.child_text(part, "PartNumber"), s3xml.child_text(part, "ETag")
        if number is None or etag is None or not number.strip().isdigit():
            raise malformed_xml()
        checksum = s3xml.child_text(part, f"Checksum{algorithm.upper()}") if algorithm else None
        parts.append((int(number), etag.strip().strip('"'), checksum))
    if not parts:
        raise malformed_xml()
    if len(parts) > MAX_PARTS:
        raise invalid_argument("Part number must be an integer between 1 and 10000, inclusive")
    numbers = [n for n, _, _ in parts]
    if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
        raise S3Error(
            "InvalidPartOrder",
            "The list of parts was not in ascending order. Parts must be ordered by part number.",
            400,
        )
    return parts


def _invalid_part(number: int) -> S3Error:
    return S3Error(
        "InvalidPart",
        "One or more of the specified parts could not be found.  The part may not have been uploaded, "
        "or the specified entity tag may not match the part's entity tag.",
        400,
        extra={"PartNumber": str(number)},
    )


async def complete_upload(call: Call) -> Response:
    bucket, upload_id, info = _upload(call)
    key = info["key"]
    algorithm = info.get("checksum_algorithm") or None
    kind = info.get("checksum_type") or ""
    requested = _requested_parts(call, algorithm)
    precondition = write_precondition(call, bucket, key)
    stored = dict(call.store.parts(bucket, upload_id))
    chosen: list[tuple[int, ObjectMeta]] = []
    for index, (number, etag, checksum) in enumerate(requested):
        part = stored.get(number)
        if part is None or part.etag != etag:
            raise _invalid_part(number)
        if checksum is not None and part.checksum and checksum != part.checksum.get("value"):
            raise _invalid_part(number)
        if index < len(requested) - 1 and part.size < MIN_PART_SIZE:
            raise S3Error(
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size",
                400,
                extra={
                    "ProposedSize": str(part.size),
                    "MinSizeAllowed": str(MIN_PART_SIZE),
                    "PartNumber": str(number),
                },
            )
        chosen.append((number, part))

    full_object = algorithm if kind == "FULL_OBJECT" else None
    expected_full = call.header(f"x-amz-checksum-{algorithm}") if full_object else None
    paths = [call.store.part_path(bucket, upload_id, n) for n, _ in chosen]

    def work(out: BinaryIO) -> ObjectMeta:
        hasher = checksums.new_hasher(full_object) if full_object else None
        for path, (_, part) in zip(paths, chosen, strict=True):
            with open(path, "rb") as source:
                copy_range(source, 0, part.size, _Tee(out, hasher), None)
        etag = hashlib.md5(b"".join(bytes.fromhex(p.etag) for _, p in chosen)).hexdigest()
        checksum = {}
        if hasher is not None and full_object:
            value = checksums.encode(hasher.digest())
            if expected_full is not None and expected_full != value:
                raise S3Error(
                    "BadDigest",
                    f"The {full_object.upper()} you specified did not match the calculated checksum.",
                    400,
                )
            checksum = {"algorithm": full_object, "value": value, "type": "FULL_OBJECT"}
        elif algorithm and all(p.checksum for _, p in chosen):
            combined = checksums.new_hasher(algorithm)
            for _, p in chosen:
                combined.update(base64.b64decode(p.checksum["value"]))
            value = f"{checksums.encode(combined.digest())}-{len(chosen)}"
            checksum = {"algorithm": algorithm, "value": value, "type": "COMPOSITE"}
        meta = ObjectMeta(
            size=sum(p.size for _, p in chosen),
            etag=f"{etag}-{len(chosen)}",
            last_modified=time.time(),
            content_type=info.get("content_type") or requestmeta.DEFAULT_CONTENT_TYPE,
            headers=info.get("headers") or {},
            user_meta=info.get("user_meta") or {},
            checksum=checksum,
            part_sizes=[p.size for _, p in chosen],
            storage_class=info.get("storage_class") or "STANDARD",
        )
        objfile.finish(out, meta)
        return meta

    tmp, meta = await write_temp(call.store, work)
    try:
        call.store.upload_info(bucket, upload_id)  # aborted meanwhile?
    except S3Error:
        tmp.unlink(missing_ok=True)
        raise
    await publish_object(call.store, bucket, key, tmp, precondition)
    try:
        call.store.remove_upload(bucket, upload_id)
    except S3Error:
        pass  # aborted or completed again meanwhile: the object is in place all the same

    doc = s3xml.root("CompleteMultipartUploadResult")
    host = call.header("host") or "localhost"
    s3xml.subs(
        doc,
        [
            ("Location", f"http://{host}/{bucket}/{key}"),
            ("Bucket", bucket),
            ("Key", key),
            ("ETag", meta.quoted_etag),
        ],
    )
    if meta.checksum:
        s3xml.sub(doc, f"Checksum{meta.checksum['algorithm'].upper()}", meta.checksum["value"])
        s3xml.sub(doc, "ChecksumType", meta.checksum["type"])
    response = _xml(doc)
    response.headers.update(checksum_headers(meta))
    return response


class _Tee:
    """A writable file that also feeds a hasher."""

    def __init__(self, out: BinaryIO, hasher) -> None:
        self.out, self.hasher = out, hasher

    def write(self, data: bytes) -> int:
        if self.hasher is not None:
            self.hasher.update(data)
        return self.out.write(data)


async def abort_upload(call: Call) -> Response:
    bucket, upload_id, _ = _upload(call)
    call.store.remove_upload(bucket, upload_id)
    return Response(204)


async def list_parts(call: Call) -> Response:
    bucket, upload_id, info = _upload(call)
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
                ("LastModified", s3xml.iso8601(part.last_modified)),
                ("ETag", part.quoted_etag),
                ("Size", part.size),
            ],
        )
        if part.checksum:
            s3xml.sub(entry, f"Checksum{part.checksum['algorithm'].upper()}", part.checksum["value"])
    _people(doc, info["owner"])
    s3xml.sub(doc, "StorageClass", info.get("storage_class") or "STANDARD")
    if info.get("checksum_algorithm"):
        s3xml.sub(doc, "ChecksumAlgorithm", info["checksum_algorithm"].upper())
        s3xml.sub(doc, "ChecksumType", info.get("checksum_type") or "COMPOSITE")
    return _xml(doc)


def _people(parent, account: str) -> None:
    for tag in ("Initiator", "Owner"):
        person = s3xml.sub(parent, tag)
        s3xml.subs(person, [("ID", canonical_user_id(account)), ("DisplayName", account)])


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
        _people(entry, info["owner"])
        s3xml.subs(
            entry,
            [
                ("StorageClass", info.get("storage_class") or "STANDARD"),
                ("Initiated", s3xml.iso8601(initiated)),
            ],
        )
        if info.get("checksum_algorithm"):
            s3xml.sub(entry, "ChecksumAlgorithm", info["checksum_algorithm"].upper())
    return _xml(doc)
