"""The stored documents as EMR's output shapes (timestamps as aware datetimes)."""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Sequence
from typing import Any

from resilin.jobflows import relocations, states
from resilin.jobflows.documents import (
    AutoScalingPolicyDoc,
    BootstrapActionDoc,
    ClusterDoc,
    ClusterSummaryDoc,
    InstanceDoc,
    InstanceGroupDoc,
    StateReason,
    StepDoc,
)

_SIZE = re.compile(r"^(\d*)xlarge$")
# EMR's normalization factors by instance size; "<n>xlarge" counts 8n.
_SIZE_FACTORS = {"nano": 0.25, "micro": 0.5, "small": 1, "medium": 2, "large": 4, "metal": 192}


def ts(epoch: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(epoch, dt.UTC) if epoch else None


def strip(d: dict) -> dict:
    """Drop members whose value is None (the protocols leave them out)."""
    return {k: v for k, v in d.items() if v is not None}


def normalization_factor(instance_type: str) -> float:
    size = instance_type.rpartition(".")[2]
    match = _SIZE.match(size)
    if match:
        return 8 * int(match.group(1) or 1)
    return _SIZE_FACTORS.get(size, 8)


def normalized_hours(cluster: ClusterDoc | ClusterSummaryDoc, now: float | None = None) -> int:
    """Instance-hours, each started hour counted whole, weighted by instance size as EMR does."""
    timeline = cluster["timeline"]
    if not timeline.get("ready"):
        return 0
    hours = math.ceil(max((timeline.get("end") or now or time.time()) - timeline["created"], 1) / 3600)
    units = sum(normalization_factor(g["instance_type"]) * g["requested"] for g in cluster["groups"])
    return int(hours * units)


def _reason(reason: StateReason | None) -> dict:
    reason = reason or {}
    return strip({"Code": reason.get("code"), "Message": reason.get("message")})


def cluster_status(cluster: ClusterDoc | ClusterSummaryDoc) -> dict:
    timeline = cluster["timeline"]
    reason = _reason(cluster.get("state_reason"))
    relocating = relocations.status_message(cluster)
    if relocating:  # the state stays as it is while a relocation runs; the reason says so (Code kept)
        reason["Message"] = relocating
    return {
        "State": cluster["state"],
        "StateChangeReason": reason,
        "Timeline": strip(
            {
                "CreationDateTime": ts(timeline.get("created")),
                "ReadyDateTime": ts(timeline.get("ready")),
                "EndDateTime": ts(timeline.get("end")),
            }
        ),
    }


def cluster_summary(cluster: ClusterDoc | ClusterSummaryDoc) -> dict:
    return strip(
        {
            "Id": cluster["id"],
            "Name": cluster["name"],
            "Status": cluster_status(cluster),
            "NormalizedInstanceHours": normalized_hours(cluster),
            "ClusterArn": cluster["arn"],
            "OutpostArn": None,
        }
    )


# ListClusters answers the same summaries over and over: keep each one's view, keyed by its
# stored form, until its normalized hours would change (a running cluster's, hourly).
_SUMMARY_VIEWS: dict[str | bytes, tuple[float, dict]] = {}
_SUMMARY_VIEWS_MAX = 20_000


def cluster_summary_of(raw: str | bytes, cluster: ClusterSummaryDoc) -> dict:
    """``cluster_summary(cluster)`` for the summary stored as ``raw``, from a cache when fresh."""
    now = time.time()
    cached = _SUMMARY_VIEWS.get(raw)
    if cached is not None and now < cached[0]:
        return cached[1]
    view = cluster_summary(cluster)
    timeline = cluster["timeline"]
    if timeline.get("ready") and not timeline.get("end"):
        started_hours = math.ceil(max(now - timeline["created"], 1) / 3600)
        fresh_until = timeline["created"] + started_hours * 3600
    else:
        fresh_until = math.inf
    if len(_SUMMARY_VIEWS) >= _SUMMARY_VIEWS_MAX:
        _SUMMARY_VIEWS.clear()  # summaries change as clusters do; old forms are never asked again
    _SUMMARY_VIEWS[raw] = (fresh_until, view)
    return view


def _ec2_attributes(c: ClusterDoc, region: str) -> dict:
    network = c.get("network") or {}
    return strip(
        {
            "Ec2KeyName": c.get("ec2_key_name"),
            "Ec2SubnetId": network.get("subnet_id"),
            "RequestedEc2SubnetIds": network.get("requested_subnet_ids") or None,
            "Ec2AvailabilityZone": network.get("availability_zone") or f"{region}a",
            "RequestedEc2AvailabilityZones": network.get("requested_availability_zones") or None,
            "IamInstanceProfile": c.get("job_flow_role"),
            "EmrManagedMasterSecurityGroup": network.get("master_security_group"),
            "EmrManagedSlaveSecurityGroup": network.get("slave_security_group"),
            "ServiceAccessSecurityGroup": network.get("service_access_security_group"),
            "AdditionalMasterSecurityGroups": network.get("additional_master_security_groups") or None,
            "AdditionalSlaveSecurityGroups": network.get("additional_slave_security_groups") or None,
        }
    )


# In DescribeCluster's Tags of a cluster spanning clouds: its clouds, the master's first, space-separated
# (a tag value cannot hold commas).  Resilin's own, like the resilin:* tags on its instances.
CLOUDS_TAG = "resilin:clouds"


def _tags(c: ClusterDoc, clouds: Sequence[str]) -> list:
    if len(clouds) < 2:
        return c["tags"]
    return [t for t in c["tags"] if t["Key"] != CLOUDS_TAG] + [{"Key": CLOUDS_TAG, "Value": " ".join(clouds)}]


def cluster(c: ClusterDoc, region: str, clouds: Sequence[str] = ()) -> dict:
    """DescribeCluster's Cluster; ``clouds``: where the cluster runs (named in its tags when several)."""
    return strip(
        {
            "Id": c["id"],
            "Name": c["name"],
            "Status": cluster_status(c),
            "Ec2InstanceAttributes": _ec2_attributes(c, region),
            "InstanceCollectionType": c.get("instance_collection_type", "INSTANCE_GROUP"),
            "LogUri": c.get("log_uri"),
            "LogEncryptionKmsKeyId": c.get("log_encryption_kms_key_id"),
            "ReleaseLabel": c.get("release_label"),
            "RequestedAmiVersion": c.get("requested_ami_version"),
            "RunningAmiVersion": c.get("running_ami_version"),
            "AutoTerminate": not c["keep_alive"],
            "TerminationProtected": c["termination_protected"],
            "UnhealthyNodeReplacement": c.get("unhealthy_node_replacement", False),
            "VisibleToAllUsers": c["visible_to_all_users"],
            "Applications": c["applications"],
            "Tags": _tags(c, clouds),
            "ServiceRole": c.get("service_role"),
            "NormalizedInstanceHours": normalized_hours(c),
            "MasterPublicDnsName": c.get("master_public_dns"),
            "Configurations": c["configurations"],
            "SecurityConfiguration": c.get("security_configuration"),
            "AutoScalingRole": c.get("auto_scaling_role"),
            "ScaleDownBehavior": c.get("scale_down_behavior", "TERMINATE_AT_TASK_COMPLETION"),
            "CustomAmiId": c.get("custom_ami_id"),
            "EbsRootVolumeSize": c.get("ebs_root_volume_size"),
            "EbsRootVolumeIops": c.get("ebs_root_volume_iops"),
            "EbsRootVolumeThroughput": c.get("ebs_root_volume_throughput"),
            "ClusterArn": c["arn"],
            "StepConcurrencyLevel": c["step_concurrency_level"],
            "PlacementGroups": c.get("placement_groups") or None,
            "OSReleaseLabel": c.get("os_release_label"),
            "ExtendedSupport": c.get("extended_support"),
        }
    )


def step(s: StepDoc) -> dict:
    reason = s.get("state_reason") or {}
    status: dict[str, Any] = {
        "State": s["state"],
        "StateChangeReason": strip({"Code": reason.get("code"), "Message": reason.get("message")}),
        "Timeline": strip(
            {
                "CreationDateTime": ts(s["timeline"].get("created")),
                "StartDateTime": ts(s["timeline"].get("start")),
                "EndDateTime": ts(s["timeline"].get("end")),
            }
        ),
    }
    failure = s.get("failure")
    if failure:
        status["FailureDetails"] = strip(
            {
                "Reason": failure.get("reason"),
                "Message": failure.get("message"),
                "LogFile": failure.get("log_file"),
            }
        )
    return strip(
        {
            "Id": s["id"],
            "Name": s["name"],
            "Config": strip(
                {
                    "Jar": s["jar"],
                    "Properties": s["properties"],
                    "MainClass": s["main_class"],
                    "Args": s["args"],
                }
            ),
            "ActionOnFailure": s["action_on_failure"],
            "Status": status,
            "ExecutionRoleArn": s.get("execution_role_arn"),
        }
    )


def _group_timeline(group: InstanceGroupDoc, cluster: ClusterDoc) -> dict:
    # The worker moves groups with the cluster; where a group has no time of its own, the
    # cluster's is the group's (a group is ready when its cluster is, and ends with it).
    own = group.get("timeline") or {}
    theirs = cluster["timeline"]
    ready = own.get("ready") or (theirs.get("ready") if group["state"] == states.GROUP_RUNNING else None)
    end = own.get("end") or (theirs.get("end") if group["state"] == states.GROUP_TERMINATED else None)
    return strip(
        {
            "CreationDateTime": ts(own.get("created") or theirs.get("created")),
            "ReadyDateTime": ts(ready),
            "EndDateTime": ts(end),
        }
    )


def instance_group(group: InstanceGroupDoc, cluster: ClusterDoc) -> dict:
    status: dict[str, Any] = {"State": group["state"], "Timeline": _group_timeline(group, cluster)}
    status["StateChangeReason"] = _reason(group.get("state_reason"))
    policy = group.get("auto_scaling_policy")
    return strip(
        {
            "Id": group["id"],
            "Name": group["name"],
            "Market": group["market"],
            "InstanceGroupType": group["role"],
            "BidPrice": group.get("bid_price"),
            "InstanceType": group["instance_type"],
            "RequestedInstanceCount": group["requested"],
            "RunningInstanceCount": group["running"],
            "Status": status,
            "Configurations": group.get("configurations") or [],
            # Version 0 is what the group was created with; each reconfiguration request adds one.
            "ConfigurationsVersion": group.get("configurations_version", 0),
            "LastSuccessfullyAppliedConfigurations": group.get(
                "applied_configurations", group.get("configurations") or []
            ),
            "LastSuccessfullyAppliedConfigurationsVersion": group.get("applied_configurations_version", 0),
            "EbsBlockDevices": group.get("ebs_block_devices") or None,
            "EbsOptimized": group.get("ebs_optimized"),
            "AutoScalingPolicy": policy and auto_scaling_policy(policy),
            "CustomAmiId": group.get("custom_ami_id"),
        }
    )


def auto_scaling_policy(policy: AutoScalingPolicyDoc) -> dict:
    return {
        "Status": strip(
            {
                "State": policy["state"],
                "StateChangeReason": _reason(policy.get("state_reason")) or None,
            }
        ),
        "Constraints": policy["Constraints"],
        "Rules": policy["Rules"],
    }


# InstanceFleetState has no ARRESTED: a fleet whose resize failed is SUSPENDED.
FLEET_STATES: dict[str, str] = {states.GROUP_ARRESTED: "SUSPENDED"}


def instance_fleet(group: InstanceGroupDoc, cluster: ClusterDoc) -> dict:
    fleet = group["fleet"]
    weight = fleet["weight"]
    provisioned = group["running"] * weight
    on_demand_target = fleet.get("TargetOnDemandCapacity", 0)
    return strip(
        {
            "Id": group["id"],
            "Name": group["name"],
            "Status": {
                "State": FLEET_STATES.get(group["state"], group["state"]),
                "StateChangeReason": _reason(group.get("state_reason")),
                "Timeline": _group_timeline(group, cluster),
            },
            "InstanceFleetType": group["role"],
            "TargetOnDemandCapacity": on_demand_target,
            "TargetSpotCapacity": fleet.get("TargetSpotCapacity", 0),
            # Every instance is launched on demand: a cloud without a spot market has no other kind.
            "ProvisionedOnDemandCapacity": provisioned,
            "ProvisionedSpotCapacity": 0,
            "InstanceTypeSpecifications": fleet["specifications"],
            "LaunchSpecifications": fleet.get("LaunchSpecifications"),
            "ResizeSpecifications": fleet.get("ResizeSpecifications"),
            "Context": fleet.get("Context"),
        }
    )


def instance(i: InstanceDoc, group: InstanceGroupDoc | None, fleets: bool, spread: bool = False) -> dict:
    """ListInstances' Instance; in a cluster ``spread`` over clouds its InstanceType names its cloud
    as requests and ListSupportedInstanceTypes do (``m5.xlarge@cloud-b``)."""
    state = i.get("state", states.INSTANCE_PROVISIONING)
    instance_type = i.get("instance_type")
    if spread and instance_type and i.get("cloud"):
        instance_type = f"{instance_type}@{i['cloud']}"
    timeline = i.get("timeline") or {}
    group_key = "InstanceFleetId" if fleets else "InstanceGroupId"
    private_ip = i.get("private_ip")
    return strip(
        {
            "Id": i["id"],
            "Ec2InstanceId": i.get("ec2_id"),
            "PublicDnsName": i.get("public_dns"),
            "PublicIpAddress": i.get("public_ip"),
            "PrivateDnsName": i.get("hostname") or (private_ip and f"ip-{private_ip.replace('.', '-')}"),
            "PrivateIpAddress": private_ip,
            "Status": strip(
                {
                    "State": state,
                    "StateChangeReason": _reason(i.get("state_reason")),
                    "Timeline": strip(
                        {
                            "CreationDateTime": ts(timeline.get("created")),
                            "ReadyDateTime": ts(timeline.get("ready")),
                            "EndDateTime": ts(timeline.get("end")),
                        }
                    ),
                }
            ),
            group_key: i.get("group_id"),
            "Market": group.get("market", "ON_DEMAND") if group else "ON_DEMAND",
            "InstanceType": instance_type,
        }
    )


def bootstrap_action(action: BootstrapActionDoc) -> dict:
    script = action.get("ScriptBootstrapAction") or {}
    return strip(
        {"Name": action.get("Name"), "ScriptPath": script.get("Path"), "Args": script.get("Args", [])}
    )
