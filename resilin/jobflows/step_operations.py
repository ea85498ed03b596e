"""Steps: AddJobFlowSteps, ListSteps, DescribeStep, CancelSteps."""

from __future__ import annotations

import time
from typing import Any

from resilin.errors import ValidationError, no_such_cluster
from resilin.jobflows import ids, states, views
from resilin.jobflows.base import ServiceBase, page_newest_first, unique
from resilin.jobflows.caller import Caller, as_caller
from resilin.jobflows.documents import StepDoc
from resilin.jobflows.states import CancelStepsRequestStatus
from resilin.jobflows.store import StateConflict

MAX_ACTIVE_STEPS = 256
MAX_STEP_STRING_CHARS = 10240
MAX_LISTED_STEP_IDS = 10
MAX_CANCELLED_STEPS = 256
TOO_MANY_ACTIVE = (
    f"Maximum number of active steps(State = 'Running', 'Pending' or 'Cancel_Pending') for cluster "
    f"exceeded ({MAX_ACTIVE_STEPS})."
)


def new_step(cid: str, config: dict, execution_role_arn: str | None = None) -> StepDoc:
    jar_step = config["HadoopJarStep"]
    size = sum(
        len(s) for s in [jar_step.get("Jar", ""), jar_step.get("MainClass", ""), *jar_step.get("Args", [])]
    )
    if size > MAX_STEP_STRING_CHARS:
        raise ValidationError(
            f"The step's strings total {size} characters, more than {MAX_STEP_STRING_CHARS}."
        )
    if not jar_step["Jar"].strip():
        raise ValidationError("The step's Jar must not be empty.")
    monitoring = (config.get("StepMonitoringConfiguration") or {}).get("S3MonitoringConfiguration") or {}
    return {
        "id": ids.step_id(),
        "cluster_id": cid,
        "name": config["Name"],
        "action_on_failure": config.get("ActionOnFailure", states.TERMINATE_CLUSTER),
        "jar": jar_step["Jar"],
        "main_class": jar_step.get("MainClass"),
        "args": list(jar_step.get("Args", [])),
        "properties": {p["Key"]: p.get("Value", "") for p in jar_step.get("Properties", [])},
        "log_uri": monitoring.get("LogUri"),
        "execution_role_arn": execution_role_arn,
        "state": states.PENDING,
        "state_reason": None,
        "failure": None,
        "timeline": {"created": time.time()},
    }


class StepOperations(ServiceBase):
    def add_job_flow_steps(self, who: str | Caller, params: dict) -> dict:
        cluster = self._modifiable_cluster(who, params["JobFlowId"])
        role = params.get("ExecutionRoleArn")
        steps = [new_step(cluster["id"], s, role) for s in params["Steps"]]
        active = sum(1 for s in self.store.steps_of(cluster["id"]) if s["state"] in states.ACTIVE_STEP_STATES)
        if active + len(steps) > MAX_ACTIVE_STEPS:
            raise ValidationError(TOO_MANY_ACTIVE)
        self.store.add_steps(cluster["id"], steps)
        self.store.notify(cluster["id"])
        return {"StepIds": [s["id"] for s in steps]}

    def list_steps(self, who: str | Caller, params: dict) -> dict:
        cid = params["ClusterId"]
        cluster, steps = self.store.cluster_with_steps(cid) if ids.CLUSTER_ID.match(cid) else (None, [])
        if cluster is None or not as_caller(who).can_see(cluster):
            raise no_such_cluster(cid)
        wanted_states = set(params.get("StepStates", []))
        wanted_ids = set(params.get("StepIds", []))
        if len(wanted_ids) > MAX_LISTED_STEP_IDS:
            raise ValidationError(f"At most {MAX_LISTED_STEP_IDS} step ids may be listed at once.")

        def keep(step: StepDoc) -> bool:
            return (not wanted_states or step["state"] in wanted_states) and (
                not wanted_ids or step["id"] in wanted_ids
            )

        chosen, marker = page_newest_first(steps, params.get("Marker"), keep)
        result: dict[str, Any] = {"Steps": [views.step(s) for s in chosen]}
        if marker is not None:
            result["Marker"] = marker
        return result

    def describe_step(self, who: str | Caller, params: dict) -> dict:
        step = self._step(who, params["ClusterId"], params["StepId"])
        return {"Step": views.step(step)}

    def cancel_steps(self, who: str | Caller, params: dict) -> dict:
        """PENDING steps are cancelled at once; RUNNING ones become CANCEL_PENDING for the worker to stop."""
        cluster = self._cluster(who, params["ClusterId"])
        step_ids = unique(params["StepIds"])
        if len(step_ids) > MAX_CANCELLED_STEPS:
            raise ValidationError(f"At most {MAX_CANCELLED_STEPS} steps may be cancelled in one request.")
        if cluster["state"] in states.FINAL_CLUSTER_STATES:
            raise ValidationError(
                f"Cluster '{cluster['id']}' is {cluster['state']}; its steps cannot be cancelled."
            )
        option = params.get("StepCancellationOption", "SEND_INTERRUPT")
        infos = [self._cancel_one(cluster["id"], sid, option) for sid in step_ids]
        if any(info["Status"] == CancelStepsRequestStatus.SUBMITTED for info in infos):
            self.store.notify(cluster["id"])
        return {"CancelStepsInfoList": infos}

    def _cancel_one(self, cid: str, sid: str, option: str) -> dict:
        step = self.store.get_step(sid) if ids.STEP_ID.match(sid) else None
        if step is None or step["cluster_id"] != cid:
            return {
                "StepId": sid,
                "Status": CancelStepsRequestStatus.FAILED,
                "Reason": f"Step id '{sid}' is not valid.",
            }

        def change(doc: StepDoc) -> None:
            state = doc["state"]
            if state == states.PENDING:
                doc["state"] = states.CANCELLED
                doc["timeline"]["end"] = time.time()
                doc["state_reason"] = {"message": "Cancelled by user request"}
            elif state == states.STEP_RUNNING:
                doc["state"] = states.CANCEL_PENDING
                doc["cancel_option"] = option
            elif state != states.CANCEL_PENDING:
                raise StateConflict(f"Step {sid} is {state} and can no longer be cancelled.")

        try:
            self.store.update_step(sid, change)
        except StateConflict as exc:
            return {"StepId": sid, "Status": CancelStepsRequestStatus.FAILED, "Reason": str(exc)}
        return {"StepId": sid, "Status": CancelStepsRequestStatus.SUBMITTED}


def check_active_step_limit(count: int) -> None:
    if count > MAX_ACTIVE_STEPS:
        raise ValidationError(TOO_MANY_ACTIVE)
