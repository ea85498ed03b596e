"""Shared fixtures: real servers started for the tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import resilin.provisioners.localcloud as localcloud_pkg
from resilin.service.redis_server import PrivateRedis

# The cluster suites that start several clusters each (about 25 minutes together on a
# two-core machine); `make test` runs them with the rest, `make test-extended` runs only them.
EXTENDED_MODULES: set[str] = {
    "test_cluster_awscli.py",
    "test_cluster_semantics.py",
    "test_mrjob_emr.py",
    "test_hadoop_cluster.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in EXTENDED_MODULES:
            item.add_marker(pytest.mark.extended)


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


@pytest.fixture(scope="session")
def node_image() -> str:
    """The node image under test: $RESILIN_TEST_NODE_IMAGE, else the small stand-in built here."""
    if os.environ.get("RESILIN_TEST_NODE_IMAGE"):
        return os.environ["RESILIN_TEST_NODE_IMAGE"]
    script = Path(localcloud_pkg.__file__).parent / "testnode.sh"
    return subprocess.run([str(script)], check=True, capture_output=True, text=True).stdout.strip()
