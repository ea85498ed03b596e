"""The data directory: buckets, objects and multipart uploads on disk.

Layout::

    <data_dir>/tmp/                                 files being written; emptied at start
    <data_dir>/buckets/<bucket>/bucket.json         owner account, creation time, region
    <data_dir>/buckets/<bucket>/objects/<hex...>.obj  one object: data + metadata (see objfile)
    <data_dir>/buckets/<bucket>/uploads/<id>/upload.json, part-00001, ...

New files are written under ``tmp/`` (same file system), fsynced, then renamed
into place, so a write either fully happens or leaves the previous version.
The Store is called from the reactor thread; slow work (copying, hashing,
fsync, removing trees) is done by callers in worker threads before or after
the quick namespace changes here.  That single-threaded ownership is what keeps
the in-memory key index and bucket table consistent with the disk.  The one
exception is a PutObject's rename, done in the worker thread that wrote the
file (see ``begin_write``): renames and removals of object files take
``namespace_lock``, and the reactor thread brackets such a write so that the
caches never describe a file the worker may be replacing.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from resilin.settings.private_files import private_dir
from resilin.storage import names, objfile
from resilin.storage.bucket_settings import BucketSettings
from resilin.storage.errors import S3Error, no_such_bucket, no_such_key, no_such_upload
from resilin.storage.ingest import MAX_OBJECT_SIZE
from resilin.storage.jsonfiles import write_json_atomically
from resilin.storage.keyindex import KeyIndex
from resilin.storage.objfile import CorruptObject, ObjectMeta

COMPLETED_UPLOADS_KEPT_S = 3600  # how long a completed upload answers a repeated completion

_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
# Listing entries kept in memory (about 200 bytes each); past this many the cache starts over.
MAX_CACHED_ENTRIES = 250_000
# Object metadata kept in memory for GET and HEAD (about 1 KiB each); past this many it starts over.
MAX_CACHED_METAS = 20_000


class ListEntry(NamedTuple):
    """What a listing shows of an object, cached so that listings need not open every object file."""

    size: int
    etag: str
    last_modified: float
    storage_class: str
    checksum_algorithm: str  # "" when the object has no checksum
    checksum_type: str
    version_id: str = ""  # "": the null version

    @property
    def quoted_etag(self) -> str:
        return f'"{self.etag}"'


@dataclass(frozen=True)
class BucketInfo:
    name: str
    owner: str  # account id
    created: float
    region: str


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _DirState:
    __slots__ = ("asked", "done", "running", "users")

    def __init__(self) -> None:
        self.asked = 0  # number of the latest request
        self.done = 0  # latest request covered by a finished fsync
        self.running = False
        self.users = 0  # callers in sync() for this directory


class DirSyncer:
    """Directory fsyncs shared between concurrent writers (group commit); called from worker threads.

    An fsync of a directory makes durable every rename done in it before the
    fsync started.  So a caller whose rename is done waits for an fsync of the
    directory that starts after it asked, running one itself when none is
    under way: concurrent PUTs into one directory share one fsync instead of
    queueing one each.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._dirs: dict[str, _DirState] = {}

    def sync(self, path: str) -> None:
        with self._cond:
            state = self._dirs.get(path)
            if state is None:
                state = self._dirs[path] = _DirState()
            state.users += 1
            state.asked += 1
            ticket = state.asked
            try:
                while state.done < ticket:
                    if state.running:
                        self._cond.wait()
                        continue
                    state.running = True
                    covers = state.asked
                    self._cond.release()
                    try:
                        fsync_dir(path)
                        state.done = covers
                    finally:
                        self._cond.acquire()
                        state.running = False
                        self._cond.notify_all()
            finally:
                state.users -= 1
                if not state.users:
                    del self._dirs[path]


