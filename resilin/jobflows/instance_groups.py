"""AddInstanceGroups, ModifyInstanceGroups, ListInstanceGroups and ListInstances on the job-flow model.

The API side of resizing: requests are checked and recorded (requested counts, what to
terminate first, decommission timeouts); the cluster's monitor does the resizing and keeps
RunningInstanceCount and the group states true (see resilin.node_health).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from resilin.errors import InvalidRequest, ValidationError
from resilin.hadoop_config import check_configurations
from resilin.jobflows import ids, states
from resilin.jobflows.store import Doc, JobFlowStore

MAX_TASK_GROUPS = 48
RESIZABLE_STATES = (states.RUNNING, states.WAITING)


def _ts(epoch: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(epoch, dt.UTC) if epoch else None


def _strip(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def _resizable(cluster: Doc) -> None:
    if cluster["state"] not in RESIZABLE_STATES or cluster["terminate_requested"]:
        raise ValidationError(
            f"Cluster {cluster['id']} is {cluster['state']}; instance groups can change only "
            "while it is RUNNING or WAITING."
        )


def add_instance_groups(store: JobFlowStore, cluster: Doc, params: dict) -> dict:
    _resizable(cluster)
    new: list[Doc] = []
    roles = [g["role"] for g in cluster["groups"]]
    for config in params["InstanceGroups"]:
        role = config["InstanceRole"]
        if role == "MASTER":
            raise ValidationError("A master instance group cannot be added to a running cluster.")
        if role == "CORE" and ("CORE" in roles or any(g["role"] == "CORE" for g in new)):
            raise ValidationError("The cluster already has a core instance group.")
        if config["InstanceCount"] < 0:
            raise ValidationError("Instance count must be at least 0.")
        check_configurations(config.get("Configurations", []))
        itype, _, cloud = config["InstanceType"].partition("@")
        new.append(
            {
                "id": ids.instance_group_id(),
                "name": config.get("Name") or f"{role.title()} Instance Group",
                "role": role,
                "instance_type": itype,
                "cloud": cloud or None,
                "requested": config["InstanceCount"],
                "running": 0,
                "market": config.get("Market") or "ON_DEMAND",
                "state": states.GROUP_PROVISIONING,
                "configurations": config.get("Configurations", []),
            }
        )
    if sum(1 for r in roles if r == "TASK") + sum(1 for g in new if g["role"] == "TASK") > MAX_TASK_GROUPS:
        raise ValidationError(f"A cluster can have at most {MAX_TASK_GROUPS} task instance groups.")

    def change(c: Doc) -> None:
        _resizable(c)
        c["groups"].extend(new)

    store.update_cluster(cluster["id"], change)
    store.notify(cluster["id"])
    return {
        "JobFlowId": cluster["id"],
        "InstanceGroupIds": [g["id"] for g in new],
        "ClusterArn": cluster["arn"],
    }


def modify_instance_groups(store: JobFlowStore, cluster: Doc, params: dict) -> dict:
    _resizable(cluster)
    groups = {g["id"]: g for g in cluster["groups"]}
    live = [i for i in store.instances_of(cluster["id"]) if i["state"] in (states.INSTANCE_RUNNING,)]
    changes: dict[str, Doc] = {}
    for config in params.get("InstanceGroups", []):
        gid = config["InstanceGroupId"]
        group = groups.get(gid)
        if group is None:
            raise InvalidRequest(f"Instance group id '{gid}' is not valid.")
        if group["role"] == "MASTER":
            raise ValidationError("The master instance group cannot be resized.")
        count = config.get("InstanceCount", group["requested"])
        if count < 0:
            raise ValidationError("Instance count must be at least 0.")
        if group["role"] == "CORE" and count < group["requested"]:
            replication = cluster.get("hdfs_replication") or min(3, group["requested"])
            if count < replication:
                raise ValidationError(
                    f"Cannot shrink the core instance group to {count} instance(s): HDFS keeps "
                    f"{replication} replica(s) of every block (dfs.replication), so at least "
                    f"{replication} core instance(s) must remain."
                )
        to_terminate = config.get("EC2InstanceIdsToTerminate", [])
        mine = {i["ec2_id"] for i in live if i["group_id"] == gid}
        unknown = [e for e in to_terminate if e not in mine]
        if unknown:
            raise ValidationError(f"Instances {unknown} are not running in instance group {gid}.")
        if to_terminate and "InstanceCount" not in config:
            count = group["requested"] - len(to_terminate)
        if "Configurations" in config:
            raise ValidationError(
                "Reconfiguring a running instance group is not supported by this Resilin release."
            )
        timeout = (config.get("ShrinkPolicy") or {}).get("DecommissionTimeout")
        changes[gid] = {
            "requested": count,
            "terminate_ec2_ids": to_terminate,
            "decommission_timeout": timeout,
        }

    def change(c: Doc) -> None:
        _resizable(c)
        for g in c["groups"]:
            if g["id"] in changes:
                g.update(changes[g["id"]])
                g["state"] = "RESIZING" if g["requested"] != g["running"] else g["state"]
                if g["state"] == "ARRESTED":
                    g["state"] = "RESIZING"

    store.update_cluster(cluster["id"], change)
    store.notify(cluster["id"])
    return {}


def list_instance_groups(store: JobFlowStore, cluster: Doc, params: dict) -> dict:
    shapes = []
    for g in cluster["groups"]:
        reason = g.get("state_reason") or {}
        shapes.append(
            _strip(
                {
                    "Id": g["id"],
                    "Name": g["name"],
                    "Market": g["market"],
                    "InstanceGroupType": g["role"],
                    "InstanceType": g["instance_type"],
                    "RequestedInstanceCount": g["requested"],
                    "RunningInstanceCount": g["running"],
                    "Status": {
                        "State": g["state"],
                        "StateChangeReason": _strip({"Message": reason.get("message")}),
                        "Timeline": {},
                    },
                    "Configurations": g.get("configurations", []),
                    "ShrinkPolicy": (
                        {"DecommissionTimeout": g["decommission_timeout"]}
                        if g.get("decommission_timeout") is not None
                        else None
                    ),
                }
            )
        )
    return {"InstanceGroups": shapes}


def list_instances(store: JobFlowStore, cluster: Doc, params: dict) -> dict[str, Any]:
    wanted_states = set(params.get("InstanceStates", []))
    wanted_types = set(params.get("InstanceGroupTypes", []))
    gid = params.get("InstanceGroupId")
    shapes = []
    for i in store.instances_of(cluster["id"]):
        if (wanted_states and i["state"] not in wanted_states) or (
            wanted_types and i["role"] not in wanted_types
        ):
            continue
        if gid and i["group_id"] != gid:
            continue
        reason = i.get("state_reason") or {}
        shapes.append(
            _strip(
                {
                    "Id": i["id"],
                    "Ec2InstanceId": i["ec2_id"],
                    "PublicDnsName": i.get("public_dns"),
                    "PublicIpAddress": i.get("public_ip"),
                    "PrivateDnsName": f"ip-{i['private_ip'].replace('.', '-')}.ec2.internal",
                    "PrivateIpAddress": i["private_ip"],
                    "Status": {
                        "State": i["state"],
                        "StateChangeReason": _strip(
                            {"Code": reason.get("code"), "Message": reason.get("message")}
                        ),
                        "Timeline": _strip(
                            {
                                "CreationDateTime": _ts(i.get("created")),
                                "ReadyDateTime": _ts(i.get("ready")),
                                "EndDateTime": _ts(i.get("ended")),
                            }
                        ),
                    },
                    "InstanceGroupId": i["group_id"],
                    "Market": "ON_DEMAND",
                    "InstanceType": i["instance_type"],
                }
            )
        )
    return {"Instances": shapes}
