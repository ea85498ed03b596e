"""A cluster's life and the operations on it, in seconds: moto's EC2 is the cloud, Redis the store,
fake nodes the instances (tests/service/cluster_harness.py); the rest is Resilin's own code."""

from __future__ import annotations

import threading

import pytest

from resilin.applications.hadoop.application import HadoopApplication
from resilin.clouds.provisioning import TAG_CLUSTER
from resilin.cluster import lifecycle, node_health
from resilin.cluster.orchestrator import ClusterWorker, Orchestrator
from resilin.cluster.provision import provision
from resilin.cluster.runtime import ClusterRuntime
from resilin.jobflows import states
from resilin.jobflows.service import EmrService
from resilin.jobflows.store import JobFlowStore
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
RECONFIGURE = "Reconfigures one running"


@pytest.fixture
def emr(redis_client, monkeypatch):
    monkeypatch.setattr(node_health, "POLL_SECONDS", 0.2)
    store = JobFlowStore(redis_client)
    return store, EmrService(store)


def _step(name: str, action: str = states.TERMINATE_CLUSTER) -> dict:
    return {
        "Name": name,
        "ActionOnFailure": action,
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["echo", name]},
    }


def _live_in_cloud(clouds: MotoClouds, cid: str) -> list[str]:
    found = clouds.placement.client.find_tagged({TAG_CLUSTER: cid})
    return [i["InstanceId"] for i in found if i["State"]["Name"] not in ("terminated", "shutting-down")]


def _run(store, cid, moto_endpoint, home) -> tuple[ClusterWorker, MotoClouds]:
    clouds = MotoClouds(moto_endpoint)
    worker = ClusterWorker(cid, store, clouds, credentials_for, home, "us-east-1")
    worker.start()
    return worker, clouds


def _group(store, cid, role):
    return next(g for g in store.get_cluster(cid)["groups"] if g["role"] == role)


@pytest.mark.parametrize(
    ("action", "after_failure", "state", "code"),
    [
        (states.TERMINATE_CLUSTER, states.CANCELLED, states.TERMINATED_WITH_ERRORS, states.STEP_FAILURE),
        (states.CANCEL_AND_WAIT, states.CANCELLED, states.TERMINATED, states.ALL_STEPS_COMPLETED),
        (states.CONTINUE, states.COMPLETED, states.TERMINATED, states.ALL_STEPS_COMPLETED),
    ],
)
def test_action_on_failure_decides_the_steps_after_and_the_cluster(
    emr, moto_endpoint, fake_nodes, tmp_path, action, after_failure, state, code, caplog
):
    caplog.set_level("INFO", logger="resilin.cluster.runtime")
    store, service = emr
    FakeNode.failing.append(lambda node, text: "step-that-fails" in text)
    params = job_flow(core=1, Steps=[_step("first"), _step("step-that-fails", action), _step("after")])
    params["Instances"]["KeepJobFlowAliveWhenNoSteps"] = False
    cid = service.run_job_flow(ACCOUNT, params)["JobFlowId"]
    worker, clouds = _run(store, cid, moto_endpoint, tmp_path)
    worker.join(60)
    assert not worker.is_alive()
    cluster = store.get_cluster(cid)
    assert (cluster["state"], cluster["state_reason"]["code"]) == (state, code)
    assert [s["state"] for s in store.steps_of(cid)] == [states.COMPLETED, states.FAILED, after_failure]
    assert {i["state"] for i in store.instances_of(cid)} == {states.INSTANCE_TERMINATED}
    assert _live_in_cloud(clouds, cid) == []
    assert all(node.closed.is_set() for node in FakeNode.nodes)
    # The progress said where the instances run, once they did.
    assert f"{cid}: 2 instances running: master and 1 core in moto" in caplog.messages


def test_a_resize_goes_before_a_reconfiguration_of_the_same_group(emr, moto_endpoint, fake_nodes, tmp_path):
    store, service = emr
    cid = service.run_job_flow(ACCOUNT, job_flow(core=1))["JobFlowId"]
    worker, clouds = _run(store, cid, moto_endpoint, tmp_path)
    wait_for(lambda: store.get_cluster(cid)["state"] == states.WAITING, 30, "cluster WAITING")
    started = len(FakeNode.nodes)
    core = _group(store, cid, "CORE")
    # Both asked for in one request: two core nodes, and a new yarn-site for the group.
    yarn = [{"Classification": "yarn-site", "Properties": {"yarn.nodemanager.vmem-check-enabled": "false"}}]
    service.modify_instance_groups(
        ACCOUNT,
        {
            "ClusterId": cid,
            "InstanceGroups": [{"InstanceGroupId": core["id"], "InstanceCount": 2, "Configurations": yarn}],
        },
    )
    wait_for(
        lambda: (
            (g := _group(store, cid, "CORE"))["state"] == states.GROUP_RUNNING
            and g.get("applied_configurations") == yarn
        ),
        60,
        "the group resized and reconfigured",
    )
    added = FakeNode.nodes[started:]
    assert len(added) == 1 and len(store.instances_of(cid)) == 3
    # The new node was configured (with the group's new configuration) before any node was reconfigured,
    # and the reconfiguration reached both core nodes.
    assert first_time(CONFIGURE, added) < first_time(RECONFIGURE)
    core_hosts = {i["public_ip"] for i in store.instances_of(cid) if i["role"] == "CORE"}
    reconfigured = {node.host for node, text in FakeNode.journal if RECONFIGURE in text}
    assert reconfigured == core_hosts
    service.terminate_job_flows(ACCOUNT, {"JobFlowIds": [cid]})
    worker.join(60)
    assert store.get_cluster(cid)["state"] == states.TERMINATED and _live_in_cloud(clouds, cid) == []


