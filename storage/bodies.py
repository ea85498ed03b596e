"""Small request bodies (XML documents), read whole after the same checks uploads get."""

from __future__ import annotations

import io
from typing import BinaryIO, cast

from resilin.storage import requestmeta
from resilin.storage.context import Call
from resilin.storage.errors import S3Error
from resilin.storage.ingest import ingest
from resilin.storage.s3xml import MAX_XML_BODY


def small_body(call: Call, checksum_of_body: bool = True) -> bytes:
    """The decoded body, verified against x-amz-content-sha256, Content-MD5 and x-amz-checksum-*
    (unless ``checksum_of_body`` is False: that header then describes something else).

    Runs on the reactor thread: bodies are at most a few megabytes.
    """
    content = cast(BinaryIO, call.request.content)  # Twisted declares it None until a body comes
    content.seek(0, io.SEEK_END)
    if content.tell() > MAX_XML_BODY * 2:
        raise S3Error("MaxMessageLengthExceeded", "Your request was too big.", 400)
    spec = requestmeta.body_spec(
        call, max_size=MAX_XML_BODY, require_length=False, checksum_of_body=checksum_of_body
    )
    out = io.BytesIO()
    ingest(content, out, spec)
    return out.getvalue()


def require_integrity_header(call: Call) -> None:
    """DeleteObjects and a few others need Content-MD5 or an x-amz-checksum-* header."""
    if call.header("content-md5") is None and not any(
        name.startswith("x-amz-checksum-") or name in ("x-amz-trailer", "x-amz-sdk-checksum-algorithm")
        for name in call.headers
    ):
        raise S3Error(
            "InvalidRequest", "Missing required header for this request: Content-MD5 or x-amz-checksum-*", 400
        )
