"""Object versions on disk: a bucket's versioning status, each key's older versions and delete
markers, and the moves between them.

A key's newest version, when it is an object, is the file at the key's usual place under
``objects/`` (so reads, listings and unversioned buckets are untouched).  Every other version is
kept under ``versions/<the key's path parts>/``, one file each, named ``<seq>.<version id>.obj`` (an
object file, as objfile writes it) or ``<seq>.<version id>.dm`` (a delete marker: a small JSON
document).  ``seq`` orders a key's versions, newest highest.  So:

- a write in a versioned bucket moves (hard-links, then replaces) the current file into the
  key's versions directory, unless both it and the new one are the ``null`` version, which S3
  overwrites;
- a DELETE without a version id leaves a delete marker as the newest version (no file under
  ``objects/``: the key is gone from plain listings and GETs);
- deleting the newest version by id promotes the next one back under ``objects/`` if it is an
  object.

Version ids are opaque to clients; a request's id is only ever compared with the ids of the
files found, never made into a path.  Everything here runs on the reactor thread, renames under
the store's ``namespace_lock``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from resilin.storage import names, objfile
from resilin.storage.errors import S3Error, invalid_argument, no_such_key
from resilin.storage.jsonfiles import write_json_atomically
from resilin.storage.keyindex import KeyIndex
from resilin.storage.objfile import ObjectMeta

if TYPE_CHECKING:
    from resilin.storage.store import Store

SETTING = "versioning"  # the bucket settings document: {"Status": "Enabled" | "Suspended"}
ENABLED, SUSPENDED = "Enabled", "Suspended"
NULL = "null"
_ENTRY = re.compile(r"^(\d{20})\.([A-Za-z0-9_-]+)\.(obj|dm)$")
_VERSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_last_seq = 0


def next_seq() -> int:
    """A number larger than any given before in this process (nanoseconds since the epoch)."""
    global _last_seq
    _last_seq = max(_last_seq + 1, time.time_ns())
    return _last_seq


def status(store: Store, bucket: str) -> str:
    """``Enabled``, ``Suspended``, or "" for a bucket whose versioning was never set."""
    document = store.settings.get(bucket, SETTING)
    return str(document["Status"]) if document else ""


def new_version(store: Store, bucket: str) -> tuple[str, int]:
    """(version id, seq) for a new write: a fresh id in an Enabled bucket, else "" (``null``)."""
    seq = next_seq()
    return (secrets.token_urlsafe(24) if status(store, bucket) == ENABLED else ""), seq


def shown(version_id: str) -> str:
    return version_id or NULL


def check_version_id(version_id: str) -> None:
    if version_id == "" or (version_id != NULL and not _VERSION_ID.match(version_id)):
        raise invalid_argument("Invalid version id specified", "versionId", version_id)


def no_such_version(key: str, version_id: str) -> S3Error:
    return S3Error(
        "NoSuchVersion",
        "The specified version does not exist.",
        404,
        extra={"Key": key, "VersionId": version_id},
    )


@dataclass(frozen=True)
class Version:
    """One version of a key: an object (``meta``) or a delete marker."""

    key: str
    version_id: str  # as shown: "null" for the null version
    seq: int
    path: str  # the file that holds it
    current: bool  # the file under objects/
    marker: bool
    last_modified: float
    owner: str = ""  # who made a delete marker
    meta: ObjectMeta | None = None


def versions_dir(store: Store, bucket: str, key: str) -> str:
    return f"{store.buckets_dir}/{bucket}/versions/{'/'.join(names.key_to_parts(key))}"


def _current(store: Store, bucket: str, key: str) -> Version | None:
    meta = store.head_object(bucket, key)
    if meta is None:
        return None
    return Version(key, shown(meta.version_id), meta.seq or int(meta.last_modified * 1e9),
                   store.object_file(bucket, key), True, False, meta.last_modified, meta=meta)  # fmt: skip


def _archived(store: Store, bucket: str, key: str, with_meta: bool = True) -> list[Version]:
    """The key's versions under versions/, newest first."""
    directory = versions_dir(store, bucket, key)
    try:
        entries = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in entries:
        match = _ENTRY.match(name)
        if not match:
            continue
        seq, version_id, kind = int(match[1]), match[2], match[3]
        path = f"{directory}/{name}"
        try:
            if kind == "dm":
                with open(path) as f:
                    marker = json.load(f)
                found.append(Version(key, version_id, seq, path, False, True, marker["last_modified"],
                                     owner=marker.get("owner", "")))  # fmt: skip
            else:
                meta = objfile.read_meta_at(path) if with_meta else None
                modified = meta.last_modified if meta else seq / 1e9
                found.append(Version(key, version_id, seq, path, False, False, modified, meta=meta))
        except (OSError, ValueError, KeyError, objfile.CorruptObject):
            continue  # removed meanwhile, or unreadable: not listed
    found.sort(key=lambda v: v.seq, reverse=True)
    return found


