"""GetObjectTorrent on the storage service, through boto3: the metainfo file is BEP 3's, its
pieces are the SHA-1s of the object's bytes, and its web seed (BEP 19) serves each piece to an
anonymous client when the object is public — what a BitTorrent client checks as it downloads."""

from __future__ import annotations

import hashlib
import os
import urllib.request

import bencodepy
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from resilin.storage.testing import ALICE, BOB, StorageProcess, boto3_client
from resilin.storage.torrent import PIECE_BYTES

SIZE = 3 * PIECE_BYTES + 12345  # a short last piece


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with StorageProcess(tmp_path_factory.mktemp("s3t"), [ALICE, BOB]) as running:
        yield running


def _error(excinfo) -> tuple[int, str]:
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def test_the_torrent_describes_the_objects_bytes_and_its_web_seed_serves_them(service):
    s3 = boto3_client(service.endpoint, ALICE)
    s3.create_bucket(Bucket="seeded")
    data = os.urandom(SIZE)
    s3.put_object(Bucket="seeded", Key="films/Avatar.mpg", Body=data, ACL="public-read")

    answer = s3.get_object_torrent(Bucket="seeded", Key="films/Avatar.mpg")
    assert answer["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/x-bittorrent"
    meta = bencodepy.decode(answer["Body"].read())
    info = meta[b"info"]
    assert info[b"name"] == b"Avatar.mpg" and info[b"length"] == SIZE
    assert info[b"piece length"] == PIECE_BYTES
    expected = [hashlib.sha1(data[i : i + PIECE_BYTES]).digest() for i in range(0, SIZE, PIECE_BYTES)]
    assert info[b"pieces"] == b"".join(expected) and len(expected) == 4

    # The web seed is the object's URL: an anonymous client fetches each piece with a range GET
    # and checks it against the torrent, as a BitTorrent client does.
    [seed] = meta[b"url-list"]
    assert seed.decode().endswith("/seeded/films/Avatar.mpg")
    for number, digest in enumerate(expected):
        start = number * PIECE_BYTES
        end = min(start + PIECE_BYTES, SIZE) - 1
        request = urllib.request.Request(seed.decode(), headers={"Range": f"bytes={start}-{end}"})
        with urllib.request.urlopen(request, timeout=10) as piece:
            assert hashlib.sha1(piece.read()).digest() == digest


def test_a_torrent_follows_the_objects_permissions_and_versions(service):
    s3, other = boto3_client(service.endpoint, ALICE), boto3_client(service.endpoint, BOB)
    s3.create_bucket(Bucket="private-films")
    s3.put_bucket_versioning(Bucket="private-films", VersioningConfiguration={"Status": "Enabled"})
    old = s3.put_object(Bucket="private-films", Key="f", Body=b"old")["VersionId"]
    s3.put_object(Bucket="private-films", Key="f", Body=b"new, longer")

    by_version = bencodepy.decode(_versioned_torrent(service, old))
    assert by_version[b"info"][b"length"] == 3
    assert by_version[b"info"][b"pieces"] == hashlib.sha1(b"old").digest()

    with pytest.raises(ClientError) as refused:
        other.get_object_torrent(Bucket="private-films", Key="f")
    assert _error(refused) == (403, "AccessDenied")
    with pytest.raises(ClientError) as missing:
        s3.get_object_torrent(Bucket="private-films", Key="nothing")
    assert _error(missing) == (404, "NoSuchKey")


def _versioned_torrent(service, version_id: str) -> bytes:
    """GET ?torrent&versionId= signed by hand: boto3's GetObjectTorrent has no VersionId."""
    url = f"{service.endpoint}/private-films/f?torrent&versionId={version_id}"
    request = AWSRequest("GET", url, headers={"x-amz-content-sha256": hashlib.sha256(b"").hexdigest()})
    S3SigV4Auth(Credentials(ALICE.access_key, ALICE.secret_key), "s3", "us-east-1").add_auth(request)
    with urllib.request.urlopen(
        urllib.request.Request(url, headers=dict(request.headers)), timeout=10
    ) as got:
        return got.read()
