"""Reading an upload request's headers: stored metadata, and what to check the body against."""

from __future__ import annotations

import base64
import binascii
import re

from resilin.storage import checksums, chunked, meta_text, object_tags
from resilin.storage.context import Call
from resilin.storage.errors import S3Error, invalid_argument, invalid_request, not_implemented
from resilin.storage.ingest import BodySpec, is_hex_sha256

# Standard headers S3 stores with an object and returns on GET/HEAD.
STORED_HEADERS = ("cache-control", "content-disposition", "content-encoding", "content-language", "expires")
MAX_USER_METADATA = 2048
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
_NOT_VALUE_HEADERS = {"x-amz-checksum-algorithm", "x-amz-checksum-type", "x-amz-checksum-mode"}


STORAGE_CLASSES = {
    "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER",
    "DEEP_ARCHIVE", "OUTPOSTS", "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE",
}  # fmt: skip


def storage_class(call: Call, default: str = "STANDARD") -> str:
    """The requested storage class: only a label here, every class is stored and read alike."""
    value = call.header("x-amz-storage-class")
    if value is None:
        return default
    if value not in STORAGE_CLASSES:
        raise S3Error(
            "InvalidStorageClass",
            "The storage class you specified is not valid",
            400,
            extra={"StorageClassRequested": value},
        )
    return value


def check_encryption(call: Call) -> None:
    """Refuse encryption this server cannot honour, rather than store data the client thinks is encrypted.

    SSE-S3 (AES256) is accepted: like S3 today, the client has no key to manage.
    """
    if call.header("x-amz-server-side-encryption-customer-algorithm") is not None:
        raise not_implemented("Server-side encryption with customer-provided keys (SSE-C)")
    value = call.header("x-amz-server-side-encryption")
    if value is not None and value != "AES256":
        raise not_implemented(f"Server-side encryption {value}")


OBJECT_LOCK_HEADERS = (
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
)


def check_object_controls(call: Call) -> None:
    """What a new object's request may ask besides its data: encryption it cannot honour is refused
    (never accepted and ignored).  Its ACL is acl_ops', its Object Lock object_lock's."""
    check_encryption(call)


def request_tags(call: Call) -> dict[str, str]:
    """The tags ``x-amz-tagging`` gives a new object (none: no tags)."""
    value = call.header("x-amz-tagging")
    return {} if value is None else object_tags.from_header(value)


def content_type(call: Call) -> str:
    return call.header("content-type") or DEFAULT_CONTENT_TYPE


def stored_headers(call: Call) -> dict[str, str]:
    stored = {}
    for name in STORED_HEADERS:
        value = call.header(name)
        if value is None:
            continue
        if name == "content-encoding":
            # aws-chunked describes how this request was framed, not the object.
            codings = [
                c.strip() for c in value.split(",") if c.strip() and c.strip().lower() != "aws-chunked"
            ]
            if not codings:
                continue
            value = ", ".join(codings)
        stored[name] = value
    return stored


def user_metadata(call: Call) -> dict[str, str]:
    meta = {
        name: meta_text.stored_value(",".join(values))
        for name, values in call.headers.items()
        if name.startswith("x-amz-meta-")
    }
    if sum(len(k) - len("x-amz-meta-") + len(v) for k, v in meta.items()) > MAX_USER_METADATA:
        raise S3Error(
            "MetadataTooLarge",
            "Your metadata headers exceed the maximum allowed metadata size.",
            400,
            extra={"MaxSizeAllowed": str(MAX_USER_METADATA)},
        )
    return meta


def _content_md5(call: Call) -> bytes | None:
    value = call.header("content-md5")
    if value is None:
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.", 400)
    return raw


