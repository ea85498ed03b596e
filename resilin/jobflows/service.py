"""The EMR operations on Resilin's job-flow model.

Each public method takes the caller's account id and the request's parameters,
already validated against botocore's EMR model by the API layer, and returns
the response as a dict of the operation's output shape (timestamps as aware
datetimes).  Methods only touch Redis and answer at once; the orchestrator is
told about new work through the store's notification queue.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from resilin.errors import InvalidRequest, ValidationError
from resilin.jobflows import ids, releases, states
from resilin.jobflows.cluster_ops import ClusterControlOperations, auto_termination_from_request
from resilin.jobflows.store import Doc, JobFlowStore

MAX_ACTIVE_STEPS = 256
MAX_STEP_STRING_CHARS = 10240
PAGE_SIZE = 50


def _ts(epoch: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(epoch, dt.UTC) if epoch else None


def _strip(d: dict) -> dict:
    """Drop members whose value is None (the JSON protocol leaves them out)."""
    return {k: v for k, v in d.items() if v is not None}


def new_step(cid: str, config: dict) -> Doc:
    jar_step = config["HadoopJarStep"]
    size = sum(
        len(s) for s in [jar_step.get("Jar", ""), jar_step.get("MainClass", ""), *jar_step.get("Args", [])]
    )
    if size > MAX_STEP_STRING_CHARS:
        raise ValidationError(
            f"The step's strings total {size} characters, more than {MAX_STEP_STRING_CHARS}."
        )
    return {
        "id": ids.step_id(),
        "cluster_id": cid,
        "name": config["Name"],
        "action_on_failure": config.get("ActionOnFailure", states.TERMINATE_CLUSTER),
        "jar": jar_step["Jar"],
        "main_class": jar_step.get("MainClass"),
        "args": list(jar_step.get("Args", [])),
        "properties": {p["Key"]: p.get("Value", "") for p in jar_step.get("Properties", [])},
        "state": states.PENDING,
        "state_reason": None,
        "failure": None,
        "timeline": {"created": time.time()},
    }


def instance_groups_from_request(instances: dict) -> list[Doc]:
    """Resilin's instance groups from either way EMR lets a request describe them."""
    if instances.get("InstanceFleets"):
        raise ValidationError(
            "Instance fleets are not supported by this Resilin release; use instance groups."
        )
    groups: list[Doc] = []
    if instances.get("InstanceGroups"):
        if instances.get("MasterInstanceType") or instances.get("SlaveInstanceType"):
            raise ValidationError(
                "Please specify either instance groups or master/slave instance types, but not both."
            )
        for g in instances["InstanceGroups"]:
            groups.append(
                _group(
                    g["InstanceRole"], g["InstanceType"], g["InstanceCount"], g.get("Name"), g.get("Market")
                )
            )
    else:
        master_type = instances.get("MasterInstanceType")
        if not master_type:
            raise ValidationError("A master instance type (or instance groups) must be specified.")
        count = instances.get("InstanceCount", 1)
        if count < 1:
            raise ValidationError("InstanceCount must be at least 1.")
        groups.append(_group("MASTER", master_type, 1, "Master Instance Group", None))
        if count > 1:
            slave_type = instances.get("SlaveInstanceType") or master_type
            groups.append(_group("CORE", slave_type, count - 1, "Core Instance Group", None))
    masters = [g for g in groups if g["role"] == "MASTER"]
    if len(masters) != 1 or masters[0]["requested"] != 1:
        raise ValidationError("A cluster must have exactly one master instance group with one instance.")
    if sum(1 for g in groups if g["role"] == "CORE") > 1:
        raise ValidationError("A cluster can have at most one core instance group.")
    return groups


def _group(role: str, instance_type: str, count: int, name: str | None, market: str | None) -> Doc:
    if count < 0:
        raise ValidationError(f"Instance count for {role} instance group must be at least 0.")
    itype, _, cloud = instance_type.partition("@")
    return {
        "id": ids.instance_group_id(),
        "name": name or f"{role.title()} Instance Group",
        "role": role,
        "instance_type": itype,
        "cloud": cloud or None,
        "requested": count,
        "running": 0,
        "market": market or "ON_DEMAND",
        "state": states.GROUP_PROVISIONING,
    }


