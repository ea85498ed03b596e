"""Instances: listing groups, fleets, instances and bootstrap actions; adding and resizing groups.

Instances and their groups' running counts are written by the cluster worker; these
operations read what the store has.  AddInstanceGroups and ModifyInstanceGroups record the
requested sizes (a group whose ``running`` differs from ``requested`` awaits the worker) and
configurations (a group with ``pending_configurations`` awaits reconfiguring) and wake the
cluster's worker.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from resilin.applications.hadoop_config import check_configurations, merge_configurations
from resilin.errors import InvalidRequest, ValidationError
from resilin.jobflows import ids, placement_checks, releases, states, views
from resilin.jobflows.base import ServiceBase, page, unique
from resilin.jobflows.caller import Caller
from resilin.jobflows.documents import ClusterDoc, Configuration, InstanceDoc, InstanceGroupDoc
from resilin.jobflows.instance_requests import (
    INSTANCE_FLEET,
    MAX_INSTANCES,
    MAX_TASK_GROUPS,
    asks_custom_ami,
    fleet_group,
    new_group,
)

RESIZABLE_CLUSTER_STATES = (states.RUNNING, states.WAITING)
NOT_RESIZABLE = "An instance group may only be added or modified while its cluster is RUNNING or WAITING."


def _uses_fleets(cluster: ClusterDoc) -> bool:
    return cluster.get("instance_collection_type") == INSTANCE_FLEET


class InstanceOperations(ServiceBase):
    # -- listings ---------------------------------------------------------
    def list_instance_groups(self, who: str | Caller, params: dict) -> dict:
        cluster = self._cluster(who, params["ClusterId"])
        if _uses_fleets(cluster):
            raise InvalidRequest(
                f"Cluster '{cluster['id']}' uses instance fleets; list them with ListInstanceFleets."
            )
        groups = [views.instance_group(g, cluster) for g in cluster["groups"]]
        return page(groups, params.get("Marker"), "InstanceGroups")

    def list_instance_fleets(self, who: str | Caller, params: dict) -> dict:
        cluster = self._cluster(who, params["ClusterId"])
        if not _uses_fleets(cluster):
            raise InvalidRequest(
                f"Cluster '{cluster['id']}' uses instance groups; list them with ListInstanceGroups."
            )
        fleets = [views.instance_fleet(g, cluster) for g in cluster["groups"]]
        return page(fleets, params.get("Marker"), "InstanceFleets")

    def list_instances(self, who: str | Caller, params: dict) -> dict:
        cluster = self._cluster(who, params["ClusterId"])
        fleets = _uses_fleets(cluster)
        groups = {g["id"]: g for g in cluster["groups"]}
        group_id = params.get("InstanceGroupId") or params.get("InstanceFleetId")
        roles = set(params.get("InstanceGroupTypes", []))
        if params.get("InstanceFleetType"):
            roles.add(params["InstanceFleetType"])
        wanted_states = set(params.get("InstanceStates", []))
        instances = self.store.instances_of(cluster["id"])
        spread = len(placement_checks.cluster_clouds(self.offered_types(), cluster["groups"], instances)) > 1
        chosen = [
            i
            for i in instances
            if (not group_id or i.get("group_id") == group_id)
            and (not roles or i.get("role") in roles)
            and (not wanted_states or i.get("state", states.INSTANCE_PROVISIONING) in wanted_states)
        ]
        shapes = [views.instance(i, groups.get(i.get("group_id")), fleets, spread) for i in chosen]
        return page(shapes, params.get("Marker"), "Instances")

    def list_bootstrap_actions(self, who: str | Caller, params: dict) -> dict:
        cluster = self._cluster(who, params["ClusterId"])
        actions = [views.bootstrap_action(a) for a in cluster.get("bootstrap_actions", [])]
        return page(actions, params.get("Marker"), "BootstrapActions")

    # -- changes ------------------------------------------------------------
    def _resizable(self, who: str | Caller, cid: str, fleets: bool = False) -> ClusterDoc:
        cluster = self._modifiable_cluster(who, cid)
        if cluster["state"] not in RESIZABLE_CLUSTER_STATES:
            raise ValidationError(NOT_RESIZABLE)
        if _uses_fleets(cluster) != fleets:
            kind, other = (
                ("instance groups", "instance fleets") if fleets else ("instance fleets", "instance groups")
            )
            raise ValidationError(f"Cluster '{cid}' uses {kind}; its {other} cannot be changed.")
        return cluster

    def add_instance_fleet(self, who: str | Caller, params: dict) -> dict:
        cluster = self._resizable(who, params["ClusterId"], fleets=True)
        fleet = fleet_group(params["InstanceFleet"], lambda t: releases.is_offered(self.offered_types(), t))
        if fleet["role"] != "TASK" or any(g["role"] == "TASK" for g in cluster["groups"]):
            raise ValidationError(
                "Only one task instance fleet can be added to a cluster with instance fleets."
            )
        self._check_clouds(cluster, [fleet])
        releases.check_custom_ami(asks_custom_ami(fleet), cluster.get("release_label"))

        def change(c: ClusterDoc) -> None:
            if c["state"] not in RESIZABLE_CLUSTER_STATES:
                raise ValidationError(NOT_RESIZABLE)
            c["groups"].append(fleet)

        self._update(cluster["id"], change)
        self.store.index_groups(cluster["id"], [fleet["id"]])
        self.store.notify(cluster["id"])
        return {"ClusterId": cluster["id"], "InstanceFleetId": fleet["id"], "ClusterArn": cluster["arn"]}

    def modify_instance_fleet(self, who: str | Caller, params: dict) -> dict:
        cluster = self._resizable(who, params["ClusterId"], fleets=True)
        config = params["InstanceFleet"]
        fleet_id = config["InstanceFleetId"]
        fleet = next((g for g in cluster["groups"] if g["id"] == fleet_id), None)
        if fleet is None:
            raise InvalidRequest(f"Instance fleet id '{fleet_id}' is not valid.")
        if fleet["role"] == "MASTER":
            raise ValidationError("The master instance fleet cannot be resized.")
        on_demand = config.get("TargetOnDemandCapacity", fleet["fleet"]["TargetOnDemandCapacity"])
        spot = config.get("TargetSpotCapacity", fleet["fleet"]["TargetSpotCapacity"])
        count = math.ceil((on_demand + spot) / fleet["fleet"]["weight"])
        if count > MAX_INSTANCES:
            raise ValidationError(f"The instance fleet would need more than {MAX_INSTANCES} instances.")

        def change(c: ClusterDoc) -> None:
            if c["state"] not in RESIZABLE_CLUSTER_STATES:
                raise ValidationError(NOT_RESIZABLE)
            group = next(g for g in c["groups"] if g["id"] == fleet_id)
            group["fleet"]["TargetOnDemandCapacity"] = on_demand
            group["fleet"]["TargetSpotCapacity"] = spot
            for key in ("ResizeSpecifications", "Context"):
                if config.get(key) is not None:
                    group["fleet"][key] = config[key]
            if count != group["requested"]:
                group["requested"] = count
                group["state"] = states.GROUP_RESIZING

        self._update(cluster["id"], change)
        self.store.notify(cluster["id"])
        return {}

    def _check_clouds(self, cluster: ClusterDoc, added: list[InstanceGroupDoc]) -> None:
        """Groups placed in a cloud the cluster is not in yet: its private range must not overlap theirs."""
        offers = self.offered_types()
        instances = [
            i for i in self.store.instances_of(cluster["id"]) if i["state"] != states.INSTANCE_TERMINATED
        ]
        home = placement_checks.home_cloud(offers, cluster["groups"], instances)
        current = placement_checks.clouds_of(cluster["groups"], home) | {i["cloud"] for i in instances}
        wanted = placement_checks.clouds_of(added, home)
        if wanted - current:
            placement_checks.check_ranges(offers, current | wanted)

    def add_instance_groups(self, who: str | Caller, params: dict) -> dict:
        cluster = self._resizable(who, params["JobFlowId"])
        added = [new_group(config) for config in params["InstanceGroups"]]
        if not added:
            raise ValidationError("At least one instance group must be given.")
        roles = [g["role"] for g in cluster["groups"]] + [g["role"] for g in added]
        if any(g["role"] == "MASTER" for g in added):
            raise ValidationError("A master instance group cannot be added to a running cluster.")
        if roles.count("CORE") > 1:
            raise ValidationError("A cluster can have at most one core instance group.")
        if roles.count("TASK") > MAX_TASK_GROUPS:
            raise ValidationError(f"A cluster can have at most {MAX_TASK_GROUPS} task instance groups.")
        for group in added:
            check_configurations(group.get("configurations", []), _application_names(cluster))
        if any(g.get("auto_scaling_policy") for g in added) and not cluster.get("auto_scaling_role"):
            raise ValidationError("An AutoScalingRole is required when using an automatic scaling policy.")
        self._check_clouds(cluster, added)
        releases.check_custom_ami(any(map(asks_custom_ami, added)), cluster.get("release_label"))

        def change(c: ClusterDoc) -> None:
            if c["state"] not in RESIZABLE_CLUSTER_STATES:
                raise ValidationError(NOT_RESIZABLE)
            c["groups"].extend(added)

        self._update(cluster["id"], change)
        self.store.index_groups(cluster["id"], [g["id"] for g in added])
        self.store.notify(cluster["id"])
        return {
            "JobFlowId": cluster["id"],
            "InstanceGroupIds": [g["id"] for g in added],
            "ClusterArn": cluster["arn"],
        }

    def modify_instance_groups(self, who: str | Caller, params: dict) -> dict:
        configs = params.get("InstanceGroups", [])
        if not configs:
            raise ValidationError("At least one instance group must be given.")
        if len(unique(c["InstanceGroupId"] for c in configs)) != len(configs):
            raise ValidationError("Each instance group may be named once per request.")
        by_cluster: dict[str, list[dict]] = defaultdict(list)
        for config in configs:
            gid = config["InstanceGroupId"]
            cid = params.get("ClusterId") or (
                self.store.cluster_of_group(gid) if ids.INSTANCE_GROUP_ID.match(gid) else None
            )
            if not cid:
                raise InvalidRequest(f"Instance group id '{gid}' is not valid.")
            by_cluster[cid].append(config)
        clusters = {cid: self._resizable(who, cid) for cid in by_cluster}
        for cid, changes in by_cluster.items():
            _check_modifications(clusters[cid], changes, self.store.instances_of(cid))

        for cid, changes in by_cluster.items():

            def change(c: ClusterDoc, changes: list[dict] = changes) -> None:
                if c["state"] not in RESIZABLE_CLUSTER_STATES:
                    raise ValidationError(NOT_RESIZABLE)
                groups = {g["id"]: g for g in c["groups"]}
                for config in changes:
                    _apply(groups[config["InstanceGroupId"]], config, _application_names(c))

            self._update(cid, change)
            self.store.notify(cid)
        return {}


def _check_modifications(cluster: ClusterDoc, changes: list[dict], instances: list[InstanceDoc]) -> None:
    groups = {g["id"]: g for g in cluster["groups"]}
    for config in changes:
        gid = config["InstanceGroupId"]
        group = groups.get(gid)
        if group is None:
            raise InvalidRequest(f"Instance group id '{gid}' is not valid.")
        if group["state"] == states.GROUP_TERMINATED:
            raise ValidationError(f"Instance group '{gid}' is terminated and cannot be modified.")
        count = config.get("InstanceCount")
        if count is not None:
            if group["role"] == "MASTER" and count != group["requested"]:
                raise ValidationError("The master instance group cannot be resized.")
            if not 0 <= count <= MAX_INSTANCES:
                raise ValidationError(f"InstanceCount must be between 0 and {MAX_INSTANCES}, not {count}.")
            if group["role"] == "CORE" and count < group["requested"]:
                # Shrinking below dfs.replication would leave blocks without their replicas.
                replication = cluster.get("hdfs_replication") or min(3, group["requested"])
                if count < replication:
                    raise ValidationError(
                        f"Cannot shrink the core instance group to {count} instance(s): HDFS keeps "
                        f"{replication} replica(s) of every block (dfs.replication), so at least "
                        f"{replication} core instance(s) must remain."
                    )
        own = {i.get("ec2_id") for i in instances if i.get("group_id") == gid}
        strangers = [i for i in config.get("EC2InstanceIdsToTerminate", []) if i not in own]
        if strangers:
            raise ValidationError(f"Instance(s) {', '.join(strangers)} are not in instance group '{gid}'.")
        if config.get("ReconfigurationType") and "Configurations" not in config:
            raise ValidationError("ReconfigurationType needs Configurations to apply.")
        if "Configurations" in config:
            _check_reconfiguration(group, config["Configurations"], _application_names(cluster))


def _application_names(cluster: ClusterDoc) -> list[str]:
    return [a.get("Name", "") for a in cluster.get("applications") or []]


def _check_reconfiguration(
    group: InstanceGroupDoc, configurations: list[Configuration], applications: list[str]
) -> None:
    """As RunJobFlow checks configurations; and one reconfiguration of a group at a time."""
    check_configurations(configurations, applications)
    if group.get("pending_configurations"):
        raise ValidationError(
            f"Instance group '{group['id']}' is still being reconfigured to version "
            f"{group['pending_configurations']['version']}; try again once it is RUNNING."
        )


def _apply(group: InstanceGroupDoc, config: dict[str, Any], applications: list[str]) -> None:
    count = config.get("InstanceCount")
    # A resize asked for while the group is reconfigured waits for that, and shows it until then.
    resizing = (
        states.GROUP_RECONFIGURING if group["state"] == states.GROUP_RECONFIGURING else states.GROUP_RESIZING
    )
    if count is not None and count != group["requested"]:
        group["requested"] = count
        group["state"] = resizing
    if config.get("EC2InstanceIdsToTerminate"):
        # The resize worker (resilin/cluster/resize.py) decommissions these first when shrinking.
        group["terminate_ec2_ids"] = unique(
            group.get("terminate_ec2_ids", []) + config["EC2InstanceIdsToTerminate"]
        )
        if count is None:
            group["requested"] = group["requested"] - len(config["EC2InstanceIdsToTerminate"])
            group["state"] = resizing
    if config.get("ShrinkPolicy"):
        group["shrink_policy"] = config["ShrinkPolicy"]
        group["decommission_timeout"] = config["ShrinkPolicy"].get("DecommissionTimeout")
    if "Configurations" in config:
        _reconfigure(
            group, config["Configurations"], config.get("ReconfigurationType", "OVERWRITE"), applications
        )


def _reconfigure(
    group: InstanceGroupDoc, requested: list[Configuration], kind: str, applications: list[str]
) -> None:
    """Record the group's next configurations; the cluster's monitor applies them (resilin/applications/hadoop/reconfigure.py)."""
    _check_reconfiguration(
        group, requested, applications
    )  # again, in the transaction: a concurrent request may have won
    current = group.get("configurations") or []
    # What the nodes run until the new version is applied, and what they go back to if it fails.
    group.setdefault("applied_configurations", current)
    group.setdefault("applied_configurations_version", group.get("configurations_version", 0))
    version = group.get("configurations_version", 0) + 1
    group["configurations"] = merge_configurations(current, requested, kind)
    group["configurations_version"] = version
    group["pending_configurations"] = {"version": version, "type": kind}
    group["state_reason"] = None
    if group["state"] != states.GROUP_RESIZING:
        group["state"] = states.GROUP_RECONFIGURING
