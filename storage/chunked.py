"""Decoding of ``Content-Encoding: aws-chunked`` request bodies.

Three shapes exist, chosen by ``x-amz-content-sha256``:

* ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``: ``<hex size>;chunk-signature=<sig>\\r\\n<data>\\r\\n``
  repeated, ending with a zero-size chunk; each signature chains on the previous one.
* ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER``: the same, then trailing headers
  (``x-amz-checksum-crc32:...``) and an ``x-amz-trailer-signature`` over them.
* ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``: ``<hex size>\\r\\n<data>\\r\\n`` chunks without
  signatures, then trailing headers.

This runs in a worker thread, reading the body Twisted spooled to a file and
passing decoded data on, one bounded piece at a time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from resilin.aws.sigv4 import Verified
from resilin.storage.errors import S3Error

SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_MODES = (SIGNED, SIGNED_TRAILER, UNSIGNED_TRAILER)

MAX_LINE = 4096
READ_PIECE = 1024 * 1024
MAX_TRAILERS = 16


@dataclass
class Decoded:
    size: int = 0
    trailers: dict[str, str] = field(default_factory=dict)


def _incomplete(detail: str) -> S3Error:
    return S3Error("IncompleteBody", f"The request body is not a valid aws-chunked stream: {detail}", 400)


def _bad_chunk_signature() -> S3Error:
    return S3Error(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        403,
    )


def _read_line(source: BinaryIO) -> bytes:
    line = source.readline(MAX_LINE)
    if not line.endswith(b"\r\n"):
        raise _incomplete("truncated or over-long line")
    return line[:-2]


def _parse_chunk_header(line: bytes, signed: bool) -> tuple[int, str]:
    size_text, _, extension = line.partition(b";")
    try:
        text = size_text.decode("ascii")
        if not text or len(text) > 16 or text.strip("0123456789abcdefABCDEF"):
            raise ValueError(text)
        size = int(text, 16)
    except ValueError:
        raise _incomplete("bad chunk size") from None
    signature = ""
    if signed:
        name, _, value = extension.partition(b"=")
        if name.strip() != b"chunk-signature" or len(value.strip()) != 64:
            raise _incomplete("missing chunk-signature")
        signature = value.strip().decode("ascii", "replace")
    return size, signature


def decode(
    source: BinaryIO,
    mode: str,
    verified: Verified | None,
    sink: Callable[[bytes], None],
) -> Decoded:
    """Decode an aws-chunked body from ``source``, passing data to ``sink``.

    Raises S3Error on malformed framing or on any chunk or trailer signature
    that does not match.
    """
    signed = mode in (SIGNED, SIGNED_TRAILER)
    trailer = mode in (SIGNED_TRAILER, UNSIGNED_TRAILER)
    if signed and verified is None:
        raise ValueError("signed aws-chunked bodies need the verified seed signature")
    previous = verified.signature if verified else ""
    result = Decoded()

    while True:
        size, signature = _parse_chunk_header(_read_line(source), signed)
        digest = hashlib.sha256() if signed else None
        remaining = size
        while remaining:
            piece = source.read(min(remaining, READ_PIECE))
            if not piece:
                raise _incomplete("body ended inside a chunk")
            remaining -= len(piece)
            if digest is not None:
                digest.update(piece)
            sink(piece)
        result.size += size
        if signed:
            assert verified is not None and digest is not None
            expected = verified.chunk_signature(previous, digest.hexdigest())
            if not hmac.compare_digest(expected, signature):
                raise _bad_chunk_signature()
            previous = signature
        if size == 0:
            break
        if source.read(2) != b"\r\n":
            raise _incomplete("chunk data not followed by CRLF")

    if trailer:
        result.trailers = _read_trailers(source, verified if signed else None, previous)
    elif source.read(2) != b"\r\n":
        raise _incomplete("final chunk not followed by CRLF")
    if source.read(1):
        raise _incomplete("data after the final chunk")
    return result


def _read_trailers(source: BinaryIO, verified: Verified | None, previous: str) -> dict[str, str]:
    trailers: dict[str, str] = {}
    signature = ""
    while True:
        line = source.readline(MAX_LINE)
        if line in (b"", b"\r\n", b"\n"):
            break  # some clients omit the final empty line
        name, sep, value = line.rstrip(b"\r\n").partition(b":")
        if not sep or len(trailers) >= MAX_TRAILERS:
            raise _incomplete("bad trailing header")
        text_name = name.decode("latin-1").strip().lower()
        text_value = value.decode("latin-1").strip()
        if not text_name:
            raise _incomplete("bad trailing header")
        if text_name == "x-amz-trailer-signature":
            signature = text_value
        else:
            trailers[text_name] = text_value
    if verified is not None:
        canonical = "".join(f"{n}:{v}\n" for n, v in sorted(trailers.items())).encode("latin-1")
        expected = verified.trailer_signature(previous, canonical)
        if not signature or not hmac.compare_digest(expected, signature):
            raise _bad_chunk_signature()
    return trailers