def checksum_request(call: Call, composite: bool = False) -> tuple[str | None, str | None, bool]:
    """(algorithm, value sent in a header, value comes in a trailer) for x-amz-checksum-*;
    ``composite``: the value may end in ``-<part count>`` (a multipart object's)."""
    sent = [
        name for name in call.headers if name.startswith("x-amz-checksum-") and name not in _NOT_VALUE_HEADERS
    ]
    trailer = (call.header("x-amz-trailer") or "").strip().lower()
    declared = (
        call.header("x-amz-sdk-checksum-algorithm") or call.header("x-amz-checksum-algorithm") or ""
    ).lower()
    if len(sent) + bool(trailer) > 1:
        raise invalid_request(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        )
    algorithm, value, in_trailer = None, None, False
    if sent:
        algorithm = sent[0][len("x-amz-checksum-") :]
        if algorithm not in checksums.ALGORITHMS:
            raise invalid_request(f"Unsupported checksum header {sent[0]}")
        value = call.header(sent[0]) or ""
        encoded = re.sub(r"-[0-9]{1,5}$", "", value) if composite else value
        if checksums.decode(algorithm, encoded) is None:
            raise invalid_request(f"Value for {sent[0]} header is invalid.")
    elif trailer:
        if not trailer.startswith("x-amz-checksum-") or trailer[15:] not in checksums.ALGORITHMS:
            raise invalid_request(f"Unsupported trailing header {trailer}")
        algorithm, in_trailer = trailer[15:], True
    elif declared:
        algorithm = declared
    if declared and algorithm != declared:
        raise invalid_request("The x-amz-sdk-checksum-algorithm does not match the checksum sent")
    if algorithm is not None and algorithm not in checksums.ALGORITHMS:
        raise invalid_request(f"Checksum algorithm {algorithm} is not supported")
    return algorithm, value, in_trailer


def body_spec(
    call: Call, *, max_size: int | None = None, require_length: bool = True, checksum_of_body: bool = True
) -> BodySpec:
    """Check the headers that describe an upload body, before reading it.  ``checksum_of_body``
    False: the request's x-amz-checksum-* is not the body's (CompleteMultipartUpload's is the object's)."""
    max_size = call.store.max_object_size if max_size is None else max_size
    payload = call.verified.payload_hash
    if payload.startswith("STREAMING-") and payload not in chunked.STREAMING_MODES:
        raise not_implemented(f"x-amz-content-sha256 {payload}")
    if (
        payload not in chunked.STREAMING_MODES
        and payload != "UNSIGNED-PAYLOAD"
        and not is_hex_sha256(payload)
    ):
        raise invalid_argument(
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a STREAMING- value or a valid sha256 value.",
            "x-amz-content-sha256",
            payload,
        )
    if require_length and call.header("content-length") is None and call.header("transfer-encoding") is None:
        raise S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.", 411)
    length = call.header("content-length")
    if (
        length is not None
        and payload not in chunked.STREAMING_MODES
        and length.isdigit()
        and int(length) > max_size
    ):
        raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size.", 400)

    decoded_length = None
    decoded = call.header("x-amz-decoded-content-length")
    if payload in chunked.STREAMING_MODES and decoded is not None:
        if not decoded.isdigit():
            raise invalid_argument(
                "x-amz-decoded-content-length must be a number", "x-amz-decoded-content-length", decoded
            )
        decoded_length = int(decoded)
        if decoded_length > max_size:
            raise S3Error(
                "EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size.", 400
            )

    algorithm, value, in_trailer = checksum_request(call) if checksum_of_body else (None, None, False)
    if in_trailer and payload not in (chunked.SIGNED_TRAILER, chunked.UNSIGNED_TRAILER):
        raise invalid_request("x-amz-trailer requires a STREAMING-...-TRAILER x-amz-content-sha256")
    return BodySpec(
        payload_hash=payload,
        verified=call.verified,
        decoded_length=decoded_length,
        content_md5=_content_md5(call),
        checksum_algorithm=algorithm,
        checksum_expected=value,
        checksum_in_trailer=in_trailer,
        max_size=max_size,
    )
