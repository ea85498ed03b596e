"""Tags, policies, release metadata and security configurations through boto3 (no cluster is provisioned)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from botocore.exceptions import ClientError

from resilin.provisioners.localcloud.catalogue import INSTANCE_TYPES
from tests.emr_api import ACCOUNT, USERS, cluster_request, state_digest, worker_ends, worker_runs


def error_of(call, **kwargs) -> dict:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]


# -- tags -----------------------------------------------------------------------------------------


def test_add_and_remove_tags(emr_api, emr, store):
    cid = emr.run_job_flow(**cluster_request(Tags=[{"Key": "team", "Value": "data"}]))["JobFlowId"]
    emr.add_tags(ResourceId=cid, Tags=[{"Key": "team", "Value": "ml"}, {"Key": "cost", "Value": "42"}])
    assert emr.describe_cluster(ClusterId=cid)["Cluster"]["Tags"] == [
        {"Key": "team", "Value": "ml"},
        {"Key": "cost", "Value": "42"},
    ]
    emr.remove_tags(ResourceId=cid, TagKeys=["team", "absent"])
    assert emr.describe_cluster(ClusterId=cid)["Cluster"]["Tags"] == [{"Key": "cost", "Value": "42"}]
    for tags, fragment in (
        ([{"Key": "aws:cloudformation", "Value": "x"}], "reserved"),
        ([{"Key": "k" * 129, "Value": "x"}], "longer than 128"),
        ([{"Key": "v", "Value": "x" * 257}], "longer than 256"),
        ([{"Key": f"k{i}", "Value": "x"} for i in range(50)], "at most 50"),
    ):
        before = state_digest(store.redis)
        error = error_of(emr.add_tags, ResourceId=cid, Tags=tags)
        assert error["Code"] == "ValidationException" and fragment in error["Message"]
        assert state_digest(store.redis) == before
    assert (
        error_of(emr.add_tags, ResourceId="s-NOTACLUSTER", Tags=[{"Key": "a"}])["Code"]
        == "InvalidRequestException"
    )
    carol = emr_api.client("carol")
    assert error_of(carol.add_tags, ResourceId=cid, Tags=[{"Key": "a"}])["Code"] == "InvalidRequestException"
    # Tags stay editable after the cluster ended, as on EMR.
    worker_ends(store, cid)
    emr.add_tags(ResourceId=cid, Tags=[{"Key": "archived", "Value": "yes"}])
    assert {"Key": "archived", "Value": "yes"} in emr.describe_cluster(ClusterId=cid)["Cluster"]["Tags"]


# -- policies -------------------------------------------------------------------------------------


def test_auto_termination_policy(emr, store):
    cid = emr.run_job_flow(**cluster_request(AutoTerminationPolicy={"IdleTimeout": 900}))["JobFlowId"]
    assert emr.get_auto_termination_policy(ClusterId=cid)["AutoTerminationPolicy"] == {"IdleTimeout": 900}
    store.redis.delete("resilin:work")
    emr.put_auto_termination_policy(ClusterId=cid, AutoTerminationPolicy={"IdleTimeout": 3600 * 24})
    assert emr.get_auto_termination_policy(ClusterId=cid)["AutoTerminationPolicy"] == {"IdleTimeout": 86400}
    # The worker, which ends idle clusters, reads the policy from the cluster and is woken.
    assert store.get_cluster(cid)["auto_termination_policy"] == {"IdleTimeout": 86400}
    assert store.redis.lrange("resilin:work", 0, -1) == [cid]
    for timeout in (59, 604801):
        error = error_of(
            emr.put_auto_termination_policy, ClusterId=cid, AutoTerminationPolicy={"IdleTimeout": timeout}
        )
        assert error["Code"] == "ValidationException"
    emr.remove_auto_termination_policy(ClusterId=cid)
    assert "AutoTerminationPolicy" not in emr.get_auto_termination_policy(ClusterId=cid)


def test_managed_scaling_policy(emr):
    cid = emr.run_job_flow(**cluster_request())["JobFlowId"]
    assert "ManagedScalingPolicy" not in emr.get_managed_scaling_policy(ClusterId=cid)
    policy = {
        "ComputeLimits": {
            "UnitType": "Instances",
            "MinimumCapacityUnits": 2,
            "MaximumCapacityUnits": 10,
            "MaximumOnDemandCapacityUnits": 10,
            "MaximumCoreCapacityUnits": 3,
        }
    }
    emr.put_managed_scaling_policy(ClusterId=cid, ManagedScalingPolicy=policy)
    assert emr.get_managed_scaling_policy(ClusterId=cid)["ManagedScalingPolicy"] == policy
    for limits, fragment in (
        (
            {"UnitType": "Instances", "MinimumCapacityUnits": 5, "MaximumCapacityUnits": 4},
            "MaximumCapacityUnits",
        ),
        ({"UnitType": "Instances", "MinimumCapacityUnits": 0, "MaximumCapacityUnits": 4}, "at least 1"),
        (
            {"UnitType": "InstanceFleetUnits", "MinimumCapacityUnits": 1, "MaximumCapacityUnits": 4},
            "instance fleets",
        ),
        (
            {
                "UnitType": "VCPU",
                "MinimumCapacityUnits": 1,
                "MaximumCapacityUnits": 4,
                "MaximumCoreCapacityUnits": 9,
            },
            "MaximumCoreCapacityUnits",
        ),
    ):
        error = error_of(
            emr.put_managed_scaling_policy, ClusterId=cid, ManagedScalingPolicy={"ComputeLimits": limits}
        )
        assert error["Code"] == "ValidationException" and fragment in error["Message"]
    emr.remove_managed_scaling_policy(ClusterId=cid)
    assert "ManagedScalingPolicy" not in emr.get_managed_scaling_policy(ClusterId=cid)


AUTO_SCALING = {
    "Constraints": {"MinCapacity": 1, "MaxCapacity": 5},
    "Rules": [
        {
            "Name": "scale-out",
            "Action": {"SimpleScalingPolicyConfiguration": {"ScalingAdjustment": 1, "CoolDown": 300}},
            "Trigger": {
                "CloudWatchAlarmDefinition": {
                    "ComparisonOperator": "LESS_THAN",
                    "MetricName": "YARNMemoryAvailablePercentage",
                    "Period": 300,
                    "Threshold": 15.0,
                }
            },
        }
    ],
}


def test_auto_scaling_policy(emr):
    cid = emr.run_job_flow(**cluster_request(AutoScalingRole="EMR_AutoScaling_DefaultRole"))["JobFlowId"]
    groups = {
        g["InstanceGroupType"]: g["Id"] for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]
    }
    put = emr.put_auto_scaling_policy(
        ClusterId=cid, InstanceGroupId=groups["CORE"], AutoScalingPolicy=AUTO_SCALING
    )
    assert (put["ClusterId"], put["InstanceGroupId"]) == (cid, groups["CORE"])
    assert put["AutoScalingPolicy"]["Constraints"] == {"MinCapacity": 1, "MaxCapacity": 5}
    # Stored, not yet acted on: the resizing belongs to the cluster worker.
    assert put["AutoScalingPolicy"]["Status"]["State"] == "PENDING"
    core = next(
        g
        for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]
        if g["InstanceGroupType"] == "CORE"
    )
    assert core["AutoScalingPolicy"]["Rules"][0]["Name"] == "scale-out"
    master_error = error_of(
        emr.put_auto_scaling_policy,
        ClusterId=cid,
        InstanceGroupId=groups["MASTER"],
        AutoScalingPolicy=AUTO_SCALING,
    )
    assert master_error["Code"] == "ValidationException"
    # Rules whose alarm Resilin cannot evaluate are refused, not stored to be ignored.
    alarm = AUTO_SCALING["Rules"][0]["Trigger"]["CloudWatchAlarmDefinition"]
    for change, fragment in (
        ({"MetricName": "CPUUtilization"}, "not one Resilin computes"),
        ({"Namespace": "AWS/EC2"}, "namespace"),
        ({"Period": 30}, "Period"),
        ({"Statistic": "p99"}, "Statistic"),
        ({"Dimensions": [{"Key": "InstanceId", "Value": "i-1"}]}, "dimension"),
    ):
        rule = AUTO_SCALING["Rules"][0]
        bad = {
            **AUTO_SCALING,
            "Rules": [{**rule, "Trigger": {"CloudWatchAlarmDefinition": {**alarm, **change}}}],
        }
        error = error_of(
            emr.put_auto_scaling_policy, ClusterId=cid, InstanceGroupId=groups["CORE"], AutoScalingPolicy=bad
        )
        assert error["Code"] == "ValidationException" and fragment.lower() in error["Message"].lower(), (
            change,
            error,
        )
    managed = {
        "ComputeLimits": {"UnitType": "Instances", "MinimumCapacityUnits": 1, "MaximumCapacityUnits": 4}
    }
    assert error_of(emr.put_managed_scaling_policy, ClusterId=cid, ManagedScalingPolicy=managed)["Code"] == (
        "ValidationException"
    )
    emr.remove_auto_scaling_policy(ClusterId=cid, InstanceGroupId=groups["CORE"])
    core = next(
        g
        for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]
        if g["InstanceGroupType"] == "CORE"
    )
    assert "AutoScalingPolicy" not in core
    without_role = emr.run_job_flow(**cluster_request("no role"))["JobFlowId"]
    core_id = next(
        g["Id"]
        for g in emr.list_instance_groups(ClusterId=without_role)["InstanceGroups"]
        if g["InstanceGroupType"] == "CORE"
    )
    error = error_of(
        emr.put_auto_scaling_policy,
        ClusterId=without_role,
        InstanceGroupId=core_id,
        AutoScalingPolicy=AUTO_SCALING,
    )
    assert error["Code"] == "ValidationException" and "AutoScalingRole" in error["Message"]


# -- release metadata ----------------------------------------------------------------------------


def test_release_labels(emr):
    labels = emr.list_release_labels()["ReleaseLabels"]
    assert labels[0] == "emr-7.5.0" and "emr-6.15.0" in labels and "emr-5.36.2" in labels
    assert all(
        label.startswith("emr-6.")
        for label in emr.list_release_labels(Filters={"Prefix": "emr-6."})["ReleaseLabels"]
    )
    assert emr.list_release_labels(Filters={"Application": "Hadoop@3.5.0"})["ReleaseLabels"] == labels
    assert emr.list_release_labels(Filters={"Application": "Spark"})["ReleaseLabels"] == labels
    assert emr.list_release_labels(Filters={"Application": "Hive"})["ReleaseLabels"] == []
    first = emr.list_release_labels(MaxResults=10)
    second = emr.list_release_labels(MaxResults=10, NextToken=first["NextToken"])
    assert first["ReleaseLabels"] + second["ReleaseLabels"] == labels[:20]
    described = emr.describe_release_label(ReleaseLabel="emr-6.15.0")
    assert described["ReleaseLabel"] == "emr-6.15.0"
    assert described["Applications"] == [{"Name": "Hadoop", "Version": "3.5.0"}, {"Name": "Spark"}]
    assert described["AvailableOSReleases"] == [{"Label": "debian-12"}]
    assert emr.describe_release_label()["ReleaseLabel"] == "emr-7.5.0"
    # Every label EMR published from emr-4.0.0 on; each runs (and says it runs) the image's Hadoop.
    page = emr.list_release_labels()
    every = page["ReleaseLabels"] + emr.list_release_labels(NextToken=page["NextToken"])["ReleaseLabels"]
    assert every[-1] == "emr-4.0.0" and "emr-5.12.3" in every and len(every) == len(set(every)) == 143
    oldest = emr.describe_release_label(ReleaseLabel="emr-4.0.0")
    # Spark came with the first release label (emr-4.0.0), so every label offers it.
    assert oldest["Applications"] == [{"Name": "Hadoop", "Version": "3.5.0"}, {"Name": "Spark"}]
    assert error_of(emr.describe_release_label, ReleaseLabel="emr-3.0.0")["Code"] == "ValidationException"
    assert error_of(emr.list_release_labels, NextToken="later")["Code"] == "ValidationException"


def test_supported_instance_types_come_from_the_clouds(emr):
    listed = emr.list_supported_instance_types(ReleaseLabel="emr-7.5.0")["SupportedInstanceTypes"]
    by_type = {t["Type"]: t for t in listed}
    # The default local cloud's catalogue by name, the other local cloud's as type@cloud; the EC2
    # cloud's offer is not known ahead, so it lists nothing.
    assert len(listed) == 2 * len(INSTANCE_TYPES)
    assert by_type["m5.xlarge"] == {
        "Type": "m5.xlarge",
        "MemoryGB": 16.0,
        "StorageGB": 0,
        "VCPU": 4,
        "Is64BitsOnly": True,
        "InstanceFamilyId": "m5",
        "EbsOptimizedAvailable": False,
        "EbsOptimizedByDefault": False,
        "NumberOfDisks": 0,
        "EbsStorageOnly": True,
        "Architecture": "x86_64",
    }
    assert by_type["r5.2xlarge@edge"]["MemoryGB"] == 64.0
    assert not any(t.endswith("@faraway") for t in by_type)
    assert error_of(emr.list_supported_instance_types, ReleaseLabel="emr-9")["Code"] == "ValidationException"


# -- security configurations ------------------------------------------------------------------


def test_security_configurations(emr_api, emr, store):
    imds = json.dumps({"InstanceMetadataServiceConfiguration": {"MinimumInstanceMetadataServiceVersion": 2}})
    created = emr.create_security_configuration(Name="imds-v2", SecurityConfiguration=imds)
    assert created["Name"] == "imds-v2" and isinstance(created["CreationDateTime"], dt.datetime)
    described = emr.describe_security_configuration(Name="imds-v2")
    assert json.loads(described["SecurityConfiguration"]) == json.loads(imds)
    # Names are the account's: another user of it (signing its own request) finds the name taken.
    bob = emr_api.client("bob")
    for name, text, fragment in (
        ("imds-v2", imds, "already exists"),
        ("broken", "{not json", "not valid JSON"),
        ("list", "[]", "JSON object"),
        ("odd", json.dumps({"Surprise": {}}), "unknown section"),
    ):
        before = state_digest(store.redis)
        error = error_of(bob.create_security_configuration, Name=name, SecurityConfiguration=text)
        assert error["Code"] == "InvalidRequestException" and fragment in error["Message"]
        assert state_digest(store.redis) == before
    encrypted = json.dumps(
        {"EncryptionConfiguration": {"EnableAtRestEncryption": True, "EnableInTransitEncryption": False}}
    )
    emr.create_security_configuration(Name="encrypted", SecurityConfiguration=encrypted)
    listed = [
        c["Name"]
        for p in emr.get_paginator("list_security_configurations").paginate()
        for c in p["SecurityConfigurations"]
    ]
    assert listed == ["imds-v2", "encrypted"]
    # Other accounts have their own.
    assert emr_api.client("carol").list_security_configurations()["SecurityConfigurations"] == []

    # A cluster may use one only if Resilin does what it asks.
    error = error_of(emr.run_job_flow, **cluster_request(SecurityConfiguration="encrypted"))
    assert error["Code"] == "ValidationException" and "at-rest encryption" in error["Message"]
    cid = emr.run_job_flow(**cluster_request(SecurityConfiguration="imds-v2"))["JobFlowId"]
    assert emr.describe_cluster(ClusterId=cid)["Cluster"]["SecurityConfiguration"] == "imds-v2"
    error = error_of(emr.delete_security_configuration, Name="imds-v2")
    assert error["Code"] == "InvalidRequestException" and cid in error["Message"]
    worker_runs(store, cid)
    worker_ends(store, cid)
    emr.delete_security_configuration(Name="imds-v2")
    with pytest.raises(ClientError) as info:
        emr.describe_security_configuration(Name="imds-v2")
    assert info.value.response["Error"]["Code"] == "InvalidRequestException"
    assert info.value.response["ErrorCode"] == "ResourceNotFound"


def test_block_public_access_configuration(emr_api, emr):
    default = emr.get_block_public_access_configuration()
    assert default["BlockPublicAccessConfiguration"] == {
        "BlockPublicSecurityGroupRules": True,
        "PermittedPublicSecurityGroupRuleRanges": [{"MinRange": 22, "MaxRange": 22}],
    }
    assert default["BlockPublicAccessConfigurationMetadata"]["CreatedByArn"] == f"arn:aws:iam::{ACCOUNT}:root"
    # The default keeps its creation time.
    again = emr.get_block_public_access_configuration()["BlockPublicAccessConfigurationMetadata"]
    assert again["CreationDateTime"] == default["BlockPublicAccessConfigurationMetadata"]["CreationDateTime"]
    emr.put_block_public_access_configuration(
        BlockPublicAccessConfiguration={
            "BlockPublicSecurityGroupRules": True,
            "PermittedPublicSecurityGroupRuleRanges": [
                {"MinRange": 22},
                {"MinRange": 8000, "MaxRange": 8100},
            ],
        }
    )
    stored = emr.get_block_public_access_configuration()
    assert stored["BlockPublicAccessConfiguration"]["PermittedPublicSecurityGroupRuleRanges"] == [
        {"MinRange": 22, "MaxRange": 22},
        {"MinRange": 8000, "MaxRange": 8100},
    ]
    assert stored["BlockPublicAccessConfigurationMetadata"]["CreatedByArn"] == (
        f"arn:aws:iam::{ACCOUNT}:user/{USERS['alice'].access_key}"
    )
    bad = {
        "BlockPublicSecurityGroupRules": True,
        "PermittedPublicSecurityGroupRuleRanges": [{"MinRange": 9, "MaxRange": 1}],
    }
    assert error_of(emr.put_block_public_access_configuration, BlockPublicAccessConfiguration=bad)[
        "Code"
    ] == ("InvalidRequestException")
    carol = emr_api.client("carol").get_block_public_access_configuration()
    assert carol["BlockPublicAccessConfigurationMetadata"]["CreatedByArn"].startswith(
        "arn:aws:iam::222222222222:"
    )
