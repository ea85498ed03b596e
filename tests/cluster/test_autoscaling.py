"""Scaling policies on a real cluster: a task group grows when a job's containers pend, the job uses
the new node, and the idle group shrinks back — first under an automatic scaling policy, then, on
the same cluster, under a managed scaling policy.

One cluster (a master, a core node, a task group of none); the automatic policy's rules on EMR's
metric names over 60-second periods (the shortest CloudWatch takes); the job a Hadoop streaming
job whose mappers each take 25 s, more of them than the core node can run at once.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.clusters import cloud_and_subnet, running_resilin, wait_for

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.extended,
    pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman"),
]

CLOUD, SUBNET = cloud_and_subnet("asc", 84)


def _rule(name: str, metric: str, comparison: str, threshold: float, adjustment: int) -> dict:
    return {
        "Name": name,
        "Action": {"SimpleScalingPolicyConfiguration": {"ScalingAdjustment": adjustment, "CoolDown": 0}},
        "Trigger": {
            "CloudWatchAlarmDefinition": {
                "ComparisonOperator": comparison,
                "EvaluationPeriods": 1,
                "MetricName": metric,
                "Period": 60,
                "Statistic": "AVERAGE",
                "Threshold": threshold,
                "Dimensions": [{"Key": "JobFlowId", "Value": "${emr.clusterId}"}],
            }
        },
    }


POLICY = {
    "Constraints": {"MinCapacity": 0, "MaxCapacity": 1},
    "Rules": [
        _rule("grow while containers pend", "ContainerPending", "GREATER_THAN_OR_EQUAL", 1, 1),
        _rule("shrink when idle", "AppsRunning", "LESS_THAN_OR_EQUAL", 0, -1),
    ],
}
SLOW_JOB = """set -e
mkdir -p /tmp/in && for i in $(seq 1 24); do echo $i > /tmp/in/part-$i; done
hdfs dfs -rm -r -f /autoscale-in /autoscale-out && hdfs dfs -put -f /tmp/in /autoscale-in
printf '#!/bin/sh\\nsleep 25\\ncat\\n' > /tmp/slow.sh && chmod +x /tmp/slow.sh
hadoop jar /usr/lib/hadoop-mapreduce/hadoop-streaming.jar -D mapreduce.job.reduces=0 \\
  -files /tmp/slow.sh -input /autoscale-in -output /autoscale-out -mapper slow.sh