def test_a_failed_core_node_is_replaced_and_dropped_from_hdfs_and_yarn(
    emr, moto_endpoint, fake_nodes, tmp_path
):
    store, service = emr
    cid = service.run_job_flow(ACCOUNT, job_flow(core=2))["JobFlowId"]
    worker, clouds = _run(store, cid, moto_endpoint, tmp_path)
    wait_for(lambda: store.get_cluster(cid)["state"] == states.WAITING, 30, "cluster WAITING")
    master_ip = next(i["public_ip"] for i in store.instances_of(cid) if i["role"] == "MASTER")
    [master] = [n for n in FakeNode.nodes if n.host == master_ip]
    victim = next(i for i in store.instances_of(cid) if i["role"] == "CORE")
    clouds.placement.client.terminate([victim["ec2_id"]])

    def replaced() -> bool:
        instances = store.instances_of(cid)
        running = [i for i in instances if i["state"] == states.INSTANCE_RUNNING and i["role"] == "CORE"]
        return len(instances) == 4 and len(running) == 2

    wait_for(replaced, 60, "a replacement running")
    failed = next(i for i in store.instances_of(cid) if i["id"] == victim["id"])
    assert failed["state"] == states.INSTANCE_TERMINATED
    assert failed["state_reason"]["code"] == states.INSTANCE_FAILURE
    assert victim["private_ip"] in store.get_cluster(cid)["excluded_nodes"]
    assert master.ran("hdfs dfsadmin -refreshNodes")
    service.terminate_job_flows(ACCOUNT, {"JobFlowIds": [cid]})
    worker.join(60)
    assert _live_in_cloud(clouds, cid) == []


def test_after_a_restart_a_starting_cluster_starts_again_and_a_running_one_ends(
    emr, moto_endpoint, fake_nodes, tmp_path
):
    store, service = emr
    clouds = MotoClouds(moto_endpoint)
    # What a run that stopped abruptly left: one cluster half-way through provisioning, and one
    # configured and running (its instances launched, its worker gone).
    starting = service.run_job_flow(ACCOUNT, job_flow(core=1))["JobFlowId"]
    ClusterRuntime(starting, store, clouds, credentials_for, tmp_path, "us-east-1").provisioner.launch(
        store.get_cluster(starting)
    )
    running = service.run_job_flow(ACCOUNT, job_flow(core=1))["JobFlowId"]
    before = ClusterRuntime(running, store, clouds, credentials_for, tmp_path, "us-east-1")
    provision(before)
    lifecycle.configure(before, HadoopApplication())
    left_behind = {cid: _live_in_cloud(clouds, cid) for cid in (starting, running)}
    assert all(len(ids) == 2 for ids in left_behind.values())

    orchestrator = Orchestrator(store, clouds, credentials_for, tmp_path, "us-east-1")
    # What resilin server does with it: recover once, then hand out clusters with work.
    orchestrator.recover()
    stopped = threading.Event()

    def dispatch_loop() -> None:
        while not stopped.is_set():
            orchestrator.dispatch_next(0.2)

    loop = threading.Thread(target=dispatch_loop, daemon=True)
    loop.start()
    try:
        wait_for(
            lambda: store.get_cluster(running)["state"] == states.TERMINATED_WITH_ERRORS,
            60,
            "running one ended",
        )
        reason = store.get_cluster(running)["state_reason"]
        assert reason == {
            "code": states.INTERNAL_ERROR,
            "message": "Resilin was restarted while the cluster was running",
        }
        assert _live_in_cloud(clouds, running) == []
        assert {i["state"] for i in store.instances_of(running)} == {states.INSTANCE_TERMINATED}

        wait_for(lambda: store.get_cluster(starting)["state"] == states.WAITING, 60, "starting one WAITING")
        now = _live_in_cloud(clouds, starting)
        assert len(now) == 2 and not set(now) & set(left_behind[starting])  # fresh instances only
        service.terminate_job_flows(ACCOUNT, {"JobFlowIds": [starting]})
        wait_for(lambda: store.get_cluster(starting)["state"] == states.TERMINATED, 60, "terminated")
        assert _live_in_cloud(clouds, starting) == []
    finally:
        stopped.set()
        loop.join(5)
