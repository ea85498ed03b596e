"""CompleteMultipartUpload: check the listed parts, join them, publish the object."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import BinaryIO

from resilin.storage import checksums, objfile, requestmeta, s3xml, versioning
from resilin.storage.bodies import small_body
from resilin.storage.context import Call, Response
from resilin.storage.errors import S3Error, invalid_argument, malformed_xml
from resilin.storage.multipart_ops import MAX_PARTS, MIN_PART_SIZE, upload_of
from resilin.storage.object_ops import headers_of_checksum, version_headers, write_precondition
from resilin.storage.objfile import ObjectMeta
from resilin.storage.writes import copy_range, publish_object, write_temp


def _requested_parts(call: Call, algorithm: str | None) -> list[tuple[int, str, str | None]]:
    """(part number, ETag, checksum) for each <Part> of a CompleteMultipartUpload body."""
    # An x-amz-checksum-* header here is the whole object's checksum, checked once it is assembled.
    doc = s3xml.parse(small_body(call, checksum_of_body=False))
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
    try:
        bucket, upload_id, info = upload_of(call)
    except S3Error as exc:
        done = _completed_before(call, exc)
        if done is None:
            raise
        return _result(
            call, done["bucket"], done["key"], done["etag"], done["checksum"], done.get("version_id")
        )
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
    expected = _expected_object_checksum(call, algorithm, kind)
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
            if expected is not None and expected != value:
                raise _bad_digest(full_object)
            checksum = {"algorithm": full_object, "value": value, "type": "FULL_OBJECT"}
        elif algorithm and all(p.checksum for _, p in chosen):
            combined = checksums.new_hasher(algorithm)
            for _, p in chosen:
                combined.update(base64.b64decode(p.checksum["value"]))
            value = f"{checksums.encode(combined.digest())}-{len(chosen)}"
            # A composite checksum may be given with or without its "-<parts>" suffix.
            if expected is not None and expected.split("-")[0] != value.split("-")[0]:
                raise _bad_digest(algorithm)
            checksum = {"algorithm": algorithm, "value": value, "type": "COMPOSITE"}
        elif expected is not None:
            raise S3Error(
                "InvalidRequest",
                f"The upload's parts carry no {algorithm.upper() if algorithm else ''} checksums to check "
                "the object's against.",
                400,
            )
        meta = ObjectMeta(
            size=sum(p.size for _, p in chosen),
            etag=f"{etag}-{len(chosen)}",
            last_modified=time.time(),
            content_type=info.get("content_type") or requestmeta.DEFAULT_CONTENT_TYPE,
            headers=info.get("headers") or {},
            user_meta=info.get("user_meta") or {},
            checksum=checksum,
            part_sizes=[p.size for _, p in chosen],
            part_checksums=[p.checksum["value"] for _, p in chosen]
            if all(p.checksum for _, p in chosen)
            else [],
            storage_class=info.get("storage_class") or "STANDARD",
            acl=info.get("acl") or {},
            tags=info.get("tags") or {},
            version_id=version_id,
            seq=seq,
            lock=info.get("lock") or {},
        )
        objfile.finish(out, meta)
        return meta

    version_id, seq = versioning.new_version(call.store, bucket)
    tmp, meta = await write_temp(call.store, work)
    try:
        call.store.upload_info(bucket, upload_id)  # aborted meanwhile?
    except S3Error:
        tmp.unlink(missing_ok=True)
        raise
    await publish_object(call.store, bucket, key, tmp, precondition)
    version = version_headers(call, bucket, meta, write=True).get("x-amz-version-id")
    completed = {"bucket": bucket, "key": key, "etag": meta.quoted_etag, "checksum": meta.checksum,
                 "version_id": version}  # fmt: skip
    call.store.remember_completed(bucket, upload_id, completed)
    try:
        call.store.remove_upload(bucket, upload_id)
    except S3Error:
        pass  # aborted or completed again meanwhile: the object is in place all the same
    return _result(call, bucket, key, meta.quoted_etag, meta.checksum, version)


def _completed_before(call: Call, missing: S3Error) -> dict | None:
    """The result of this upload's earlier completion, when ``missing`` says it is no longer open."""
    if missing.code != "NoSuchUpload":
        return None
    bucket = call.owned_bucket().name
    done = call.store.completed_upload(bucket, call.query.get("uploadId", ""))
    return done if done is not None and done["key"] == call.key else None


def _result(call: Call, bucket: str, key: str, etag: str, checksum: dict, version_id: str | None) -> Response:
    doc = s3xml.root("CompleteMultipartUploadResult")
    host = call.header("host") or "localhost"
    s3xml.subs(
        doc, [("Location", f"http://{host}/{bucket}/{key}"), ("Bucket", bucket), ("Key", key), ("ETag", etag)]
    )
    if checksum:
        s3xml.sub(doc, f"Checksum{checksum['algorithm'].upper()}", checksum["value"])
        s3xml.sub(doc, "ChecksumType", checksum["type"])
    response = s3xml.response(doc)
    response.headers.update(headers_of_checksum(checksum))
    if version_id is not None:
        response.headers["x-amz-version-id"] = version_id
    return response


def _expected_object_checksum(call: Call, algorithm: str | None, kind: str) -> str | None:
    """The object checksum the request's x-amz-checksum-* header gives (None: none); it must use the
    upload's algorithm, and an x-amz-checksum-type its type."""
    sent_algorithm, value, _ = requestmeta.checksum_request(call, composite=kind != "FULL_OBJECT")
    if value is None:
        return None
    if sent_algorithm != algorithm:
        raise S3Error(
            "InvalidRequest",
            f"The upload was created using {'the ' + algorithm.upper() if algorithm else 'no'} checksum "
            f"algorithm; the complete request must use the same (it sent {sent_algorithm.upper() if sent_algorithm else 'none'}).",
            400,
        )
    sent_kind = (call.header("x-amz-checksum-type") or "").upper()
    if sent_kind and sent_kind != (kind or "COMPOSITE"):
        raise S3Error(
            "InvalidRequest",
            f"The upload was created using the {kind or 'COMPOSITE'} checksum mode; "
            f"the complete request must use the same (it sent {sent_kind}).",
            400,
        )
    return value


def _bad_digest(algorithm: str) -> S3Error:
    return S3Error(
        "BadDigest", f"The {algorithm.upper()} you specified did not match the calculated checksum.", 400
    )


class _Tee:
    """A writable file that also feeds a hasher."""

    def __init__(self, out: BinaryIO, hasher: checksums.Hasher | None) -> None:
        self.out, self.hasher = out, hasher

    def write(self, data: bytes) -> int:
        if self.hasher is not None:
            self.hasher.update(data)
        return self.out.write(data)
