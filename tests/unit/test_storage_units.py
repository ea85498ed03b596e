"""Unit tests of the storage service's pure parts: names, listings, ranges, framing, file format."""

from __future__ import annotations

import io

import pytest

from resilin.storage import chunked, conditions, names, objfile
from resilin.storage.checksums import compute
from resilin.storage.errors import S3Error
from resilin.storage.keyindex import KeyIndex, prefix_end
from resilin.storage.listing import list_keys
from resilin.storage.objfile import CorruptObject, ObjectMeta

# -- names -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["abc", "my-bucket.logs", "a" * 63, "123", "a.b-c"])
def test_valid_bucket_names(name):
    assert names.bucket_name_problem(name) is None


@pytest.mark.parametrize(
    "name",
    ["ab", "a" * 64, "Abc", "a_b", ".abc", "abc-", "a..b", "10.0.0.1", "xn--abc", "abc-s3alias", "a b"],
)
def test_invalid_bucket_names(name):
    assert names.bucket_name_problem(name)


@pytest.mark.parametrize(
    "key",
    ["a", "dir/", "a/b/c.txt", "x" * 1024, "é" * 512, "\U0001f600/x", "../../etc/passwd".replace("..", "._")],
)
def test_key_paths_round_trip_and_stay_safe(key):
    parts = names.key_to_parts(key)
    assert all(len(p) <= 255 and set(p) <= set("0123456789abcdef.obj") for p in parts)
    assert all(names.is_hex_dir(p) for p in parts[:-1])
    assert names.parts_to_key(parts) == key


def test_foreign_file_names_are_not_keys():
    for parts in (["notes.txt"], ["zz.obj"], [".obj"], ["ab" * 200 + ".obj"], ["abc", "61.obj"], ["ff.obj"]):
        assert names.parts_to_key(parts) is None


@pytest.mark.parametrize(
    "key, code",
    [("", "InvalidArgument"), ("a/../b", "InvalidArgument"), ("..", "InvalidArgument"), ("a\x00", "InvalidArgument"),
     ("k" * 1025, "KeyTooLongError"), ("é" * 513, "KeyTooLongError")],
)  # fmt: skip
def test_refused_keys(key, code):
    with pytest.raises(S3Error) as excinfo:
        names.check_key(key)
    assert excinfo.value.code == code and excinfo.value.status == 400


# -- listing ---------------------------------------------------------------------------


def _meta(key: str) -> ObjectMeta:
    return ObjectMeta(size=len(key), etag="0" * 32, last_modified=0.0)


def _list(keys, **kwargs):
    result = list_keys(KeyIndex(keys), _meta, **kwargs)
    return [k for k, _ in result.contents], result.common_prefixes, result.truncated, result.last


def test_prefix_end():
    assert prefix_end("a/") == "a0"
    assert prefix_end("a\U0010ffff") == "b"
    assert prefix_end("\ud7ff") == "\ue000"
    assert prefix_end("") is None


def test_listing_with_delimiter_skips_whole_prefixes():
    keys = ["a/1", "a/2", "a/b/3", "b", "c/1", "c0"]
    assert _list(keys, delimiter="/") == (["b", "c0"], ["a/", "c/"], False, "c0")
    assert _list(keys, prefix="a/", delimiter="/") == (["a/1", "a/2"], ["a/b/"], False, "a/b/")
    assert _list(keys, delimiter="/", max_keys=2) == (["b"], ["a/"], True, "b")
    # Resuming after a CommonPrefix skips everything under it (S3's NextMarker rule).
    assert _list(keys, delimiter="/", after="a/") == (["b", "c0"], ["c/"], False, "c0")
    assert _list(keys, delimiter="/", after="a/1") == (["b", "c0"], ["c/"], False, "c0")
    assert _list(keys, after="a/2") == (["a/b/3", "b", "c/1", "c0"], [], False, "c0")
    assert _list(keys, prefix="c", after="a") == (["c/1", "c0"], [], False, "c0")
    assert _list(keys, prefix="z") == ([], [], False, None)
    assert _list(keys, max_keys=0) == ([], [], False, None)