def versions_of(store: Store, bucket: str, key: str) -> list[Version]:
    """Every version of the key, newest (the latest) first."""
    current = _current(store, bucket, key)
    older = _archived(store, bucket, key) if key in keys_with_versions(store, bucket) else []
    return ([current] if current else []) + older


def latest_marker(store: Store, bucket: str, key: str) -> Version | None:
    """The delete marker that is the key's latest version, if it is one (no current object)."""
    if key not in keys_with_versions(store, bucket):
        return None
    archived = _archived(store, bucket, key, with_meta=False)
    return archived[0] if archived and archived[0].marker else None


def find(store: Store, bucket: str, key: str, version_id: str) -> Version:
    """The version ``version_id`` of the key; NoSuchVersion if it has none such."""
    check_version_id(version_id)
    current = _current(store, bucket, key)
    if current is not None and current.version_id == version_id:
        return current
    if key in keys_with_versions(store, bucket):
        for version in _archived(store, bucket, key, with_meta=False):
            if version.version_id != version_id:
                continue
            if version.marker:
                return version
            try:
                meta = objfile.read_meta_at(version.path)
            except (FileNotFoundError, objfile.CorruptObject):
                break
            return replace(version, meta=meta, last_modified=meta.last_modified)
    raise no_such_version(key, version_id)


def keys_with_versions(store: Store, bucket: str) -> KeyIndex:
    """The keys that have a versions directory (older versions or delete markers)."""
    index = store.version_keys.get(bucket)
    if index is None:
        index = KeyIndex(_scan(Path(store.buckets_dir) / bucket / "versions"))
        store.version_keys[bucket] = index
    return index


def _scan(base: Path) -> Iterator[str]:
    for dirpath, dirnames, _ in os.walk(base):
        rel = Path(dirpath).relative_to(base).parts
        for name in list(dirnames):
            if name.endswith(names.OBJECT_SUFFIX):
                key = names.parts_to_key([*rel, name])
                if key is not None:
                    yield key
                dirnames.remove(name)
        dirnames[:] = [d for d in dirnames if names.is_hex_dir(d)]


def _entry_name(seq: int, version_id: str, marker: bool) -> str:
    return f"{seq:020d}.{version_id}.{'dm' if marker else 'obj'}"


def _drop_null(store: Store, bucket: str, key: str) -> None:
    """Remove the key's archived null version (object or marker): a new null version replaces it."""
    for version in _archived(store, bucket, key, with_meta=False):
        if version.version_id == NULL:
            os.unlink(version.path)
    _tidy(store, bucket, key)


def _tidy(store: Store, bucket: str, key: str) -> None:
    """Forget a versions directory left empty."""
    directory = versions_dir(store, bucket, key)
    try:
        if os.listdir(directory):
            return
    except FileNotFoundError:
        keys_with_versions(store, bucket).remove(key)
        return
    store.prune_dirs(Path(directory), Path(store.buckets_dir) / bucket / "versions")
    keys_with_versions(store, bucket).remove(key)


