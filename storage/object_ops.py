"""Object operations: PutObject, GetObject, HeadObject, DeleteObject, CopyObject."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import BinaryIO
from urllib.parse import unquote

from resilin.aws.timestamps import iso8601
from resilin.storage import (
    acl_ops,
    authorize,
    checksums,
    conditions,
    meta_text,
    object_lock,
    object_lock_ops,
    object_tags,
    objfile,
    requestmeta,
    s3xml,
    versioning,
)
from resilin.storage.context import Call, Response, Stream
from resilin.storage.errors import S3Error, invalid_argument, invalid_request, no_such_key
from resilin.storage.expiration_header import expiration_headers
from resilin.storage.ingest import Ingested
from resilin.storage.names import check_key
from resilin.storage.objfile import ObjectMeta
from resilin.storage.uploads import take_body
from resilin.storage.writes import copy_range, publish_object, write_temp

# Query parameters of a signed GET that override response headers (used with presigned URLs).
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


def checksum_headers(meta: ObjectMeta) -> dict[str, str]:
    return headers_of_checksum(meta.checksum)


def headers_of_checksum(checksum: dict[str, str]) -> dict[str, str]:
    """x-amz-checksum-<algorithm> and x-amz-checksum-type of an object's stored checksum ({}: none)."""
    if not checksum:
        return {}
    return {
        f"x-amz-checksum-{checksum['algorithm']}": checksum["value"],
        "x-amz-checksum-type": checksum.get("type", "FULL_OBJECT"),
    }


def object_headers(meta: ObjectMeta) -> dict[str, str]:
    headers = {
        "ETag": meta.quoted_etag,
        "Last-Modified": conditions.http_date(meta.last_modified),
        "Content-Type": meta.content_type,
        "Accept-Ranges": "bytes",
    }
    for name, value in meta.headers.items():
        headers[name.title()] = value
    headers.update(object_lock.headers_of(meta))
    headers.update({name: meta_text.answered_value(value) for name, value in meta.user_meta.items()})
    headers.update(object_tags.count_header(meta.tags))
    if meta.storage_class != "STANDARD":
        headers["x-amz-storage-class"] = meta.storage_class
    if meta.part_sizes:
        headers["x-amz-mp-parts-count"] = str(len(meta.part_sizes))
    return headers


async def put_object(call: Call) -> Response:
    info = call.owned_bucket()
    bucket, key = info.name, call.key or ""
    check_key(key)
    requestmeta.check_object_controls(call)
    lock = object_lock.lock_of_new_object(call.store.settings, bucket, _lock_headers(call))
    object_acl = acl_ops.new_object_acl(call, info)
    tags = requestmeta.request_tags(call)
    spec = requestmeta.body_spec(call)
    content_type = requestmeta.content_type(call)
    stored = requestmeta.stored_headers(call)
    user_meta = requestmeta.user_metadata(call)
    storage_class = requestmeta.storage_class(call)
    precondition = write_precondition(call, bucket, key)
    version_id, seq = versioning.new_version(call.store, bucket)
    versioned = bool(versioning.status(call.store, bucket))

    def describe(got: Ingested) -> ObjectMeta:
        checksum = {}
        if got.checksums:
            algorithm, value = next(iter(got.checksums.items()))
            checksum = {"algorithm": algorithm, "value": value, "type": "FULL_OBJECT"}
        return ObjectMeta(
            size=got.size,
            etag=got.md5.hex(),
            last_modified=time.time(),
            content_type=content_type,
            headers=stored,
            user_meta=user_meta,
            checksum=checksum,
            storage_class=storage_class,
            acl=object_acl,
            tags=tags,
            version_id=version_id,
            seq=seq,
            lock=lock,
        )

    if precondition is None and not versioned:
        # Written, fsynced, renamed and the rename made durable in one worker thread job.
        publish = call.store.begin_write(bucket, key)
        try:
            _, meta = await take_body(call, spec, describe, publish=publish)
        finally:
            publish.end()  # back on the reactor thread, whether or not the file was placed
    else:
        # A conditional write checks and renames on the reactor thread, atomically; so does a
        # write to a versioned bucket, which keeps the object it replaces as an older version.
        tmp, meta = await take_body(call, spec, describe)
        await publish_object(call.store, bucket, key, tmp, precondition)
    headers = {
        "ETag": meta.quoted_etag,
        **checksum_headers(meta),
        **version_headers(call, bucket, meta, write=True),
    }
    return Response(headers={**headers, **expiration_headers(call.store, bucket, key, meta)})


