"""A Resilin restarted mid-flight ends or resumes its clusters and leaks no instance."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from resilin.provisioners.localcloud.process import remove_cloud
from resilin.service.process import cloud_containers, new_process
from tests.clusters import end_clusters, wait_for

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman"),
]

CLOUD = f"rst{os.getpid() % 100000}"
SUBNET = f"10.79.{100 + os.getpid() % 150}.0/24"


@pytest.fixture
def resilin(tmp_path):
    proc = new_process(tmp_path, CLOUD, SUBNET, accounts=1)
    proc.start()
    try:
        yield proc
    finally:
        try:
            if proc.process is None:
                proc.start()  # a test may have left Resilin stopped
            end_clusters(proc)
        finally:
            proc.stop()
    print(proc.log_tail(100))
    assert remove_cloud(CLOUD) == []


def _wait_state(emr, cid: str, wanted: set[str], timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster = emr.describe_cluster(ClusterId=cid)["Cluster"]
        if cluster["Status"]["State"] in wanted:
            return cluster
        time.sleep(0.5)
    raise TimeoutError(f"{cid} never reached {wanted}")


def test_killed_while_bootstrapping_ends_cluster_and_reclaims_instances(resilin):
    emr = resilin.endpoints().client("emr")
    cid = emr.run_job_flow(
        Name="restart me",
        ReleaseLabel="emr-7.5.0",
        Instances={
            "MasterInstanceType": "m5.xlarge",
            "InstanceCount": 2,
            "KeepJobFlowAliveWhenNoSteps": True,
        },
    )["JobFlowId"]
    _wait_state(emr, cid, {"BOOTSTRAPPING"})
    assert len(cloud_containers(CLOUD)) == 2

    resilin.process.send_signal(signal.SIGKILL)  # no chance to clean up
    resilin.process.wait()
    resilin.process = None
    assert len(cloud_containers(CLOUD)) == 2  # the instances outlive Resilin, as they would on a real cloud

    resilin.start()
    cluster = _wait_state(emr, cid, {"TERMINATED", "TERMINATED_WITH_ERRORS"}, timeout=180)
    assert cluster["Status"]["State"] == "TERMINATED_WITH_ERRORS"
    assert "restarted" in cluster["Status"]["StateChangeReason"]["Message"]
    assert cloud_containers(CLOUD) == []


def test_a_running_cluster_and_its_step_are_taken_back_after_a_restart(resilin):
    """Resilin is killed (SIGKILL) while a step runs: after its restart the cluster carries on with
    the same instances, the step ends COMPLETED with all its output, and data written to HDFS
    before the restart is read after it."""
    emr = resilin.endpoints().client("emr")
    cid = emr.run_job_flow(
        Name="outlives resilin",
        ReleaseLabel="emr-7.5.0",
        Instances={
            "MasterInstanceType": "m5.xlarge",
            "InstanceCount": 2,
            "KeepJobFlowAliveWhenNoSteps": True,
        },
    )["JobFlowId"]
    _wait_state(emr, cid, {"WAITING"}, timeout=600)
    before = {i["Ec2InstanceId"] for i in emr.list_instances(ClusterId=cid)["Instances"]}
    script = (
        "set -e; echo before the restart | hadoop fs -put -f - /kept; "
        "for i in $(seq 30); do [ -e /tmp/go-on ] && break; sleep 1; done; echo step-end-$(hadoop fs -cat /kept)"
    )
    [sid] = emr.add_job_flow_steps(JobFlowId=cid, Steps=[{
        "Name": "runs across a restart", "ActionOnFailure": "CANCEL_AND_WAIT",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["bash", "-c", script]},
    }])["StepIds"]  # fmt: skip
    wait_for(
        "the step to run",
        lambda: emr.describe_step(ClusterId=cid, StepId=sid)["Step"]["Status"]["State"] == "RUNNING",
        timeout=120,
        interval=0.5,
    )
    time.sleep(3)  # the step is under way on the master
    resilin.process.send_signal(signal.SIGKILL)
    resilin.process.wait()
    resilin.process = None

    resilin.start()
    step = _wait_step(emr, cid, sid, timeout=300)
    assert step["Status"]["State"] == "COMPLETED", step["Status"]
    stdout = (resilin.home / "logs" / cid / "steps" / sid / "stdout").read_text()
    assert "step-end-before the restart" in stdout, stdout
    cluster = _wait_state(emr, cid, {"WAITING"}, timeout=120)
    assert {i["Ec2InstanceId"] for i in emr.list_instances(ClusterId=cid)["Instances"]} == before
    assert len(cloud_containers(CLOUD)) == 2
    assert "restarted" not in cluster["Status"]["StateChangeReason"].get("Message", "")

    # A step added after the restart reads what was written before it.
    [again] = emr.add_job_flow_steps(JobFlowId=cid, Steps=[{
        "Name": "after the restart", "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["hadoop", "fs", "-cat", "/kept"]},
    }])["StepIds"]  # fmt: skip
    assert _wait_step(emr, cid, again)["Status"]["State"] == "COMPLETED"
    assert (resilin.home / "logs" / cid / "steps" / again / "stdout").read_text() == "before the restart\n"

    emr.terminate_job_flows(JobFlowIds=[cid])
    cluster = _wait_state(emr, cid, {"TERMINATED", "TERMINATED_WITH_ERRORS"}, timeout=300)
    assert cluster["Status"]["State"] == "TERMINATED", cluster["Status"]
    assert cloud_containers(CLOUD) == []


def _wait_step(emr, cid: str, sid: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step = emr.describe_step(ClusterId=cid, StepId=sid)["Step"]
        if step["Status"]["State"] in ("COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED"):
            return step
        time.sleep(0.5)
    raise TimeoutError(f"step {sid} never ended")


def test_cluster_still_starting_at_a_restart_is_provisioned_afresh(resilin):
    emr = resilin.endpoints().client("emr")
    cid = emr.run_job_flow(
        Name="started again",
        ReleaseLabel="emr-7.5.0",
        Instances={
            "MasterInstanceType": "m5.xlarge",
            "InstanceCount": 1,
            "KeepJobFlowAliveWhenNoSteps": False,
        },
    )["JobFlowId"]
    resilin.process.send_signal(signal.SIGKILL)  # while the cluster is STARTING
    resilin.process.wait()
    resilin.process = None

    resilin.start()
    cluster = _wait_state(emr, cid, {"TERMINATED", "TERMINATED_WITH_ERRORS"}, timeout=600)
    # Provisioned again from scratch, ready, and (no steps, no keep-alive) ended normally.
    assert cluster["Status"]["State"] == "TERMINATED", cluster["Status"]
    assert cluster["Status"]["StateChangeReason"]["Code"] == "ALL_STEPS_COMPLETED"
    assert "ReadyDateTime" in cluster["Status"]["Timeline"]
    assert cloud_containers(CLOUD) == []


NO_SSHD_IMAGE = "localhost/resilin-node:no-sshd"


def _image_whose_sshd_never_starts(base: str) -> str:
    """The real node image with its init replaced by a sleep: its instances run but never answer SSH."""
    subprocess.run(["podman", "rm", "-f", "resilin-no-sshd-base"], capture_output=True)
    subprocess.run(
        ["podman", "create", "--name", "resilin-no-sshd-base", base], check=True, capture_output=True
    )
    try:
        subprocess.run(
            ["podman", "commit", "-q", "--change", 'CMD ["/bin/sleep", "infinity"]', "resilin-no-sshd-base",
             NO_SSHD_IMAGE],
            check=True, capture_output=True,
        )  # fmt: skip
    finally:
        subprocess.run(["podman", "rm", "-f", "resilin-no-sshd-base"], capture_output=True)
    return NO_SSHD_IMAGE


def test_sigterm_while_a_cluster_waits_for_ssh_stops_at_once_and_the_cluster_is_recovered(resilin):
    real_image = resilin.node_image
    resilin.stop()
    resilin.node_image = _image_whose_sshd_never_starts(real_image)
    resilin.write_config(SUBNET)
    resilin.start()
    emr = resilin.endpoints().client("emr")
    cid = emr.run_job_flow(
        Name="waits for ssh",
        ReleaseLabel="emr-7.5.0",
        Instances={
            "MasterInstanceType": "m5.xlarge",
            "InstanceCount": 1,
            "KeepJobFlowAliveWhenNoSteps": False,
        },
    )["JobFlowId"]
    wait_for(
        "the cluster to wait for SSH",
        lambda: (
            "Waiting for SSH"
            in emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]
            .get("StateChangeReason", {})
            .get("Message", "")
        ),
        timeout=120,
        interval=0.5,
    )

    began = time.monotonic()
    resilin.process.send_signal(signal.SIGTERM)
    resilin.process.wait(60)
    stopped_in = time.monotonic() - began
    resilin.process = None
    assert stopped_in < 10, f"resilin server took {stopped_in:.1f}s to stop"
    assert len(cloud_containers(CLOUD)) == 1  # left as a kill -9 leaves it, for the recovery

    resilin.node_image = real_image
    resilin.write_config(SUBNET)
    resilin.start()
    cluster = _wait_state(emr, cid, {"TERMINATED", "TERMINATED_WITH_ERRORS"}, timeout=600)
    assert cluster["Status"]["State"] == "TERMINATED", cluster["Status"]
    assert "ReadyDateTime" in cluster["Status"]["Timeline"]  # provisioned afresh, with sshd this time
    assert cloud_containers(CLOUD) == []
    subprocess.run(["podman", "rmi", NO_SSHD_IMAGE], capture_output=True)
