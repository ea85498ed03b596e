"""Taking in an upload body: decode, hash and verify it while copying it to its new file.

Everything here is blocking and runs in a worker thread.  The request body is
read from the file Twisted spooled it to and copied piece by piece, so an
object is never held in memory whole.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import BinaryIO

from resilin.aws.sigv4 import Verified
from resilin.storage import checksums, chunked, hashing
from resilin.storage.errors import S3Error

READ_PIECE = 4 * 1024 * 1024
MAX_OBJECT_SIZE = 5 * 1024**3  # a single PUT; larger objects need multipart uploads


@dataclass
class BodySpec:
    """What the request's headers say about its body, checked before any byte is read."""

    payload_hash: str  # x-amz-content-sha256 (hex, UNSIGNED-PAYLOAD or a STREAMING-* mode)
    verified: Verified | None = None  # for chunk signatures
    decoded_length: int | None = None  # x-amz-decoded-content-length
    content_md5: bytes | None = None  # decoded Content-MD5
    checksum_algorithm: str | None = None  # crc32, sha256, ... to compute
    checksum_expected: str | None = None  # base64 value sent in a header
    checksum_in_trailer: bool = False  # value arrives as an aws-chunked trailer
    max_size: int = MAX_OBJECT_SIZE


@dataclass
class Ingested:
    size: int
    md5: bytes
    checksums: dict[str, str] = field(default_factory=dict)  # algorithm -> base64 value


class Digests:
    """MD5 (for the ETag), and SHA-256 and one additional checksum when asked, fed piece by piece."""

    def __init__(self, sha256: bool, algorithm: str | None) -> None:
        self.size = 0
        self.md5 = hashlib.md5()
        self.sha256 = hashlib.sha256() if sha256 else None
        self.algorithm = algorithm
        self.extra = checksums.new_hasher(algorithm) if algorithm else None
        self.hashers = [h for h in (self.md5, self.sha256, self.extra) if h is not None]

    @classmethod
    def for_spec(cls, spec: BodySpec) -> Digests:
        return cls(is_hex_sha256(spec.payload_hash), spec.checksum_algorithm)

    def covers(self, spec: BodySpec) -> bool:
        """Whether these digests are the ones ``spec`` needs checked."""
        return (self.sha256 is not None) == is_hex_sha256(spec.payload_hash) and (
            self.algorithm == spec.checksum_algorithm
        )

    def update(self, data: bytes) -> None:
        self.size += len(data)
        hashing.update_all(self.hashers, data)


class _Sink:
    """Receives decoded body data: writes it out (unless it is hashed in place) and feeds every hash."""

    def __init__(self, out: BinaryIO | None, spec: BodySpec) -> None:
        self.out = out
        self.max_size = spec.max_size
        self.digests = Digests.for_spec(spec)

    def __call__(self, data: bytes) -> None:
        if self.digests.size + len(data) > self.max_size:
            raise _too_large(self.max_size)
        if self.out is not None:
            self.out.write(data)
        self.digests.update(data)


def _too_large(max_size: int) -> S3Error:
    return S3Error(
        "EntityTooLarge",
        "Your proposed upload exceeds the maximum allowed object size.",
        400,
        extra={"MaxSizeAllowed": str(max_size)},
    )


def is_hex_sha256(value: str) -> bool:
    """Whether ``value`` is a SHA-256 in hex (either case), as x-amz-content-sha256 can be."""
    return len(value) == 64 and not value.strip("0123456789abcdefABCDEF")


def ingest(source: BinaryIO, out: BinaryIO | None, spec: BodySpec) -> Ingested:
    """Copy the body in ``source`` to ``out``, checking every digest the client gave.

    With ``out`` None the body is only read and checked: the caller keeps
    ``source`` itself as the object's data (see ``spool``).
    """
    source.seek(0)
    sink = _Sink(out, spec)
    trailers: dict[str, str] = {}
    if spec.payload_hash in chunked.STREAMING_MODES:
        trailers = chunked.decode(source, spec.payload_hash, spec.verified, sink).trailers
    else:
        while piece := source.read(READ_PIECE):
            sink(piece)

    return check(sink.digests, spec, trailers)


def check(digests: Digests, spec: BodySpec, trailers: dict[str, str] | None = None) -> Ingested:
    """Compare a body's digests with every one the client gave; the body's size, ETag and checksum."""
    trailers = trailers or {}
    if digests.size > spec.max_size:
        raise _too_large(spec.max_size)
    if spec.decoded_length is not None and digests.size != spec.decoded_length:
        raise S3Error(
            "IncompleteBody",
            "You did not provide the number of bytes specified by the x-amz-decoded-content-length header",
            400,
        )
    if digests.sha256 is not None and not hmac.compare_digest(
        digests.sha256.hexdigest(), spec.payload_hash.lower()
    ):
        raise S3Error(
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
            400,
            extra={
                "ClientComputedContentSHA256": spec.payload_hash,
                "S3ComputedContentSHA256": digests.sha256.hexdigest(),
            },
        )
    md5 = digests.md5.digest()
    if spec.content_md5 is not None and not hmac.compare_digest(md5, spec.content_md5):
        raise S3Error(
            "BadDigest",
            "The Content-MD5 you specified did not match what we received.",
            400,
            extra={
                "ExpectedDigest": base64.b64encode(spec.content_md5).decode(),
                "CalculatedDigest": base64.b64encode(md5).decode(),
            },
        )

    result = Ingested(digests.size, md5)
    if spec.checksum_algorithm and digests.extra is not None:
        algorithm = spec.checksum_algorithm
        computed = checksums.encode(digests.extra.digest())
        expected = spec.checksum_expected
        if spec.checksum_in_trailer:
            expected = trailers.get(f"x-amz-checksum-{algorithm}")
            if expected is None:
                raise S3Error(
                    "InvalidRequest",
                    f"x-amz-checksum-{algorithm} was declared in x-amz-trailer but not sent",
                    400,
                )
            if checksums.decode(algorithm, expected) is None:
                raise S3Error(
                    "InvalidRequest", f"Value for x-amz-checksum-{algorithm} trailing header is invalid.", 400
                )
        if expected is not None and expected != computed:
            raise S3Error(
                "BadDigest",
                f"The {algorithm.upper()} you specified did not match the calculated checksum.",
                400,
            )
        result.checksums[algorithm] = computed
    return result
