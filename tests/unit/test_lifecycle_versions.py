"""Lifecycle rules on a versioned bucket's older versions and delete markers, swept at a chosen
moment on a real data directory (days-long rules cannot be waited for)."""

from __future__ import annotations

import time

from resilin.storage import lifecycle, lifecycle_sweep, objfile, versioning
from resilin.storage.objfile import ObjectMeta
from resilin.storage.store import Store

DAY = 86400.0
OWNER = "111111111111"


def _put(store: Store, bucket: str, key: str, data: bytes, written: float) -> str:
    version_id, seq = versioning.new_version(store, bucket)
    tmp = store.temp_path()
    with open(tmp, "wb") as out:
        out.write(data)
        meta = ObjectMeta(
            size=len(data), etag=data.hex(), last_modified=written, version_id=version_id, seq=seq
        )
        objfile.finish(out, meta)
    incoming = version_id
    store.commit_object(bucket, key, tmp, lambda: versioning.archive_current(store, bucket, key, incoming))
    return version_id


def _sweep(store: Store, now: float) -> int:
    counts = {"expired": 0, "aborted": 0}
    for _ in lifecycle_sweep.sweep_steps(store, now, counts):
        pass
    return counts["expired"]


def _rules(body: str) -> list[dict]:
    xml = f'<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{body}</LifecycleConfiguration>'
    return [r.to_json() for r in lifecycle.parse(xml.encode())]


def test_older_versions_expire_days_after_they_were_replaced_keeping_the_newest_ones(tmp_path):
    store = Store(tmp_path, "us-east-1")
    store.create_bucket("b", OWNER)
    store.settings.put("b", versioning.SETTING, {"Status": versioning.ENABLED})
    start = time.time()
    ids = [_put(store, "b", "logs/k", f"v{i}".encode(), start + i * DAY) for i in range(4)]
    _put(store, "b", "other/k", b"x", start)
    _put(store, "b", "other/k", b"y", start + DAY)
    store.settings.put("b", lifecycle_sweep.SETTING, _rules(
        "<Rule><ID>old</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status>"
        "<NoncurrentVersionExpiration><NoncurrentDays>2</NoncurrentDays>"
        "<NewerNoncurrentVersions>1</NewerNoncurrentVersions></NoncurrentVersionExpiration></Rule>"))  # fmt: skip
    # Not yet due: v0 became older at day 1, so it is due two days later (rounded up to midnight).
    assert _sweep(store, start + 2 * DAY) == 0
    # Later: v0 and v1 are due; v2, the newest older version, is kept, and so is the latest.
    assert _sweep(store, start + 10 * DAY) == 2
    assert [v.version_id for v in versioning.versions_of(store, "b", "logs/k")] == [ids[3], ids[2]]
    assert len(versioning.versions_of(store, "b", "other/k")) == 2  # outside the rule's prefix


def test_a_delete_marker_left_alone_is_removed_and_one_with_older_versions_is_not(tmp_path):
    store = Store(tmp_path, "us-east-1")
    store.create_bucket("b", OWNER)
    store.settings.put("b", versioning.SETTING, {"Status": versioning.ENABLED})
    now = time.time()
    _put(store, "b", "alone", b"x", now)
    _put(store, "b", "kept", b"x", now)
    for key in ("alone", "kept"):
        versioning.delete_latest(store, "b", key, OWNER)
    versioning.delete_version(store, "b", "alone", versioning.versions_of(store, "b", "alone")[1].version_id)
    store.settings.put("b", lifecycle_sweep.SETTING, _rules(
        "<Rule><ID>markers</ID><Filter></Filter><Status>Enabled</Status>"
        "<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule>"))  # fmt: skip
    assert _sweep(store, now) == 1
    assert versioning.versions_of(store, "b", "alone") == []
    assert [v.marker for v in versioning.versions_of(store, "b", "kept")] == [True, False]
    assert "alone" not in versioning.keys_with_versions(store, "b")
