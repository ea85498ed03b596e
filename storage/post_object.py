"""POST Object: a browser form uploading a file straight to a bucket (``multipart/form-data``).

The request carries no signature of its own: the server takes its body unauthenticated (bounded
like any upload) and nothing is written until the form's policy has been verified
(:mod:`post_policy`); a form with neither policy nor signature is anonymous, allowed only into a
bucket that lets everyone write.  The fields before the file are read first; the file must be the last
field, as S3 requires (fields after it are ignored), and is streamed into the new object.  Its
other fields act as a PUT's headers do (Content-Type, x-amz-meta-*, Cache-Control, ``acl`` as
x-amz-acl, ``tagging`` as a Tagging document, ...; retention, which this server cannot honour, is
refused as for a PUT).  The
policy's signer must be allowed to put the object, as for a PUT.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO
from urllib.parse import urlencode

import multipart

from resilin.aws.sigv4 import CredentialLookup, Credentials, Verified
from resilin.storage import (
    acl_ops,
    authorize,
    object_lock,
    object_tags,
    objfile,
    post_policy,
    requestmeta,
    s3xml,
    versioning,
)
from resilin.storage.auth import ANONYMOUS
from resilin.storage.context import Call, Response
from resilin.storage.errors import S3Error, invalid_argument
from resilin.storage.names import check_key
from resilin.storage.objfile import ObjectMeta
from resilin.storage.writes import publish_object, write_temp

MAX_FIELD_BYTES = 64 * 1024  # one field before the file (a policy is a few kilobytes)
MAX_FIELDS_BYTES = 1024 * 1024  # all of them
PRE_DATA_LIMIT = 2 * MAX_FIELDS_BYTES  # the body before the file, part headers included
READ_PIECE = 1024 * 1024


def is_form_upload(
    method: str, key: str | None, bucket: str | None, raw_query: str, content_type: str
) -> bool:
    """Whether a request is a POST Object: its body is then taken before it is authenticated."""
    return (
        method == "POST"
        and bucket is not None
        and key is None
        and raw_query == ""
        and content_type.lower().startswith("multipart/form-data")
    )


def _form_error(message: str) -> S3Error:
    return S3Error(
        "MalformedPOSTRequest",
        f"The body of your POST request is not well-formed multipart/form-data. {message}",
        400,
    )


def _events(
    body: BinaryIO, boundary: str, limit: int | None = None
) -> Iterator[multipart.MultipartSegment | bytes | None]:
    """The parser's events over the body; with ``limit``, over its first ``limit`` bytes only."""
    parser = multipart.PushMultipartParser(boundary, max_header_count=16)
    left = limit
    try:
        while True:
            chunk = body.read(READ_PIECE if left is None else min(READ_PIECE, left))
            if left is not None:
                if not left:
                    return  # the limit, not the end of the body: the parser is not told it ended
                left -= len(chunk)
            yield from parser.parse(chunk)
            if not chunk:
                return
    except multipart.MultipartError as exc:
        raise _form_error(str(exc)) from None


def _too_much_before_the_file() -> S3Error:
    return S3Error(
        "MaxPostPreDataLengthExceeded",
        "Your POST request fields preceding the upload file were too large.",
        400,
    )


def read_fields(body: BinaryIO, boundary: str) -> tuple[dict[str, str], str]:
    """The form's fields before the file (lower-case names) and the file's name."""
    fields: dict[str, str] = {}
    total = 0
    segment: multipart.MultipartSegment | None = None
    value = b""
    # Read on the reactor thread: never more of the body than the fields before the file may take.
    for event in _events(body, boundary, limit=PRE_DATA_LIMIT):
        if isinstance(event, multipart.MultipartSegment):
            if event.name.lower() == "file":
                return fields, event.filename or ""
            segment, value = event, b""
        elif isinstance(event, bytes):
            value += event
            total += len(event)
            if len(value) > MAX_FIELD_BYTES or total > MAX_FIELDS_BYTES:
                raise _too_much_before_the_file()
        elif segment is not None:
            name = segment.name.lower()
            if name in fields:
                raise invalid_argument(f"The form field {name} was given twice", name)
            fields[name] = value.decode("utf-8", errors="replace")
            segment = None
    if body.tell() >= PRE_DATA_LIMIT:
        raise _too_much_before_the_file()
    raise invalid_argument("POST requires exactly one file upload per request.", "file")


def copy_file(body: BinaryIO, boundary: str, out: BinaryIO) -> tuple[int, str]:
    """Copy the form's file into ``out``: (its size, its MD5 hex)."""
    md5, size, inside = hashlib.md5(), 0, False
    for event in _events(body, boundary):
        if isinstance(event, multipart.MultipartSegment):
            inside = event.name.lower() == "file"
        elif isinstance(event, bytes):
            if inside:
                out.write(event)
                md5.update(event)
                size += len(event)
        elif inside:
            return size, md5.hexdigest()
    raise _form_error("The file field is incomplete.")


