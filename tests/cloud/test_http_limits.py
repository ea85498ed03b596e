"""Slow and greedy clients against a local cloud's EC2 endpoint.

The cloud is started with the short deadlines and small caps of the storage and EMR API cases in
tests/service/test_http_limits.py, whose slow clients these are; a client trickles its request one
byte at a time, or opens more connections than a peer may, and must see the server answer and
close the connection.
"""

from __future__ import annotations

import pytest

from tests.localcloud_helpers import cloud_process
from tests.service.test_http_limits import (
    HEADER_TIMEOUT,
    LIMIT_ARGS,
    RATE_WINDOW,
    address,
    assert_closed_when_idle,
    assert_connections_capped,
    status_of,
    trickle,
)


@pytest.fixture(scope="module")
def limited_cloud(redis_server, tmp_path_factory):
    proc = cloud_process(
        redis_server,
        ["localhost/resilin-limits-test:none"],
        tmp_path_factory.mktemp("cloud"),
        limits=LIMIT_ARGS,
    )
    proc.start()
    yield proc
    proc.stop()
    from tests.localcloud_helpers import discard_cloud

    discard_cloud(proc, redis_server)


def ec2_head(length: int) -> bytes:
    return (
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_local_cloud_closes_trickled_headers_and_bodies(limited_cloud):
    addr = address(limited_cloud.endpoint)
    took, response = trickle(addr, ec2_head(100))
    assert took < HEADER_TIMEOUT + 2 and status_of(response) == 408
    took, response = trickle(addr, b"A" * 100_000, prefix=ec2_head(100_000), interval=0.05)
    assert took < RATE_WINDOW * 2 + 2 and status_of(response) == 408


def test_local_cloud_closes_idle_connections_and_caps_connections_per_peer(limited_cloud):
    addr = address(limited_cloud.endpoint)
    assert_closed_when_idle(addr)
    assert_connections_capped(addr)
