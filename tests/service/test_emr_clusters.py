"""Cluster operations through boto3 against the EMR API over real Redis (no cluster is provisioned).

RunJobFlow in its three instance descriptions, DescribeCluster, ListClusters (filters,
pagination), TerminateJobFlows, the cluster settings, VisibleToAllUsers between users of an
account, DescribeJobFlows, and the waiters.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from botocore.exceptions import ClientError, WaiterError

from resilin.jobflows import states
from tests.emr_api import ACCOUNT, cluster_request, state_digest, step, worker_ends, worker_runs


def error_of(call, *args, **kwargs) -> dict:
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    error = info.value.response["Error"]
    error["Status"] = info.value.response["ResponseMetadata"]["HTTPStatusCode"]
    return error


# -- RunJobFlow, three ways -----------------------------------------------------------------


def test_master_and_slave_types_with_a_count(emr):
    cid = emr.run_job_flow(**cluster_request())["JobFlowId"]
    cluster = emr.describe_cluster(ClusterId=cid)["Cluster"]
    assert cluster["InstanceCollectionType"] == "INSTANCE_GROUP"
    groups = emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]
    assert sorted(
        (g["InstanceGroupType"], g["InstanceType"], g["RequestedInstanceCount"]) for g in groups
    ) == [
        ("CORE", "m5.xlarge", 2),
        ("MASTER", "m5.xlarge", 1),
    ]
    assert all(g["Status"]["State"] == "PROVISIONING" and g["RunningInstanceCount"] == 0 for g in groups)
    assert all(g["Id"].startswith("ig-") for g in groups)


def test_instance_groups(emr):
    request = cluster_request()
    request["Instances"] = {
        "InstanceGroups": [
            {"Name": "boss", "InstanceRole": "MASTER", "InstanceType": "m5.large", "InstanceCount": 1},
            {"InstanceRole": "CORE", "InstanceType": "r5.xlarge", "InstanceCount": 2,
             "Configurations": [{"Classification": "yarn-site", "Properties": {"a": "b"}}],
             "EbsConfiguration": {"EbsBlockDeviceConfigs": [
                 {"VolumeSpecification": {"VolumeType": "gp3", "SizeInGB": 64}, "VolumesPerInstance": 2}]}},
            {"InstanceRole": "TASK", "InstanceType": "c5.xlarge", "InstanceCount": 3, "Market": "SPOT",
             "BidPrice": "0.10"},
        ],
        "KeepJobFlowAliveWhenNoSteps": True,
    }  # fmt: skip
    cid = emr.run_job_flow(**request)["JobFlowId"]
    groups = {g["InstanceGroupType"]: g for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]}
    assert groups["MASTER"]["Name"] == "boss"
    assert groups["CORE"]["Configurations"] == [{"Classification": "yarn-site", "Properties": {"a": "b"}}]
    assert [d["Device"] for d in groups["CORE"]["EbsBlockDevices"]] == ["/dev/sdb", "/dev/sdc"]
    assert (
        groups["TASK"]["Market"],
        groups["TASK"]["BidPrice"],
        groups["TASK"]["RequestedInstanceCount"],
    ) == (
        "SPOT",
        "0.10",
        3,
    )


def test_instance_fleets(emr_api, emr, store):
    request = cluster_request()
    request["Instances"] = {
        "InstanceFleets": [
            {"InstanceFleetType": "MASTER", "TargetOnDemandCapacity": 1,
             "InstanceTypeConfigs": [{"InstanceType": "x9.unoffered"}, {"InstanceType": "m5.xlarge"}]},
            {"Name": "workers", "InstanceFleetType": "CORE", "TargetOnDemandCapacity": 4, "TargetSpotCapacity": 2,
             "InstanceTypeConfigs": [{"InstanceType": "m5.2xlarge", "WeightedCapacity": 4},
                                     {"InstanceType": "m5.xlarge", "WeightedCapacity": 2}]},
        ],
        "KeepJobFlowAliveWhenNoSteps": True,
    }  # fmt: skip
    cid = emr.run_job_flow(**request)["JobFlowId"]
    assert emr.describe_cluster(ClusterId=cid)["Cluster"]["InstanceCollectionType"] == "INSTANCE_FLEET"
    fleets = {f["InstanceFleetType"]: f for f in emr.list_instance_fleets(ClusterId=cid)["InstanceFleets"]}
    assert fleets["MASTER"]["Id"].startswith("if-")
    assert fleets["CORE"]["Name"] == "workers"
    assert (fleets["CORE"]["TargetOnDemandCapacity"], fleets["CORE"]["TargetSpotCapacity"]) == (4, 2)
    assert [s["InstanceType"] for s in fleets["CORE"]["InstanceTypeSpecifications"]] == [
        "m5.2xlarge",
        "m5.xlarge",
    ]
    # The worker provisions the first offered type, enough of it for the capacity: 6 units / 4 each.
    groups = {g["role"]: g for g in store.get_cluster(cid)["groups"]}
    assert (groups["MASTER"]["instance_type"], groups["MASTER"]["requested"]) == ("m5.xlarge", 1)
    assert (groups["CORE"]["instance_type"], groups["CORE"]["requested"]) == ("m5.2xlarge", 2)
    assert error_of(emr.list_instance_groups, ClusterId=cid)["Code"] == "InvalidRequestException"
    worker_runs(store, cid)
    fleets = {f["InstanceFleetType"]: f for f in emr.list_instance_fleets(ClusterId=cid)["InstanceFleets"]}
    assert fleets["CORE"]["ProvisionedOnDemandCapacity"] == 8
    assert fleets["CORE"]["Status"]["State"] == "RUNNING"
    instances = emr.list_instances(ClusterId=cid, InstanceFleetType="CORE")["Instances"]
    assert len(instances) == 2 and {i["InstanceFleetId"] for i in instances} == {fleets["CORE"]["Id"]}

    # Fleets are added and resized as requests for the worker; groups do not apply to this cluster.
    task = {
        "InstanceFleetType": "TASK",
        "TargetSpotCapacity": 3,
        "InstanceTypeConfigs": [{"InstanceType": "c5.large"}],
    }
    added = emr.add_instance_fleet(ClusterId=cid, InstanceFleet=task)
    assert added["InstanceFleetId"].startswith("if-") and added["ClusterArn"].endswith(cid)
    bob = emr_api.client("bob")  # another user of the account, so not the same signed request
    assert (
        error_of(bob.add_instance_fleet, ClusterId=cid, InstanceFleet=task)["Code"] == "ValidationException"
    )
    emr.modify_instance_fleet(
        ClusterId=cid, InstanceFleet={"InstanceFleetId": fleets["CORE"]["Id"], "TargetOnDemandCapacity": 12}
    )
    fleets = {f["InstanceFleetType"]: f for f in emr.list_instance_fleets(ClusterId=cid)["InstanceFleets"]}
    assert (fleets["CORE"]["TargetOnDemandCapacity"], fleets["CORE"]["Status"]["State"]) == (12, "RESIZING")
    assert next(g for g in store.get_cluster(cid)["groups"] if g["role"] == "CORE")["requested"] == 4
    assert (fleets["TASK"]["TargetSpotCapacity"], fleets["TASK"]["Status"]["State"]) == (3, "PROVISIONING")
    master = {"InstanceFleetId": fleets["MASTER"]["Id"], "TargetOnDemandCapacity": 2}
    assert (
        error_of(emr.modify_instance_fleet, ClusterId=cid, InstanceFleet=master)["Code"]
        == "ValidationException"
    )
    group = {"InstanceRole": "TASK", "InstanceType": "m5.xlarge", "InstanceCount": 1}
    assert (
        error_of(emr.add_instance_groups, JobFlowId=cid, InstanceGroups=[group])["Code"]
        == "ValidationException"
    )


@pytest.mark.parametrize(
    ("change", "code", "fragment"),
    [
        (lambda r: r["Instances"].update(InstanceGroups=[{"InstanceRole": "MASTER", "InstanceType": "m5.xlarge",
                                                          "InstanceCount": 1}]),
         "ValidationException", "only one of instance fleets, instance groups"),
        (lambda r: r.update(Instances={"InstanceGroups": [
            {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 3}]}),
         "ValidationException", "single master"),
        (lambda r: r.update(Instances={"InstanceGroups": [
            {"InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": 3}]}),
         "ValidationException", "exactly one master"),
        (lambda r: r.update(Instances={"InstanceFleets": [
            {"InstanceFleetType": "MASTER", "TargetOnDemandCapacity": 2,
             "InstanceTypeConfigs": [{"InstanceType": "m5.xlarge"}]}]}),
         "ValidationException", "target capacity of exactly 1"),
        (lambda r: (r.pop("ReleaseLabel", None), r.update(AmiVersion="1.0")), "ValidationException", "AMI version '1.0' is not supported"),
        (lambda r: r.update(AmiVersion="3.11.0"), "ValidationException", "Only one AMI version and release label"),
        (lambda r: r.update(ReleaseLabel="emr-3.9.0"), "ValidationException", "not supported"),
        (lambda r: r.update(ReleaseLabel="emr-5.12.9"), "ValidationException", "not supported"),  # never published
        (lambda r: r.update(ReleaseLabel="emr-5.6.1", CustomAmiId="ami-12345678"), "ValidationException",
         "Custom AMI is not allowed"),
        (lambda r: (r.pop("ReleaseLabel"), r.update(AmiVersion="3.11", CustomAmiId="ami-12345678")),
         "ValidationException", "Custom AMI is not allowed"),
        (lambda r: r.update(ReleaseLabel="emr-5.0.0", Instances={"InstanceGroups": [
            {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1,
             "CustomAmiId": "ami-12345678"}]}), "ValidationException", "Custom AMI is not allowed"),
        (lambda r: r.update(ReleaseLabel="emr-5.0.0", Instances={"InstanceFleets": [
            {"InstanceFleetType": "MASTER", "TargetOnDemandCapacity": 1, "InstanceTypeConfigs": [
                {"InstanceType": "m5.xlarge", "CustomAmiId": "ami-12345678"}]}]}),
         "ValidationException", "Custom AMI is not allowed"),
        (lambda r: r.update(Applications=[{"Name": "Spark"}, {"Name": "Hive"}]), "ValidationException", "Hive is invalid"),
        (lambda r: r.update(KerberosAttributes={"Realm": "X", "KdcAdminPassword": "p"}),
         "ValidationException", "Kerberos"),
        (lambda r: r.update(StepConcurrencyLevel=0), "ValidationException", "StepConcurrencyLevel"),
        (lambda r: r.update(StepConcurrencyLevel=257), "ValidationException", "StepConcurrencyLevel"),
        (lambda r: r.update(Steps=[step()] * 257), "ValidationException", "Maximum number of active steps"),
        (lambda r: r.update(Steps=[step(args=["x" * 10240, "y"])]), "ValidationException", "10240"),
        (lambda r: r.update(Tags=[{"Key": "aws:owner", "Value": "me"}]), "ValidationException", "reserved"),
        (lambda r: r.update(Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)]),
         "ValidationException", "at most 50 tags"),
        (lambda r: r.update(AutoTerminationPolicy={"IdleTimeout": 30}), "ValidationException", "idle timeout"),
        (lambda r: r.update(SecurityConfiguration="nope"), "ValidationException", "does not exist"),
        (lambda r: r["Instances"].update(Placement={"AvailabilityZone": "eu-west-1a"}),
         "ValidationException", "not a zone of region"),
        (lambda r: r.update(OSReleaseLabel="2.0.20240709.1"), "ValidationException", "OS release label"),
        (lambda r: r.update(ManagedScalingPolicy={"ComputeLimits": {
            "UnitType": "InstanceFleetUnits", "MinimumCapacityUnits": 1, "MaximumCapacityUnits": 4}}),
         "ValidationException", "InstanceFleetUnits"),
        (lambda r: r.update(BootstrapActions=[{"Name": "b", "ScriptBootstrapAction": {"Path": "s3://b/x.sh"}}] * 17),
         "ValidationException", "at most 16 bootstrap actions"),
        # Names a node's configuration file cannot hold: they would run as shell, or break the file.
        (lambda r: r.update(Configurations=[{"Classification": "hadoop-env", "Configurations": [
            {"Classification": "export", "Properties": {"X=1; touch /tmp/pwned; Y": "1"}}]}]),
         "ValidationException", "not a valid environment variable name"),
        (lambda r: r.update(Instances={"InstanceGroups": [
            {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1, "Configurations": [
                {"Classification": "hadoop-log4j", "Properties": {"log4j.x\ntouch /tmp/pwned": "1"}}]}]}),
         "ValidationException", "is not valid"),
        (lambda r: r.update(Configurations=[{"Classification": "core-site", "Properties": {"x": "bell\x07"}}]),
         "ValidationException", "not allowed"),
    ],
)  # fmt: skip
def test_run_job_flow_refusals_change_nothing(emr, redis_client, change, code, fragment):
    request = cluster_request()
    change(request)
    before = state_digest(redis_client)
    error = error_of(emr.run_job_flow, **request)
    assert (error["Code"], error["Status"]) == (code, 400)
    assert fragment in error["Message"]
    assert state_digest(redis_client) == before
    assert emr.list_clusters()["Clusters"] == []


def test_describe_cluster_reflects_the_request(emr):
    cid = emr.run_job_flow(
        **cluster_request(
            LogUri="s3://logs/emr/",
            Tags=[{"Key": "team", "Value": "data"}],
            Applications=[{"Name": "Hadoop"}],
            Configurations=[{"Classification": "core-site", "Properties": {"io.file.buffer.size": "65536"}}],
            JobFlowRole="EMR_EC2_DefaultRole",
            ServiceRole="EMR_DefaultRole",
            AutoScalingRole="EMR_AutoScaling_DefaultRole",
            ScaleDownBehavior="TERMINATE_AT_INSTANCE_HOUR",
            StepConcurrencyLevel=4,
            EbsRootVolumeSize=32,
            OSReleaseLabel="debian-12",
            VisibleToAllUsers=True,
        )
        | {
            "Instances": {
                "MasterInstanceType": "m5.xlarge",
                "InstanceCount": 1,
                "Ec2KeyName": "mykey",
                "Ec2SubnetId": "subnet-1234",
                "Placement": {"AvailabilityZone": "us-east-1c"},
                "TerminationProtected": True,
            }
        }
    )["JobFlowId"]
    cluster = emr.describe_cluster(ClusterId=cid)["Cluster"]
    assert cluster["ClusterArn"] == f"arn:aws:elasticmapreduce:us-east-1:{ACCOUNT}:cluster/{cid}"
    assert cluster["LogUri"] == "s3://logs/emr/"
    assert cluster["Tags"] == [{"Key": "team", "Value": "data"}]
    assert cluster["Applications"] == [{"Name": "Hadoop", "Version": "3.5.0"}]
    assert cluster["Configurations"][0]["Properties"] == {"io.file.buffer.size": "65536"}
    assert cluster["Ec2InstanceAttributes"] == {
        "Ec2KeyName": "mykey",
        "Ec2SubnetId": "subnet-1234",
        "Ec2AvailabilityZone": "us-east-1c",
        "IamInstanceProfile": "EMR_EC2_DefaultRole",
    }
    assert (cluster["ServiceRole"], cluster["AutoScalingRole"]) == (
        "EMR_DefaultRole",
        "EMR_AutoScaling_DefaultRole",
    )
    assert cluster["ScaleDownBehavior"] == "TERMINATE_AT_INSTANCE_HOUR"
    assert cluster["StepConcurrencyLevel"] == 4
    assert cluster["EbsRootVolumeSize"] == 32
    assert cluster["OSReleaseLabel"] == "debian-12"
    assert cluster["AutoTerminate"] is True  # KeepJobFlowAliveWhenNoSteps not given
    assert cluster["TerminationProtected"] is True
    assert cluster["VisibleToAllUsers"] is True
    assert cluster["NormalizedInstanceHours"] == 0
    assert cluster["Status"]["State"] == "STARTING"


def test_normalized_instance_hours_count_started_hours_by_size(emr, store):
    cid = emr.run_job_flow(**cluster_request())["JobFlowId"]  # 3 x m5.xlarge: 8 units each
    worker_runs(store, cid)
    assert emr.describe_cluster(ClusterId=cid)["Cluster"]["NormalizedInstanceHours"] == 24

    def two_hours_ago(c):
        c["timeline"]["created"] -= 7200

    store.update_cluster(cid, two_hours_ago)
    assert emr.list_clusters()["Clusters"][0]["NormalizedInstanceHours"] == 72


# -- ListClusters ------------------------------------------------------------------------------


def test_list_clusters_pages_newest_first(emr):
    created = [emr.run_job_flow(**cluster_request(f"c{i}"))["JobFlowId"] for i in range(120)]
    first = emr.list_clusters()
    assert len(first["Clusters"]) == 50 and first["Marker"]
    # A cluster created while a client pages does not shift the pages it has not seen.
    newcomer = emr.run_job_flow(**cluster_request("newcomer"))["JobFlowId"]
    rest = emr.list_clusters(Marker=first["Marker"])
    second = rest["Clusters"]
    third = emr.list_clusters(Marker=rest["Marker"])
    assert "Marker" not in third
    listed = [c["Id"] for c in first["Clusters"] + second + third["Clusters"]]
    assert listed == list(reversed(created))
    pages = list(emr.get_paginator("list_clusters").paginate())
    assert [len(p["Clusters"]) for p in pages] == [50, 50, 21]
    assert [c["Id"] for p in pages for c in p["Clusters"]] == [newcomer, *reversed(created)]


def test_list_clusters_filters(emr, store):
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    old, waiting, ended = (
        emr.run_job_flow(**cluster_request(n))["JobFlowId"] for n in ("old", "waiting", "ended")
    )

    def last_week(c):
        c["timeline"]["created"] -= 7 * 86400

    store.update_cluster(old, last_week)
    store.redis.zadd(
        f"resilin:account:{ACCOUNT}:clusters", {old: store.get_cluster(old)["timeline"]["created"]}
    )
    worker_runs(store, waiting)
    worker_runs(store, ended)
    worker_ends(store, ended)

    def ids(**filters):
        pages = emr.get_paginator("list_clusters").paginate(**filters)
        return {c["Id"] for p in pages for c in p["Clusters"]}

    assert ids() == {old, waiting, ended}
    assert ids(ClusterStates=["WAITING"]) == {waiting}
    assert ids(ClusterStates=["TERMINATED", "STARTING"]) == {ended, old}
    assert ids(CreatedAfter=before) == {waiting, ended}
    assert ids(CreatedBefore=before) == {old}
    assert ids(CreatedAfter=before, ClusterStates=["STARTING"]) == set()
    states_seen = {c["Id"]: c["Status"]["State"] for c in emr.list_clusters()["Clusters"]}
    assert states_seen == {old: "STARTING", waiting: "WAITING", ended: "TERMINATED"}


def test_list_clusters_with_a_bad_marker(emr):
    for marker in ("garbage", "1.5:x-1", "nan:j-ABC", "1e400:j-ABC"):
        assert error_of(emr.list_clusters, Marker=marker)["Code"] == "InvalidRequestException"


# -- TerminateJobFlows ---------------------------------------------------------------------------


def test_terminate_job_flows(emr, store):
    cids = [emr.run_job_flow(**cluster_request(f"t{i}"))["JobFlowId"] for i in range(11)]
    error = error_of(emr.terminate_job_flows, JobFlowIds=cids)
    assert error["Code"] == "ValidationException" and "At most 10" in error["Message"]
    assert {c["Status"]["State"] for c in emr.list_clusters()["Clusters"]} == {"STARTING"}
    emr.terminate_job_flows(JobFlowIds=cids[:10])
    statuses = {c["Id"]: c["Status"] for c in emr.list_clusters()["Clusters"]}
    assert all(statuses[c]["State"] == "TERMINATING" for c in cids[:10])
    assert statuses[cids[0]]["StateChangeReason"] == {
        "Code": "USER_REQUEST",
        "Message": "Terminated by user request",
    }
    assert statuses[cids[10]]["State"] == "STARTING"
    # The orchestrator is told; terminating again changes nothing.
    assert set(store.redis.lrange("resilin:work", 0, -1)) >= set(cids[:10])
    emr.terminate_job_flows(JobFlowIds=cids[:2])
    worker_ends(store, cids[0])
    emr.terminate_job_flows(JobFlowIds=cids[:3])
    assert emr.describe_cluster(ClusterId=cids[0])["Cluster"]["Status"]["State"] == "TERMINATED"


def test_termination_protection(emr):
    free, guarded = (emr.run_job_flow(**cluster_request(n))["JobFlowId"] for n in ("free", "guarded"))
    emr.set_termination_protection(JobFlowIds=[guarded], TerminationProtected=True)
    error = error_of(emr.terminate_job_flows, JobFlowIds=[free, guarded])
    assert (error["Code"], error["Message"]) == (
        "ValidationException",
        "Could not shut down one or more job flows since they are termination protected.",
    )
    assert emr.describe_cluster(ClusterId=free)["Cluster"]["Status"]["State"] == "STARTING"
    emr.set_termination_protection(JobFlowIds=[guarded], TerminationProtected=False)
    emr.terminate_job_flows(JobFlowIds=[free, guarded])


def test_unknown_and_malformed_cluster_ids(emr):
    for cid in ("j-NOSUCHCLUSTER1", "s-ABC", "j-lower", "j-" + "A" * 70):
        with pytest.raises(ClientError) as info:
            emr.describe_cluster(ClusterId=cid)
        error = info.value.response["Error"]
        assert (error["Code"], error["Message"]) == (
            "InvalidRequestException",
            f"Cluster id '{cid}' is not valid.",
        )
        assert info.value.response["ErrorCode"] == "NoSuchCluster"  # the exception's modeled member
    with pytest.raises(ClientError) as info:
        emr.list_steps(ClusterId="j-NOSUCHCLUSTER1")
    assert info.value.response["ErrorCode"] == "NoSuchCluster"
    assert (
        error_of(emr.terminate_job_flows, JobFlowIds=["j-NOSUCHCLUSTER1"])["Code"]
        == "InvalidRequestException"
    )


# -- settings -----------------------------------------------------------------------------------


def test_cluster_settings_are_stored_and_described(emr, store):
    cid = emr.run_job_flow(**cluster_request())["JobFlowId"]
    store.redis.delete("resilin:work")
    emr.set_keep_job_flow_alive_when_no_steps(JobFlowIds=[cid], KeepJobFlowAliveWhenNoSteps=False)
    emr.set_visible_to_all_users(JobFlowIds=[cid], VisibleToAllUsers=False)
    emr.set_unhealthy_node_replacement(JobFlowIds=[cid], UnhealthyNodeReplacement=True)
    emr.set_termination_protection(JobFlowIds=[cid], TerminationProtected=True)
    modified = emr.modify_cluster(ClusterId=cid, StepConcurrencyLevel=5)
    assert modified["StepConcurrencyLevel"] == 5
    cluster = emr.describe_cluster(ClusterId=cid)["Cluster"]
    assert cluster["AutoTerminate"] is True
    assert cluster["VisibleToAllUsers"] is False
    assert cluster["UnhealthyNodeReplacement"] is True
    assert cluster["TerminationProtected"] is True
    assert cluster["StepConcurrencyLevel"] == 5
    # Changes the worker acts on wake it.
    assert store.redis.lrange("resilin:work", 0, -1).count(cid) >= 2
    assert (
        error_of(emr.modify_cluster, ClusterId=cid, StepConcurrencyLevel=0)["Code"] == "ValidationException"
    )


def test_an_ended_cluster_cannot_be_modified(emr, store):
    cid = emr.run_job_flow(**cluster_request())["JobFlowId"]
    worker_ends(store, cid)
    for call, kwargs in (
        (emr.modify_cluster, {"ClusterId": cid, "StepConcurrencyLevel": 2}),
        (emr.set_termination_protection, {"JobFlowIds": [cid], "TerminationProtected": True}),
        (emr.add_job_flow_steps, {"JobFlowId": cid, "Steps": [step()]}),
        (emr.put_auto_termination_policy, {"ClusterId": cid, "AutoTerminationPolicy": {"IdleTimeout": 600}}),
    ):
        error = error_of(call, **kwargs)
        assert error["Code"] == "ValidationException"
        assert "shutting down, terminated, or finished" in error["Message"]


# -- who sees what ----------------------------------------------------------------------------------


def test_visible_to_all_users_within_an_account(emr_api, redis_client):
    alice, bob, carol = (emr_api.client(u) for u in ("alice", "bob", "carol"))
    private = alice.run_job_flow(**cluster_request("private", VisibleToAllUsers=False))["JobFlowId"]
    shared = alice.run_job_flow(**cluster_request("shared"))["JobFlowId"]
    assert {c["Id"] for c in alice.list_clusters()["Clusters"]} == {private, shared}
    assert {c["Id"] for c in bob.list_clusters()["Clusters"]} == {shared}
    assert carol.list_clusters()["Clusters"] == []
    for client in (bob, carol):
        assert error_of(client.describe_cluster, ClusterId=private)["Code"] == "InvalidRequestException"
        assert error_of(client.terminate_job_flows, JobFlowIds=[private])["Code"] == "InvalidRequestException"
        assert error_of(client.list_steps, ClusterId=private)["Code"] == "InvalidRequestException"
    assert error_of(carol.describe_cluster, ClusterId=shared)["Code"] == "InvalidRequestException"
    assert [j["JobFlowId"] for j in bob.describe_job_flows()["JobFlows"]] == [shared]
    alice.set_visible_to_all_users(JobFlowIds=[private], VisibleToAllUsers=True)
    assert bob.describe_cluster(ClusterId=private)["Cluster"]["Name"] == "private"
    assert carol.list_clusters()["Clusters"] == []


# -- DescribeJobFlows --------------------------------------------------------------------------------


def test_describe_job_flows_shape(emr, store):
    cid = emr.run_job_flow(
        **cluster_request(
            BootstrapActions=[
                {"Name": "setup", "ScriptBootstrapAction": {"Path": "s3://b/setup.sh", "Args": ["-x"]}}
            ],
            LogUri="s3://logs/",
        )
    )["JobFlowId"]
    worker_runs(store, cid)
    (flow,) = emr.describe_job_flows(JobFlowIds=[cid])["JobFlows"]
    assert flow["JobFlowId"] == cid and flow["LogUri"] == "s3://logs/"
    status = flow["ExecutionStatusDetail"]
    assert status["State"] == "WAITING" and isinstance(status["CreationDateTime"], dt.datetime)
    assert isinstance(status["ReadyDateTime"], dt.datetime)
    instances = flow["Instances"]
    assert (instances["MasterInstanceType"], instances["SlaveInstanceType"], instances["InstanceCount"]) == (
        "m5.xlarge",
        "m5.xlarge",
        3,
    )
    assert instances["MasterPublicDnsName"] == "10.250.1.2"
    assert instances["MasterInstanceId"].startswith("i-")
    assert instances["HadoopVersion"] == "3.5.0"
    assert instances["KeepJobFlowAliveWhenNoSteps"] is True
    assert {
        (g["InstanceRole"], g["InstanceRunningCount"], g["State"]) for g in instances["InstanceGroups"]
    } == {
        ("MASTER", 1, "RUNNING"),
        ("CORE", 2, "RUNNING"),
    }
    for group in instances["InstanceGroups"]:  # started when its instances were launched
        assert group["CreationDateTime"] <= group["StartDateTime"] <= group["ReadyDateTime"]
    assert [s["StepConfig"]["Name"] for s in flow["Steps"]] == ["wc"]
    assert flow["Steps"][0]["StepConfig"]["HadoopJarStep"]["Args"] == ["hadoop-streaming", "-input", "in"]
    assert flow["Steps"][0]["ExecutionStatusDetail"]["State"] == "PENDING"
    assert flow["BootstrapActions"][0]["BootstrapActionConfig"]["ScriptBootstrapAction"]["Args"] == ["-x"]
    assert "AmiVersion" not in flow  # a release-label cluster
    request = cluster_request("ami", AmiVersion="3.11")
    del request["ReleaseLabel"]
    old = emr.run_job_flow(**request)["JobFlowId"]
    (flow,) = emr.describe_job_flows(JobFlowIds=[old])["JobFlows"]
    assert flow["AmiVersion"] == "3.11.0"
    assert all("StartDateTime" not in g for g in flow["Instances"]["InstanceGroups"])  # none launched yet


def test_describe_job_flows_window_and_states(emr, store):
    day = 86400
    ages = {"active-old": 40 * day, "done-recent": 3 * day, "done-old": 20 * day, "ancient": 70 * day}
    cids = {name: emr.run_job_flow(**cluster_request(name))["JobFlowId"] for name in ages}
    for name, age in ages.items():
        cid = cids[name]
        if name != "active-old":
            worker_runs(store, cid)
            worker_ends(
                store, cid, states.ALL_STEPS_COMPLETED if name == "done-recent" else states.USER_REQUEST
            )

        def shift(c, age=age):
            c["timeline"] = {k: v - age for k, v in c["timeline"].items()}

        created = store.update_cluster(cid, shift)["timeline"]["created"]
        store.redis.zadd(f"resilin:account:{ACCOUNT}:clusters", {cid: created})

    def names(**filters):
        return {
            j["Name"]: j["ExecutionStatusDetail"]["State"]
            for j in emr.describe_job_flows(**filters)["JobFlows"]
        }

    # By default: active ones, and those ended in the last two weeks; never beyond two months.
    assert names() == {"active-old": "STARTING", "done-recent": "COMPLETED"}
    assert names(JobFlowStates=["TERMINATED"]) == {"done-old": "TERMINATED"}
    assert names(JobFlowIds=[cids["ancient"], cids["done-old"]]) == {"done-old": "TERMINATED"}
    recent = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    assert names(CreatedAfter=recent) == {"done-recent": "COMPLETED"}
    assert set(names(CreatedBefore=recent)) == {"active-old", "done-old"}


# -- waiters --------------------------------------------------------------------------------------


def _later(action, delay=1.5) -> threading.Thread:
    def run():
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_waiters_follow_the_states(emr, store):
    cid = emr.run_job_flow(**cluster_request())["JobFlowId"]
    sid = emr.list_steps(ClusterId=cid)["Steps"][0]["Id"]
    fast = {"Delay": 1, "MaxAttempts": 30}
    thread = _later(lambda: worker_runs(store, cid))
    emr.get_waiter("cluster_running").wait(ClusterId=cid, WaiterConfig=fast)
    thread.join()

    def run_step():
        store.transition_step(sid, states.STEP_RUNNING)
        time.sleep(1)
        store.transition_step(sid, states.COMPLETED)

    thread = _later(run_step, 0.5)
    emr.get_waiter("step_complete").wait(ClusterId=cid, StepId=sid, WaiterConfig=fast)
    thread.join()
    assert emr.describe_step(ClusterId=cid, StepId=sid)["Step"]["Status"]["State"] == "COMPLETED"

    emr.terminate_job_flows(JobFlowIds=[cid])
    thread = _later(lambda: worker_ends(store, cid))
    emr.get_waiter("cluster_terminated").wait(ClusterId=cid, WaiterConfig=fast)
    thread.join()
    # A terminated cluster will never run: the waiter fails at once.
    with pytest.raises(WaiterError) as info:
        emr.get_waiter("cluster_running").wait(ClusterId=cid, WaiterConfig=fast)
    assert "terminal failure state" in str(info.value)


def test_step_waiter_fails_on_a_cancelled_step(emr):
    cid = emr.run_job_flow(**cluster_request())["JobFlowId"]
    sid = emr.list_steps(ClusterId=cid)["Steps"][0]["Id"]
    emr.cancel_steps(ClusterId=cid, StepIds=[sid])
    with pytest.raises(WaiterError):
        emr.get_waiter("step_complete").wait(
            ClusterId=cid, StepId=sid, WaiterConfig={"Delay": 1, "MaxAttempts": 3}
        )