def _part_slice(call: Call, meta: ObjectMeta) -> tuple[int, int] | None:
    """(offset, length) of ?partNumber=N, or None when not asked."""
    text = call.query.get("partNumber")
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 10000:
        raise invalid_argument(
            "Part number must be an integer between 1 and 10000, inclusive", "partNumber", text
        )
    number = int(text)
    sizes = meta.part_sizes or [meta.size]
    if number > len(sizes):
        raise S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable", 416)
    return sum(sizes[: number - 1]), sizes[number - 1]


def version_headers(call: Call, bucket: str, meta: ObjectMeta, write: bool = False) -> dict[str, str]:
    """x-amz-version-id: on a read once the bucket's versioning was ever set (``null`` for the null
    version); on a write only for a version with an id of its own, as S3 answers."""
    if meta.version_id or (not write and versioning.status(call.store, bucket)):
        return {"x-amz-version-id": versioning.shown(meta.version_id)}
    return {}


def _missing(call: Call, bucket: str, key: str) -> S3Error:
    """NoSuchKey, saying so when the key's latest version is a delete marker."""
    error = no_such_key(key)
    marker = versioning.latest_marker(call.store, bucket, key)
    if marker is not None:
        error.headers.update({"x-amz-delete-marker": "true", "x-amz-version-id": marker.version_id})
    else:
        error.headers["x-amz-delete-marker"] = "false"
    return error


async def _get_version(call: Call, bucket: str, key: str, version_id: str, head: bool) -> Response:
    """GET or HEAD ?versionId=: the version's data, or 405 for a delete marker, as S3 answers."""
    version = versioning.find(call.store, bucket, key, version_id)
    if version.marker:
        error = versioning.delete_marker_error(version, "HEAD" if head else "GET")
        error.headers["Last-Modified"] = conditions.http_date(version.last_modified)
        raise error
    try:
        f = open(version.path, "rb", buffering=0)  # noqa: SIM115 - closed below or by the stream
    except FileNotFoundError:
        raise versioning.no_such_version(key, version_id) from None
    try:
        meta = objfile.read_meta(f)
        response, offset, length = _read_response(call, meta, head)
        response.headers.update(version_headers(call, bucket, meta))
    except BaseException:
        f.close()
        raise
    if head or response.status == 304:
        f.close()
    else:
        response.stream = Stream(f, offset, length)
    return response


async def get_object(call: Call, head: bool = False) -> Response:
    bucket, key = call.owned_bucket().name, call.key or ""
    check_key(key)
    version_id = call.query.get("versionId")
    if version_id is not None:
        return await _get_version(call, bucket, key, version_id, head)
    if head:
        # No need to open the file: the metadata is enough (and usually cached).
        cached = call.store.head_object(bucket, key)
        if cached is None:
            raise _missing(call, bucket, key)
        response = _read_response(call, cached, head)[0]
        response.headers.update(expiration_headers(call.store, bucket, key, cached))
        response.headers.update(version_headers(call, bucket, cached))
        return response
    try:
        f, meta = call.store.open_object(bucket, key)
    except S3Error as exc:
        raise (_missing(call, bucket, key) if exc.code == "NoSuchKey" else exc) from None
    try:
        response, offset, length = _read_response(call, meta, head)
        response.headers.update(expiration_headers(call.store, bucket, key, meta))
        response.headers.update(version_headers(call, bucket, meta))
    except BaseException:
        f.close()
        raise
    if response.status == 304:
        f.close()
    else:
        response.stream = Stream(f, offset, length)
    return response


def _read_response(call: Call, meta: ObjectMeta, head: bool) -> tuple[Response, int, int]:
    """The response for a GET or HEAD, and which bytes of the object it carries."""
    headers = object_headers(meta)
    if conditions.check_conditions(call.headers, meta.etag, meta.last_modified) == "not-modified":
        return Response(304, {"ETag": headers["ETag"], "Last-Modified": headers["Last-Modified"]}), 0, 0
    part = _part_slice(call, meta)
    wanted = conditions.parse_range(call.header("range"), meta.size) if part is None else None
    status, offset, length = 200, 0, meta.size
    if part is not None:
        offset, length = part
        status = 206 if meta.part_sizes else 200
        if meta.part_sizes:
            headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{meta.size}"
        number = int(call.query["partNumber"])
        if meta.checksum and len(meta.part_checksums) >= number:
            # The part's own checksum describes exactly the bytes sent.
            headers[f"x-amz-checksum-{meta.checksum['algorithm']}"] = meta.part_checksums[number - 1]
            headers["x-amz-checksum-type"] = meta.checksum.get("type", "FULL_OBJECT")
    elif wanted is not None:
        status, offset, length = 206, wanted[0], wanted[1] - wanted[0] + 1
        headers["Content-Range"] = f"bytes {wanted[0]}-{wanted[1]}/{meta.size}"
    elif (call.header("x-amz-checksum-mode") or "").upper() == "ENABLED":
        # A checksum describes the whole object, so it is only sent with the whole object.
        headers.update(checksum_headers(meta))
    if not head:
        for param, header in RESPONSE_OVERRIDES.items():
            if param in call.query:
                headers[header] = call.query[param]
    headers["Content-Length"] = str(length)
    return Response(status, headers), offset, length


