"""Steps and instances through boto3 against the EMR API over real Redis (no cluster is provisioned).

AddJobFlowSteps and its limits, ListSteps (newest first, filters, pages), DescribeStep,
CancelSteps; ListInstanceGroups, ListInstances, ListBootstrapActions, AddInstanceGroups and
ModifyInstanceGroups, with the paginators.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from resilin.jobflows import states
from tests.emr_api import cluster_request, state_digest, step, worker_ends, worker_runs


def error_of(call, **kwargs) -> dict:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]


# -- steps ------------------------------------------------------------------------------------


def test_add_steps_up_to_256_active(emr, store):
    cid = emr.run_job_flow(**cluster_request(Steps=[step(f"s{i}") for i in range(200)]))["JobFlowId"]
    added = emr.add_job_flow_steps(JobFlowId=cid, Steps=[step(f"a{i}") for i in range(56)])["StepIds"]
    assert len(added) == 56 and all(s.startswith("s-") for s in added)
    before = state_digest(store.redis)
    error = error_of(emr.add_job_flow_steps, JobFlowId=cid, Steps=[step("one too many")])
    assert error["Code"] == "ValidationException"
    assert error["Message"].startswith(
        "Maximum number of active steps(State = 'Running', 'Pending' or 'Cancel_Pending')"
    )
    assert state_digest(store.redis) == before
    # Steps that ended no longer count.
    emr.cancel_steps(ClusterId=cid, StepIds=added[:1])
    emr.add_job_flow_steps(JobFlowId=cid, Steps=[step("fits again")])


def test_step_strings_are_limited_to_10240_characters(emr):
    cid = emr.run_job_flow(**cluster_request())["JobFlowId"]
    fits = step(args=["a" * 5000, "b" * (10240 - 5000 - len("command-runner.jar"))])
    emr.add_job_flow_steps(JobFlowId=cid, Steps=[fits])
    too_long = step(args=["a" * 5000, "b" * 5300])
    error = error_of(emr.add_job_flow_steps, JobFlowId=cid, Steps=[too_long])
    assert error["Code"] == "ValidationException" and "10240" in error["Message"]


def test_list_steps_newest_first_in_pages_of_50(emr):
    cid = emr.run_job_flow(**cluster_request(Steps=[step("first")]))["JobFlowId"]
    added = []
    for batch in range(3):
        added += emr.add_job_flow_steps(JobFlowId=cid, Steps=[step(f"b{batch}-{i}") for i in range(40)])[
            "StepIds"
        ]
    pages = list(emr.get_paginator("list_steps").paginate(ClusterId=cid))
    assert [len(p["Steps"]) for p in pages] == [50, 50, 21]
    listed = [s["Id"] for p in pages for s in p["Steps"]]
    assert listed[:-1] == list(reversed(added))
    assert pages[-1]["Steps"][-1]["Name"] == "first"
    # Steps added while paging do not shift the pages not yet read.
    first = emr.list_steps(ClusterId=cid)
    emr.add_job_flow_steps(JobFlowId=cid, Steps=[step("late")])
    second = emr.list_steps(ClusterId=cid, Marker=first["Marker"])
    assert [s["Id"] for s in first["Steps"] + second["Steps"]] == listed[:100]


def test_list_steps_filters(emr, store):
    cid = emr.run_job_flow(**cluster_request(Steps=[step(f"s{i}") for i in range(5)]))["JobFlowId"]
    ids = [s["Id"] for s in emr.list_steps(ClusterId=cid)["Steps"]]  # newest first
    store.transition_step(ids[-1], states.STEP_RUNNING)
    store.transition_step(ids[-1], states.COMPLETED)
    store.transition_step(ids[-2], states.STEP_RUNNING)
    by_state = emr.list_steps(ClusterId=cid, StepStates=["RUNNING", "COMPLETED"])["Steps"]
    assert [(s["Id"], s["Status"]["State"]) for s in by_state] == [
        (ids[-2], "RUNNING"),
        (ids[-1], "COMPLETED"),
    ]
    assert [s["Id"] for s in emr.list_steps(ClusterId=cid, StepIds=[ids[0], ids[3]])["Steps"]] == [
        ids[0],
        ids[3],
    ]
    assert emr.list_steps(ClusterId=cid, StepIds=["s-NOSUCHSTEP"])["Steps"] == []
    error = error_of(emr.list_steps, ClusterId=cid, StepIds=[f"s-{i}" for i in range(11)])
    assert error["Code"] == "ValidationException"
    assert error_of(emr.list_steps, ClusterId=cid, Marker="x")["Code"] == "InvalidRequestException"


def test_describe_step(emr):
    cid = emr.run_job_flow(**cluster_request())["JobFlowId"]
    other = emr.run_job_flow(**cluster_request("other"))["JobFlowId"]
    (sid,) = emr.add_job_flow_steps(
        JobFlowId=cid,
        Steps=[
            {
                "Name": "jar",
                "ActionOnFailure": "CANCEL_AND_WAIT",
                "HadoopJarStep": {
                    "Jar": "s3://b/job.jar",
                    "MainClass": "org.example.Main",
                    "Args": ["in", "out"],
                    "Properties": [{"Key": "mapreduce.job.reduces", "Value": "2"}],
                },
                "StepMonitoringConfiguration": {"S3MonitoringConfiguration": {"LogUri": "s3://logs/steps/"}},
            }
        ],
    )["StepIds"]
    found = emr.describe_step(ClusterId=cid, StepId=sid)["Step"]
    assert found["Config"] == {
        "Jar": "s3://b/job.jar",
        "MainClass": "org.example.Main",
        "Args": ["in", "out"],
        "Properties": {"mapreduce.job.reduces": "2"},
    }
    assert found["ActionOnFailure"] == "CANCEL_AND_WAIT"
    assert found["Status"]["State"] == "PENDING"
    error = error_of(emr.describe_step, ClusterId=other, StepId=sid)
    assert (error["Code"], error["Message"]) == ("InvalidRequestException", f"Step id '{sid}' is not valid.")


def test_cancel_steps(emr, store):
    cid = emr.run_job_flow(**cluster_request(Steps=[step(f"s{i}") for i in range(4)]))["JobFlowId"]
    pending, running, done, _ = reversed([s["Id"] for s in emr.list_steps(ClusterId=cid)["Steps"]])
    store.transition_step(running, states.STEP_RUNNING)
    store.transition_step(done, states.STEP_RUNNING)
    store.transition_step(done, states.COMPLETED)
    store.redis.delete("resilin:work")
    infos = emr.cancel_steps(
        ClusterId=cid,
        StepIds=[pending, running, done, "s-NOSUCHSTEP"],
        StepCancellationOption="TERMINATE_PROCESS",
    )["CancelStepsInfoList"]
    assert [(i["StepId"], i["Status"]) for i in infos] == [
        (pending, "SUBMITTED"),
        (running, "SUBMITTED"),
        (done, "FAILED"),
        ("s-NOSUCHSTEP", "FAILED"),
    ]
    assert "COMPLETED" in infos[2]["Reason"]
    state_of = {s["Id"]: s["Status"]["State"] for s in emr.list_steps(ClusterId=cid)["Steps"]}
    assert state_of[pending] == "CANCELLED"
    # The running step waits for the worker to stop it, told how.
    assert state_of[running] == "CANCEL_PENDING"
    assert store.get_step(running)["cancel_option"] == "TERMINATE_PROCESS"
    assert store.redis.lrange("resilin:work", 0, -1) == [cid]
    # Asking again is harmless.
    assert (
        emr.cancel_steps(ClusterId=cid, StepIds=[running])["CancelStepsInfoList"][0]["Status"] == "SUBMITTED"
    )
    store.transition_step(running, states.CANCELLED)
    assert emr.describe_step(ClusterId=cid, StepId=running)["Step"]["Status"]["State"] == "CANCELLED"


def test_cancel_steps_of_an_ended_cluster(emr, store):
    cid = emr.run_job_flow(**cluster_request())["JobFlowId"]
    sid = emr.list_steps(ClusterId=cid)["Steps"][0]["Id"]
    worker_ends(store, cid)
    assert error_of(emr.cancel_steps, ClusterId=cid, StepIds=[sid])["Code"] == "ValidationException"


# -- instances -------------------------------------------------------------------------------------


def test_list_instances_and_their_filters(emr, store):
    request = cluster_request()
    request["Instances"] = {
        "InstanceGroups": [
            {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
            {"InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": 2},
            {"InstanceRole": "TASK", "InstanceType": "c5.large", "InstanceCount": 3, "Market": "SPOT"},
        ]
    }
    cid = emr.run_job_flow(**request)["JobFlowId"]
    assert emr.list_instances(ClusterId=cid)["Instances"] == []
    worker_runs(store, cid)
    instances = emr.list_instances(ClusterId=cid)["Instances"]
    assert len(instances) == 6
    master = instances[0]
    assert master["Id"].startswith("ci-") and master["Ec2InstanceId"].startswith("i-")
    assert (master["PrivateIpAddress"], master["PublicDnsName"], master["PrivateDnsName"]) == (
        "10.250.1.2",
        "10.250.1.2",
        "node1",
    )
    assert master["Status"]["State"] == "RUNNING"
    groups = {
        g["InstanceGroupType"]: g["Id"] for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]
    }
    task = emr.list_instances(ClusterId=cid, InstanceGroupId=groups["TASK"])["Instances"]
    assert len(task) == 3 and {(i["InstanceType"], i["Market"]) for i in task} == {("c5.large", "SPOT")}
    assert len(emr.list_instances(ClusterId=cid, InstanceGroupTypes=["MASTER", "CORE"])["Instances"]) == 3
    assert emr.list_instances(ClusterId=cid, InstanceStates=["TERMINATED"])["Instances"] == []
    worker_ends(store, cid)
    for instance in store.instances_of(cid):
        store.put_instance(cid, instance | {"state": states.INSTANCE_TERMINATED})
    assert len(emr.list_instances(ClusterId=cid, InstanceStates=["TERMINATED"])["Instances"]) == 6


def test_paginators_of_the_instance_listings(emr, store):
    request = cluster_request(
        BootstrapActions=[
            {"Name": f"b{i}", "ScriptBootstrapAction": {"Path": f"s3://b/{i}.sh", "Args": [str(i)]}}
            for i in range(3)
        ]
    )
    request["Instances"] = {
        "InstanceGroups": [
            {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
            {"InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": 60},
        ]
        + [{"InstanceRole": "TASK", "InstanceType": "c5.large", "InstanceCount": 1} for _ in range(40)]
    }
    cid = emr.run_job_flow(**request)["JobFlowId"]
    worker_runs(store, cid)
    pages = list(emr.get_paginator("list_instances").paginate(ClusterId=cid))
    assert [len(p["Instances"]) for p in pages] == [50, 50, 1]
    assert len({i["Id"] for p in pages for i in p["Instances"]}) == 101
    groups = [
        g
        for p in emr.get_paginator("list_instance_groups").paginate(ClusterId=cid)
        for g in p["InstanceGroups"]
    ]
    assert len(groups) == 42
    actions = [
        a
        for p in emr.get_paginator("list_bootstrap_actions").paginate(ClusterId=cid)
        for a in p["BootstrapActions"]
    ]
    assert actions[1] == {"Name": "b1", "ScriptPath": "s3://b/1.sh", "Args": ["1"]}


def test_add_instance_groups(emr, store):
    cid = emr.run_job_flow(**cluster_request())["JobFlowId"]
    task = {"InstanceRole": "TASK", "InstanceType": "c5.xlarge", "InstanceCount": 2, "Name": "more"}
    error = error_of(emr.add_instance_groups, JobFlowId=cid, InstanceGroups=[task])
    assert error["Code"] == "ValidationException" and "RUNNING or WAITING" in error["Message"]
    worker_runs(store, cid)
    store.redis.delete("resilin:work")
    added = emr.add_instance_groups(JobFlowId=cid, InstanceGroups=[task])
    assert added["JobFlowId"] == cid and added["ClusterArn"].endswith(cid)
    (gid,) = added["InstanceGroupIds"]
    group = next(g for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"] if g["Id"] == gid)
    assert (group["Name"], group["RequestedInstanceCount"], group["RunningInstanceCount"]) == ("more", 2, 0)
    assert group["Status"]["State"] == "PROVISIONING"
    assert store.redis.lrange("resilin:work", 0, -1) == [cid]
    for refused, fragment in (
        ({"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1}, "master"),
        ({"InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": 1}, "one core"),
        ({"InstanceRole": "TASK", "InstanceType": "m5.xlarge", "InstanceCount": -1}, "at least 0"),
    ):
        before = state_digest(store.redis)
        error = error_of(emr.add_instance_groups, JobFlowId=cid, InstanceGroups=[refused])
        assert error["Code"] == "ValidationException" and fragment in error["Message"]
        assert state_digest(store.redis) == before


def test_modify_instance_groups(emr_api, emr, store):
    cid = emr.run_job_flow(**cluster_request())["JobFlowId"]
    groups = {
        g["InstanceGroupType"]: g["Id"] for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]
    }
    resize = [{"InstanceGroupId": groups["CORE"], "InstanceCount": 4}]
    assert (
        error_of(emr.modify_instance_groups, ClusterId=cid, InstanceGroups=resize)["Code"]
        == "ValidationException"
    )
    worker_runs(store, cid)
    store.redis.delete("resilin:work")
    # The cluster is found from the group when no ClusterId is given, as boto 2 sends it.
    emr.modify_instance_groups(InstanceGroups=resize)
    core = next(
        g for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"] if g["Id"] == groups["CORE"]
    )
    assert (core["RequestedInstanceCount"], core["RunningInstanceCount"], core["Status"]["State"]) == (
        4,
        2,
        "RESIZING",
    )
    assert store.redis.lrange("resilin:work", 0, -1) == [cid]
    other = emr.run_job_flow(**cluster_request("other"))["JobFlowId"]
    worker_runs(store, other)
    master_instance = next(i for i in store.instances_of(cid) if i["role"] == "MASTER")
    for refused, code, fragment in (
        ([{"InstanceGroupId": groups["MASTER"], "InstanceCount": 2}], "ValidationException", "master"),
        ([{"InstanceGroupId": "ig-NOSUCHGROUP", "InstanceCount": 2}], "InvalidRequestException", "not valid"),
        ([{"InstanceGroupId": groups["CORE"], "InstanceCount": 3}] * 2, "ValidationException", "once"),
        (
            [{"InstanceGroupId": groups["CORE"], "EC2InstanceIdsToTerminate": [master_instance["ec2_id"]]}],
            "ValidationException",
            "not in instance group",
        ),
    ):
        before = state_digest(store.redis)
        error = error_of(emr.modify_instance_groups, ClusterId=cid, InstanceGroups=refused)
        assert error["Code"] == code and fragment in error["Message"]
        assert state_digest(store.redis) == before
    # Another account cannot resize this cluster's groups, even naming them.
    carol = emr_api.client("carol")
    assert error_of(carol.modify_instance_groups, InstanceGroups=resize)["Code"] == "InvalidRequestException"
    assert error_of(carol.modify_instance_groups, ClusterId=cid, InstanceGroups=resize)["Code"] == (
        "InvalidRequestException"
    )


def test_reconfiguration_is_validated_recorded_and_reported(emr, store):
    memory = {"Classification": "yarn-site", "Properties": {"yarn.nodemanager.resource.memory-mb": "4096"}}
    cid = emr.run_job_flow(
        **cluster_request(
            Instances={
                "InstanceGroups": [
                    {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
                    {
                        "InstanceRole": "CORE",
                        "InstanceType": "m5.xlarge",
                        "InstanceCount": 2,
                        "Configurations": [memory],
                    },
                ],
                "KeepJobFlowAliveWhenNoSteps": True,
            }
        )
    )["JobFlowId"]
    worker_runs(store, cid)

    def listed() -> dict:
        return next(
            g
            for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]
            if g["InstanceGroupType"] == "CORE"
        )

    core = listed()
    # Before any reconfiguration the group runs what it was created with, as version 0.
    assert (core["ConfigurationsVersion"], core["LastSuccessfullyAppliedConfigurationsVersion"]) == (0, 0)
    assert core["Configurations"] == core["LastSuccessfullyAppliedConfigurations"] == [memory]

    # Refused as RunJobFlow refuses them, and nothing changes.
    for refused, fragment in (
        ([{"Classification": "hive-site", "Properties": {"x": "1"}}], "hive-site"),
        ([{"Classification": "yarn-site", "Configurations": [{"Classification": "export"}]}], "export"),
        ([{"Classification": "yarn-env", "Properties": {"X": "1"}}], "export"),
        (
            [
                {
                    "Classification": "yarn-env",
                    "Configurations": [{"Classification": "export", "Properties": {"A;B": "1"}}],
                }
            ],
            "not a valid environment variable name",
        ),
    ):
        before = state_digest(store.redis)
        error = error_of(
            emr.modify_instance_groups,
            ClusterId=cid,
            InstanceGroups=[{"InstanceGroupId": core["Id"], "Configurations": refused}],
        )
        assert error["Code"] == "ValidationException" and fragment in error["Message"]
        assert state_digest(store.redis) == before

    store.redis.delete("resilin:work")
    vcores = {"Classification": "yarn-site", "Properties": {"yarn.nodemanager.resource.cpu-vcores": "3"}}
    emr.modify_instance_groups(
        ClusterId=cid,
        InstanceGroups=[
            {"InstanceGroupId": core["Id"], "Configurations": [vcores], "ReconfigurationType": "MERGE"}
        ],
    )
    assert store.redis.lrange("resilin:work", 0, -1) == [cid]  # the cluster's worker is woken
    core = listed()
    assert core["Status"]["State"] == "RECONFIGURING"
    # MERGE keeps the group's memory; what the nodes run is still version 0 until it is applied.
    merged = {
        "Classification": "yarn-site",
        "Properties": {
            "yarn.nodemanager.resource.memory-mb": "4096",
            "yarn.nodemanager.resource.cpu-vcores": "3",
        },
    }
    assert (core["Configurations"], core["ConfigurationsVersion"]) == ([merged], 1)
    assert (
        core["LastSuccessfullyAppliedConfigurations"],
        core["LastSuccessfullyAppliedConfigurationsVersion"],
    ) == (
        [memory],
        0,
    )

    # One reconfiguration at a time; a resize asked for meanwhile waits for it.
    before = state_digest(store.redis)
    error = error_of(
        emr.modify_instance_groups,
        ClusterId=cid,
        InstanceGroups=[{"InstanceGroupId": core["Id"], "Configurations": [memory]}],
    )
    assert error["Code"] == "ValidationException" and "being reconfigured" in error["Message"]
    assert state_digest(store.redis) == before
    emr.modify_instance_groups(
        ClusterId=cid, InstanceGroups=[{"InstanceGroupId": core["Id"], "InstanceCount": 3}]
    )
    core = listed()
    assert (core["Status"]["State"], core["RequestedInstanceCount"]) == ("RECONFIGURING", 3)

    # OVERWRITE (the default) replaces the group's configurations, on the master group too.
    master = next(
        g
        for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]
        if g["InstanceGroupType"] == "MASTER"
    )
    emr.modify_instance_groups(
        InstanceGroups=[{"InstanceGroupId": master["Id"], "Configurations": [vcores]}],
    )
    master = next(
        g for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"] if g["Id"] == master["Id"]
    )
    assert (master["Status"]["State"], master["Configurations"], master["ConfigurationsVersion"]) == (
        "RECONFIGURING",
        [vcores],
        1,
    )
    assert master["LastSuccessfullyAppliedConfigurations"] == []
