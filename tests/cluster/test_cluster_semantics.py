"""EMR's cluster and step semantics on one real, long-running cluster, driven through boto3.

One master-only cluster (kept alive) serves every check in order: the waiters, states
and reasons, `aws emr ssh` with the user's own key pair, ActionOnFailure (CONTINUE,
CANCEL_AND_WAIT, TERMINATE_CLUSTER on a protected cluster), StepConcurrencyLevel,
CancelSteps on a running Hadoop job (its process and its YARN application killed),
and finally the auto-termination policy, which ends the idle cluster.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess

import boto3
import botocore.exceptions
import pytest

from resilin.clouds.known_hosts import _owner_tag
from resilin.service import local_runtime
from tests.clusters import aws_cli, cloud_and_subnet, running_resilin, ssh, user_key_pair, wait_for

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman"),
]

CLOUD, SUBNET = cloud_and_subnet("sem", 81)
BUCKET = "semantics"
FAST = {"Delay": 3, "MaxAttempts": 200}  # the waiters' own acceptors, polled more often than EMR's 30 s


def command_step(name: str, script: str, on_failure: str = "CONTINUE") -> dict:
    return {
        "Name": name,
        "ActionOnFailure": on_failure,
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["bash", "-c", script]},
    }


@pytest.fixture(scope="module")
def resilin():
    yield from running_resilin(CLOUD, SUBNET)


@pytest.fixture(scope="module")
def clients(resilin):
    endpoints = resilin.endpoints()
    return endpoints.client("emr"), endpoints.client("s3")


@pytest.fixture(scope="module")
def user_key(resilin):
    return user_key_pair(resilin, resilin.home, "my-laptop")


@pytest.fixture(scope="module")
def cluster_id(resilin, clients, user_key):
    emr, s3 = clients
    s3.create_bucket(Bucket=BUCKET)
    cid = emr.run_job_flow(
        Name="semantics",
        ReleaseLabel="emr-7.5.0",
        LogUri=f"s3://{BUCKET}/logs/",
        Instances={
            "MasterInstanceType": "m5.xlarge",
            "InstanceCount": 1,
            "KeepJobFlowAliveWhenNoSteps": True,
            "Ec2KeyName": "my-laptop",
        },
    )["JobFlowId"]
    return cid


def steps_by_name(emr, cid: str) -> dict[str, dict]:
    return {s["Name"]: s for s in emr.list_steps(ClusterId=cid)["Steps"]}


def step_state(emr, cid: str, sid: str) -> str:
    return emr.describe_step(ClusterId=cid, StepId=sid)["Step"]["Status"]["State"]


def cluster_status(emr, cid: str) -> dict:
    return emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]


def test_cluster_running_waiter_states_and_reasons(clients, cluster_id):
    emr, _ = clients
    # Right after RunJobFlow the cluster and its instances are starting.
    assert cluster_status(emr, cluster_id)["State"] in ("STARTING", "BOOTSTRAPPING")
    emr.get_waiter("cluster_running").wait(ClusterId=cluster_id, WaiterConfig=FAST)
    cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    status = cluster["Status"]
    assert status["State"] == "WAITING"
    assert status["StateChangeReason"] == {"Message": "Cluster ready to run steps."}
    assert status["Timeline"]["ReadyDateTime"] > status["Timeline"]["CreationDateTime"]
    assert cluster["MasterPublicDnsName"]
    (group,) = emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]
    assert group["Status"]["State"] == "RUNNING"
    assert group["RunningInstanceCount"] == 1
    assert "ReadyDateTime" in group["Status"]["Timeline"]
    (instance,) = emr.list_instances(ClusterId=cluster_id)["Instances"]
    assert instance["Status"]["State"] == "RUNNING"
    assert instance["PublicDnsName"] == cluster["MasterPublicDnsName"]
    assert instance["Ec2InstanceId"].startswith("i-")


def test_aws_emr_ssh_reaches_the_master_with_the_users_key(resilin, clients, cluster_id, user_key, tmp_path):
    known_hosts = resilin.home / "known_hosts"
    done = aws_cli(
        resilin,
        "emr", "ssh", "--endpoint-url", f"http://127.0.0.1:{resilin.api_port}",
        "--cluster-id", cluster_id, "--key-pair-file", str(user_key),
        "--command", "echo user=$(whoami) on=$(hostname)",
        "--ssh-options", f"UserKnownHostsFile={known_hosts}", "StrictHostKeyChecking=yes", "BatchMode=yes",
    )  # fmt: skip
    assert "user=hadoop" in done.stdout, done.stderr
    # The CLI reached the master by the name DescribeCluster gives, with keys pinned in advance.
    master = clients[0].describe_cluster(ClusterId=cluster_id)["Cluster"]["MasterPublicDnsName"]
    assert f"hadoop@{master}" in done.stdout
    assert any(line.startswith(master + " ") for line in known_hosts.read_text().splitlines())
    # Any other key is refused: it is the named key pair that was authorized.
    other = tmp_path / "other.pem"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    refused = ssh(resilin, other, master, "true")
    assert refused.returncode != 0
    assert "Permission denied" in refused.stderr


def test_continue_failure_runs_the_next_step_and_step_complete_waiter(clients, cluster_id):
    emr, s3 = clients
    failing, ok = emr.add_job_flow_steps(
        JobFlowId=cluster_id,
        Steps=[
            command_step("continue-fails", "echo going to fail >&2; exit 3", "CONTINUE"),
            command_step("continue-next", "echo hello from the next step"),
        ],
    )["StepIds"]
    emr.get_waiter("step_complete").wait(ClusterId=cluster_id, StepId=ok, WaiterConfig=FAST)
    with pytest.raises(botocore.exceptions.WaiterError):  # the waiter's failure acceptor: FAILED
        emr.get_waiter("step_complete").wait(ClusterId=cluster_id, StepId=failing, WaiterConfig=FAST)
    failed = emr.describe_step(ClusterId=cluster_id, StepId=failing)["Step"]
    assert failed["Status"]["State"] == "FAILED"
    details = failed["Status"]["FailureDetails"]
    assert "3" in details["Message"]
    assert details["LogFile"] == f"s3://{BUCKET}/logs/{cluster_id}/steps/{failing}/stderr.gz"
    status = cluster_status(emr, cluster_id)
    assert status["State"] == "WAITING"
    assert status["StateChangeReason"]["Message"] == "Cluster ready after last step completed."

    # Both steps' logs were shipped to LogUri/<cluster>/steps/<step>/, gzipped.
    def log_text(sid: str, name: str) -> str:
        key = f"logs/{cluster_id}/steps/{sid}/{name}.gz"
        return gzip.decompress(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).decode()

    assert "going to fail" in log_text(failing, "stderr")
    assert "hello from the next step" in log_text(ok, "stdout")
    assert "Step succeeded with exitCode 0" in log_text(ok, "controller")


def test_cancel_and_wait_cancels_the_later_steps(clients, cluster_id):
    emr, _ = clients
    failing, later, last = emr.add_job_flow_steps(
        JobFlowId=cluster_id,
        Steps=[
            command_step("caw-fails", "exit 1", "CANCEL_AND_WAIT"),
            command_step("caw-later", "echo never runs"),
            command_step("caw-last", "echo never runs either"),
        ],
    )["StepIds"]
    wait_for("the later steps to be cancelled", lambda: step_state(emr, cluster_id, last) == "CANCELLED")
    assert step_state(emr, cluster_id, failing) == "FAILED"
    later_step = emr.describe_step(ClusterId=cluster_id, StepId=later)["Step"]
    assert later_step["Status"]["State"] == "CANCELLED"
    assert "StartDateTime" not in later_step["Status"]["Timeline"]  # it never ran
    status = wait_for(
        "the cluster to wait again",
        lambda: (s := cluster_status(emr, cluster_id))["State"] == "WAITING" and s,
    )
    assert status["StateChangeReason"]["Message"] == "Cluster ready after last step failed."


def test_protected_cluster_is_not_shut_down_by_a_failed_step_or_a_user(clients, cluster_id):
    emr, _ = clients
    emr.set_termination_protection(JobFlowIds=[cluster_id], TerminationProtected=True)
    try:
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            emr.terminate_job_flows(JobFlowIds=[cluster_id])
        assert refused.value.response["Error"]["Code"] == "ValidationException"
        failing, after = emr.add_job_flow_steps(
            JobFlowId=cluster_id,
            Steps=[
                command_step("tc-fails", "exit 2", "TERMINATE_CLUSTER"),
                command_step("tc-after", "echo not reached"),
            ],
        )["StepIds"]
        wait_for(
            "the step after the failure to be cancelled",
            lambda: step_state(emr, cluster_id, after) == "CANCELLED",
        )
        assert step_state(emr, cluster_id, failing) == "FAILED"
        status = cluster_status(emr, cluster_id)
        assert status["State"] == "WAITING", status
        assert status["StateChangeReason"]["Message"] == "Cluster ready after last step failed."
    finally:
        emr.set_termination_protection(JobFlowIds=[cluster_id], TerminationProtected=False)


def test_step_concurrency_level_runs_steps_side_by_side(clients, cluster_id):
    emr, _ = clients
    assert emr.modify_cluster(ClusterId=cluster_id, StepConcurrencyLevel=2)["StepConcurrencyLevel"] == 2
    try:
        ids = emr.add_job_flow_steps(
            JobFlowId=cluster_id,
            Steps=[command_step(f"parallel-{i}", "sleep 20") for i in range(3)],
        )["StepIds"]

        def two_running():
            running = emr.list_steps(ClusterId=cluster_id, StepStates=["RUNNING"])["Steps"]
            return len(running) == 2 and running

        running = wait_for("two steps running at once", two_running, timeout=300, interval=1)
        assert {s["Id"] for s in running} == set(ids[:2])  # in the order they were added
        assert step_state(emr, cluster_id, ids[2]) == "PENDING"
        assert cluster_status(emr, cluster_id)["StateChangeReason"]["Message"] == "Running step"
        for sid in ids:
            emr.get_waiter("step_complete").wait(ClusterId=cluster_id, StepId=sid, WaiterConfig=FAST)
        timelines = [
            emr.describe_step(ClusterId=cluster_id, StepId=sid)["Step"]["Status"]["Timeline"] for sid in ids
        ]
        first, second, third = timelines
        assert (
            first["StartDateTime"] < second["EndDateTime"] and second["StartDateTime"] < first["EndDateTime"]
        )
        assert third["StartDateTime"] >= min(first["EndDateTime"], second["EndDateTime"])
    finally:
        emr.modify_cluster(ClusterId=cluster_id, StepConcurrencyLevel=1)


def test_cancel_steps_kills_a_running_hadoop_job_and_its_yarn_application(
    resilin, clients, cluster_id, user_key
):
    emr, _ = clients
    master = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["MasterPublicDnsName"]
    job = (
        "printf 'a\\nb\\n' | hdfs dfs -put -f - /tmp/cancel-input && "
        "hadoop-streaming -D mapreduce.job.maps=1 -input /tmp/cancel-input -output /tmp/cancel-output-$$ "
        "-mapper 'sleep 900' -reducer NONE"
    )
    running_id, pending_id = emr.add_job_flow_steps(
        JobFlowId=cluster_id,
        Steps=[command_step("long-job", job), command_step("behind-it", "echo should never run")],
    )["StepIds"]
    rm = f"http://{master}:8088/ws/v1/cluster/apps"

    def yarn_apps(states: str) -> list[dict]:
        done = ssh(resilin, user_key, master, f"curl -sf '{rm}?states={states}'")
        assert done.returncode == 0, done.stderr
        return (json.loads(done.stdout).get("apps") or {}).get("app") or []

    apps = wait_for(
        "the step's MapReduce job to run on YARN", lambda: yarn_apps("RUNNING"), timeout=600, interval=3
    )
    app_id = apps[0]["id"]
    assert step_state(emr, cluster_id, running_id) == "RUNNING"

    infos = emr.cancel_steps(ClusterId=cluster_id, StepIds=[pending_id, running_id])["CancelStepsInfoList"]
    assert {i["StepId"]: i["Status"] for i in infos} == {pending_id: "SUBMITTED", running_id: "SUBMITTED"}
    assert step_state(emr, cluster_id, pending_id) == "CANCELLED"  # never started: cancelled at once
    assert step_state(emr, cluster_id, running_id) in ("CANCEL_PENDING", "CANCELLED")
    wait_for(
        "the running step to be cancelled",
        lambda: step_state(emr, cluster_id, running_id) == "CANCELLED",
        timeout=300,
    )

    done = ssh(resilin, user_key, master, f"curl -sf '{rm}/{app_id}'")
    assert json.loads(done.stdout)["app"]["state"] == "KILLED"
    leftovers = ssh(resilin, user_key, master, "pgrep -af '[h]adoop-streaming|[s]leep 900' || true")
    assert leftovers.stdout.strip() == "", leftovers.stdout
    status = wait_for(
        "the cluster to wait again",
        lambda: (s := cluster_status(emr, cluster_id))["State"] == "WAITING" and s,
    )
    assert status["StateChangeReason"]["Message"] == "Cluster ready after last step was cancelled."


def test_tags_changed_on_the_cluster_reach_its_instance(resilin, clients, cluster_id):
    emr, _ = clients
    cloud = local_runtime.read(resilin.home)[CLOUD]
    ec2 = boto3.client(
        "ec2", endpoint_url=cloud.endpoint, region_name=cloud.region,
        aws_access_key_id=cloud.access_key, aws_secret_access_key=cloud.secret_key,
    )  # fmt: skip
    emr.get_waiter("cluster_running").wait(ClusterId=cluster_id, WaiterConfig=FAST)
    (instance,) = emr.list_instances(ClusterId=cluster_id)["Instances"]

    def tags() -> dict[str, str]:
        found = ec2.describe_instances(InstanceIds=[instance["Ec2InstanceId"]])["Reservations"]
        return {t["Key"]: t["Value"] for t in found[0]["Instances"][0].get("Tags", [])}

    emr.add_tags(ResourceId=cluster_id, Tags=[{"Key": "team", "Value": "analytics"}])
    wait_for("the tag on the instance", lambda: tags().get("team") == "analytics", timeout=60)
    emr.remove_tags(ResourceId=cluster_id, TagKeys=["team"])
    wait_for("the tag to go", lambda: "team" not in tags(), timeout=60)
    assert tags()["resilin:cluster-id"] == cluster_id


def test_auto_termination_policy_ends_the_idle_cluster(resilin, clients, cluster_id):
    emr, s3 = clients
    emr.put_auto_termination_policy(ClusterId=cluster_id, AutoTerminationPolicy={"IdleTimeout": 60})
    assert emr.get_auto_termination_policy(ClusterId=cluster_id)["AutoTerminationPolicy"] == {
        "IdleTimeout": 60
    }
    emr.get_waiter("cluster_terminated").wait(ClusterId=cluster_id, WaiterConfig=FAST)
    cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    status = cluster["Status"]
    assert status["State"] == "TERMINATED"
    assert status["StateChangeReason"]["Code"] == "ALL_STEPS_COMPLETED"
    assert "idle" in status["StateChangeReason"]["Message"]
    timeline = status["Timeline"]
    assert timeline["CreationDateTime"] < timeline["ReadyDateTime"] < timeline["EndDateTime"]
    (instance,) = emr.list_instances(ClusterId=cluster_id)["Instances"]
    assert instance["Status"]["State"] == "TERMINATED"
    assert instance["Status"]["StateChangeReason"]["Code"] == "CLUSTER_TERMINATED"
    (group,) = emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]
    assert group["Status"]["State"] == "TERMINATED"
    assert "EndDateTime" in group["Status"]["Timeline"]
    # The user's ssh no longer trusts the address, which the next cluster may get.
    assert _owner_tag(cluster_id) not in (resilin.home / "known_hosts").read_text()
    # Daemon and container logs were shipped where EMR leaves them.
    keys = {
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"logs/{cluster_id}/")
        for o in page.get("Contents", [])
    }
    ec2_id = instance["Ec2InstanceId"]
    assert f"logs/{cluster_id}/node/{ec2_id}/applications/hadoop/resourcemanager.log.gz" in keys
    assert any(
        k.startswith(f"logs/{cluster_id}/containers/application_") and k.endswith("/syslog.gz") for k in keys
    )
