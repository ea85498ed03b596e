"""Clusters: RunJobFlow, DescribeCluster, ListClusters, TerminateJobFlows and the cluster settings."""

from __future__ import annotations

import time
from typing import Any, cast

from resilin.applications.hadoop_config import check_configurations
from resilin.errors import ValidationError
from resilin.jobflows import ids, placement_checks, releases, states, views
from resilin.jobflows.base import (
    PAGE_SIZE,
    ServiceBase,
    parse_time_marker,
    time_marker,
    unique,
)
from resilin.jobflows.caller import Caller, as_caller
from resilin.jobflows.documents import BootstrapActionDoc, ClusterDoc, NetworkDoc
from resilin.jobflows.instance_requests import asks_custom_ami, describe_groups
from resilin.jobflows.policy_operations import auto_termination_policy, check_tags, managed_scaling_policy
from resilin.jobflows.security_configurations import check_usable
from resilin.jobflows.step_operations import check_active_step_limit, new_step
from resilin.jobflows.store import ClusterSummary

MAX_TERMINATED_AT_ONCE = 10
MAX_STEP_CONCURRENCY = 256
MAX_BOOTSTRAP_ACTIONS = 16
_SUMMARY_CHUNK = 256


def check_step_concurrency(level: int) -> int:
    if not 1 <= level <= MAX_STEP_CONCURRENCY:
        raise ValidationError(
            f"StepConcurrencyLevel must be between 1 and {MAX_STEP_CONCURRENCY}, not {level}."
        )
    return level


def _network(instances: dict, region: str) -> NetworkDoc:
    placement = instances.get("Placement") or {}
    zones = list(placement.get("AvailabilityZones", []))
    if placement.get("AvailabilityZone"):
        zones.insert(0, placement["AvailabilityZone"])
    for zone in zones:
        if not zone.startswith(region) or len(zone) <= len(region):
            raise ValidationError(f"Availability zone '{zone}' is not a zone of region {region}.")
    subnets = list(instances.get("Ec2SubnetIds", []))
    if instances.get("Ec2SubnetId"):
        subnets.insert(0, instances["Ec2SubnetId"])
    return {
        "availability_zone": zones[0] if zones else None,
        "requested_availability_zones": placement.get("AvailabilityZones"),
        "subnet_id": subnets[0] if subnets else None,
        "requested_subnet_ids": instances.get("Ec2SubnetIds"),
        "master_security_group": instances.get("EmrManagedMasterSecurityGroup"),
        "slave_security_group": instances.get("EmrManagedSlaveSecurityGroup"),
        "service_access_security_group": instances.get("ServiceAccessSecurityGroup"),
        "additional_master_security_groups": instances.get("AdditionalMasterSecurityGroups"),
        "additional_slave_security_groups": instances.get("AdditionalSlaveSecurityGroups"),
    }


def _bootstrap_actions(actions: list[dict]) -> list[BootstrapActionDoc]:
    if len(actions) > MAX_BOOTSTRAP_ACTIONS:
        raise ValidationError(f"A cluster can have at most {MAX_BOOTSTRAP_ACTIONS} bootstrap actions.")
    for action in actions:
        if not action["ScriptBootstrapAction"]["Path"].strip():
            raise ValidationError(f"Bootstrap action '{action['Name']}' has an empty script path.")
    return cast(list[BootstrapActionDoc], actions)  # as the model-checked request gave them


