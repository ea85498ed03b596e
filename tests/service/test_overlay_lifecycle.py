"""Where a cluster's life calls its network: join after provisioning and after every change of its
nodes, leave at teardown while the instances still run, whatever ended the cluster.

moto's EC2 is the cloud, fake nodes the instances (tests/service/cluster_harness.py).  Every
cluster gets Resilin's OverlayNetwork; here it is wrapped to note when it is called (and what the
cloud holds at that moment), the calls going on to the real one.
"""

from __future__ import annotations

import pytest

from resilin.clouds.provisioning import TAG_CLUSTER
from resilin.cluster import node_health, runtime
from resilin.cluster.network import NetworkContext, NetworkFailure
from resilin.cluster.orchestrator import ClusterWorker
from resilin.jobflows import states
from resilin.jobflows.documents import InstanceDoc
from resilin.jobflows.service import EmrService
from resilin.jobflows.store import JobFlowStore
from resilin.overlay.network import OverlayNetwork
from tests.service.cluster_harness import (
    ACCOUNT,
    FakeNode,
    MotoClouds,
    credentials_for,
    first_time,
    job_flow,
    wait_for,
)

CONFIGURE = "Configures one node of cluster"


class NotedOverlay(OverlayNetwork):
    """The real overlay, noting each call: (what, instance ids, journal position, instances running)."""

    calls: list[tuple[str, list[str], int, list[str]]] = []
    clouds: MotoClouds | None = None
    failing_join: str = ""

    def _running(self, cid: str) -> list[str]:
        assert NotedOverlay.clouds is not None
        found = NotedOverlay.clouds.placement.client.find_tagged({TAG_CLUSTER: cid})
        return [i["InstanceId"] for i in found if i["State"]["Name"] == "running"]

    def join(self, instances: list[InstanceDoc], context: NetworkContext) -> dict[str, str]:
        NotedOverlay.calls.append(
            (
                "join",
                sorted(i["ec2_id"] for i in instances),
                len(FakeNode.journal),
                self._running(context.cid),
            )
        )
        if NotedOverlay.failing_join:
            raise NetworkFailure(NotedOverlay.failing_join)
        return super().join(instances, context)

    def leave(self, context: NetworkContext) -> list[str]:
        NotedOverlay.calls.append(("leave", [], len(FakeNode.journal), self._running(context.cid)))
        return super().leave(context)


@pytest.fixture
def cluster(redis_client, moto_endpoint, fake_nodes, tmp_path, monkeypatch):
    monkeypatch.setattr(node_health, "POLL_SECONDS", 0.2)
    monkeypatch.setattr(runtime, "OverlayNetwork", NotedOverlay)
    NotedOverlay.calls, NotedOverlay.failing_join = [], ""
    NotedOverlay.clouds = MotoClouds(moto_endpoint)
    store = JobFlowStore(redis_client)
    service = EmrService(store)

    def start(**params) -> tuple[str, ClusterWorker]:
        cid = service.run_job_flow(ACCOUNT, job_flow(**params))["JobFlowId"]
        worker = ClusterWorker(cid, store, NotedOverlay.clouds, credentials_for, tmp_path, "us-east-1")
        worker.start()
        return cid, worker

    return store, service, start


def _first(fragment: str, after: int = 0) -> int:
    return next(n for n, (_, text) in enumerate(FakeNode.journal) if n >= after and fragment in text)


def test_join_before_configuration_and_leave_before_the_instances_go(cluster):
    store, service, start = cluster
    cid, worker = start(core=1)
    wait_for(lambda: store.get_cluster(cid)["state"] == states.WAITING, 30, "cluster WAITING")
    assert isinstance(worker.runtime.network, NotedOverlay)
    ec2_ids = sorted(i["ec2_id"] for i in store.instances_of(cid))
    [(what, joined, position, running)] = NotedOverlay.calls
    assert (what, joined) == ("join", ec2_ids) and sorted(running) == ec2_ids
    assert position <= _first(CONFIGURE)  # every node in the network before Hadoop is configured
    service.terminate_job_flows(ACCOUNT, {"JobFlowIds": [cid]})
    worker.join(60)
    assert [c[0] for c in NotedOverlay.calls] == ["join", "leave"]
    assert sorted(NotedOverlay.calls[-1][3]) == ec2_ids  # left while the instances still ran
    assert store.get_cluster(cid)["state"] == states.TERMINATED
    assert store.redis.get(f"resilin:overlay:{cid}") is None


def test_leave_runs_at_teardown_after_a_failed_configuration(cluster):
    store, service, start = cluster
    FakeNode.failing.append(lambda node, text: CONFIGURE in text)
    cid, worker = start(core=1)
    worker.join(60)
    assert store.get_cluster(cid)["state"] == states.TERMINATED_WITH_ERRORS
    assert [c[0] for c in NotedOverlay.calls] == ["join", "leave"]
    assert len(NotedOverlay.calls[-1][3]) == 2


def test_a_network_that_cannot_join_ends_the_cluster_with_its_reason(cluster):
    store, service, start = cluster
    NotedOverlay.failing_join = "TCP port 22 unreachable from i-1 → i-2"
    cid, worker = start(core=1)
    worker.join(60)
    cluster_doc = store.get_cluster(cid)
    assert cluster_doc["state"] == states.TERMINATED_WITH_ERRORS
    assert cluster_doc["state_reason"] == {
        "code": states.INSTANCE_FAILURE,
        "message": "TCP port 22 unreachable from i-1 → i-2",
    }
    assert not any(CONFIGURE in text for _, text in FakeNode.journal)
    assert [c[0] for c in NotedOverlay.calls] == ["join", "leave"]


def test_a_grown_group_joins_before_its_nodes_are_configured_and_a_lost_node_rejoins(cluster):
    store, service, start = cluster
    cid, worker = start(core=1)
    wait_for(lambda: store.get_cluster(cid)["state"] == states.WAITING, 30, "cluster WAITING")
    [core] = [g for g in store.get_cluster(cid)["groups"] if g["role"] == "CORE"]
    service.modify_instance_groups(
        ACCOUNT, {"ClusterId": cid, "InstanceGroups": [{"InstanceGroupId": core["id"], "InstanceCount": 2}]}
    )
    wait_for(lambda: len(NotedOverlay.calls) >= 2, 30, "a second join")
    wait_for(
        lambda: sum(i["state"] == states.INSTANCE_RUNNING for i in store.instances_of(cid)) == 3,
        30,
        "3 running",
    )
    what, joined, position, _ = NotedOverlay.calls[1]
    [new] = [i for i in store.instances_of(cid) if i["ec2_id"] not in NotedOverlay.calls[0][1]]
    assert what == "join" and joined == sorted(i["ec2_id"] for i in store.instances_of(cid))
    added = [n for n in FakeNode.nodes if n.host == new["public_ip"]]
    assert position <= first_time(CONFIGURE, added)  # before the new node was configured

    # A core node dies: the network is joined again without it.
    victim = next(i for i in store.instances_of(cid) if i["role"] == "CORE")
    NotedOverlay.clouds.placement.client.terminate([victim["ec2_id"]])
    wait_for(
        lambda: any(c[0] == "join" and victim["ec2_id"] not in c[1] for c in NotedOverlay.calls[2:]),
        30,
        "a join without the lost node",
    )
    service.terminate_job_flows(ACCOUNT, {"JobFlowIds": [cid]})
    worker.join(60)
    assert NotedOverlay.calls[-1][0] == "leave"
