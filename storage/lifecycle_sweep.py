"""The lifecycle sweep: every so often, each bucket's enabled rules expire the objects and abort the
incomplete multipart uploads that are due (rules: :mod:`lifecycle`).

It runs on the reactor thread, where every change to the store is made, in slices of a few
hundred keys (``twisted.internet.task.cooperate``), so requests are served meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from twisted.internet import task
from twisted.internet.defer import Deferred

from resilin.storage import object_lock, versioning
from resilin.storage.errors import S3Error
from resilin.storage.keyindex import KeyIndex
from resilin.storage.lifecycle import Rule
from resilin.storage.store import Store

log = logging.getLogger(__name__)

SETTING = "lifecycle"
SLICE = 200  # keys looked at per reactor turn
DEFAULT_INTERVAL_S = 3600.0


def _tags(store: Store, bucket: str, key: str, rule: Rule) -> dict[str, str] | None:
    """The object's tags when the rule filters on them (its metadata is read only then)."""
    if not rule.tags:
        return None
    meta = store.head_object(bucket, key)
    return meta.tags if meta is not None else None


def rules_of(store: Store, bucket: str) -> list[Rule] | None:
    stored = store.settings.get(bucket, SETTING)
    return None if stored is None else [Rule.from_json(r) for r in stored]


def _keys_under(index: KeyIndex, prefix: str) -> Iterator[str]:
    for key in index.iter_from(prefix):
        if not key.startswith(prefix):
            return
        yield key


def _expire_older_versions(store: Store, bucket: str, key: str, rule: Rule, now: float) -> int:
    """Remove a key's noncurrent versions the rule has made due (all but its ``newer_noncurrent``
    newest, each counted from when a newer version replaced it), then a delete marker left as the
    key's only version.  Versions Object Lock protects stay.  How many were removed."""
    removed = 0
    if rule.noncurrent_days is not None:
        newest_first = versioning.versions_of(store, bucket, key)
        for position in range(1, len(newest_first)):
            version = newest_first[position]
            if rule.newer_noncurrent is not None and position <= rule.newer_noncurrent:
                continue
            meta = version.meta
            if not rule.covers(key, meta.size if meta else None, meta.tags if meta else {}):
                continue
            due = rule.noncurrent_due(newest_first[position - 1].last_modified)
            if due is None or due > now or _locked(version):
                continue
            versioning.delete_version(store, bucket, key, version.version_id)
            removed += 1
    if rule.expire_delete_markers:
        left = versioning.versions_of(store, bucket, key)
        if len(left) == 1 and left[0].marker:
            versioning.delete_version(store, bucket, key, left[0].version_id)
            removed += 1
    return removed


def _locked(version: versioning.Version) -> bool:
    try:
        object_lock.check_deletable(version, bypass_allowed=False)
    except S3Error:
        return True
    return False


def sweep_steps(store: Store, now: float, counts: dict[str, int]) -> Iterator[None]:
    """The sweep as a generator, one step per slice; ``counts`` tallies what it removed."""
    for bucket in store.bucket_names():
        rules = [r for r in rules_of(store, bucket) or [] if r.enabled]
        for rule in rules:
            if store.bucket(bucket) is None:
                break  # deleted meanwhile
            keys = []
            for key in store.index(bucket).iter_from(rule.prefix):
                if not key.startswith(rule.prefix):
                    break
                keys.append(key)
            for n, key in enumerate(keys, 1):
                entry = store.list_entry(bucket, key) if store.bucket(bucket) is not None else None
                due = rule.object_due(entry.last_modified) if entry is not None else None
                if (
                    entry is not None
                    and due is not None
                    and due <= now
                    and rule.covers(key, entry.size, _tags(store, bucket, key, rule))
                ):
                    owner = store.bucket(bucket)
                    if owner is not None and versioning.status(store, bucket):
                        # As S3 expires in a versioned bucket: a delete marker, the data kept.
                        versioning.delete_latest(store, bucket, key, owner.owner)
                    else:
                        store.delete_object(bucket, key)
                    counts["expired"] += 1
                if n % SLICE == 0:
                    yield None
            if (rule.noncurrent_days is not None or rule.expire_delete_markers) and store.bucket(
                bucket
            ) is not None:
                versioned = list(_keys_under(versioning.keys_with_versions(store, bucket), rule.prefix))
                for n, key in enumerate(versioned, 1):
                    if store.bucket(bucket) is None:
                        break
                    counts["expired"] += _expire_older_versions(store, bucket, key, rule, now)
                    if n % SLICE == 0:
                        yield None
            if rule.abort_days is None or store.bucket(bucket) is None:
                continue
            for upload_id, info in store.uploads(bucket):
                due = rule.upload_due(info.get("initiated", now))
                if rule.covers(info.get("key", "")) and due is not None and due <= now:
                    try:
                        store.remove_upload(bucket, upload_id)
                        counts["aborted"] += 1
                    except S3Error:
                        pass  # completed or aborted meanwhile
        yield None


def sweep(store: Store, now: float | None = None) -> Deferred[dict[str, int]]:
    """One sweep of every bucket; fires with how many objects expired and uploads were aborted."""
    counts = {"expired": 0, "aborted": 0}
    done = task.cooperate(sweep_steps(store, now or time.time(), counts)).whenDone()

    def report(_: object) -> dict[str, int]:
        if counts["expired"] or counts["aborted"]:
            log.info(
                "lifecycle: %d object(s) expired, %d upload(s) aborted", counts["expired"], counts["aborted"]
            )
        return counts

    def failed(failure: object) -> dict[str, int]:  # tried again at the next sweep
        log.error("lifecycle sweep failed: %s", failure)
        return counts

    answered: Deferred[dict[str, int]] = done.addCallbacks(report, failed)
    return answered


def start(store: Store, interval: float = DEFAULT_INTERVAL_S) -> task.LoopingCall:
    """Sweep every ``interval`` seconds, the first time at once."""
    loop = task.LoopingCall(sweep, store)
    loop.start(interval, now=True)
    return loop
