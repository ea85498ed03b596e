"""Slow and greedy clients against the real services: storage and the EMR API (a local cloud's
EC2 endpoint in tests/cloud/test_http_limits.py).

Each service is started with short deadlines (seconds) and small caps; a client
trickles its request one byte at a time, or opens more connections than a peer
may, and must see the server answer and close the connection.  Real clients at
normal speeds are not hurt by the same limits.
"""

from __future__ import annotations

import hashlib
import select
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from lxml import etree

from resilin.aws.httplimits import HttpLimits
from resilin.settings import config
from resilin.storage.testing import ALICE, StorageProcess, boto3_client
from tests import emr_api
from tests.service.test_storage_rawhttp import sign

# Short deadlines, so that each attack is over in a few seconds.
HEADER_TIMEOUT = 1.5
RATE_WINDOW = 1.0
MIN_RATE = 2000  # bytes per second
IDLE_TIMEOUT = 2.0
PER_PEER = 6
SPOOL_PER_PEER = 8 * 1024 * 1024
LIMITS = {
    "header_timeout": HEADER_TIMEOUT,
    "rate_window": RATE_WINDOW,
    "body_min_rate": MIN_RATE,
    "idle_timeout": IDLE_TIMEOUT,
    "max_connections_per_peer": PER_PEER,
    "spool_per_peer": SPOOL_PER_PEER,
}
LIMIT_ARGS = [f"{name}={value}" for name, value in LIMITS.items()]


def address(endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint)
    return parts.hostname or "127.0.0.1", parts.port or 80


def trickle(
    addr: tuple[str, int], data: bytes, *, prefix: bytes = b"", interval: float = 0.25, give_up: float = 15.0
) -> tuple[float, bytes]:
    """Send ``prefix`` at once, then ``data`` one byte every ``interval`` s until the server closes.

    Returns how long the server took to close it and everything it sent.  Fails if the
    server still holds the connection after ``give_up`` seconds (or ``data`` runs out).
    """
    start = time.monotonic()
    received = b""
    with socket.create_connection(addr, timeout=5) as sock:
        sock.sendall(prefix)
        for byte in data:
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # reset: the server closed it
                return time.monotonic() - start, received
            readable, _, _ = select.select([sock], [], [], interval)
            if readable:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    return time.monotonic() - start, received
                if not chunk:
                    return time.monotonic() - start, received
                received += chunk
            assert time.monotonic() - start < give_up, f"still open after {give_up}s; got {received!r}"
    raise AssertionError(f"the server read all {len(data)} trickled bytes without closing; got {received!r}")


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def s3_code(response: bytes) -> str:
    body = response.partition(b"\r\n\r\n")[2]
    return etree.fromstring(body).findtext("Code") if body else ""


def assert_closed_when_idle(addr: tuple[str, int]) -> None:
    start = time.monotonic()
    with socket.create_connection(addr, timeout=5) as sock:
        assert read_until_closed(sock) == b""
    assert time.monotonic() - start < IDLE_TIMEOUT + 2


def assert_connections_capped(addr: tuple[str, int]) -> bytes:
    """Open PER_PEER connections, see the next one refused with a 503, and one accepted after one closes."""
    held = [socket.create_connection(addr, timeout=5) for _ in range(PER_PEER)]
    try:
        time.sleep(0.3)  # the server has accepted them all
        with socket.create_connection(addr, timeout=5) as extra:
            refused = read_until_closed(extra, 5)
        assert status_of(refused) == 503, refused
        held.pop().close()
        time.sleep(0.3)
        with socket.create_connection(addr, timeout=5) as again:
            again.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            again.settimeout(5)
            assert status_of(again.recv(65536)) not in (0, 503)
    finally:
        for sock in held:
            sock.close()
    return refused


# -- storage ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    data = tmp_path_factory.mktemp("limited-s3")
    extra = [arg for limit in LIMIT_ARGS for arg in ("--limit", limit)]
    with StorageProcess(data, [ALICE], extra_args=extra) as running:
        boto3_client(running.endpoint, ALICE).create_bucket(Bucket="limits")
        yield running


@pytest.fixture(scope="module")
def default_storage(tmp_path_factory):
    """Storage with its default limits: authenticating uploads before their bodies needs no setting."""
    with StorageProcess(tmp_path_factory.mktemp("default-s3"), [ALICE]) as running:
        boto3_client(running.endpoint, ALICE).create_bucket(Bucket="limits")
        yield running


