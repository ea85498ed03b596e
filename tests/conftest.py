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


@pytest.fixture(scope="session")
def emr_api(redis_server, tmp_path_factory):
    """The EMR API alone (no orchestrator) over the session's Redis; see tests/emr_api.py."""
    from tests import emr_api as api

    server = api.start(tmp_path_factory.mktemp("emr-api"), redis_server.url)
    yield server
    server.stop()