def archive_current(store: Store, bucket: str, key: str, incoming: str) -> None:
    """Before a new version (``incoming``: its id, "" for null) takes the key's place: keep the
    current object as an older version, or let it be overwritten if both are ``null``.  The
    caller holds ``namespace_lock`` and replaces the file right after."""
    if not status(store, bucket):
        return
    current = store.object_file(bucket, key)
    try:
        meta = objfile.read_meta_at(current)
    except (FileNotFoundError, NotADirectoryError):
        meta = None
    if meta is not None and (meta.version_id or incoming):
        directory = versions_dir(store, bucket, key)
        os.makedirs(directory, exist_ok=True)
        seq = meta.seq or int(meta.last_modified * 1e9)
        os.link(current, f"{directory}/{_entry_name(seq, shown(meta.version_id), False)}")
        keys_with_versions(store, bucket).add(key)
    if not incoming:
        _drop_null(store, bucket, key)


@dataclass(frozen=True)
class Deleted:
    """What a DELETE did: which version it made or removed, and whether that is a delete marker."""

    version_id: str | None  # as shown; None when no version was involved (unversioned bucket)
    marker: bool


def delete_latest(store: Store, bucket: str, key: str, owner: str) -> Deleted:
    """A DELETE without a version id in a versioned bucket: a delete marker becomes the latest
    version (``null`` in a suspended bucket, replacing the null version)."""
    version_id, seq = new_version(store, bucket)
    current = store.object_file(bucket, key)
    directory = versions_dir(store, bucket, key)
    with store.namespace_lock:
        archive_current(store, bucket, key, version_id)
        try:
            os.unlink(current)
            store.prune_dirs(Path(current).parent, Path(store.buckets_dir) / bucket / "objects")
        except (FileNotFoundError, NotADirectoryError):
            pass
        store.index(bucket).remove(key)
        store.forget(bucket, key)
        os.makedirs(directory, exist_ok=True)
        marker = {"last_modified": time.time(), "owner": owner}
        write_json_atomically(Path(directory) / _entry_name(seq, shown(version_id), True), marker, store.tmp)
        keys_with_versions(store, bucket).add(key)
    return Deleted(shown(version_id), True)


def delete_version(store: Store, bucket: str, key: str, version_id: str) -> Deleted:
    """Remove one version for good; the next one becomes the latest (moved back under objects/ if
    it is an object).  A version that does not exist is no error, as in S3."""
    try:
        version = find(store, bucket, key, version_id)
    except S3Error as exc:
        if exc.code == "NoSuchVersion":
            return Deleted(version_id, False)
        raise
    with store.namespace_lock:
        try:
            os.unlink(version.path)
        except FileNotFoundError:
            pass
        if version.current:
            store.index(bucket).remove(key)
            store.forget(bucket, key)
        if key not in store.index(bucket):
            # The newest version left is the latest now: back under objects/ if it is an object.
            _promote(store, bucket, key)
        if version.current and key not in store.index(bucket):
            store.prune_dirs(Path(version.path).parent, Path(store.buckets_dir) / bucket / "objects")
        _tidy(store, bucket, key)
    return Deleted(version.version_id, version.marker)


def _promote(store: Store, bucket: str, key: str) -> None:
    archived = _archived(store, bucket, key, with_meta=False)
    if archived and not archived[0].marker:
        target = store.object_file(bucket, key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(archived[0].path, target)
        store.index(bucket).add(key)
        store.forget(bucket, key)


def has_versions(store: Store, bucket: str) -> bool:
    return len(keys_with_versions(store, bucket)) > 0


def delete_marker_error(version: Version, method: str) -> S3Error:
    """405, as S3 answers a read of a delete marker named by its version id."""
    return S3Error(
        "MethodNotAllowed", "The specified method is not allowed against this resource.", 405,
        extra={"Method": method, "ResourceType": "DeleteMarker"},
        headers={"x-amz-delete-marker": "true", "x-amz-version-id": version.version_id},
    )  # fmt: skip


def object_version(store: Store, bucket: str, key: str, version_id: str | None, method: str) -> Version:
    """The object a request names: its latest version, or the one ``version_id`` names (NoSuchKey,
    NoSuchVersion, or 405 for a delete marker)."""
    if version_id is None:
        current = _current(store, bucket, key)
        if current is None:
            raise no_such_key(key)
        return current
    version = find(store, bucket, key, version_id)
    if version.marker:
        raise delete_marker_error(version, method)
    return version