def delete_one(
    call: Call, bucket: str, key: str, version_id: str | None, bypass: bool = False
) -> versioning.Deleted:
    """DeleteObject's work, also one entry of DeleteObjects: a version removed for good when named
    (unless Object Lock protects it; ``bypass``: GOVERNANCE retention may be bypassed), else a
    delete marker in a versioned bucket, else the object itself."""
    store = call.store
    if version_id is not None and object_lock.enabled(store.settings, bucket):
        try:
            object_lock.check_deletable(versioning.find(store, bucket, key, version_id), bypass)
        except S3Error as exc:
            if exc.code != "NoSuchVersion":
                raise
    if version_id is not None:
        if not versioning.status(store, bucket) and not versioning.has_versions(store, bucket):
            versioning.check_version_id(version_id)
            if version_id != versioning.NULL:
                return versioning.Deleted(version_id, False)
            store.delete_object(bucket, key)
            return versioning.Deleted(versioning.NULL, False)
        return versioning.delete_version(store, bucket, key, version_id)
    if versioning.status(store, bucket):
        return versioning.delete_latest(store, bucket, key, call.account)
    store.delete_object(bucket, key)
    return versioning.Deleted(None, False)


async def delete_object(call: Call) -> Response:
    bucket, key = call.owned_bucket().name, call.key or ""
    check_key(key)
    deleted = delete_one(call, bucket, key, call.query.get("versionId"), object_lock_ops.bypassing(call, key))
    headers = {}
    if deleted.version_id is not None:
        headers["x-amz-version-id"] = deleted.version_id
    if deleted.marker:
        headers["x-amz-delete-marker"] = "true"
    return Response(204, headers)


def parse_copy_source(value: str) -> tuple[str, str, str | None]:
    """Bucket, key and version id (None: the latest) of an x-amz-copy-source header
    (``[/]bucket/key[?versionId=...]``, URL-encoded)."""
    path, _, query = value.partition("?")
    version_id = None
    if query:
        if not query.startswith("versionId="):
            raise invalid_argument("Unsupported copy source parameter.", "x-amz-copy-source", value)
        version_id = unquote(query[len("versionId=") :])
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise invalid_argument("Invalid copy source encoding", "x-amz-copy-source", value) from None
    bucket, _, key = decoded.lstrip("/").partition("/")
    if not bucket or not key:
        raise invalid_argument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            "x-amz-copy-source",
            value,
        )
    return bucket, key, version_id


def open_source(call: Call, bucket: str, key: str, version_id: str | None) -> tuple[BinaryIO, ObjectMeta]:
    """A copy's source object (the latest version, or the one named), open for reading."""
    if version_id is None:
        try:
            return call.store.open_object(bucket, key)
        except S3Error as exc:
            raise (_missing(call, bucket, key) if exc.code == "NoSuchKey" else exc) from None
    version = versioning.find(call.store, bucket, key, version_id)
    if version.marker:
        raise invalid_request(
            "The source of a copy request may not specifically refer to a delete marker by version id."
        )
    f = open(version.path, "rb", buffering=0)  # noqa: SIM115 - the caller closes it
    try:
        return f, objfile.read_meta(f)
    except BaseException:
        f.close()
        raise


