"""DescribeJobFlows: deprecated on EMR, still what old tools (boto 2, early mrjob) call.

EMR answers it from the same clusters, in the older JobFlowDetail shape, with its own
window: never older than two months; with no filter, clusters still active or those that
ended in the last two weeks; at most 512.
"""

from __future__ import annotations

import time
from typing import Any

from resilin.jobflows import releases, relocations, states, views
from resilin.jobflows.base import ServiceBase
from resilin.jobflows.caller import Caller, as_caller
from resilin.jobflows.documents import ClusterDoc, InstanceDoc, InstanceGroupDoc, StepDoc
from resilin.jobflows.states import JobFlowExecutionState

MAX_JOB_FLOWS = 512
TWO_WEEKS = 14 * 24 * 3600
TWO_MONTHS = 61 * 24 * 3600
_JF = JobFlowExecutionState
ACTIVE_JOB_FLOW_STATES = (_JF.STARTING, _JF.BOOTSTRAPPING, _JF.RUNNING, _JF.WAITING, _JF.SHUTTING_DOWN)


def job_flow_state(cluster: ClusterDoc) -> str:
    """The cluster's state as DescribeJobFlows names it (a JobFlowExecutionState)."""
    state = cluster["state"]
    code = (cluster.get("state_reason") or {}).get("code")
    if state == states.TERMINATING:
        return _JF.SHUTTING_DOWN
    if state == states.TERMINATED:
        return _JF.COMPLETED if code == states.ALL_STEPS_COMPLETED else _JF.TERMINATED
    if state == states.TERMINATED_WITH_ERRORS:
        return _JF.FAILED
    return state


def _step_state(step: StepDoc) -> str:
    state = step["state"]
    if state == states.CANCEL_PENDING:
        return states.STEP_RUNNING if step["timeline"].get("start") else states.PENDING
    return state


def _step_detail(step: StepDoc) -> dict:
    reason = (step.get("state_reason") or {}).get("message") or (step.get("failure") or {}).get("message")
    return {
        "StepConfig": views.strip(
            {
                "Name": step["name"],
                "ActionOnFailure": step["action_on_failure"],
                "HadoopJarStep": views.strip(
                    {
                        "Properties": [{"Key": k, "Value": v} for k, v in step["properties"].items()],
                        "Jar": step["jar"],
                        "MainClass": step["main_class"],
                        "Args": step["args"],
                    }
                ),
            }
        ),
        "ExecutionStatusDetail": views.strip(
            {
                "State": _step_state(step),
                "CreationDateTime": views.ts(step["timeline"]["created"]),
                "StartDateTime": views.ts(step["timeline"].get("start")),
                "EndDateTime": views.ts(step["timeline"].get("end")),
                "LastStateChangeReason": reason,
            }
        ),
    }


def _group_detail(group: InstanceGroupDoc, cluster: ClusterDoc, instances: list[InstanceDoc]) -> dict:
    timeline = views.instance_group(group, cluster)["Status"]["Timeline"]
    # Started: when its first instance was launched (none yet: not started).
    launched = [
        i["timeline"]["created"] for i in instances if i.get("group_id") == group["id"] and i.get("timeline")
    ]
    return views.strip(
        {
            "InstanceGroupId": group["id"],
            "Name": group["name"],
            "Market": group["market"],
            "InstanceRole": group["role"],
            "BidPrice": group.get("bid_price"),
            "InstanceType": group["instance_type"],
            "InstanceRequestCount": group["requested"],
            "InstanceRunningCount": group["running"],
            "State": group["state"],
            "LastStateChangeReason": (group.get("state_reason") or {}).get("message"),
            "CreationDateTime": timeline["CreationDateTime"],
            "StartDateTime": views.ts(min(launched)) if launched else None,
            "ReadyDateTime": timeline.get("ReadyDateTime"),
            "EndDateTime": timeline.get("EndDateTime"),
            "CustomAmiId": group.get("custom_ami_id"),
        }
    )


