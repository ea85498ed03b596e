"""A 5 GiB object (S3's largest single PUT) through the service with flat memory.

The body is generated on the fly while it is sent and hashed as it is read
back, so neither side of the test holds it; the service's peak resident set
(VmHWM) must stay far below the object's size.

It writes 5 GiB to disk and reads it back twice: a few minutes on a busy
2-core machine (about 5 with other suites running), so it runs only with
RESILIN_BIG_TESTS=1.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from resilin.storage.testing import ALICE, StorageProcess, boto3_client

MiB = 1024 * 1024
SIZE = 5 * 1024 * MiB
PIECE = 4 * MiB
MAX_RSS_MIB = 200


def _pieces(size: int):
    """Deterministic, non-repeating-looking data: a random block with the offset stamped in."""
    block = bytearray(os.urandom(PIECE))
    for offset in range(0, size, PIECE):
        block[:8] = offset.to_bytes(8, "big")
        yield bytes(block[: min(PIECE, size - offset)])


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.timeout(1200)
@pytest.mark.skipif(
    os.environ.get("RESILIN_BIG_TESTS") != "1", reason="set RESILIN_BIG_TESTS=1 (5 GiB, minutes)"
)
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_five_gib_object_streams_with_flat_memory(tmp_path):
    if shutil.disk_usage(tmp_path).free < 2 * SIZE + 2 * 1024 * MiB:
        pytest.skip("not enough free disk for a 5 GiB object")
    with StorageProcess(tmp_path, [ALICE]) as service:
        assert service.process is not None
        s3 = boto3_client(service.endpoint, ALICE, read_timeout=600)
        s3.create_bucket(Bucket="huge")
        baseline = peak_rss_mib(service.process.pid)

        url = s3.generate_presigned_url(
            "put_object", Params={"Bucket": "huge", "Key": "5gib"}, ExpiresIn=3600
        )
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
        conn.putrequest("PUT", f"{parts.path}?{parts.query}", skip_accept_encoding=True)
        conn.putheader("Content-Length", str(SIZE))
        conn.endheaders()
        sent = hashlib.md5()
        for piece in _pieces(SIZE):
            sent.update(piece)
            conn.sock.sendall(piece)
        reply = conn.getresponse()
        body = reply.read()
        conn.close()
        assert reply.status == 200, body
        assert reply.getheader("ETag") == f'"{sent.hexdigest()}"'

        head = s3.head_object(Bucket="huge", Key="5gib")
        assert head["ContentLength"] == SIZE
        got = s3.get_object(Bucket="huge", Key="5gib")["Body"]
        received, count = hashlib.md5(), 0
        for chunk in got.iter_chunks(PIECE):
            received.update(chunk)
            count += len(chunk)
        assert count == SIZE and received.hexdigest() == sent.hexdigest()
        tail = s3.get_object(Bucket="huge", Key="5gib", Range=f"bytes={SIZE - 16}-")["Body"].read()
        assert len(tail) == 16

        peak = peak_rss_mib(service.process.pid)
        print(f"service peak RSS: {peak:.1f} MiB (at start {baseline:.1f} MiB)")
        assert peak < MAX_RSS_MIB
        s3.delete_object(Bucket="huge", Key="5gib")
