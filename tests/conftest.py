"""What every tier shares: the tier markers, the extended suites and a private Redis.

The tests are in one folder per tier, by what they start: unit/ (nothing: no Redis, no sockets, no
child processes), service/ (Redis, child processes, moto, HTTP servers), cloud/ (podman containers
of a local cloud) and cluster/ (real Hadoop clusters).  Each test is marked with its tier, so that
``pytest -m unit`` selects what ``pytest tests/unit`` does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from resilin.service.redis_server import PrivateRedis

TESTS = Path(__file__).parent
TIERS = ("unit", "service", "cloud", "cluster")

# The cluster suites that start several clusters each (about 25 minutes together on a
# two-core machine); `make test` runs them with the rest, `make test-extended` runs only them.
EXTENDED_MODULES: set[str] = {
    "test_cluster_awscli.py",
    "test_cluster_semantics.py",
    "test_mrjob_emr.py",
    "test_hadoop_cluster.py",
}


def tier_of(path: Path) -> str | None:
    """The tier folder a test module of tests/ is in; one outside them is a mistake, refused."""
    if not path.is_relative_to(TESTS):
        return None
    parts = path.relative_to(TESTS).parts
    if len(parts) < 2 or parts[0] not in TIERS:
        raise pytest.UsageError(f"{path} is in no tier: move it into tests/{{{','.join(TIERS)}}}/")
    return parts[0]


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = tier_of(item.path)
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))
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