async def copy_object(call: Call) -> Response:
    info = call.owned_bucket()
    bucket, key = info.name, call.key or ""
    check_key(key)
    src_bucket, src_key, src_version = parse_copy_source(call.header("x-amz-copy-source") or "")
    check_key(src_key)
    authorize.require(
        call, "s3:GetObject" if src_version is None else "s3:GetObjectVersion", src_bucket, src_key
    )
    requestmeta.check_object_controls(call)
    lock = object_lock.lock_of_new_object(call.store.settings, bucket, _lock_headers(call))
    object_acl = acl_ops.new_object_acl(call, info)
    directive = (call.header("x-amz-metadata-directive") or "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise invalid_argument("Unknown metadata directive.", "x-amz-metadata-directive", directive)
    tagging_directive = (call.header("x-amz-tagging-directive") or "COPY").upper()
    if tagging_directive not in ("COPY", "REPLACE"):
        raise invalid_argument("Unknown tagging directive.", "x-amz-tagging-directive", tagging_directive)
    new_tags = requestmeta.request_tags(call) if tagging_directive == "REPLACE" else None
    algorithm = (call.header("x-amz-checksum-algorithm") or "").lower() or None

    version_id, seq = versioning.new_version(call.store, bucket)
    source, meta = open_source(call, src_bucket, src_key, src_version)
    try:
        conditions.check_conditions(call.headers, meta.etag, meta.last_modified, prefix="x-amz-copy-source-")
        if (
            (src_bucket, src_key) == (bucket, key)
            and src_version is None
            and directive == "COPY"
            and not algorithm
            and not call.header("x-amz-storage-class")
        ):
            raise invalid_request(
                "This copy request is illegal because it is trying to copy an object to itself without "
                "changing the object's metadata, storage class, website redirect location or encryption attributes."
            )
        if meta.size > call.store.max_object_size:
            raise invalid_request(
                "The specified copy source is larger than the maximum allowable size for a copy source: "
                f"{call.store.max_object_size}"
            )
        if directive == "REPLACE":
            content_type = requestmeta.content_type(call)
            stored, user_meta = requestmeta.stored_headers(call), requestmeta.user_metadata(call)
        else:
            content_type, stored, user_meta = meta.content_type, dict(meta.headers), dict(meta.user_meta)
        storage_class = requestmeta.storage_class(call)  # S3: STANDARD unless asked, whatever the source
        if algorithm is None and meta.checksum and meta.checksum.get("type") == "FULL_OBJECT":
            algorithm = meta.checksum["algorithm"]  # keep the source's checksum
        if algorithm is not None and algorithm not in checksums.ALGORITHMS:
            raise invalid_request(f"Checksum algorithm {algorithm} is not supported")

        def work(out: BinaryIO) -> ObjectMeta:
            md5, checksum = copy_range(source, 0, meta.size, out, algorithm)
            new = ObjectMeta(
                size=meta.size,
                etag=md5.hex(),
                last_modified=time.time(),
                content_type=content_type,
                headers=stored,
                user_meta=user_meta,
                checksum={"algorithm": algorithm, "value": checksum, "type": "FULL_OBJECT"}
                if checksum and algorithm
                else {},
                storage_class=storage_class,
                acl=object_acl,
                tags=dict(meta.tags) if new_tags is None else new_tags,
                version_id=version_id,
                seq=seq,
                lock=lock,
            )
            objfile.finish(out, new)
            return new

        tmp, new = await write_temp(call.store, work)
    finally:
        source.close()
    await publish_object(call.store, bucket, key, tmp)
    doc = s3xml.root("CopyObjectResult")
    s3xml.subs(doc, [("ETag", new.quoted_etag), ("LastModified", iso8601(new.last_modified))])
    if new.checksum:
        s3xml.sub(doc, f"Checksum{new.checksum['algorithm'].upper()}", new.checksum["value"])
    headers = {"Content-Type": "application/xml", **version_headers(call, bucket, new, write=True)}
    if meta.version_id or versioning.status(call.store, src_bucket):
        headers["x-amz-copy-source-version-id"] = versioning.shown(meta.version_id)
    return Response(body=s3xml.serialize(doc), headers=headers)


def _lock_headers(call: Call) -> dict[str, str | None]:
    return {name: call.header(name) for name in requestmeta.OBJECT_LOCK_HEADERS}


def write_precondition(call: Call, bucket: str, key: str) -> Callable[[], None] | None:
    """The check for a conditional write (If-None-Match: * or ETags, If-Match: * or ETags), or None.

    It is run once before the body is read, to fail fast, and again right before
    the new object is published.
    """
    if_none_match, if_match = call.header("if-none-match"), call.header("if-match")
    if if_none_match is None and if_match is None:
        return None

    def check() -> None:
        current = call.store.head_object(bucket, key)
        # If-None-Match: "*" (any object) or ETags the current object must not have.
        if (
            if_none_match is not None
            and current is not None
            and conditions.etag_matches(if_none_match, current.etag)
        ):
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                412,
                extra={"Condition": "If-None-Match"},
            )
        if if_match is not None:
            if current is None:
                raise no_such_key(key)
            if not conditions.etag_matches(if_match, current.etag):
                raise S3Error(
                    "PreconditionFailed",
                    "At least one of the pre-conditions you specified did not hold",
                    412,
                    extra={"Condition": "If-Match"},
                )

    check()
    return check
