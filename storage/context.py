"""What a handler gets (one authenticated request) and what it gives back."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

from twisted.web.server import Request

from resilin.aws.sigv4 import Verified
from resilin.storage.errors import access_denied
from resilin.storage.spool import SpoolFile
from resilin.storage.spool_digest import SpoolDigest
from resilin.storage.store import BucketInfo, Store


@dataclass
class Call:
    request: Request
    store: Store
    method: str
    bucket: str | None
    key: str | None
    query: dict[str, str]  # decoded query parameters (first value of each)
    headers: dict[str, list[str]]  # lower-case names
    verified: Verified
    request_id: str
    region: str
    # Set once the request was allowed what it asks on its bucket (see authorize); until then
    # only the bucket's owner gets it.
    authorized: bool = False

    @property
    def account(self) -> str:
        return self.verified.credentials.account_id

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[0] if values else None

    def owned_bucket(self, name: str | None = None) -> BucketInfo:
        """The bucket, if it exists (NoSuchBucket) and the caller may act on it (AccessDenied): the
        request's own bucket once it was authorized for the request, any other only its owner's."""
        info = self.store.require_bucket(name or self.bucket or "")
        if info.owner != self.account and not (self.authorized and name in (None, self.bucket)):
            raise access_denied()
        expected = self.header("x-amz-expected-bucket-owner")
        if expected is not None and name is None and expected != info.owner:
            raise access_denied()
        return info

    def body_file(self) -> BinaryIO:
        return body_file(self.request)

    def claim_spool(self) -> Path | None:
        """The file the body was spooled to, taken over by the caller (None for small bodies).

        The caller becomes responsible for the file: it either renames it into
        place or removes it.
        """
        content = cast(BinaryIO, self.request.content)  # Twisted declares it None until a body comes
        if isinstance(content, SpoolFile) and not content.closed:
            return content.claim()
        return None

    def spool_digest(self) -> SpoolDigest | None:
        """The digests being computed of a spooled body as it arrived, if any."""
        content = cast(BinaryIO, self.request.content)  # Twisted declares it None until a body comes
        return content.digest if isinstance(content, SpoolFile) else None


@dataclass
class Stream:
    """Part of an open file to send as the response body."""

    file: BinaryIO
    offset: int
    length: int


@dataclass
class Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: Stream | None = None


def body_file(request: Request) -> BinaryIO:
    """The request body as a file of our own, for reading in a worker thread.

    Twisted closes its copy if the client disconnects; a duplicated
    descriptor keeps the worker's reads valid until it is done.
    """
    content = cast(BinaryIO, request.content)  # Twisted declares it None until a body comes
    try:
        fd = content.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return io.BytesIO(cast(io.BytesIO, content).getvalue())  # small bodies are kept in memory
    return os.fdopen(os.dup(fd), "rb")