class ClusterOperations(ServiceBase):
    # -- RunJobFlow -------------------------------------------------------
    def run_job_flow(self, who: str | Caller, params: dict) -> dict:
        caller = as_caller(who)
        instances = params["Instances"]
        if params.get("KerberosAttributes"):
            raise ValidationError("Kerberos authentication is not supported by this Resilin release.")
        ami_version = params.get("AmiVersion")
        if ami_version and params.get("ReleaseLabel"):
            raise ValidationError("Only one AMI version and release label may be specified.")
        release = None if ami_version else params.get("ReleaseLabel") or releases.DEFAULT_RELEASE_LABEL
        running_ami = releases.check_ami_version(ami_version) if ami_version else None
        if release:
            releases.check_release_label(release)
        if params.get("OSReleaseLabel") and release:
            releases.check_os_release_label(params["OSReleaseLabel"], release)
        applications = releases.applications(params.get("Applications", []), release or "")
        groups, collection = describe_groups(
            instances, lambda t: releases.is_offered(self.offered_types(), t)
        )
        releases.check_custom_ami(
            bool(params.get("CustomAmiId")) or any(map(asks_custom_ami, groups)), release
        )
        offers = self.offered_types()
        home = placement_checks.home_cloud(offers, groups)
        placement_checks.check_ranges(offers, placement_checks.clouds_of(groups, home))
        placement_checks.check_storage(offers, home, caller.account_id)
        for configurations in [
            params.get("Configurations", []),
            *(g.get("configurations", []) for g in groups),
        ]:
            check_configurations(configurations, [a["Name"] for a in applications])
        cid = ids.cluster_id()
        steps = [new_step(cid, s, params.get("StepExecutionRoleArn")) for s in params.get("Steps", [])]
        check_active_step_limit(len(steps))
        concurrency = check_step_concurrency(params.get("StepConcurrencyLevel", 1))
        tags = check_tags(params.get("Tags", []))
        auto_termination = params.get("AutoTerminationPolicy")
        managed = params.get("ManagedScalingPolicy")
        if any(g.get("auto_scaling_policy") for g in groups):
            if not params.get("AutoScalingRole"):
                raise ValidationError(
                    "An AutoScalingRole is required when using an automatic scaling policy."
                )
            if managed:
                raise ValidationError(
                    "Managed scaling and automatic scaling policies cannot be used together."
                )
        security = params.get("SecurityConfiguration")
        if security:
            check_usable(self.store.get_security_configuration(caller.account_id, security), security)
        now = time.time()
        cluster: ClusterDoc = {
            "id": cid,
            "account": caller.account_id,
            "created_by": caller.user,
            "arn": ids.cluster_arn(self.region, caller.account_id, cid),
            "name": params["Name"],
            "log_uri": params.get("LogUri"),
            "log_encryption_kms_key_id": params.get("LogEncryptionKmsKeyId"),
            "release_label": release,
            "requested_ami_version": ami_version,
            "running_ami_version": running_ami,
            "os_release_label": params.get("OSReleaseLabel"),
            "applications": applications,
            "configurations": params.get("Configurations", []),
            "bootstrap_actions": _bootstrap_actions(params.get("BootstrapActions", [])),
            "groups": groups,
            "instance_collection_type": collection,
            "network": _network(instances, self.region),
            "keep_alive": bool(instances.get("KeepJobFlowAliveWhenNoSteps", False)),
            "termination_protected": bool(instances.get("TerminationProtected", False)),
            "unhealthy_node_replacement": instances.get("UnhealthyNodeReplacement"),
            "ec2_key_name": instances.get("Ec2KeyName"),
            "hadoop_version": instances.get("HadoopVersion"),
            "visible_to_all_users": params.get("VisibleToAllUsers", True),
            "service_role": params.get("ServiceRole"),
            "job_flow_role": params.get("JobFlowRole"),
            "auto_scaling_role": params.get("AutoScalingRole"),
            "scale_down_behavior": params.get("ScaleDownBehavior", "TERMINATE_AT_TASK_COMPLETION"),
            "security_configuration": security,
            "custom_ami_id": params.get("CustomAmiId"),
            "ebs_root_volume_size": params.get("EbsRootVolumeSize"),
            "ebs_root_volume_iops": params.get("EbsRootVolumeIops"),
            "ebs_root_volume_throughput": params.get("EbsRootVolumeThroughput"),
            "placement_groups": params.get("PlacementGroupConfigs"),
            "extended_support": params.get("ExtendedSupport"),
            "tags": tags,
            "step_concurrency_level": concurrency,
            "auto_termination_policy": auto_termination and auto_termination_policy(auto_termination),
            "managed_scaling_policy": managed and managed_scaling_policy(managed, collection),
            "state": states.STARTING,
            "state_reason": {"code": None, "message": "Provisioning instances"},
            "timeline": {"created": now},
            "master_public_dns": None,
            "terminate_requested": False,
        }
        self.store.create_cluster(cluster, steps)
        self.store.notify(cid)
        return {"JobFlowId": cid, "ClusterArn": cluster["arn"]}

    # -- reading ----------------------------------------------------------
    def describe_cluster(self, who: str | Caller, params: dict) -> dict:
        cluster = self._cluster(who, params["ClusterId"])
        clouds = placement_checks.cluster_clouds(
            self.offered_types(), cluster["groups"], self.store.instances_of(cluster["id"])
        )
        return {"Cluster": views.cluster(cluster, self.region, clouds)}

    def list_clusters(self, who: str | Caller, params: dict) -> dict:
        """Newest first, 50 a page; the marker is the position (creation time, id) to go on from."""
        caller = as_caller(who)
        wanted = set(params.get("ClusterStates", []))
        after = params.get("CreatedAfter")
        before = params.get("CreatedBefore")
        high = before.timestamp() if before else None
        last: tuple[float, str] | None = None
        if params.get("Marker") is not None:
            last = parse_time_marker(params["Marker"])
            high = last[0] if high is None else min(high, last[0])
        low = after.timestamp() if after else None

        chosen: list[ClusterSummary] = []
        positions: dict[str, float] = {}
        more = False
        offset = 0
        chunk = PAGE_SIZE + 1  # enough when nothing is filtered out; more at a time when some is
        while not more:
            batch = self.store.summary_page(caller.account_id, low, high, offset, chunk)
            if not batch:
                break
            offset += len(batch)
            chunk = _SUMMARY_CHUNK
            for cid, created, summary in batch:
                if last is not None and (created, cid) >= last:
                    continue
                if summary is None:
                    continue  # deleted meanwhile
                if (wanted and summary.state not in wanted) or not caller.can_see(summary.doc):
                    continue
                if len(chosen) == PAGE_SIZE:
                    more = True
                    break
                chosen.append(summary)
                positions[cid] = created
        result: dict[str, Any] = {"Clusters": [views.cluster_summary_of(s.raw, s.doc) for s in chosen]}
        if more:
            last_id = chosen[-1].doc["id"]
            result["Marker"] = time_marker(positions[last_id], last_id)
        return result

    # -- ending -----------------------------------------------------------
    def terminate_job_flows(self, who: str | Caller, params: dict) -> dict:
        cids = unique(params["JobFlowIds"])
        if len(cids) > MAX_TERMINATED_AT_ONCE:
            raise ValidationError(
                f"At most {MAX_TERMINATED_AT_ONCE} job flows can be terminated in one request, not {len(cids)}."
            )
        clusters = self._clusters(who, cids, modifiable=False)  # validate all before changing any
        protected = [
            c["id"]
            for c in clusters
            if c["termination_protected"] and c["state"] not in states.FINAL_CLUSTER_STATES
        ]
        if protected:  # EMR's words, which name no cluster
            raise ValidationError(
                "Could not shut down one or more job flows since they are termination protected."
            )
        for cluster in clusters:
            self.request_termination(cluster["id"], states.USER_REQUEST, "Terminated by user request")
        return {}

    def request_termination(self, cid: str, code: str, message: str) -> None:
        """Mark a cluster for termination; the orchestrator tears it down."""

        self.store.update_cluster(cid, lambda cluster: states.begin_termination(cluster, code, message))
        self.store.notify(cid)

    # -- settings ---------------------------------------------------------
    def _set_on_all(self, who: str | Caller, cids: list[str], field: str, value: Any, notify: bool) -> dict:
        clusters = self._clusters(who, unique(cids), modifiable=True)
        for cluster in clusters:

            def change(c: ClusterDoc) -> None:
                cast(dict[str, Any], c)[field] = value  # one of the cluster's settings, by name

            self._update(cluster["id"], change)
            if notify:
                self.store.notify(cluster["id"])
        return {}

    def set_termination_protection(self, who: str | Caller, params: dict) -> dict:
        return self._set_on_all(
            who, params["JobFlowIds"], "termination_protected", params["TerminationProtected"], False
        )

    def set_keep_job_flow_alive_when_no_steps(self, who: str | Caller, params: dict) -> dict:
        # The worker decides what to do when its cluster runs out of steps: wake it.
        return self._set_on_all(
            who, params["JobFlowIds"], "keep_alive", params["KeepJobFlowAliveWhenNoSteps"], True
        )

    def set_visible_to_all_users(self, who: str | Caller, params: dict) -> dict:
        return self._set_on_all(
            who, params["JobFlowIds"], "visible_to_all_users", params["VisibleToAllUsers"], False
        )

    def set_unhealthy_node_replacement(self, who: str | Caller, params: dict) -> dict:
        return self._set_on_all(
            who, params["JobFlowIds"], "unhealthy_node_replacement", params["UnhealthyNodeReplacement"], True
        )

    def modify_cluster(self, who: str | Caller, params: dict) -> dict:
        cluster = self._modifiable_cluster(who, params["ClusterId"])
        level = params.get("StepConcurrencyLevel")
        if level is not None:
            check_step_concurrency(level)
        extended = params.get("ExtendedSupport")

        def change(c: ClusterDoc) -> None:
            if level is not None:
                c["step_concurrency_level"] = level
            if extended is not None:
                c["extended_support"] = extended

        updated = self._update(cluster["id"], change)
        self.store.notify(cluster["id"])
        return {
            "StepConcurrencyLevel": updated["step_concurrency_level"],
            "ExtendedSupport": updated.get("extended_support"),
        }
