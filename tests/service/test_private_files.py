"""Data at rest is Resilin's user's alone: objects, spooled bodies, Redis's append-only file and
the home holding them are not readable by other local users, also in homes made by an earlier
version with open modes."""

from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path
from urllib.parse import urlsplit

from resilin.service.redis_server import PrivateRedis
from resilin.settings import config
from resilin.settings.installation import installation_id
from resilin.storage.testing import ALICE, StorageProcess, boto3_client
from tests import emr_api
from tests.service.test_storage_rawhttp import sign


def open_to_others(root: Path) -> list[str]:
    """Everything under ``root`` (itself included) that group or others may read, write or enter."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if not path.is_symlink() and mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {mode:o}")
    return found


def test_storage_objects_and_spooled_bodies_are_private(tmp_path):
    data = tmp_path / "storage"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)  # as an earlier version left it
    with StorageProcess(data, [ALICE]) as storage:
        s3 = boto3_client(storage.endpoint, ALICE)
        s3.create_bucket(Bucket="private")
        s3.put_object(Bucket="private", Key="small", Body=b"secret")
        s3.put_object(Bucket="private", Key="large", Body=b"s" * (2 * 1024 * 1024))
        upload = s3.create_multipart_upload(Bucket="private", Key="parts")
        s3.upload_part(
            Bucket="private", Key="parts", UploadId=upload["UploadId"], PartNumber=1, Body=b"p" * 1024
        )
        # A body still arriving sits in a spool file: private too.
        parts = urlsplit(storage.endpoint)
        signed = sign("PUT", "/private/arriving", parts.netloc, payload="UNSIGNED-PAYLOAD")
        head = "".join(f"{k}: {v}\r\n" for k, v in {**signed.headers, "content-length": "1000000"}.items())
        with socket.create_connection((parts.hostname, parts.port)) as sock:
            sock.sendall(f"PUT /private/arriving HTTP/1.1\r\n{head}\r\n".encode() + b"x" * 200_000)
            deadline = time.monotonic() + 10
            while not list((data / "tmp").glob("spool-*")):
                assert time.monotonic() < deadline, "the body was never spooled"
                time.sleep(0.05)
            assert open_to_others(data) == []
    assert list(data.rglob("*.obj")), "the objects are where the check looked"


def test_redis_append_only_file_is_private(tmp_path):
    directory = tmp_path / "redis"
    directory.mkdir()
    os.chmod(directory, 0o755)
    server = PrivateRedis(directory).start()
    try:
        server.client().set("step-args", "--password=hunter2")
        server.client().bgrewriteaof()
        time.sleep(0.5)
    finally:
        server.stop()
    assert any("appendonly" in p.name for p in directory.rglob("*")), "the AOF is where the check looked"
    assert open_to_others(directory) == []


def test_api_tightens_an_existing_home(tmp_path, redis_server):
    home = tmp_path / "home"
    for path in (home, home / "data", home / "data" / "storage"):
        path.mkdir()
        os.chmod(path, 0o755)
    (home / "resilin.toml").touch()
    os.chmod(home / "resilin.toml", 0o644)  # the key file, as an editor may leave it (start keeps the mode)
    server = emr_api.start(home, redis_server.url)
    try:
        for path in (home, home / "data", home / "data" / "storage"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
        assert stat.S_IMODE((home / "resilin.toml").stat().st_mode) == 0o600
    finally:
        server.stop()


def test_new_home_and_installation_id_are_private(tmp_path):
    home = tmp_path / "fresh"
    config.load(home)
    installation_id(home)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "installation-id").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "resilin.toml").stat().st_mode) == 0o600