def test_listing_multi_character_delimiter():
    keys = ["x--1--a", "x--1--b", "x--2", "y"]
    assert _list(keys, delimiter="--", prefix="x--") == (["x--2"], ["x--1--"], False, "x--2")


def test_listing_skips_unreadable_objects():
    result = list_keys(KeyIndex(["a", "b", "c"]), lambda k: None if k == "b" else _meta(k))
    assert [k for k, _ in result.contents] == ["a", "c"]


def test_key_index_iteration_survives_changes():
    index = KeyIndex(["a", "c", "e"])
    seen = []
    for key in index.iter_from("a"):
        seen.append(key)
        if key == "a":
            index.remove("a")
            index.add("d")
    assert seen == ["a", "c", "d", "e"]
    assert "d" in index and "a" not in index and len(index) == 3


# -- ranges and conditions -----------------------------------------------------------------


@pytest.mark.parametrize(
    "header, expected",
    [("bytes=0-0", (0, 0)), ("bytes=5-", (5, 9)), ("bytes=-3", (7, 9)), ("bytes=2-100", (2, 9)),
     ("bytes=-100", (0, 9)), (None, None), ("bytes=5-2", None), ("items=0-1", None), ("bytes=1-2,3-4", None),
     ("bytes=-", None)],
)  # fmt: skip
def test_parse_range(header, expected):
    assert conditions.parse_range(header, 10) == expected


