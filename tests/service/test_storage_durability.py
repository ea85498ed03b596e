"""Crash safety and concurrency: the service killed mid-upload, concurrent writers of one key.

The service runs in a child process and is killed with SIGKILL while an
upload streams in or is being written out; after a restart on the same data
directory the previous object must be intact, no partial object visible, and
the service healthy.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from resilin.storage.testing import ALICE, StorageProcess, boto3_client

MiB = 1024 * 1024


def _presigned_put(s3, bucket: str, key: str) -> str:
    return s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=600)


def _start_put(url: str, length: int) -> http.client.HTTPConnection:
    """Open a PUT of ``length`` bytes and send only its headers."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.putrequest("PUT", f"{parts.path}?{parts.query}", skip_accept_encoding=True)
    conn.putheader("Content-Length", str(length))
    conn.endheaders()
    return conn


def _kill(service: StorageProcess) -> None:
    assert service.process is not None
    service.process.kill()
    service.process.wait(10)
    service.stop()


def _visible_files(data_dir: Path) -> list[Path]:
    """Files a restarted service could mistake for objects (tmp/ is emptied at start)."""
    return [p for p in (data_dir / "buckets").rglob("*") if p.is_file()]


def _check_healthy(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="after-restart", Body=b"fine")
    assert s3.get_object(Bucket=bucket, Key="after-restart")["Body"].read() == b"fine"
    s3.delete_object(Bucket=bucket, Key="after-restart")


def test_sigkill_while_the_body_streams_in_keeps_the_previous_object(tmp_path):
    previous = os.urandom(3 * MiB)
    with StorageProcess(tmp_path, [ALICE]) as service:
        s3 = boto3_client(service.endpoint, ALICE)
        s3.create_bucket(Bucket="crash")
        s3.put_object(Bucket="crash", Key="victim", Body=previous, Metadata={"version": "1"})
        conn = _start_put(_presigned_put(s3, "crash", "victim"), 64 * MiB)
        conn.send(os.urandom(20 * MiB))  # a third of the body, then the service dies
        time.sleep(0.2)
        _kill(service)
        conn.close()

    with StorageProcess(tmp_path, [ALICE]) as service:
        s3 = boto3_client(service.endpoint, ALICE)
        got = s3.get_object(Bucket="crash", Key="victim")
        assert got["Body"].read() == previous and got["Metadata"] == {"version": "1"}
        assert [o["Key"] for o in s3.list_objects_v2(Bucket="crash")["Contents"]] == ["victim"]
        assert not list((tmp_path / "tmp").iterdir())
        _check_healthy(s3, "crash")


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15, 0.3])
def test_sigkill_while_the_object_is_written_out(tmp_path, delay):
    """Killed after the whole body arrived, while it is hashed, written, fsynced and renamed.

    Depending on when the kill lands the key holds the old or the new object,
    but always a whole one whose data matches its metadata.
    """
    previous, new = os.urandom(2 * MiB), os.urandom(96 * MiB)
    with StorageProcess(tmp_path, [ALICE]) as service:
        s3 = boto3_client(service.endpoint, ALICE)
        s3.create_bucket(Bucket="crash")
        s3.put_object(Bucket="crash", Key="victim", Body=previous)
        conn = _start_put(_presigned_put(s3, "crash", "victim"), len(new))
        conn.sock.sendall(new)
        time.sleep(delay)
        _kill(service)
        conn.close()

    with StorageProcess(tmp_path, [ALICE]) as service:
        s3 = boto3_client(service.endpoint, ALICE)
        got = s3.get_object(Bucket="crash", Key="victim")
        body = got["Body"].read()
        assert body in (previous, new)
        assert got["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
        assert got["ContentLength"] == len(body)
        assert not list((tmp_path / "tmp").iterdir())
        assert len(_visible_files(tmp_path)) == 2  # bucket.json and the one object
        _check_healthy(s3, "crash")


def test_sigkill_during_multipart_upload_keeps_parts_invisible(tmp_path):
    with StorageProcess(tmp_path, [ALICE]) as service:
        s3 = boto3_client(service.endpoint, ALICE)
        s3.create_bucket(Bucket="crash")
        upload = s3.create_multipart_upload(Bucket="crash", Key="big")["UploadId"]
        etag = s3.upload_part(Bucket="crash", Key="big", UploadId=upload, PartNumber=1, Body=b"a" * 5 * MiB)
        url = s3.generate_presigned_url(
            "upload_part",
            Params={"Bucket": "crash", "Key": "big", "UploadId": upload, "PartNumber": 2},
            ExpiresIn=600,
        )
        conn = _start_put(url, 32 * MiB)
        conn.send(b"b" * 8 * MiB)
        time.sleep(0.2)
        _kill(service)
        conn.close()

    with StorageProcess(tmp_path, [ALICE]) as service:
        s3 = boto3_client(service.endpoint, ALICE)
        assert s3.list_objects_v2(Bucket="crash")["KeyCount"] == 0
        parts = s3.list_parts(Bucket="crash", Key="big", UploadId=upload)["Parts"]
        assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, etag["ETag"])]
        s3.upload_part(Bucket="crash", Key="big", UploadId=upload, PartNumber=2, Body=b"b" * MiB)
        parts = s3.list_parts(Bucket="crash", Key="big", UploadId=upload)["Parts"]
        s3.complete_multipart_upload(
            Bucket="crash",
            Key="big",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]},
        )
        assert s3.get_object(Bucket="crash", Key="big")["Body"].read() == b"a" * 5 * MiB + b"b" * MiB


def test_concurrent_puts_of_one_key_leave_one_complete_object(tmp_path):
    bodies = [bytes([i]) * (2 * MiB + i) for i in range(8)]
    with StorageProcess(tmp_path, [ALICE]) as service:
        s3 = boto3_client(service.endpoint, ALICE, max_pool_connections=8)
        s3.create_bucket(Bucket="race")
        start = threading.Barrier(len(bodies))

        def put(body: bytes) -> str:
            start.wait()
            return s3.put_object(Bucket="race", Key="contended", Body=body)["ETag"]

        for _ in range(3):
            with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
                etags = list(pool.map(put, bodies))
            got = s3.get_object(Bucket="race", Key="contended")
            body = got["Body"].read()
            assert body in bodies
            assert got["ETag"] == etags[bodies.index(body)]
            assert got["ContentLength"] == len(body)
        assert [o["Key"] for o in s3.list_objects_v2(Bucket="race")["Contents"]] == ["contended"]


def test_concurrent_conditional_creates_let_exactly_one_win(tmp_path):
    with StorageProcess(tmp_path, [ALICE]) as service:
        s3 = boto3_client(service.endpoint, ALICE, max_pool_connections=8)
        s3.create_bucket(Bucket="race")
        start = threading.Barrier(8)

        def create(i: int) -> bool:
            start.wait()
            try:
                s3.put_object(Bucket="race", Key="once", Body=bytes([i]) * MiB, IfNoneMatch="*")
            except ClientError as exc:
                assert exc.response["Error"]["Code"] in ("PreconditionFailed", "ConditionalRequestConflict")
                return False
            return True

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            won = list(pool.map(create, range(8)))
        assert won.count(True) == 1
        body = s3.get_object(Bucket="race", Key="once")["Body"].read()
        assert body == bytes([won.index(True)]) * MiB