class PendingWrite:
    """A PutObject whose worker thread renames its file into place (see ``Store.begin_write``)."""

    def __init__(self, store: Store, bucket: str, key: str) -> None:
        self.store, self.bucket, self.key = store, bucket, key
        self.placed = self.ended = False

    def place(self, tmp: str | os.PathLike[str]) -> None:
        """Rename the finished, fsynced file into place and make the rename durable (worker thread)."""
        store = self.store
        target = store.object_file(self.bucket, self.key)
        parent = os.path.dirname(target)
        with store.namespace_lock:
            try:
                os.replace(tmp, target)
            except FileNotFoundError:
                if not os.path.isdir(f"{store._buckets_str}/{self.bucket}/objects"):
                    raise no_such_bucket(self.bucket) from None
                os.makedirs(parent, exist_ok=True)
                os.replace(tmp, target)
        self.placed = True
        store.dir_syncer.sync(parent)

    def end(self) -> None:
        """Back on the reactor thread, once the worker is done (whether or not it placed the file).

        Calling it again does nothing."""
        if not self.ended:
            self.ended = True
            self.store._end_write(self)


class Store:
    def __init__(
        self,
        data_dir: Path,
        region: str,
        background: Callable[[Callable[[], None]], None] | None = None,
        max_object_size: int = MAX_OBJECT_SIZE,
    ):
        self.root = Path(data_dir)
        self.region = region
        self.max_object_size = max_object_size  # for a single PUT or copy, as S3's 5 GiB
        self.tmp = self.root / "tmp"
        self._temp_prefix = secrets.token_hex(4)
        self._temp_numbers = itertools.count()
        self.buckets_dir = self.root / "buckets"
        self._buckets_str = str(self.buckets_dir)
        # How slow clean-ups (removing whole trees) are run; the server passes a thread pool.
        self._background = background or (lambda job: job())
        private_dir(self.root)  # objects and spooled bodies are their owners' alone
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.buckets_dir.mkdir(parents=True, exist_ok=True)
        self._buckets = self._load_buckets()
        self._indexes: dict[str, KeyIndex] = {}
        self.version_keys: dict[str, KeyIndex] = {}  # keys with older versions (see versioning)
        self._entries: dict[str, dict[str, ListEntry]] = {}
        self._entry_count = 0
        # Metadata of objects read lately.  Every change to an object goes through
        # commit_object or delete_object on this (the reactor) thread, which forget
        # the key, so an entry always describes the file now at the key's path.
        self._metas: dict[tuple[str, str], ObjectMeta] = {}
        # Keys a worker thread may be renaming a new file to: not cached until it is done.
        self._pending: dict[tuple[str, str], int] = {}
        self.namespace_lock = threading.Lock()
        self.dir_syncer = DirSyncer()
        self.settings = BucketSettings(self.buckets_dir, self.tmp)  # e.g. each bucket's CORS rules

    # -- buckets ---------------------------------------------------------------

    def _load_buckets(self) -> dict[str, BucketInfo]:
        found = {}
        for entry in self.buckets_dir.iterdir():
            try:
                data = json.loads((entry / "bucket.json").read_text())
                found[entry.name] = BucketInfo(**data)
            except (OSError, ValueError, TypeError):
                continue  # not a complete bucket (e.g. crash during creation)
        return found

    def bucket(self, name: str) -> BucketInfo | None:
        return self._buckets.get(name)

    def require_bucket(self, name: str) -> BucketInfo:
        info = self._buckets.get(name)
        if info is None:
            raise no_such_bucket(name)
        return info

    def bucket_names(self) -> list[str]:
        return sorted(self._buckets)

    def buckets_of(self, owner: str) -> list[BucketInfo]:
        return sorted((b for b in self._buckets.values() if b.owner == owner), key=lambda b: b.name)

    def create_bucket(self, name: str, owner: str) -> BucketInfo:
        info = BucketInfo(name=name, owner=owner, created=time.time(), region=self.region)
        staging = self.tmp / f"bucket-{secrets.token_hex(8)}"
        (staging / "objects").mkdir(parents=True)
        (staging / "uploads").mkdir()
        write_json_atomically(staging / "bucket.json", asdict(info), self.tmp)
        os.rename(staging, self.buckets_dir / name)
        fsync_dir(self.buckets_dir)
        self._buckets[name] = info
        self._indexes[name] = KeyIndex()
        return info

    def delete_bucket(self, name: str) -> None:
        self.require_bucket(name)
        # (A bucket's older versions are checked for by the caller: see versioning.)
        if len(self.index(name)) or any(bucket == name for bucket, _ in self._pending):
            raise S3Error(
                "BucketNotEmpty",
                "The bucket you tried to delete is not empty",
                409,
                extra={"BucketName": name},
            )
        self._discard(self.buckets_dir / name)
        self.settings.forget(name)
        del self._buckets[name]
        self._indexes.pop(name, None)
        self.version_keys.pop(name, None)
        self._entry_count -= len(self._entries.pop(name, {}))
        self._metas.clear()

    def _discard(self, path: Path) -> None:
        """Move a tree out of the namespace at once, and remove it in the background."""
        trash = self.tmp / f"trash-{secrets.token_hex(8)}"
        os.rename(path, trash)
        self._background(lambda: shutil.rmtree(trash, ignore_errors=True))

    # -- objects ----------------------------------------------------------------

    def temp_path(self, kind: str = "obj") -> Path:
        # Unique without asking the system for randomness each time: tmp/ is emptied at start.
        return self.tmp / f"{kind}-{self._temp_prefix}{next(self._temp_numbers):x}"

    def _objects_dir(self, bucket: str) -> Path:
        return self.buckets_dir / bucket / "objects"

    def object_path(self, bucket: str, key: str) -> Path:
        return self._objects_dir(bucket).joinpath(*names.key_to_parts(key))

    def object_file(self, bucket: str, key: str) -> str:
        """``object_path`` as a plain string, built without pathlib (reads are the hot path)."""
        return f"{self._buckets_str}/{bucket}/objects/{'/'.join(names.key_to_parts(key))}"

    def index(self, bucket: str) -> KeyIndex:
        index = self._indexes.get(bucket)
        if index is None:
            index = KeyIndex(self._scan_keys(bucket))
            self._indexes[bucket] = index
        return index

    def _scan_keys(self, bucket: str) -> Iterator[str]:
        base = self._objects_dir(bucket)
        for dirpath, dirnames, filenames in os.walk(base):
            rel = Path(dirpath).relative_to(base).parts
            dirnames[:] = [d for d in dirnames if names.is_hex_dir(d)]
            for filename in filenames:
                key = names.parts_to_key([*rel, filename])
                if key is not None:
                    yield key

    def open_object(self, bucket: str, key: str) -> tuple[BinaryIO, ObjectMeta]:
        """Open an object for reading: the file handle keeps this version even if replaced."""
        try:
            # Unbuffered: reads are preads or large copies (and it spares a tty check per open).
            f = open(self.object_file(bucket, key), "rb", buffering=0)  # noqa: SIM115 - caller closes
        except (FileNotFoundError, NotADirectoryError):
            raise no_such_key(key) from None
        meta = self._metas.get((bucket, key))
        if meta is not None:
            return f, meta
        try:
            meta = objfile.read_meta(f)
        except (CorruptObject, OSError):
            f.close()
            raise
        self._remember(bucket, key, meta)
        return f, meta

    def head_object(self, bucket: str, key: str) -> ObjectMeta | None:
        meta = self._metas.get((bucket, key))
        if meta is not None:
            return meta
        try:
            meta = objfile.read_meta_at(self.object_file(bucket, key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        self._remember(bucket, key, meta)
        return meta

    def _remember(self, bucket: str, key: str, meta: ObjectMeta) -> None:
        if (bucket, key) in self._pending:
            return  # a worker may be replacing the file
        if len(self._metas) >= MAX_CACHED_METAS:
            self._metas.clear()
        self._metas[(bucket, key)] = meta

    def commit_object(
        self, bucket: str, key: str, tmp: Path, before_replace: Callable[[], None] | None = None
    ) -> Path:
        """Publish a complete object file; returns the directory to fsync for durability.

        ``before_replace`` runs under ``namespace_lock`` right before (in a versioned bucket, it
        keeps the object there now as an older version)."""
        self.require_bucket(bucket)
        target = self.object_path(bucket, key)
        with self.namespace_lock:
            target.parent.mkdir(parents=True, exist_ok=True)
            if before_replace is not None:
                before_replace()
            os.replace(tmp, target)
        self.index(bucket).add(key)
        self.forget(bucket, key)
        return target.parent

    def begin_write(self, bucket: str, key: str) -> PendingWrite:
        """Let a worker thread rename a new object file to ``key`` (see ``PendingWrite.place``).

        Until ``end`` the key's metadata is not cached, so a reader always takes
        it from the file it opened, whichever version that is.
        """
        self.require_bucket(bucket)
        self._pending[(bucket, key)] = self._pending.get((bucket, key), 0) + 1
        self.forget(bucket, key)
        return PendingWrite(self, bucket, key)

    def _end_write(self, write: PendingWrite) -> None:
        bucket, key = write.bucket, write.key
        left = self._pending.pop((bucket, key)) - 1
        if left:
            self._pending[(bucket, key)] = left
        self.forget(bucket, key)
        if write.placed and bucket in self._buckets:
            index = self.index(bucket)
            # A DeleteObject may have removed the file since the worker placed it.
            if key not in index and os.path.exists(self.object_file(bucket, key)):
                index.add(key)

    def copy_with_meta(
        self, bucket: str, key: str, change: Callable[[ObjectMeta], ObjectMeta], path: str | None = None
    ) -> tuple[Path, ObjectMeta, tuple[int, int]]:
        """Worker thread: a new temp file holding the object's data and ``change(its metadata)``,
        and the identity of the file it was copied from (for ``replace_meta``).

        Only the metadata may change (an ACL, tags): size and data stay the object's.  ``path``: an
        older version's file instead of the key's latest."""
        try:
            source = open(path or self.object_file(bucket, key), "rb", buffering=0)  # noqa: SIM115
        except (FileNotFoundError, NotADirectoryError):
            raise no_such_key(key) from None
        with source:
            meta = change(objfile.read_meta(source))
            stat = os.fstat(source.fileno())
            tmp = self.temp_path("meta")
            try:
                with open(tmp, "wb") as out:
                    objfile.copy_data(source, out, meta.size)
                    objfile.finish(out, meta)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        return tmp, meta, (stat.st_dev, stat.st_ino)

    def replace_meta(
        self, bucket: str, key: str, tmp: Path, source: tuple[int, int], path: str | None = None
    ) -> Path | None:
        """Reactor thread: put a file from ``copy_with_meta`` in place of the one it was copied from.

        Returns the directory to fsync, or None (and removes ``tmp``) when the object was replaced
        meanwhile, so that no write is undone; NoSuchKey when it was deleted."""
        target = path or self.object_file(bucket, key)
        with self.namespace_lock:  # no worker's rename comes between the check and ours
            try:
                now = os.stat(target)
            except (FileNotFoundError, NotADirectoryError):
                tmp.unlink(missing_ok=True)
                raise no_such_key(key) from None
            if (now.st_dev, now.st_ino) != source:
                tmp.unlink(missing_ok=True)
                return None
            os.replace(tmp, target)
        self.forget(bucket, key)
        return Path(target).parent

    def delete_object(self, bucket: str, key: str) -> bool:
        target = self.object_path(bucket, key)
        with self.namespace_lock:
            try:
                target.unlink()
            except (FileNotFoundError, NotADirectoryError):
                self.forget(bucket, key)
                return False
            self.prune_dirs(target.parent, self._objects_dir(bucket))
        self.index(bucket).remove(key)
        self.forget(bucket, key)
        return True

    def list_entry(self, bucket: str, key: str) -> ListEntry | None:
        """The listing entry of an object (None if it is gone), from the cache or its file.

        Raises CorruptObject or OSError for an unreadable object file.
        """
        cache = self._entries.setdefault(bucket, {})
        entry = cache.get(key)
        if entry is not None:
            return entry
        meta = self.head_object(bucket, key)
        if meta is None:
            return None
        checksum = meta.checksum or {}
        entry = ListEntry(
            meta.size,
            meta.etag,
            meta.last_modified,
            meta.storage_class,
            checksum.get("algorithm", ""),
            checksum.get("type", "FULL_OBJECT"),
            meta.version_id,
        )
        if (bucket, key) in self._pending:
            return entry  # a worker may be replacing the file: not cached
        if self._entry_count >= MAX_CACHED_ENTRIES:
            self._entries.clear()
            self._entry_count = 0
            cache = self._entries.setdefault(bucket, {})
        cache[key] = entry
        self._entry_count += 1
        return entry

    def forget(self, bucket: str, key: str) -> None:
        self._metas.pop((bucket, key), None)
        cache = self._entries.get(bucket)
        if cache is not None and cache.pop(key, None) is not None:
            self._entry_count -= 1

    @staticmethod
    def prune_dirs(directory: Path, stop: Path) -> None:
        """Remove directories a long key needed, once they are empty."""
        while directory != stop:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    # -- multipart uploads --------------------------------------------------------

    def _upload_dir(self, bucket: str, upload_id: str) -> Path:
        if not _UPLOAD_ID.match(upload_id):
            raise no_such_upload(upload_id)
        return self.buckets_dir / bucket / "uploads" / upload_id

    def create_upload(self, bucket: str, info: dict) -> str:
        upload_id = secrets.token_hex(16)
        staging = self.tmp / f"upload-{upload_id}"
        staging.mkdir()
        write_json_atomically(staging / "upload.json", info, self.tmp)
        os.rename(staging, self._upload_dir(bucket, upload_id))
        return upload_id

    def upload_info(self, bucket: str, upload_id: str) -> dict:
        try:
            return json.loads((self._upload_dir(bucket, upload_id) / "upload.json").read_text())
        except FileNotFoundError:
            raise no_such_upload(upload_id) from None

    def part_path(self, bucket: str, upload_id: str, number: int) -> Path:
        return self._upload_dir(bucket, upload_id) / f"part-{number:05d}"

    def commit_part(self, bucket: str, upload_id: str, number: int, tmp: Path) -> Path:
        self.upload_info(bucket, upload_id)  # still in progress?
        target = self.part_path(bucket, upload_id, number)
        os.replace(tmp, target)
        return target.parent

    def parts(self, bucket: str, upload_id: str) -> list[tuple[int, ObjectMeta]]:
        directory = self._upload_dir(bucket, upload_id)
        found = []
        try:
            entries = sorted(os.listdir(directory))
        except FileNotFoundError:
            raise no_such_upload(upload_id) from None
        for name in entries:
            if name.startswith("part-"):
                try:
                    found.append((int(name[5:]), objfile.read_meta_at(directory / name)))
                except (FileNotFoundError, CorruptObject, ValueError):
                    continue
        return found

    def uploads(self, bucket: str) -> list[tuple[str, dict]]:
        directory = self.buckets_dir / bucket / "uploads"
        found = []
        for upload_id in os.listdir(directory):
            try:
                found.append((upload_id, self.upload_info(bucket, upload_id)))
            except S3Error:
                continue
        return found

    def remove_upload(self, bucket: str, upload_id: str) -> None:
        directory = self._upload_dir(bucket, upload_id)
        if not directory.exists():
            raise no_such_upload(upload_id)
        self._discard(directory)

    # A completed upload's result, kept a while: a client whose CompleteMultipartUpload response
    # was lost retries it and must get the same answer, as from S3, not NoSuchUpload.
    def remember_completed(self, bucket: str, upload_id: str, result: dict) -> None:
        directory = self.buckets_dir / bucket / "completed"
        directory.mkdir(exist_ok=True)
        now = time.time()
        for old in directory.glob("*.json"):  # forget what no retry will ask for any more
            try:
                if old.stat().st_mtime < now - COMPLETED_UPLOADS_KEPT_S:
                    old.unlink()
            except FileNotFoundError:
                pass
        write_json_atomically(self._completed_path(bucket, upload_id), result, self.tmp)

    def _completed_path(self, bucket: str, upload_id: str) -> Path:
        self._upload_dir(bucket, upload_id)  # a well-formed id, else NoSuchUpload
        return self.buckets_dir / bucket / "completed" / f"{upload_id}.json"

    def completed_upload(self, bucket: str, upload_id: str) -> dict | None:
        """What :meth:`remember_completed` kept for the upload, or None."""
        path = self._completed_path(bucket, upload_id)
        try:
            if path.stat().st_mtime < time.time() - COMPLETED_UPLOADS_KEPT_S:
                return None
            result: dict = json.loads(path.read_text())
            return result
        except (FileNotFoundError, ValueError):
            return None
