"""CompleteMultipartUpload: check the listed parts, join them, publish the object."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import BinaryIO

from resilin.storage import checksums, objfile, requestmeta, s3xml
from resilin.storage.bodies import small_body
from resilin.storage.context import Call, Response
from resilin.storage.errors import S3Error, invalid_argument, malformed_xml
from resilin.storage.multipart_ops import MAX_PARTS, MIN_PART_SIZE, upload_of
from resilin.storage.object_ops import checksum_headers, write_precondition
from resilin.storage.objfile import ObjectMeta
from resilin.storage.writes import copy_range, publish_object, write_temp


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
    bucket, upload_id, info = upload_of(call)
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
    response = s3xml.response(doc)
    response.headers.update(checksum_headers(meta))
    return response


class _Tee:
    """A writable file that also feeds a hasher."""

    def __init__(self, out: BinaryIO, hasher: checksums.Hasher | None) -> None:
        self.out, self.hasher = out, hasher

    def write(self, data: bytes) -> int:
        if self.hasher is not None:
            self.hasher.update(data)
        return self.out.write(data)