class JobFlowDetailOperations(ServiceBase):
    def describe_job_flows(self, who: str | Caller, params: dict) -> dict:
        caller = as_caller(who)
        now = time.time()
        after = params.get("CreatedAfter")
        before = params.get("CreatedBefore")
        wanted_ids = set(params.get("JobFlowIds", []))
        wanted_states = set(params.get("JobFlowStates", []))
        no_filter = not (after or before or wanted_ids or wanted_states)
        oldest = max(after.timestamp() if after else 0.0, now - TWO_MONTHS)
        window = self.store.cluster_ids_with_times(
            caller.account_id, oldest, before.timestamp() if before else None, 0, -1
        )
        clusters = self.store.get_clusters([cid for cid, _ in window])
        chosen = []
        for cluster in clusters:
            created = cluster["timeline"]["created"]
            state = job_flow_state(cluster)
            if not caller.can_see(cluster):
                continue
            if wanted_ids and cluster["id"] not in wanted_ids:
                continue
            if wanted_states and state not in wanted_states:
                continue
            if no_filter and state not in ACTIVE_JOB_FLOW_STATES and created < now - TWO_WEEKS:
                continue
            chosen.append(cluster)
            if len(chosen) == MAX_JOB_FLOWS:
                break
        return {"JobFlows": [self._detail(c) for c in chosen]}

    def _detail(self, cluster: ClusterDoc) -> dict[str, Any]:
        groups = cluster["groups"]
        master = next(g for g in groups if g["role"] == "MASTER")
        core = next((g for g in groups if g["role"] == "CORE"), master)
        instances = self.store.instances_of(cluster["id"])
        master_instance = next((i for i in instances if i.get("role") == "MASTER"), None)
        timeline = cluster["timeline"]
        network = cluster.get("network") or {}
        fleets = cluster.get("instance_collection_type") == "INSTANCE_FLEET"
        return views.strip(
            {
                "JobFlowId": cluster["id"],
                "Name": cluster["name"],
                "LogUri": cluster.get("log_uri"),
                # Clusters made with an AMI version (2.x/3.x) say which; release-label ones have none.
                "AmiVersion": cluster.get("running_ami_version") or cluster.get("requested_ami_version"),
                "LogEncryptionKmsKeyId": cluster.get("log_encryption_kms_key_id"),
                "ExecutionStatusDetail": views.strip(
                    {
                        "State": job_flow_state(cluster),
                        "CreationDateTime": views.ts(timeline["created"]),
                        "StartDateTime": views.ts(timeline.get("ready")),
                        "ReadyDateTime": views.ts(timeline.get("ready")),
                        "EndDateTime": views.ts(timeline.get("end")),
                        "LastStateChangeReason": relocations.status_message(cluster)
                        or (cluster.get("state_reason") or {}).get("message"),
                    }
                ),
                "Instances": views.strip(
                    {
                        "MasterInstanceType": master["instance_type"],
                        "MasterPublicDnsName": cluster.get("master_public_dns"),
                        "MasterInstanceId": master_instance and master_instance.get("ec2_id"),
                        "SlaveInstanceType": core["instance_type"],
                        "InstanceCount": sum(g["requested"] for g in groups),
                        "InstanceGroups": None
                        if fleets
                        else [_group_detail(g, cluster, instances) for g in groups],
                        "NormalizedInstanceHours": views.normalized_hours(cluster, now=time.time()),
                        "Ec2KeyName": cluster.get("ec2_key_name"),
                        "Ec2SubnetId": network.get("subnet_id"),
                        "Placement": {
                            "AvailabilityZone": network.get("availability_zone") or f"{self.region}a"
                        },
                        "KeepJobFlowAliveWhenNoSteps": cluster["keep_alive"],
                        "TerminationProtected": cluster["termination_protected"],
                        "UnhealthyNodeReplacement": cluster.get("unhealthy_node_replacement"),
                        "HadoopVersion": releases.HADOOP_VERSION,
                    }
                ),
                "Steps": [_step_detail(s) for s in self.store.steps_of(cluster["id"])],
                "BootstrapActions": [
                    {"BootstrapActionConfig": action} for action in cluster.get("bootstrap_actions", [])
                ],
                "SupportedProducts": [],
                "VisibleToAllUsers": cluster["visible_to_all_users"],
                "JobFlowRole": cluster.get("job_flow_role"),
                "ServiceRole": cluster.get("service_role"),
                "AutoScalingRole": cluster.get("auto_scaling_role"),
                "ScaleDownBehavior": cluster.get("scale_down_behavior"),
            }
        )
