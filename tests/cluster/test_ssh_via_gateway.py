"""A cluster whose core nodes are in a cloud with ``ssh_via_gateway``: master in cloud A, two core
nodes in cloud B (and, briefly, a second cluster all in cloud B, whose master is the public one).  One of them is launched with a public address (cloud B's overlay gateway, no
Elastic IP needed), the other with none, and Resilin reaches it through the gateway (SSH
ProxyJump).  Real parts throughout: two local clouds of one ``resilin server``, its WAN, the
gateways' WireGuard, Hadoop.  One cluster is shared by the tests, in file order; the last one
tears it down and checks that nothing is left."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from resilin.provisioners.localcloud.server import gateway_ip
from resilin.service.process import ResilinProcess
from tests.clusters import cloud_ec2, running_multicloud_resilin, terminate_and_check_nothing_left, wait_for

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.extended,
    pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman"),
]

PID = os.getpid() % 100000
CLOUD_A, CLOUD_B = f"ja{PID}", f"jb{PID}"
CLOUDS = {CLOUD_A: f"10.91.{PID % 250}.0/24", CLOUD_B: f"10.92.{PID % 250}.0/24"}
WAN = f"resilin-wan-jg{PID}"


@pytest.fixture(scope="module")
def resilin():
    yield from running_multicloud_resilin(
        CLOUDS, WAN, f"100.73.{PID % 250}.0/24", extra={CLOUD_B: "ssh_via_gateway = true\n"}
    )


@pytest.fixture(scope="module")
def emr(resilin):
    return resilin.endpoints().client("emr")


def start(emr, name: str, master_type: str, core_type: str, cores: int) -> str:
    """A cluster that waits for steps (its core group named first: the master is launched first anyway)."""
    cid = emr.run_job_flow(
        Name=name,
        ReleaseLabel="emr-7.5.0",
        Instances={
            "InstanceGroups": [
                {"InstanceRole": "CORE", "InstanceType": core_type, "InstanceCount": cores},
                {"InstanceRole": "MASTER", "InstanceType": master_type, "InstanceCount": 1},
            ],
            "KeepJobFlowAliveWhenNoSteps": True,
        },
    )["JobFlowId"]

    def waiting() -> bool:
        status = emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]
        assert not status["State"].startswith("TERMINATED"), status
        return status["State"] == "WAITING"

    wait_for(f"{cid} to wait for steps", waiting, timeout=900, interval=2)
    return cid


@pytest.fixture(scope="module")
def cluster(resilin, emr) -> str:
    return start(emr, "through the gateway", "m5.large", f"m5.large@{CLOUD_B}", 2)


def cloud_b_nodes(resilin: ResilinProcess, cid: str) -> tuple[dict, list[dict]]:
    """The cluster's running instances in cloud B as its EC2 API describes them: the gateway, and
    the others."""
    found = [
        i
        for r in cloud_ec2(resilin, CLOUD_B).describe_instances(
            Filters=[{"Name": "tag:resilin:cluster-id", "Values": [cid]}]
        )["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] == "running"
    ]
    [gateway] = [i for i in found if i.get("PublicIpAddress")]
    return gateway, [i for i in found if i is not gateway]


def ssh_peers(instance: dict) -> set[str]:
    """The addresses the instance's established SSH connections come from."""
    done = subprocess.run(
        ["podman", "exec", f"resilin-{CLOUD_B}-{instance['InstanceId']}", "ss", "-Htn", "state", "established",
         "( sport = :22 )"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {line.split()[-1].rsplit(":", 1)[0] for line in done.stdout.splitlines() if line.strip()}


# -- the tests, in order ----------------------------------------------------
def test_one_core_node_has_a_public_address_and_the_other_none(resilin, emr, cluster):
    gateway, others = cloud_b_nodes(resilin, cluster)
    assert len(others) == 1 and not others[0].get("PublicIpAddress")
    # The gateway's address came with its launch: the overlay allocated no Elastic IP in cloud B.
    assert cloud_ec2(resilin, CLOUD_B).describe_addresses()["Addresses"] == []
    listed = emr.list_instances(ClusterId=cluster, InstanceGroupTypes=["CORE"])["Instances"]
    assert {i["Ec2InstanceId"] for i in listed} == {gateway["InstanceId"], others[0]["InstanceId"]}


def test_resilin_reaches_the_other_core_node_through_the_gateway(resilin, cluster):
    gateway, [other] = cloud_b_nodes(resilin, cluster)
    host = gateway_ip(CLOUD_B)  # where Resilin's connections come from on cloud B's network
    peers = ssh_peers(other)
    assert gateway["PrivateIpAddress"] in peers and host not in peers, peers
    assert host in ssh_peers(gateway)


def run_hdfs_step(resilin: ResilinProcess, emr, cluster: str, path: str, replicas: int = 2) -> None:
    """A step writing a file to HDFS at ``replicas`` replicas (on the core nodes) and reading it back."""
    script = (
        f"printf through-the-gateway | hdfs dfs -put -f - {path}"
        f" && hdfs dfs -setrep -w {replicas} {path} && hdfs dfs -cat {path}"
    )
    sid = emr.add_job_flow_steps(
        JobFlowId=cluster,
        Steps=[
            {
                "Name": path,
                "ActionOnFailure": "CONTINUE",
                "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["bash", "-c", script]},
            }
        ],
    )["StepIds"][0]

    def ended():
        step = emr.describe_step(ClusterId=cluster, StepId=sid)["Step"]
        return step if step["Status"]["State"] in ("COMPLETED", "FAILED", "CANCELLED") else None

    step = wait_for(f"step {sid}", ended, timeout=600)
    logs = resilin.home / "logs" / cluster / "steps" / sid
    wait_for("the step's logs kept", (logs / "stdout").exists, timeout=60, interval=1)
    stderr = (logs / "stderr").read_text()[-3000:] if (logs / "stderr").exists() else ""
    assert step["Status"]["State"] == "COMPLETED", stderr
    assert (logs / "stdout").read_text().splitlines()[-1] == "through-the-gateway"


def test_a_step_runs_on_hdfs_across_the_clouds(resilin, emr, cluster):
    run_hdfs_step(resilin, emr, cluster, "/tmp/jump.txt")


def test_a_killed_gateway_is_replaced_and_the_nodes_reached_through_the_new_one(resilin, emr, cluster):
    gateway, [survivor] = cloud_b_nodes(resilin, cluster)
    subprocess.run(
        ["podman", "kill", f"resilin-{CLOUD_B}-{gateway['InstanceId']}"], check=True, capture_output=True
    )

    def replaced() -> bool:
        listed = emr.list_instances(
            ClusterId=cluster, InstanceGroupTypes=["CORE"], InstanceStates=["RUNNING"]
        )
        ids = {i["Ec2InstanceId"] for i in listed["Instances"]}
        return len(ids) == 2 and gateway["InstanceId"] not in ids

    wait_for("the core group back to two nodes", replaced, timeout=600)
    # The survivor is cloud B's gateway now, with an Elastic IP from the overlay; the replacement
    # was launched without a public address and is reached through the survivor.
    new_gateway, [replacement] = cloud_b_nodes(resilin, cluster)
    assert new_gateway["InstanceId"] == survivor["InstanceId"]
    [address] = cloud_ec2(resilin, CLOUD_B).describe_addresses()["Addresses"]
    assert address["InstanceId"] == survivor["InstanceId"]
    assert not replacement.get("PublicIpAddress")
    peers = ssh_peers(replacement)
    assert survivor["PrivateIpAddress"] in peers and gateway_ip(CLOUD_B) not in peers, peers
    run_hdfs_step(resilin, emr, cluster, "/tmp/after.txt")


def test_in_a_single_cloud_the_master_is_public_and_the_core_node_reached_through_it(resilin, emr):
    cid = start(emr, "one cloud", f"m5.large@{CLOUD_B}", f"m5.large@{CLOUD_B}", 1)
    try:
        master, [core] = cloud_b_nodes(resilin, cid)
        listed = emr.list_instances(ClusterId=cid, InstanceGroupTypes=["MASTER"])["Instances"]
        assert [i["Ec2InstanceId"] for i in listed] == [master["InstanceId"]]
        assert not core.get("PublicIpAddress")
        peers = ssh_peers(core)
        assert master["PrivateIpAddress"] in peers and gateway_ip(CLOUD_B) not in peers, peers
        run_hdfs_step(resilin, emr, cid, "/tmp/one-cloud.txt", replicas=1)
    finally:
        emr.terminate_job_flows(JobFlowIds=[cid])
        wait_for(
            f"{cid} to end",
            lambda: emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"] == "TERMINATED",
            timeout=600,
        )


def test_teardown_leaves_nothing(resilin, emr, cluster):
    terminate_and_check_nothing_left(resilin, emr, cluster, CLOUDS)