# Makes the Call a verified form acts as: the policy's signer, the form's fields as its headers.
CallMaker = Callable[[Verified, dict[str, list[str]]], Call]


async def post_object(
    headers: dict[str, list[str]],
    bucket: str,
    body: BinaryIO,
    lookup: CredentialLookup,
    region: str,
    make_call: CallMaker,
) -> Response:
    """A form upload to ``bucket`` (``headers``: the request's own, lower-case)."""
    host = (headers.get("host") or ["localhost"])[0]
    _, options = multipart.parse_options_header((headers.get("content-type") or [""])[0])
    boundary = options.get("boundary")
    if not boundary:
        raise _form_error("The Content-Type has no boundary.")
    fields, filename = read_fields(body, boundary)
    # A form with no policy and no signature is the anonymous principal's, as an unsigned PUT.
    unsigned = not {"policy", "x-amz-signature", "x-amz-credential", "signature"} & set(fields)
    credentials = ANONYMOUS if unsigned else post_policy.authenticate(fields, lookup, region)
    # The fields stand for a PUT's headers from here on: the same checks and metadata.
    as_headers = {name: [value] for name, value in fields.items()}
    if "acl" in fields:
        as_headers["x-amz-acl"] = [fields["acl"]]
    tags = object_tags.from_document(fields["tagging"].encode()) if "tagging" in fields else {}
    call = make_call(_verified(credentials, fields), as_headers)
    store = call.store
    info = store.require_bucket(bucket)
    size_range = (
        None if unsigned else post_policy.check(post_policy.decode(fields["policy"]), fields, info.name)
    )
    key = fields.get("key")
    if not key:
        raise invalid_argument("Bucket POST must contain a field named 'key'.", "key")
    key = key.replace("${filename}", filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1])
    check_key(key)
    authorize.require(call, "s3:PutObject", info.name, key)
    requestmeta.check_object_controls(call)
    lock = object_lock.lock_of_new_object(store.settings, info.name, {})  # the bucket's default retention
    version_id, seq = versioning.new_version(store, info.name)
    object_acl = acl_ops.new_object_acl(call, info)
    content_type_field = requestmeta.content_type(call)
    stored, user_meta = requestmeta.stored_headers(call), requestmeta.user_metadata(call)
    storage_class = requestmeta.storage_class(call)

    def work(out: BinaryIO) -> ObjectMeta:
        body.seek(0)
        size, md5 = copy_file(body, boundary, out)
        if size_range is not None and not size_range[0] <= size <= size_range[1]:
            small = size < size_range[0]
            raise S3Error(
                "EntityTooSmall" if small else "EntityTooLarge",
                f"Your proposed upload is {'smaller than the minimum' if small else 'larger than the maximum'} "
                "the policy allows",
                400,
            )
        meta = ObjectMeta(
            size=size,
            etag=md5,
            last_modified=time.time(),
            content_type=content_type_field,
            headers=stored,
            user_meta=user_meta,
            storage_class=storage_class,
            acl=object_acl,
            tags=tags,
            version_id=version_id,
            seq=seq,
            lock=lock,
        )
        objfile.finish(out, meta)
        return meta

    tmp, meta = await write_temp(store, work)
    await publish_object(store, info.name, key, tmp)
    return _answer(fields, info.name, key, meta, host)


def _answer(fields: dict[str, str], bucket: str, key: str, meta: ObjectMeta, host: str) -> Response:
    location = f"http://{host}/{bucket}/{key}"
    headers = {"ETag": meta.quoted_etag, "Location": location}
    redirect = fields.get("success_action_redirect") or fields.get("redirect")
    if redirect and redirect.lower().startswith(("http://", "https://")):
        query = urlencode({"bucket": bucket, "key": key, "etag": meta.quoted_etag})
        return Response(303, headers | {"Location": f"{redirect}{'&' if '?' in redirect else '?'}{query}"})
    status = fields.get("success_action_status")
    if status == "201":
        doc = s3xml.root("PostResponse", namespaced=False)  # S3's own carries no namespace
        s3xml.subs(
            doc, [("Location", location), ("Bucket", bucket), ("Key", key), ("ETag", meta.quoted_etag)]
        )
        response = s3xml.response(doc)
        response.status = 201
        response.headers.update(headers)
        return response
    return Response(200 if status == "200" else 204, headers)


def _verified(credentials: Credentials, fields: dict[str, str]) -> Verified:
    """A form whose policy signature matched, as the rest of the service sees a signed request."""
    return Verified(
        credentials=credentials,
        amz_date=fields.get("x-amz-date", ""),
        scope=fields.get("x-amz-credential", ""),
        signing_key=b"",
        signature=fields.get("x-amz-signature", ""),
        payload_hash="UNSIGNED-PAYLOAD",
        presigned=False,
    )
