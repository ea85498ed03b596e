"""The on-disk object format: the data followed by its metadata, in one file.

    <data bytes> <metadata JSON> <JSON length: 8 bytes big-endian> <magic: 8 bytes>

Data and metadata live in the same file so that a single ``rename`` publishes
both: a reader either sees the old object with the old metadata or the new
object with the new metadata, never new data with stale metadata (which two
files renamed one after the other could show after a crash).  The metadata goes
*after* the data because the ETag and checksums are only known once the whole
body has streamed through.  A reader holding the file open keeps reading the
version it opened even if a new PUT replaces it meanwhile.
"""

from __future__ import annotations

import errno
import json
import os
import struct
from dataclasses import dataclass, field
from typing import BinaryIO

MAGIC = b"RSLNOBJ1"
_FOOTER = struct.Struct(">Q8s")
MAX_META_BYTES = 64 * 1024


class CorruptObject(Exception):
    """An object file whose trailer cannot be read (not written by us, or truncated)."""


@dataclass
class ObjectMeta:
    size: int
    etag: str  # without quotes: md5 hex, or "<hex>-<parts>" for multipart objects
    last_modified: float  # seconds since the epoch
    content_type: str = "binary/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)  # stored standard headers (lower-case)
    user_meta: dict[str, str] = field(default_factory=dict)  # x-amz-meta-* (lower-case full names)
    checksum: dict[str, str] = field(default_factory=dict)  # {"algorithm", "value", "type"}
    part_sizes: list[int] = field(default_factory=list)  # multipart objects: each part's size
    part_checksums: list[str] = field(default_factory=list)  # ... and its checksum (the object's algorithm)
    storage_class: str = "STANDARD"
    acl: dict = field(
        default_factory=dict
    )  # the object's ACL (acl.Acl.to_json); {}: its bucket owner's alone
    tags: dict[str, str] = field(default_factory=dict)  # the object's tags (at most 10)
    version_id: str = ""  # "": the null version (a bucket never versioned, or suspended)
    seq: int = 0  # orders a key's versions (see versioning.py); 0 for objects older than that
    lock: dict = field(default_factory=dict)  # Object Lock: {"mode", "until", "legal_hold"} (object_lock.py)

    @property
    def quoted_etag(self) -> str:
        return f'"{self.etag}"'

    def to_json(self) -> bytes:
        # The instance's own fields, as asdict gives them, without its deep copy of every value.
        return json.dumps(vars(self), separators=(",", ":"), ensure_ascii=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ObjectMeta:
        try:
            data = json.loads(raw)
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise CorruptObject(f"unreadable metadata: {exc}") from None


def finish(out: BinaryIO, meta: ObjectMeta) -> None:
    """Append the metadata trailer to a freshly written data file and make it durable."""
    raw = meta.to_json()
    out.write(raw + _FOOTER.pack(len(raw), MAGIC))
    out.flush()
    os.fsync(out.fileno())


def copy_data(source: BinaryIO, out: BinaryIO, size: int) -> None:
    """Copy the first ``size`` bytes (an object's data) of ``source`` to ``out``, in the kernel
    where it can (``copy_file_range``, which may share the blocks on file systems that can)."""
    out.flush()
    offset = 0
    try:
        while offset < size:
            copied = os.copy_file_range(source.fileno(), out.fileno(), size - offset, offset, offset)
            if copied == 0:
                raise CorruptObject("file shorter than its metadata says")
            offset += copied
    except OSError as exc:
        if offset or exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
        source.seek(0)
        while offset < size:
            piece = source.read(min(1024 * 1024, size - offset))
            if not piece:
                raise CorruptObject("file shorter than its metadata says") from None
            out.write(piece)
            offset += len(piece)
    out.seek(size)


_TAIL_READ = 4096  # one read usually brings the footer and the whole metadata


def read_meta(f: BinaryIO) -> ObjectMeta:
    """Read the metadata of an open object file (positioned anywhere; left at the start)."""
    fd = f.fileno()
    total = os.fstat(fd).st_size
    if total < _FOOTER.size:
        raise CorruptObject("file too short")
    tail_size = min(total, _TAIL_READ)
    tail = os.pread(fd, tail_size, total - tail_size)
    if len(tail) != tail_size:
        raise CorruptObject("file changed while read")
    length, magic = _FOOTER.unpack(tail[-_FOOTER.size :])
    if magic != MAGIC or length > MAX_META_BYTES or length > total - _FOOTER.size:
        raise CorruptObject("bad trailer")
    if length + _FOOTER.size <= tail_size:
        raw = tail[tail_size - _FOOTER.size - length : tail_size - _FOOTER.size]
    else:
        raw = os.pread(fd, length, total - _FOOTER.size - length)
    meta = ObjectMeta.from_json(raw)
    if meta.size != total - _FOOTER.size - length:
        raise CorruptObject("data length disagrees with metadata")
    f.seek(0)
    return meta


def read_meta_at(path: str | os.PathLike[str]) -> ObjectMeta:
    with open(path, "rb") as f:
        return read_meta(f)
