"""Hadoop itself against the storage service: ``hadoop fs``, distcp and a MapReduce job on s3a://.

One node-image container on its own podman network runs Hadoop 3.5.0 (S3A,
AWS SDK for Java v2); the storage service runs on this host, bound to the
network's gateway.  Jobs run in MapReduce local mode inside the container.
What S3A sends is exercised as it comes: aws-chunked bodies with signed
chunks (and signed trailers carrying CRC32C when a checksum algorithm is
configured), multipart uploads, copies with x-amz-copy-source-if-match, GETs
with If-Match, bulk deletes with Content-MD5 and CRC32.
"""

from __future__ import annotations

import collections
import hashlib
import ipaddress
import os
import random
import shutil
import subprocess
import uuid

import pytest

from resilin.aws.sigv4 import Credentials
from resilin.storage.testing import StorageProcess, boto3_client
from tests.localcloud_helpers import free_subnet

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
]

IMAGE = "localhost/resilin-node:latest"
BUCKET = "hadoop-data"
CREDS = Credentials("AKIAHADOOPTEST000001", "hadoop/test/secret/0000000000000000000", "111111111111")
EXAMPLES = "/usr/lib/hadoop-mapreduce/hadoop-mapreduce-examples.jar"
MiB = 1024 * 1024


def _run(args: list[str], *, input: bytes | None = None, timeout: float = 300, check: bool = True):
    proc = subprocess.run(args, input=input, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {args}\n"
            f"--- stdout\n{proc.stdout[-4000:].decode(errors='replace')}\n"
            f"--- stderr\n{proc.stderr[-4000:].decode(errors='replace')}"
        )
    return proc


def _site(props: dict[str, str]) -> str:
    body = "".join(f"  <property><name>{k}</name><value>{v}</value></property>\n" for k, v in props.items())
    return f'<?xml version="1.0"?>\n<configuration>\n{body}</configuration>\n'


class Node:
    def __init__(self, name: str) -> None:
        self.name = name

    def sh(self, script: str, *, input: bytes | None = None, timeout: float = 600) -> str:
        command = ["podman", "exec", "-i", "--user", "hadoop", self.name, "bash", "-c", script]
        return _run(command, input=input, timeout=timeout).stdout.decode()

    def write(self, path: str, content: bytes) -> None:
        self.sh(f"cat > {path}", input=content)


def _create_network(name: str, attempts: int = 5) -> tuple[str, str]:
    """Create an isolated network named ``name`` on a free /24; returns (name, gateway address).

    Another run may take the same subnet between the look-up and the creation
    (podman then refuses it): another free one is tried.
    """
    for attempt in range(attempts):
        subnet = free_subnet()
        created = _run(
            ["podman", "network", "create", "--opt", "isolate=true", "--subnet", subnet, name],
            check=attempt == attempts - 1,
        )
        if created.returncode == 0:
            return name, str(next(ipaddress.ip_network(subnet).hosts()))
    raise AssertionError("no free subnet for the test network")


@pytest.fixture(scope="module")
def hadoop(tmp_path_factory):
    if _run(["podman", "image", "exists", IMAGE], check=False).returncode != 0:
        pytest.skip(f"{IMAGE} is not built (docker/node/build.sh)")
    # A network, subnet and container of this run's own, so that runs at once never clash.
    name = f"resilin-storagetest-{uuid.uuid4().hex[:8]}"
    network, gateway = _create_network(name)
    try:
        # The bridge gets its gateway address once a container is attached: start it first.
        _run(["podman", "run", "-d", "--name", name, "--network", network, IMAGE])
        data_dir = tmp_path_factory.mktemp("hadoop-s3")
        with StorageProcess(data_dir, [CREDS], host=gateway) as service:
            s3 = boto3_client(service.endpoint, CREDS)
            s3.create_bucket(Bucket=BUCKET)
            node = Node(name)
            core = {
                "fs.s3a.endpoint": service.endpoint,
                "fs.s3a.path.style.access": "true",
                "fs.s3a.connection.ssl.enabled": "false",
                "fs.s3a.endpoint.region": "us-east-1",
                "fs.s3a.access.key": CREDS.access_key,
                "fs.s3a.secret.key": CREDS.secret_key,
                "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
                "fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
                "fs.s3a.retry.limit": "2",
                "fs.s3a.attempts.maximum": "2",
            }
            node.write("/etc/hadoop/core-site.xml", _site(core).encode())
            yield node, s3
    finally:
        _run(["podman", "rm", "-f", "-t", "2", name], check=False)
        _run(["podman", "network", "rm", "-f", network], check=False)