@pytest.mark.parametrize(
    "header, size", [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=0-", 0), ("bytes=-1", 0)]
)
def test_unsatisfiable_ranges(header, size):
    with pytest.raises(S3Error) as excinfo:
        conditions.parse_range(header, size)
    assert (excinfo.value.status, excinfo.value.code) == (416, "InvalidRange")
    assert excinfo.value.headers["Content-Range"] == f"bytes */{size}"


def test_conditions():
    mtime = 1_700_000_000.5
    before, after = conditions.http_date(mtime - 60), conditions.http_date(mtime + 60)
    check = conditions.check_conditions
    assert check({}, "abc", mtime) is None
    assert check({"if-match": ['"abc"']}, "abc", mtime) is None
    assert check({"if-match": ['"x", "abc"']}, "abc", mtime) is None
    assert check({"if-match": ["*"]}, "abc", mtime) is None
    assert check({"if-none-match": ['"abc"']}, "abc", mtime) == "not-modified"
    assert check({"if-modified-since": [after]}, "abc", mtime) == "not-modified"
    assert check({"if-modified-since": [conditions.http_date(mtime)]}, "abc", mtime) == "not-modified"
    assert check({"if-modified-since": [before]}, "abc", mtime) is None
    assert check({"if-modified-since": ["garbage"]}, "abc", mtime) is None
    assert check({"if-none-match": ['"zzz"'], "if-modified-since": [after]}, "abc", mtime) is None
    for headers in ({"if-match": ['"zzz"']}, {"if-unmodified-since": [before]}):
        with pytest.raises(S3Error) as excinfo:
            check(headers, "abc", mtime)
        assert excinfo.value.status == 412
    with pytest.raises(S3Error):
        check({"x-amz-copy-source-if-none-match": ['"abc"']}, "abc", mtime, prefix="x-amz-copy-source-")


# -- aws-chunked -----------------------------------------------------------------------


def _decode(body: bytes, mode: str = chunked.UNSIGNED_TRAILER):
    out = io.BytesIO()
    decoded = chunked.decode(io.BytesIO(body), mode, None, out.write)
    return out.getvalue(), decoded


def test_unsigned_trailer_decoding():
    data, decoded = _decode(b"5\r\nhello\r\n3\r\nabc\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n")
    assert data == b"helloabc" and decoded.size == 8
    assert decoded.trailers == {"x-amz-checksum-crc32": "AAAAAA=="}


@pytest.mark.parametrize(
    "body",
    [b"", b"5\r\nhel", b"5\r\nhelloXX", b"zz\r\n", b"-1\r\n", b" 1\r\n", b"+1\r\nx\r\n0\r\n\r\n", b"1" * 5000,
     b"0\r\n:\r\n\r\n", b"0\r\nnocolon\r\n\r\n"],
)  # fmt: skip
def test_malformed_chunked_bodies(body):
    with pytest.raises(S3Error) as excinfo:
        _decode(body)
    assert excinfo.value.status == 400


def test_data_after_final_chunk_is_refused():
    with pytest.raises(S3Error):
        _decode(b"0\r\n\r\nextra")


# -- object file format --------------------------------------------------------------------


def test_object_file_round_trip(tmp_path):
    meta = ObjectMeta(size=5, etag="e" * 32, last_modified=1.5, user_meta={"x-amz-meta-a": "b"})
    path = tmp_path / "o"
    with open(path, "wb") as out:
        out.write(b"hello")
        objfile.finish(out, meta)
    with open(path, "rb") as f:
        assert objfile.read_meta(f) == meta
        assert f.read(5) == b"hello"  # positioned at the data


@pytest.mark.parametrize(
    "content", [b"", b"short", b"x" * 100, b"data" + b"{}" + b"\x00" * 7 + b"\x02RSLNOBJ1"]
)
def test_corrupt_object_files_are_detected(tmp_path, content):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(CorruptObject):
        objfile.read_meta_at(path)


def test_truncated_object_file_is_detected(tmp_path):
    path = tmp_path / "o"
    with open(path, "wb") as out:
        out.write(b"hello")
        objfile.finish(out, ObjectMeta(size=6, etag="e", last_modified=0))  # claims one byte more
    with pytest.raises(CorruptObject):
        objfile.read_meta_at(path)


def test_checksum_check_values():
    # The published check values: each algorithm applied to b"123456789".
    assert compute("crc32", b"123456789") == "y/Q5Jg=="  # 0xCBF43926
    assert compute("crc32c", b"123456789") == "4waSgw=="  # 0xE3069283
    assert bytes.fromhex("ae8b14860a799888") == __import__("base64").b64decode(
        compute("crc64nvme", b"123456789")
    )


def test_signed_chunks_are_checked_against_the_seed_signature():
    from resilin.aws.sigv4 import Credentials, Verified, signing_key

    key = signing_key("secret", "20250101", "us-east-1", "s3")
    verified = Verified(
        Credentials("AK", "secret", "1"), "20250101T000000Z", "20250101/us-east-1/s3/aws4_request", key,
        "seed" * 16, chunked.SIGNED, False,
    )  # fmt: skip
    import hashlib

    def body(chunks):
        out, previous = b"", verified.signature
        for chunk in [*chunks, b""]:
            previous = verified.chunk_signature(previous, hashlib.sha256(chunk).hexdigest())
            out += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk + b"\r\n"
        return out

    out = io.BytesIO()
    chunked.decode(io.BytesIO(body([b"abc", b"de"])), chunked.SIGNED, verified, out.write)
    assert out.getvalue() == b"abcde"
    with pytest.raises(S3Error) as excinfo:
        chunked.decode(
            io.BytesIO(body([b"abc", b"de"]).replace(b"de", b"xx")), chunked.SIGNED, verified, out.write
        )
    assert excinfo.value.code == "SignatureDoesNotMatch"
    with pytest.raises(S3Error):  # a chunk without its signature
        chunked.decode(io.BytesIO(b"3\r\nabc\r\n0\r\n\r\n"), chunked.SIGNED, verified, out.write)


def test_spool_files_are_removed_unless_claimed(tmp_path):
    from resilin.storage.spool import SpoolFile

    dropped = SpoolFile(tmp_path)
    dropped.write(b"abc")
    dropped.close()
    assert not dropped.path.exists()

    kept = SpoolFile(tmp_path)
    kept.write(b"body")
    path = kept.claim()
    kept.close()
    kept.close()  # Twisted may close twice (response done, then connection lost)
    assert path.read_bytes() == b"body"


def test_store_metadata_cache_follows_every_change(tmp_path):
    from resilin.storage.store import Store

    store = Store(tmp_path, "us-east-1")
    store.create_bucket("cache-bucket", "111111111111")

    def commit(data: bytes, etag: str) -> None:
        store.commit_object("cache-bucket", "k", _object_file(store, data, etag))

    commit(b"one", "e1")
    f, meta = store.open_object("cache-bucket", "k")
    with f:
        assert (f.read(meta.size), meta.etag) == (b"one", "e1")
    assert store.head_object("cache-bucket", "k").etag == "e1"  # now from the cache
    commit(b"second", "e2")
    assert store.head_object("cache-bucket", "k").etag == "e2"
    f, meta = store.open_object("cache-bucket", "k")
    with f:
        assert (f.read(meta.size), meta.etag) == (b"second", "e2")
    assert store.delete_object("cache-bucket", "k")
    assert store.head_object("cache-bucket", "k") is None
    with pytest.raises(S3Error):
        store.open_object("cache-bucket", "k")


def test_planned_digests_follow_the_upload_headers():
    from resilin.storage.spool_digest import planned_digests

    signed = {b"x-amz-content-sha256": [b"a" * 64], b"x-amz-checksum-crc32": [b"AAAAAA=="]}
    plan = planned_digests(signed)
    assert plan is not None and plan.sha256 is not None and plan.algorithm == "crc32"
    unsigned = {b"x-amz-content-sha256": [b"UNSIGNED-PAYLOAD"], b"x-amz-sdk-checksum-algorithm": [b"CRC32C"]}
    plan = planned_digests(unsigned)
    assert plan is not None and plan.sha256 is None and plan.algorithm == "crc32c"
    assert planned_digests({b"x-amz-content-sha256": [b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"]}) is None
    assert planned_digests({b"x-amz-checksum-md4": [b"x"]}) is None


def test_spooled_bodies_are_hashed_as_they_arrive(tmp_path):
    import hashlib
    import os
    import time

    from resilin.storage.ingest import BodySpec, Digests, check
    from resilin.storage.spool import SpoolFile
    from resilin.storage.spool_digest import PIECE

    data = os.urandom(3 * PIECE + 12345)
    spool = SpoolFile(tmp_path, Digests(True, "crc32"))
    assert spool.digest is not None
    for start in range(0, len(data), 100_000):
        spool.write(data[start : start + 100_000])
    spool.claim()
    digests = spool.digest.wait(len(data))
    assert digests is not None and digests.size == len(data)
    assert digests.md5.digest() == hashlib.md5(data).digest()
    spec = BodySpec(payload_hash=hashlib.sha256(data).hexdigest(), checksum_algorithm="crc32")
    got = check(digests, spec)
    assert got.checksums["crc32"] == compute("crc32", data)
    assert spool.digest.fd == -1  # its own descriptor is closed once the result is taken
    spool.close()
    assert spool.path.exists()  # claimed: the caller's now

    abandoned = SpoolFile(tmp_path, Digests(False, None))
    abandoned.write(data)
    abandoned.close()  # never claimed: the digest stops and the file goes
    assert not abandoned.path.exists()
    digest = abandoned.digest
    assert digest is not None
    for _ in range(100):
        if digest.fd == -1:
            break
        time.sleep(0.01)
    assert digest.fd == -1


def test_response_heads_never_carry_a_line_break_from_a_value():
    from resilin.storage.response_head import encode_head

    head = encode_head(
        b"HTTP/1.1", 200, {"ETag": '"e"', "x-amz-meta-a": "one\r\nInjected: yes"}, [b"Date: d"]
    )
    assert head == (b'HTTP/1.1 200 OK\r\nETag: "e"\r\nx-amz-meta-a: one  Injected: yes\r\nDate: d\r\n\r\n')
    assert encode_head(b"HTTP/1.0", 404, {"Content-Length": "0"}, []).startswith(
        b"HTTP/1.0 404 Not Found\r\n"
    )


def _object_file(store, data: bytes, etag: str):
    tmp = store.temp_path()
    with open(tmp, "wb") as out:
        out.write(data)
        objfile.finish(out, ObjectMeta(size=len(data), etag=etag, last_modified=1.0))
    return tmp


def test_store_write_placed_by_a_worker_is_never_cached_stale(tmp_path):
    from resilin.storage.store import Store

    store = Store(tmp_path, "us-east-1")
    store.create_bucket("pending-bucket", "111111111111")
    store.commit_object("pending-bucket", "k", _object_file(store, b"one", "e1"))
    assert store.head_object("pending-bucket", "k").etag == "e1"  # cached
    write = store.begin_write("pending-bucket", "k")
    assert store.head_object("pending-bucket", "k").etag == "e1"  # read from the file, not cached
    write.place(_object_file(store, b"second", "e2"))  # as a worker thread does
    assert store.head_object("pending-bucket", "k").etag == "e2"
    assert store.list_entry("pending-bucket", "k").etag == "e2"
    write.end()
    write.end()  # a second call does nothing
    assert store.head_object("pending-bucket", "k").etag == "e2"
    assert list(store.index("pending-bucket").iter_from("")) == ["k"]


def test_store_write_deleted_before_it_ends_is_not_listed(tmp_path):
    from resilin.storage.store import Store

    store = Store(tmp_path, "us-east-1")
    store.create_bucket("pending-bucket", "111111111111")
    write = store.begin_write("pending-bucket", "a/" + "x" * 200)  # a long key: in subdirectories
    write.place(_object_file(store, b"data", "e1"))
    with pytest.raises(S3Error):
        store.delete_bucket("pending-bucket")  # a write is still in flight
    assert store.delete_object("pending-bucket", "a/" + "x" * 200)
    write.end()
    assert list(store.index("pending-bucket").iter_from("")) == []
    store.delete_bucket("pending-bucket")


def test_store_write_into_a_deleted_bucket_fails(tmp_path):
    from resilin.storage.store import Store

    store = Store(tmp_path, "us-east-1")
    store.create_bucket("gone-bucket", "111111111111")
    write = store.begin_write("gone-bucket", "k")
    write.end()
    store.delete_bucket("gone-bucket")
    with pytest.raises(S3Error) as raised:
        write.place(_object_file(store, b"data", "e1"))
    assert raised.value.code == "NoSuchBucket"
    assert not (tmp_path / "buckets" / "gone-bucket").exists()


def test_dir_syncer_shares_fsyncs_between_concurrent_callers(tmp_path, monkeypatch):
    import threading
    import time

    from resilin.storage import store as store_module

    calls = []
    started = threading.Event()

    def slow_fsync(path):
        calls.append(path)
        started.set()
        time.sleep(0.2)

    monkeypatch.setattr(store_module, "fsync_dir", slow_fsync)
    syncer = store_module.DirSyncer()
    first = threading.Thread(target=syncer.sync, args=(str(tmp_path),))
    first.start()
    started.wait()
    # These ask while the first fsync runs, so it does not cover them: one more fsync covers them all.
    others = [threading.Thread(target=syncer.sync, args=(str(tmp_path),)) for _ in range(5)]
    for t in others:
        t.start()
    for t in [first, *others]:
        t.join()
    assert len(calls) == 2
    syncer.sync(str(tmp_path))  # nothing under way: a fresh fsync
    assert len(calls) == 3
