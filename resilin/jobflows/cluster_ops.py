"""Operations on running clusters that the orchestration semantics need, and that mrjob calls.

A mixin of ``EmrService``: a method defined in ``EmrService`` itself takes precedence
over the one here, so a fuller implementation there replaces these without conflict.
They only touch Redis and answer at once; the cluster worker acts on what they record
(CANCEL_PENDING steps, the step concurrency level, keep-alive, termination protection,
the auto-termination idle timeout).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from resilin.errors import InvalidRequest, ValidationError
from resilin.idle_termination import IDLE_TIMEOUT_KEY
from resilin.jobflows import states
from resilin.jobflows.store import Doc, JobFlowStore, StateConflict

MIN_IDLE_TIMEOUT = 60
MAX_IDLE_TIMEOUT = 604800
MAX_STEP_CONCURRENCY = 256
_ACTIVE = (states.STARTING, states.BOOTSTRAPPING, states.RUNNING, states.WAITING)


def _ts(epoch: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(epoch, dt.UTC) if epoch else None


def _strip(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def _status(doc: Doc, created: float | None) -> dict:
    reason = doc.get("state_reason") or {}
    timeline = doc.get("timeline") or {}
    return {
        "State": doc["state"],
        "StateChangeReason": _strip({"Code": reason.get("code"), "Message": reason.get("message")}),
        "Timeline": _strip(
            {
                "CreationDateTime": _ts(timeline.get("created") or created),
                "ReadyDateTime": _ts(timeline.get("ready")),
                "EndDateTime": _ts(timeline.get("end")),
            }
        ),
    }


def _checked_idle_timeout(policy: dict) -> int:
    timeout = policy.get("IdleTimeout", 3600)
    if not MIN_IDLE_TIMEOUT <= timeout <= MAX_IDLE_TIMEOUT:
        raise ValidationError(
            f"IdleTimeout must be between {MIN_IDLE_TIMEOUT} and {MAX_IDLE_TIMEOUT} seconds."
        )
    return timeout


def auto_termination_from_request(params: dict) -> dict:
    """RunJobFlow's AutoTerminationPolicy as the cluster document's field, if one was given."""
    policy = params.get("AutoTerminationPolicy")
    return {IDLE_TIMEOUT_KEY: _checked_idle_timeout(policy)} if policy is not None else {}


class ClusterControlOperations:
    store: JobFlowStore

    def _cluster(self, account: str, cid: str) -> Doc:  # provided by EmrService
        raise NotImplementedError

    def _active_cluster(self, account: str, cid: str) -> Doc:
        cluster = self._cluster(account, cid)
        if cluster["state"] not in _ACTIVE:
            raise ValidationError(
                "A job flow that is shutting down, terminated, or finished may not be modified."
            )
        return cluster

    # -- steps ----------------------------------------------------------
    def cancel_steps(self, account: str, params: dict) -> dict:
        cluster = self._active_cluster(account, params["ClusterId"])
        infos = []
        for sid in params["StepIds"]:
            step = self.store.get_step(sid)
            if step is None or step["cluster_id"] != cluster["id"]:
                infos.append({"StepId": sid, "Status": "FAILED", "Reason": f"Step id '{sid}' is not valid."})
                continue
            target = {states.PENDING: states.CANCELLED, states.STEP_RUNNING: states.CANCEL_PENDING}.get(
                step["state"]
            )
            try:
                if target is None:
                    raise StateConflict(step["state"])
                self.store.transition_step(sid, target)
                infos.append({"StepId": sid, "Status": "SUBMITTED"})
            except StateConflict:
                infos.append(
                    {
                        "StepId": sid,
                        "Status": "FAILED",
                        "Reason": f"Step {sid} is {self.store.get_step(sid)['state']} and cannot be cancelled.",
                    }
                )
        self.store.notify(cluster["id"])
        return {"CancelStepsInfoList": infos}

    # -- cluster attributes ---------------------------------------------
    def modify_cluster(self, account: str, params: dict) -> dict:
        cluster = self._active_cluster(account, params["ClusterId"])
        level = params.get("StepConcurrencyLevel")
        if level is not None:
            if not 1 <= level <= MAX_STEP_CONCURRENCY:
                raise ValidationError(f"StepConcurrencyLevel must be between 1 and {MAX_STEP_CONCURRENCY}.")

            def change(c: Doc) -> None:
                c["step_concurrency_level"] = level

            cluster = self.store.update_cluster(cluster["id"], change)
            self.store.notify(cluster["id"])
        return {"StepConcurrencyLevel": cluster["step_concurrency_level"]}

    def _set_flag(self, account: str, cids: list[str], field: str, value: bool) -> None:
        clusters = [self._cluster(account, cid) for cid in cids]  # all valid before any changes
        for cluster in clusters:

            def change(c: Doc) -> None:
                c[field] = value

            self.store.update_cluster(cluster["id"], change)
            self.store.notify(cluster["id"])

    def set_termination_protection(self, account: str, params: dict) -> dict:
        self._set_flag(account, params["JobFlowIds"], "termination_protected", params["TerminationProtected"])
        return {}

    def set_keep_job_flow_alive_when_no_steps(self, account: str, params: dict) -> dict:
        self._set_flag(account, params["JobFlowIds"], "keep_alive", params["KeepJobFlowAliveWhenNoSteps"])
        return {}

    # -- auto-termination -------------------------------------------------
    def put_auto_termination_policy(self, account: str, params: dict) -> dict:
        cluster = self._active_cluster(account, params["ClusterId"])
        timeout = _checked_idle_timeout(params.get("AutoTerminationPolicy") or {})

        def change(c: Doc) -> None:
            c[IDLE_TIMEOUT_KEY] = timeout

        self.store.update_cluster(cluster["id"], change)
        self.store.notify(cluster["id"])
        return {}

    def get_auto_termination_policy(self, account: str, params: dict) -> dict:
        cluster = self._cluster(account, params["ClusterId"])
        timeout = cluster.get(IDLE_TIMEOUT_KEY)
        return {"AutoTerminationPolicy": {"IdleTimeout": timeout}} if timeout else {}

    def remove_auto_termination_policy(self, account: str, params: dict) -> dict:
        cluster = self._cluster(account, params["ClusterId"])

        def change(c: Doc) -> None:
            c.pop(IDLE_TIMEOUT_KEY, None)

        self.store.update_cluster(cluster["id"], change)
        return {}

    # -- tags -------------------------------------------------------------
    def add_tags(self, account: str, params: dict) -> dict:
        cluster = self._cluster(account, params["ResourceId"])
        new = {t["Key"]: t.get("Value", "") for t in params["Tags"]}

        def change(c: Doc) -> None:
            kept = [t for t in c.get("tags", []) if t["Key"] not in new]
            c["tags"] = kept + [{"Key": k, "Value": v} for k, v in new.items()]

        self.store.update_cluster(cluster["id"], change)
        return {}

    # -- instances ----------------------------------------------------------
    def list_instance_groups(self, account: str, params: dict) -> dict:
        cluster = self._cluster(account, params["ClusterId"])
        created = cluster["timeline"]["created"]
        return {
            "InstanceGroups": [
                {
                    "Id": g["id"],
                    "Name": g["name"],
                    "Market": g.get("market", "ON_DEMAND"),
                    "InstanceGroupType": g["role"],
                    "InstanceType": g["instance_type"],
                    "RequestedInstanceCount": g["requested"],
                    "RunningInstanceCount": g.get("running", 0),
                    "Status": _status(g, created),
                    "Configurations": [],
                    "EbsBlockDevices": [],
                }
                for g in cluster["groups"]
            ]
        }

    def list_instances(self, account: str, params: dict) -> dict:
        cluster = self._cluster(account, params["ClusterId"])
        roles = set(params.get("InstanceGroupTypes") or [])
        wanted_states = set(params.get("InstanceStates") or [])
        group = params.get("InstanceGroupId")
        if group and group not in {g["id"] for g in cluster["groups"]}:
            raise InvalidRequest(f"Instance group id '{group}' is not valid.")
        out: list[dict[str, Any]] = []
        for i in self.store.instances_of(cluster["id"]):
            if (roles and i["role"] not in roles) or (group and i["group_id"] != group):
                continue
            if wanted_states and i["state"] not in wanted_states:
                continue
            out.append(
                _strip(
                    {
                        "Id": i["id"],
                        "Ec2InstanceId": i.get("ec2_id"),
                        "PublicDnsName": i.get("public_dns"),
                        "PublicIpAddress": i.get("public_ip"),
                        "PrivateDnsName": i.get("private_dns"),
                        "PrivateIpAddress": i.get("private_ip"),
                        "Status": _status(i, None),
                        "InstanceGroupId": i["group_id"],
                        "Market": i.get("market", "ON_DEMAND"),
                        "InstanceType": i["instance_type"],
                        "EbsVolumes": [],
                    }
                )
            )
        return {"Instances": out}

    def list_bootstrap_actions(self, account: str, params: dict) -> dict:
        cluster = self._cluster(account, params["ClusterId"])
        return {
            "BootstrapActions": [
                {
                    "Name": action["Name"],
                    "ScriptPath": action["ScriptBootstrapAction"]["Path"],
                    "Args": list(action["ScriptBootstrapAction"].get("Args", [])),
                }
                for action in cluster.get("bootstrap_actions", [])
            ]
        }