def spool_files(storage: StorageProcess) -> list[Path]:
    return sorted((storage.data_dir / "tmp").glob("spool-*"))


def signed_head(
    storage: StorageProcess, key: str, length: int, *, creds=ALICE, expect: bool = False
) -> bytes:
    host = urlsplit(storage.endpoint).netloc
    signed = sign("PUT", f"/limits/{key}", host, payload="UNSIGNED-PAYLOAD", creds=creds)
    headers = {**signed.headers, "content-length": str(length)}
    if expect:
        headers["expect"] = "100-continue"
    lines = [f"PUT /limits/{key} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_storage_closes_a_connection_whose_headers_trickle(storage):
    head = signed_head(storage, "trickled-head", 10)
    took, response = trickle(address(storage.endpoint), head)
    assert took < HEADER_TIMEOUT + 2
    assert status_of(response) == 408


def test_storage_closes_a_connection_whose_body_trickles_and_removes_its_spool(storage):
    # Signed, so that the body is taken; then sent far below the minimum rate.
    length = 1024 * 1024
    with socket.create_connection(address(storage.endpoint), timeout=5) as sock:
        sock.sendall(signed_head(storage, "trickled-body", length))
        start = time.monotonic()
        closed_after = None
        response = b""
        while time.monotonic() - start < 15:
            try:
                sock.sendall(b"x" * 10)
            except OSError:
                closed_after = time.monotonic() - start
                break
            readable, _, _ = select.select([sock], [], [], 0.25)
            if readable:
                chunk = sock.recv(65536)
                response += chunk
                if not chunk:
                    closed_after = time.monotonic() - start
                    break
        assert closed_after is not None and closed_after < RATE_WINDOW * 2 + 2
    assert status_of(response) == 400 and s3_code(response) == "RequestTimeout"
    time.sleep(0.2)
    assert spool_files(storage) == []


def test_storage_closes_idle_connections(storage):
    assert_closed_when_idle(address(storage.endpoint))


def test_storage_caps_connections_per_peer(storage):
    refused = assert_connections_capped(address(storage.endpoint))
    assert s3_code(refused) == "SlowDown"


def test_storage_caps_connections_in_total(tmp_path):
    with StorageProcess(tmp_path, [ALICE], extra_args=["--limit", "max_connections=3"]) as capped:
        addr = address(capped.endpoint)
        held = [socket.create_connection(addr, timeout=5) for _ in range(3)]
        try:
            time.sleep(0.3)
            with socket.create_connection(addr, timeout=5) as extra:
                refused = read_until_closed(extra, 5)
            assert status_of(refused) == 503 and s3_code(refused) == "SlowDown"
        finally:
            for sock in held:
                sock.close()


def test_storage_unsigned_large_put_refused_before_its_body(default_storage):
    """An unsigned and a badly signed 4 GiB PUT: 403 from the headers alone, nothing spooled, closed."""
    storage = default_storage
    host = urlsplit(storage.endpoint).netloc
    unsigned = (
        f"PUT /limits/huge HTTP/1.1\r\nHost: {host}\r\nContent-Length: {4 * 1024**3}\r\n"
        "Expect: 100-continue\r\n\r\n"
    ).encode()
    wrong_key = ALICE.__class__(
        ALICE.access_key, "not-the-secret-key-000000000000000000000", ALICE.account_id
    )
    badly_signed = signed_head(storage, "huge", 4 * 1024**3, creds=wrong_key, expect=True)
    for head, code in ((unsigned, "AccessDenied"), (badly_signed, "SignatureDoesNotMatch")):
        with socket.create_connection(address(storage.endpoint), timeout=5) as sock:
            sock.sendall(head)
            response = read_until_closed(sock, 5)  # the whole answer, then the close: no body was sent
        assert b"100 Continue" not in response
        assert status_of(response) == 403 and s3_code(response) == code, response
        assert spool_files(storage) == []


def test_storage_unsigned_put_answered_to_a_client_that_does_not_wait(default_storage):
    """A client sending its 20 MiB body straight after the headers still reads the 403; nothing is spooled."""
    import threading

    storage = default_storage
    host = urlsplit(storage.endpoint).netloc
    length = 20 * 1024 * 1024
    head = f"PUT /limits/eager HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n\r\n".encode()
    with socket.create_connection(address(storage.endpoint), timeout=10) as sock:
        sent: list[bool] = []
        sender = threading.Thread(target=lambda: sent.append(sock.sendall(head + b"z" * length) is None))
        sender.start()
        response = read_until_closed(sock, 10)
        sender.join(10)
    assert status_of(response) == 403 and s3_code(response) == "AccessDenied", response[:300]
    assert sent == [True], "the server read (and dropped) the body rather than resetting the connection"
    assert spool_files(storage) == []


def test_storage_refuses_bodies_past_the_peers_allowance(storage):
    with socket.create_connection(address(storage.endpoint), timeout=5) as sock:
        sock.sendall(signed_head(storage, "too-much", SPOOL_PER_PEER + 1, expect=True))
        response = read_until_closed(sock, 5)
    assert status_of(response) == 503 and s3_code(response) == "SlowDown"
    assert spool_files(storage) == []


def test_storage_real_clients_unhurt_by_the_limits(storage):
    """boto3 uploads (single PUT and multipart) and reads at normal speed, reusing kept-alive connections."""
    s3 = boto3_client(storage.endpoint, ALICE)
    body = bytes(range(256)) * (6 * 1024 * 1024 // 256)  # 6 MiB: under the peer's allowance
    s3.put_object(Bucket="limits", Key="normal", Body=body)
    time.sleep(IDLE_TIMEOUT / 2)
    got = s3.get_object(Bucket="limits", Key="normal")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
    time.sleep(IDLE_TIMEOUT + 1)  # the pooled connection was closed by the server: botocore reconnects
    assert s3.head_object(Bucket="limits", Key="normal")["ContentLength"] == len(body)


def test_storage_serves_many_parallel_readers_from_one_peer(default_storage):
    """Hadoop's readers: a hundred connections from one node, each reading, under the default limits."""
    from concurrent.futures import ThreadPoolExecutor

    s3 = boto3_client(default_storage.endpoint, ALICE, max_pool_connections=100)
    s3.put_object(Bucket="limits", Key="shared", Body=b"r" * 300_000)
    with ThreadPoolExecutor(100) as pool:
        sizes = list(
            pool.map(lambda _: len(s3.get_object(Bucket="limits", Key="shared")["Body"].read()), range(300))
        )
    assert sizes == [300_000] * 300


def test_limits_are_read_from_the_configuration_and_checked(tmp_path):
    home = tmp_path / "home"
    config.load(home)
    toml = home / "resilin.toml"
    toml.write_text(toml.read_text() + "\n[http]\nheader_timeout = 5\nmax_connections_per_peer = 64\n")
    limits = config.load(home).http_limits
    assert (limits.header_timeout, limits.max_connections_per_peer) == (5.0, 64)
    assert limits.body_min_rate == HttpLimits().body_min_rate
    for bad in ("header_timout = 5", "body_min_rate = 0", 'idle_timeout = "soon"'):
        toml.write_text(toml.read_text().split("[http]")[0] + f"[http]\n{bad}\n")
        with pytest.raises(config.ConfigError, match=r"\[http\]"):
            config.load(home)


# -- the EMR API --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited_api(redis_server, tmp_path_factory):
    table = "\n[http]\n" + "".join(f"{name} = {value}\n" for name, value in LIMITS.items())
    server = emr_api.start(tmp_path_factory.mktemp("limited-api"), redis_server.url, table)
    yield server
    server.stop()


def emr_head(length: int) -> bytes:
    return (
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n"
        f"X-Amz-Target: ElasticMapReduce.ListClusters\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_api_closes_trickled_headers_and_bodies(limited_api):
    addr = ("127.0.0.1", limited_api.port)
    took, response = trickle(addr, emr_head(100))
    assert took < HEADER_TIMEOUT + 2 and status_of(response) == 408
    took, response = trickle(addr, b"{" * 100_000, prefix=emr_head(100_000), interval=0.05)
    assert took < RATE_WINDOW * 2 + 2 and status_of(response) == 408


def test_api_closes_idle_connections_and_caps_connections_per_peer(limited_api):
    addr = ("127.0.0.1", limited_api.port)
    assert_closed_when_idle(addr)
    assert_connections_capped(addr)
    assert limited_api.client().list_clusters()["Clusters"] is not None  # real clients still served
