"""Store.copy_with_meta / replace_meta: an object's metadata changed in place of the file, data kept,
and never over a version written meanwhile."""

from __future__ import annotations

import dataclasses
import time

import pytest

from resilin.storage import objfile
from resilin.storage.errors import S3Error
from resilin.storage.objfile import ObjectMeta
from resilin.storage.store import Store


def _put(store: Store, key: str, data: bytes) -> None:
    tmp = store.temp_path()
    with open(tmp, "wb") as out:
        out.write(data)
        objfile.finish(out, ObjectMeta(size=len(data), etag="e", last_modified=time.time()))
    store.commit_object("b", key, tmp)


def _with_acl(meta: ObjectMeta) -> ObjectMeta:
    return dataclasses.replace(meta, acl={"owner": "111111111111", "grants": []})


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path, "us-east-1")
    store.create_bucket("b", "111111111111")
    return store


def test_metadata_is_rewritten_and_data_kept(store):
    data = bytes(range(256)) * 4096
    _put(store, "k", data)
    assert store.head_object("b", "k").acl == {}  # cached before the change
    tmp, meta, source = store.copy_with_meta("b", "k", _with_acl)
    assert store.replace_meta("b", "k", tmp, source) is not None
    f, got = store.open_object("b", "k")
    with f:
        assert f.read(got.size) == data
    assert got.acl == meta.acl and got.etag == "e"
    assert list(store.tmp.iterdir()) == []


def test_a_version_written_meanwhile_is_never_undone(store):
    _put(store, "k", b"old")
    tmp, _, source = store.copy_with_meta("b", "k", _with_acl)
    _put(store, "k", b"new")
    assert store.replace_meta("b", "k", tmp, source) is None
    f, got = store.open_object("b", "k")
    with f:
        assert f.read(got.size) == b"new"
    assert not tmp.exists()


def test_a_deleted_object_is_no_such_key(store):
    _put(store, "k", b"x")
    tmp, _, source = store.copy_with_meta("b", "k", _with_acl)
    store.delete_object("b", "k")
    with pytest.raises(S3Error) as excinfo:
        store.replace_meta("b", "k", tmp, source)
    assert excinfo.value.code == "NoSuchKey" and not tmp.exists()
    with pytest.raises(S3Error):
        store.copy_with_meta("b", "absent", _with_acl)