def _keys(s3, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_hadoop_fs_put_get_ls_cat_rm(hadoop):
    node, s3 = hadoop
    text = "".join(f"line {i}\n" for i in range(50_000)).encode()
    node.write("/tmp/local.txt", text)
    node.sh(
        f"hadoop fs -mkdir -p s3a://{BUCKET}/fs && hadoop fs -put /tmp/local.txt s3a://{BUCKET}/fs/local.txt"
    )
    assert s3.get_object(Bucket=BUCKET, Key="fs/local.txt")["Body"].read() == text

    listing = node.sh(f"hadoop fs -ls s3a://{BUCKET}/fs/")
    assert f"s3a://{BUCKET}/fs/local.txt" in listing and str(len(text)) in listing
    assert node.sh(f"hadoop fs -cat s3a://{BUCKET}/fs/local.txt").encode() == text
    node.sh(f"hadoop fs -get s3a://{BUCKET}/fs/local.txt /tmp/back.txt && cmp /tmp/back.txt /tmp/local.txt")

    # An object written by another client reads back through s3:// (S3A bound to the s3 scheme,
    # which is what a cumulus:// location becomes).
    s3.put_object(Bucket=BUCKET, Key="fs/from-boto3.txt", Body=b"written by boto3\n")
    assert node.sh(f"hadoop fs -cat s3://{BUCKET}/fs/from-boto3.txt") == "written by boto3\n"

    node.sh(f"hadoop fs -rm -r s3a://{BUCKET}/fs")
    assert _keys(s3, "fs/") == []


def test_multipart_upload_with_crc32c_trailers(hadoop):
    node, s3 = hadoop
    data = random.Random(7).randbytes(13 * MiB + 12345)
    node.write("/tmp/big.bin", data)
    opts = (
        "-D fs.s3a.multipart.size=5M -D fs.s3a.multipart.threshold=5M "
        "-D fs.s3a.create.checksum.algorithm=CRC32C -D fs.s3a.checksum.validation=true"
    )
    node.sh(
        f"hadoop fs {opts} -mkdir -p s3a://{BUCKET}/mp && hadoop fs {opts} -put /tmp/big.bin s3a://{BUCKET}/mp/"
    )
    got = s3.get_object(Bucket=BUCKET, Key="mp/big.bin")
    assert hashlib.md5(got["Body"].read()).hexdigest() == hashlib.md5(data).hexdigest()
    node.sh(
        f"hadoop fs {opts} -get s3a://{BUCKET}/mp/big.bin /tmp/big.back && cmp /tmp/big.bin /tmp/big.back"
    )
    node.sh(f"hadoop fs -rm -r s3a://{BUCKET}/mp")
    assert _keys(s3, "mp/") == []
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_distcp_between_s3a_locations(hadoop):
    node, s3 = hadoop
    files = {f"src/part-{i}.txt": os.urandom(200_000 + i) for i in range(3)}
    for key, body in files.items():
        s3.put_object(Bucket=BUCKET, Key=f"distcp/{key}", Body=body)
    node.sh(
        f"hadoop distcp -Dmapreduce.framework.name=local s3a://{BUCKET}/distcp/src s3a://{BUCKET}/distcp/dst",
        timeout=900,
    )
    for key, body in files.items():
        copied = key.replace("src/", "dst/", 1)
        assert s3.get_object(Bucket=BUCKET, Key=f"distcp/{copied}")["Body"].read() == body


def test_mapreduce_wordcount_reads_and_writes_s3a(hadoop):
    node, s3 = hadoop
    rng = random.Random(42)
    words = ["alpha", "beta", "gamma", "delta", "cumulus", "resilin", "hadoop", "s3a"]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(5000)]
    s3.put_object(Bucket=BUCKET, Key="wc/input/a.txt", Body="\n".join(lines[:2500]).encode() + b"\n")
    s3.put_object(Bucket=BUCKET, Key="wc/input/b.txt", Body="\n".join(lines[2500:]).encode() + b"\n")
    node.sh(
        f"hadoop jar {EXAMPLES} wordcount -Dmapreduce.framework.name=local "
        f"s3a://{BUCKET}/wc/input s3://{BUCKET}/wc/output",
        timeout=900,
    )
    assert "wc/output/_SUCCESS" in _keys(s3, "wc/output/")
    output = s3.get_object(Bucket=BUCKET, Key="wc/output/part-r-00000")["Body"].read().decode()
    counted = {word: int(n) for word, n in (line.split("\t") for line in output.splitlines())}
    assert counted == dict(collections.Counter(w for line in lines for w in line.split()))
    # Nothing of the job's temporary layout is left behind.
    assert not [k for k in _keys(s3, "wc/output/") if "_temporary" in k]