"""


@pytest.fixture(scope="module")
def resilin():
    yield from running_resilin(CLOUD, SUBNET)


def _task_group(emr, cid: str) -> dict:
    return next(
        g
        for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]
        if g["InstanceGroupType"] == "TASK"
    )


def _containers_on(master_container: str, master_ip: str, instance_id: str) -> int:
    """Containers YARN runs now on the instance ``instance_id`` (the ResourceManager's own answer;
    nodes register under their hostname, the instance id)."""
    done = subprocess.run(["podman", "exec", master_container, "curl", "-sf",
                           f"http://{master_ip}:8088/ws/v1/cluster/nodes"], capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        return 0
    nodes = json.loads(done.stdout).get("nodes", {}).get("node", [])
    return sum(
        n.get("numContainers", 0) for n in nodes if n.get("nodeHostName", "").split(".")[0] == instance_id
    )


@pytest.fixture(scope="module")
def cluster(resilin):
    emr = resilin.endpoints().client("emr")
    cid = emr.run_job_flow(
        Name="autoscaling",
        ReleaseLabel="emr-7.5.0",
        AutoScalingRole="EMR_AutoScaling_DefaultRole",
        Instances={
            "InstanceGroups": [
                {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
                {"InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": 1},
                {"InstanceRole": "TASK", "InstanceType": "m5.xlarge", "InstanceCount": 0,
                 "AutoScalingPolicy": POLICY},
            ],
            "KeepJobFlowAliveWhenNoSteps": True,
        },
    )["JobFlowId"]  # fmt: skip
    emr.get_waiter("cluster_running").wait(ClusterId=cid, WaiterConfig={"Delay": 3, "MaxAttempts": 300})
    yield emr, cid
    emr.terminate_job_flows(JobFlowIds=[cid])
    wait_for("the cluster to end", lambda: emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"].startswith(
        "TERMINATED"), timeout=600)  # fmt: skip


def _grows_is_used_and_shrinks(emr, cid: str) -> dict:
    """Run the slow job; the task group must grow to one node, that node must get some of the job's
    containers, and once the job is done and a period idle, the group must shrink to none.  The
    group as it was while grown."""
    step = {"Name": "slow maps", "ActionOnFailure": "CONTINUE",
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["bash", "-c", SLOW_JOB]}}  # fmt: skip
    sid = emr.add_job_flow_steps(JobFlowId=cid, Steps=[step])["StepIds"][0]

    def step_state() -> str:
        return emr.describe_step(ClusterId=cid, StepId=sid)["Step"]["Status"]["State"]

    wait_for(
        "the task group to grow", lambda: _task_group(emr, cid)["RunningInstanceCount"] == 1, timeout=600
    )
    grown = _task_group(emr, cid)
    assert grown["RequestedInstanceCount"] == 1
    [task] = emr.list_instances(ClusterId=cid, InstanceGroupTypes=["TASK"], InstanceStates=["RUNNING"])[
        "Instances"
    ]
    master = emr.list_instances(ClusterId=cid, InstanceGroupTypes=["MASTER"])["Instances"][0]
    master_container = f"resilin-{CLOUD}-{master['Ec2InstanceId']}"
    # The job's pending work lands on the new node while the job still runs.
    wait_for("a container on the new task node", lambda: _containers_on(
        master_container, master["PrivateIpAddress"], task["Ec2InstanceId"]) > 0 or step_state() != "RUNNING",
        timeout=600)  # fmt: skip
    assert step_state() == "RUNNING", "the job ended before the new node took any of its work"
    wait_for("the step to end", lambda: step_state() in ("COMPLETED", "FAILED", "CANCELLED"), timeout=900)
    assert step_state() == "COMPLETED"
    # Idle for a whole period: the group goes back to none, its node decommissioned and gone.
    wait_for(
        "the idle task group to shrink",
        lambda: _task_group(emr, cid)["RunningInstanceCount"] == 0,
        timeout=600,
    )
    assert _task_group(emr, cid)["RequestedInstanceCount"] == 0
    instances = emr.list_instances(ClusterId=cid, InstanceGroupTypes=["TASK"])["Instances"]
    assert {i["Status"]["State"] for i in instances} == {"TERMINATED"}
    return grown


def test_an_automatic_scaling_policy_grows_a_task_group_while_containers_pend_and_shrinks_it_idle(cluster):
    emr, cid = cluster
    policy = wait_for("the policy to be attached", lambda: (
        p if (p := _task_group(emr, cid)["AutoScalingPolicy"])["Status"]["State"] == "ATTACHED" else None),
        timeout=60)  # fmt: skip
    dimensions = policy["Rules"][0]["Trigger"]["CloudWatchAlarmDefinition"]["Dimensions"]
    assert dimensions == [{"Key": "JobFlowId", "Value": cid}]
    grown = _grows_is_used_and_shrinks(emr, cid)
    assert (
        "grow while containers pend" in grown["AutoScalingPolicy"]["Status"]["StateChangeReason"]["Message"]
    )
    reason = _task_group(emr, cid)["AutoScalingPolicy"]["Status"]["StateChangeReason"]["Message"]
    assert "shrink when idle" in reason


def test_a_managed_scaling_policy_does_the_same_within_its_compute_limits(cluster):
    emr, cid = cluster
    emr.remove_auto_scaling_policy(ClusterId=cid, InstanceGroupId=_task_group(emr, cid)["Id"])
    limits = {"UnitType": "Instances", "MinimumCapacityUnits": 1, "MaximumCapacityUnits": 2}
    emr.put_managed_scaling_policy(ClusterId=cid, ManagedScalingPolicy={"ComputeLimits": limits})
    _grows_is_used_and_shrinks(emr, cid)
    core = next(
        g
        for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]
        if g["InstanceGroupType"] == "CORE"
    )
    assert core["RunningInstanceCount"] == 1  # the minimum: the core node stays
