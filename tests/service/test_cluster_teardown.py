"""Teardown after a resize: the two ways a cluster used to end while it was growing.

moto's EC2 is the cloud and fake nodes stand in for the instances (tests/service/cluster_harness.py).
"""

from __future__ import annotations

import threading

from resilin.clouds.provisioning import TAG_CLUSTER
from resilin.cluster import node_health
from resilin.cluster.orchestrator import ClusterWorker
from resilin.jobflows import states
from resilin.jobflows.service import EmrService
from resilin.jobflows.store import JobFlowStore
from tests.service.cluster_harness import (
    ACCOUNT,
    FakeNode,
    Hold,
    MotoClouds,
    credentials_for,
    job_flow,
    wait_for,
)


def _start(redis_client, moto_endpoint, tmp_path, **params):
    store = JobFlowStore(redis_client)
    service = EmrService(store)
    cid = service.run_job_flow(ACCOUNT, job_flow(**params))["JobFlowId"]
    clouds = MotoClouds(moto_endpoint)
    worker = ClusterWorker(cid, store, clouds, credentials_for, tmp_path, "us-east-1")
    worker.start()
    wait_for(lambda: store.get_cluster(cid)["state"] == states.WAITING, 30, "cluster WAITING")
    return store, service, cid, clouds, worker


def _grow_core(service, store, cid, count):
    [core] = [g for g in store.get_cluster(cid)["groups"] if g["role"] == "CORE"]
    service.modify_instance_groups(
        ACCOUNT,
        {"ClusterId": cid, "InstanceGroups": [{"InstanceGroupId": core["id"], "InstanceCount": count}]},
    )


def _live_in_cloud(clouds, cid):
    found = clouds.placement.client.find_tagged({TAG_CLUSTER: cid})
    return [i["InstanceId"] for i in found if i["State"]["Name"] not in ("terminated", "shutting-down")]


def test_nodes_added_by_a_resize_ship_their_logs_at_teardown(
    redis_client, moto_endpoint, fake_nodes, tmp_path, monkeypatch
):
    monkeypatch.setattr(node_health, "POLL_SECONDS", 0.2)
    store, service, cid, clouds, worker = _start(
        redis_client, moto_endpoint, tmp_path, core=1, LogUri="s3://logs/here/"
    )
    _grow_core(service, store, cid, 2)
    wait_for(
        lambda: sum(i["state"] == states.INSTANCE_RUNNING for i in store.instances_of(cid)) == 3,
        60,
        "the third instance running",
    )
    service.terminate_job_flows(ACCOUNT, {"JobFlowIds": [cid]})
    worker.join(60)
    assert store.get_cluster(cid)["state"] == states.TERMINATED
    shipped = {
        i["ec2_id"]
        for i in store.instances_of(cid)
        for node in FakeNode.nodes
        if node.host == i["public_ip"] and node.ran(f"node/{i['ec2_id']}/applications/hadoop")
    }
    assert shipped == {i["ec2_id"] for i in store.instances_of(cid)} and len(shipped) == 3


def test_teardown_waits_for_a_running_grow_and_leaves_nothing_behind(
    redis_client, moto_endpoint, fake_nodes, tmp_path, monkeypatch
):
    monkeypatch.setattr(node_health, "POLL_SECONDS", 0.2)
    store, service, cid, clouds, worker = _start(redis_client, moto_endpoint, tmp_path, core=1)
    first = len(FakeNode.nodes)
    # The new instance is launched, then takes long to answer SSH (as a real one may, for minutes).
    hold = Hold(lambda node, command: command == "wait_reachable" and FakeNode.nodes.index(node) >= first)
    FakeNode.holds.append(hold)
    _grow_core(service, store, cid, 2)
    assert hold.reached.wait(30), "the grow reached the new instance"
    service.terminate_job_flows(ACCOUNT, {"JobFlowIds": [cid]})

    # The instance answers once the cluster has ended, or after a while longer than teardown
    # used to wait for the monitor (30 s).
    def answer_late() -> None:
        wait_for(lambda: store.get_cluster(cid)["state"] in states.FINAL_CLUSTER_STATES or None, 32)
        hold.release()

    def answer_late_quietly() -> None:
        try:
            answer_late()
        except AssertionError:
            hold.release()

    threading.Thread(target=answer_late_quietly, daemon=True).start()
    worker.join(90)
    assert not worker.is_alive()
    # Whatever the grow was doing is over once the cluster has ended.
    wait_for(
        lambda: not any(t.name == f"monitor-{cid}" and t.is_alive() for t in threading.enumerate()),
        30,
        "the monitor ended",
    )
    assert store.get_cluster(cid)["state"] in states.FINAL_CLUSTER_STATES
    assert {i["state"] for i in store.instances_of(cid)} == {states.INSTANCE_TERMINATED}
    assert _live_in_cloud(clouds, cid) == []
    assert all(node.closed.is_set() for node in FakeNode.nodes), "every SSH session is closed"


def test_teardown_cancels_a_grow_waiting_on_a_node(
    redis_client, moto_endpoint, fake_nodes, tmp_path, monkeypatch
):
    monkeypatch.setattr(node_health, "POLL_SECONDS", 0.2)
    store, service, cid, clouds, worker = _start(redis_client, moto_endpoint, tmp_path, core=1)
    # HDFS and YARN never count the new node: the grow waits on the master (for up to 5 minutes).
    hold = Hold(lambda node, command: "python3 - joined" in command)
    FakeNode.holds.append(hold)
    _grow_core(service, store, cid, 2)
    assert hold.reached.wait(30), "the grow waits for the new node to join"
    service.terminate_job_flows(ACCOUNT, {"JobFlowIds": [cid]})
    # Teardown interrupts the wait (its SSH sessions close) instead of waiting it out.
    worker.join(30)
    assert not worker.is_alive() and not hold.released.is_set()
    assert store.get_cluster(cid)["state"] == states.TERMINATED
    instances = store.instances_of(cid)
    assert len(instances) == 3 and {i["state"] for i in instances} == {states.INSTANCE_TERMINATED}
    assert _live_in_cloud(clouds, cid) == []
    assert all(node.closed.is_set() for node in FakeNode.nodes)
