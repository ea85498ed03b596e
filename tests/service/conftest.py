"""The service tier's servers: the EMR API alone over the session's Redis, and moto's EC2."""

from __future__ import annotations

import pytest
from moto.server import ThreadedMotoServer

from resilin.clouds import provisioning
from resilin.jobflows.store import JobFlowStore
from resilin.provisioners.ec2client import EC2Client
from tests.service import cluster_harness


@pytest.fixture(scope="session")
def emr_api(redis_server, tmp_path_factory):
    """The EMR API alone (no orchestrator) over the session's Redis; see tests/emr_api.py."""
    from tests import emr_api as api

    server = api.start(tmp_path_factory.mktemp("emr-api"), redis_server.url)
    yield server
    server.stop()


@pytest.fixture
def emr(emr_api, redis_client):
    return emr_api.client("alice")


@pytest.fixture
def store(redis_client):
    return JobFlowStore(redis_client)


@pytest.fixture(scope="module")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def fake_nodes(monkeypatch):
    """Instances are reached as fake nodes; their host keys are taken as printed."""
    FakeNode = cluster_harness.FakeNode
    FakeNode.nodes, FakeNode.journal, FakeNode.holds, FakeNode.failing = [], [], [], []
    monkeypatch.setattr(provisioning, "Node", FakeNode)
    monkeypatch.setattr(
        EC2Client,
        "host_keys",
        lambda self, instance_id, timeout=300: [cluster_harness.HOST_KEY],
    )
    yield FakeNode
    for hold in FakeNode.holds:
        hold.release()
