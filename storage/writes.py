"""Writing new files off the reactor thread, and publishing them atomically."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

from twisted.internet.threads import deferToThread

from resilin.storage import checksums, objfile, versioning
from resilin.storage.errors import S3Error
from resilin.storage.objfile import ObjectMeta
from resilin.storage.store import PendingWrite, Store

T = TypeVar("T")
COPY_PIECE = 1024 * 1024


async def write_temp(
    store: Store, work: Callable[[BinaryIO], T], kind: str = "obj", publish: PendingWrite | None = None
) -> tuple[Path, T]:
    """Run ``work(out)`` in a thread on a new temp file; the file is removed if it fails.

    With ``publish`` the finished file is also renamed into place in the same thread.
    """
    tmp = store.temp_path(kind)
    return tmp, await _work_on_file(tmp, "wb", work, publish)


async def finish_in_place(
    path: Path, work: Callable[[BinaryIO], T], publish: PendingWrite | None = None
) -> tuple[Path, T]:
    """Run ``work(f)`` in a thread on an existing file (a claimed spool) opened for reading and
    appending; the file is removed if it fails.  With ``publish``, as ``write_temp``."""
    return path, await _work_on_file(path, "r+b", work, publish)


async def _work_on_file(
    path: Path, mode: str, work: Callable[[BinaryIO], T], publish: PendingWrite | None
) -> T:
    def run() -> T:
        with open(path, mode) as f:
            result = work(f)  # type: ignore[arg-type]
        if publish is not None:
            publish.place(path)
        return result

    try:
        return await deferToThread(run)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


async def publish_object(
    store: Store, bucket: str, key: str, tmp: Path, precondition: Callable[[], None] | None = None
) -> None:
    """Rename a finished object file into place, after checking a conditional write's precondition.

    The check and the rename run together on the reactor thread, so no other
    write to the key can slip in between them.
    """
    try:
        if precondition is not None:
            precondition()
        archive = None
        if versioning.status(store, bucket):
            incoming = objfile.read_meta_at(tmp).version_id

            def archive() -> None:
                versioning.archive_current(store, bucket, key, incoming)

        parent = store.commit_object(bucket, key, tmp, archive)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    await deferToThread(store.dir_syncer.sync, str(parent))


class Sink(Protocol):
    """Where copied bytes go: a file, or anything else that takes writes."""

    def write(self, data: bytes, /) -> int: ...


def copy_range(
    source: BinaryIO, offset: int, length: int, out: Sink, algorithm: str | None = None
) -> tuple[bytes, str | None]:
    """Copy ``length`` bytes from ``offset``; returns (md5 digest, base64 checksum or None)."""
    md5 = hashlib.md5()
    extra = checksums.new_hasher(algorithm) if algorithm else None
    source.seek(offset)
    remaining = length
    while remaining:
        piece = source.read(min(COPY_PIECE, remaining))
        if not piece:
            raise OSError("source file shorter than its metadata says")
        remaining -= len(piece)
        out.write(piece)
        md5.update(piece)
        if extra is not None:
            extra.update(piece)
    return md5.digest(), checksums.encode(extra.digest()) if extra is not None else None


REWRITE_ATTEMPTS = 3


async def rewrite_metadata(
    store: Store, bucket: str, key: str, change: Callable[[ObjectMeta], ObjectMeta], path: str | None = None
) -> ObjectMeta:
    """Change an existing object's metadata (its ACL, its tags), data untouched, atomically.

    The object is copied with its new metadata to a temp file in a worker thread and renamed
    over the original, unless a write replaced it meanwhile: then the change is made again on
    the new version (a few times), so it never undoes that write.  ``path``: an older version's
    file (see ``versioning``) instead of the key's latest."""
    for _ in range(REWRITE_ATTEMPTS):
        tmp, meta, source = await deferToThread(store.copy_with_meta, bucket, key, change, path)
        parent = store.replace_meta(bucket, key, tmp, source, path)
        if parent is not None:
            await deferToThread(store.dir_syncer.sync, str(parent))
            return meta
    raise S3Error(
        "OperationAborted", "A conflicting conditional operation is currently in progress against this resource. "
        "Please try again.", 409,
    )  # fmt: skip
