"""Shared fixtures: real servers started for the tests."""

from __future__ import annotations

import pytest

from resilin.redis_server import PrivateRedis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = PrivateRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server):
    client = redis_server.client()
    client.flushall()
    yield client
    client.flushall()