class EmrService(ClusterControlOperations):
    def __init__(self, store: JobFlowStore, region: str = "us-east-1") -> None:
        self.store = store
        self.region = region

    # -- lookups --------------------------------------------------------
    def _cluster(self, account: str, cid: str) -> Doc:
        cluster = self.store.get_cluster(cid) if ids.CLUSTER_ID.match(cid or "") else None
        if cluster is None or cluster["account"] != account:
            raise InvalidRequest(f"Cluster id '{cid}' is not valid.")
        return cluster

    def _step(self, account: str, cid: str, sid: str) -> Doc:
        self._cluster(account, cid)
        step = self.store.get_step(sid) if ids.STEP_ID.match(sid or "") else None
        if step is None or step["cluster_id"] != cid:
            raise InvalidRequest(f"Step id '{sid}' is not valid.")
        return step

    # -- clusters -------------------------------------------------------
    def run_job_flow(self, account: str, params: dict) -> dict:
        instances = params["Instances"]
        release = params.get("ReleaseLabel") or releases.DEFAULT_RELEASE_LABEL
        releases.check_release_label(release)
        applications = releases.applications(params.get("Applications", []))
        groups = instance_groups_from_request(instances)
        cid = ids.cluster_id()
        steps = [new_step(cid, s) for s in params.get("Steps", [])]
        if len(steps) > MAX_ACTIVE_STEPS:
            raise ValidationError(f"A cluster can have at most {MAX_ACTIVE_STEPS} active steps.")
        now = time.time()
        cluster: Doc = {
            "id": cid,
            "account": account,
            "arn": ids.cluster_arn(self.region, account, cid),
            "name": params["Name"],
            "log_uri": params.get("LogUri"),
            "release_label": release,
            "applications": applications,
            "configurations": params.get("Configurations", []),
            "bootstrap_actions": params.get("BootstrapActions", []),
            "groups": groups,
            "keep_alive": bool(instances.get("KeepJobFlowAliveWhenNoSteps", False)),
            "termination_protected": bool(instances.get("TerminationProtected", False)),
            "ec2_key_name": instances.get("Ec2KeyName"),
            "visible_to_all_users": params.get("VisibleToAllUsers", True),
            "service_role": params.get("ServiceRole"),
            "job_flow_role": params.get("JobFlowRole"),
            "tags": params.get("Tags", []),
            "step_concurrency_level": params.get("StepConcurrencyLevel", 1),
            **auto_termination_from_request(params),
            "state": states.STARTING,
            "state_reason": {"code": None, "message": "Provisioning instances"},
            "timeline": {"created": now},
            "master_public_dns": None,
            "terminate_requested": False,
        }
        self.store.create_cluster(cluster, steps)
        self.store.notify(cid)
        return {"JobFlowId": cid, "ClusterArn": cluster["arn"]}

    def describe_cluster(self, account: str, params: dict) -> dict:
        cluster = self._cluster(account, params["ClusterId"])
        return {"Cluster": self._cluster_shape(cluster)}

    def list_clusters(self, account: str, params: dict) -> dict:
        wanted = set(params.get("ClusterStates", []))
        after = params.get("CreatedAfter")
        before = params.get("CreatedBefore")
        clusters = self.store.get_clusters(self.store.cluster_ids(account))
        matching = []
        for c in clusters:
            created = _ts(c["timeline"]["created"])
            if wanted and c["state"] not in wanted:
                continue
            if after and created < after:
                continue
            if before and created > before:
                continue
            matching.append(c)
        start = self._marker(params.get("Marker"))
        page = matching[start : start + PAGE_SIZE]
        result: dict[str, Any] = {
            "Clusters": [
                {
                    "Id": c["id"],
                    "Name": c["name"],
                    "Status": self._status(c),
                    "NormalizedInstanceHours": self._normalized_hours(c),
                    "ClusterArn": c["arn"],
                }
                for c in page
            ]
        }
        if start + PAGE_SIZE < len(matching):
            result["Marker"] = str(start + PAGE_SIZE)
        return result

    def terminate_job_flows(self, account: str, params: dict) -> dict:
        cids = params["JobFlowIds"]
        clusters = [self._cluster(account, cid) for cid in cids]  # validate all before changing any
        protected = [c["id"] for c in clusters if c["termination_protected"]]
        if protected:
            raise ValidationError(
                f"Could not shut down one or more job flows since they are termination protected: {protected}"
            )
        for cluster in clusters:
            self.request_termination(cluster["id"], states.USER_REQUEST, "Terminated by user request")
        return {}

    def request_termination(self, cid: str, code: str, message: str) -> None:
        """Mark a cluster for termination; the orchestrator tears it down."""

        def change(cluster: Doc) -> None:
            if cluster["state"] in states.FINAL_CLUSTER_STATES or cluster["terminate_requested"]:
                return
            cluster["terminate_requested"] = True
            cluster["state"] = states.TERMINATING
            cluster["state_reason"] = {"code": code, "message": message}

        self.store.update_cluster(cid, change)
        self.store.notify(cid)

    # -- steps ----------------------------------------------------------
    def add_job_flow_steps(self, account: str, params: dict) -> dict:
        cluster = self._cluster(account, params["JobFlowId"])
        if cluster["state"] not in (states.STARTING, states.BOOTSTRAPPING, states.RUNNING, states.WAITING):
            raise ValidationError(
                "A job flow that is shutting down, terminated, or finished may not be modified."
            )
        steps = [new_step(cluster["id"], s) for s in params["Steps"]]
        active = sum(1 for s in self.store.steps_of(cluster["id"]) if s["state"] in states.ACTIVE_STEP_STATES)
        if active + len(steps) > MAX_ACTIVE_STEPS:
            raise ValidationError(f"Maximum number of active steps({MAX_ACTIVE_STEPS}) for cluster exceeded.")
        self.store.add_steps(cluster["id"], steps)
        self.store.notify(cluster["id"])
        return {"StepIds": [s["id"] for s in steps]}

    def list_steps(self, account: str, params: dict) -> dict:
        cluster = self._cluster(account, params["ClusterId"])
        wanted_states = set(params.get("StepStates", []))
        wanted_ids = set(params.get("StepIds", []))
        steps = list(reversed(self.store.steps_of(cluster["id"])))  # newest first, as EMR lists them
        matching = [
            s
            for s in steps
            if (not wanted_states or s["state"] in wanted_states)
            and (not wanted_ids or s["id"] in wanted_ids)
        ]
        start = self._marker(params.get("Marker"))
        page = matching[start : start + PAGE_SIZE]
        result: dict[str, Any] = {"Steps": [self._step_shape(s) for s in page]}
        if start + PAGE_SIZE < len(matching):
            result["Marker"] = str(start + PAGE_SIZE)
        return result

    def describe_step(self, account: str, params: dict) -> dict:
        step = self._step(account, params["ClusterId"], params["StepId"])
        return {"Step": self._step_shape(step)}

    # -- shapes ---------------------------------------------------------
    @staticmethod
    def _marker(marker: str | None) -> int:
        if marker is None:
            return 0
        if not marker.isdigit():
            raise InvalidRequest(f"Marker '{marker}' is not valid.")
        return int(marker)

    @staticmethod
    def _status(cluster: Doc) -> dict:
        reason = cluster.get("state_reason") or {}
        timeline = cluster["timeline"]
        return {
            "State": cluster["state"],
            "StateChangeReason": _strip({"Code": reason.get("code"), "Message": reason.get("message")}),
            "Timeline": _strip(
                {
                    "CreationDateTime": _ts(timeline.get("created")),
                    "ReadyDateTime": _ts(timeline.get("ready")),
                    "EndDateTime": _ts(timeline.get("end")),
                }
            ),
        }

    @staticmethod
    def _normalized_hours(cluster: Doc) -> int:
        """EMR's normalized instance hours: instance-hours rounded up, a small instance counting 1."""
        timeline = cluster["timeline"]
        if not timeline.get("ready"):
            return 0
        hours = ((timeline.get("end") or time.time()) - timeline["created"]) / 3600
        count = sum(g["requested"] for g in cluster["groups"])
        return int(-(-hours // 1)) * count * 8  # an xlarge instance is 8 normalized units

    def _cluster_shape(self, c: Doc) -> dict:
        return _strip(
            {
                "Id": c["id"],
                "Name": c["name"],
                "Status": self._status(c),
                "Ec2InstanceAttributes": _strip(
                    {"Ec2KeyName": c.get("ec2_key_name"), "Ec2AvailabilityZone": f"{self.region}a"}
                ),
                "InstanceCollectionType": "INSTANCE_GROUP",
                "LogUri": c.get("log_uri"),
                "ReleaseLabel": c["release_label"],
                "AutoTerminate": not c["keep_alive"],
                "TerminationProtected": c["termination_protected"],
                "UnhealthyNodeReplacement": False,
                "VisibleToAllUsers": c["visible_to_all_users"],
                "Applications": c["applications"],
                "Tags": c["tags"],
                "ServiceRole": c.get("service_role"),
                "NormalizedInstanceHours": self._normalized_hours(c),
                "MasterPublicDnsName": c.get("master_public_dns"),
                "Configurations": c["configurations"],
                "ScaleDownBehavior": "TERMINATE_AT_TASK_COMPLETION",
                "StepConcurrencyLevel": c["step_concurrency_level"],
                "ClusterArn": c["arn"],
                "RequestedAmiVersion": None,
                "RunningAmiVersion": None,
            }
        )

    @staticmethod
    def _step_shape(s: Doc) -> dict:
        reason = s.get("state_reason") or {}
        status = {
            "State": s["state"],
            "StateChangeReason": _strip({"Code": reason.get("code"), "Message": reason.get("message")}),
            "Timeline": _strip(
                {
                    "CreationDateTime": _ts(s["timeline"].get("created")),
                    "StartDateTime": _ts(s["timeline"].get("start")),
                    "EndDateTime": _ts(s["timeline"].get("end")),
                }
            ),
        }
        if s.get("failure"):
            status["FailureDetails"] = _strip(
                {
                    "Reason": s["failure"].get("reason"),
                    "Message": s["failure"].get("message"),
                    "LogFile": s["failure"].get("log_file"),
                }
            )
        return {
            "Id": s["id"],
            "Name": s["name"],
            "Config": _strip(
                {
                    "Jar": s["jar"],
                    "Properties": s["properties"],
                    "MainClass": s["main_class"],
                    "Args": s["args"],
                }
            ),
            "ActionOnFailure": s["action_on_failure"],
            "Status": status,
        }
