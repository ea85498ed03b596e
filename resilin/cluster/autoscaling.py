"""Automatic scaling: the core and task groups' automatic scaling policies act on the running cluster.

The cluster's metrics are sampled from the master (:mod:`resilin.cluster.cluster_metrics`).  A group's policy is ATTACHED when the running
cluster first sees it; from then on, each round, its rules' alarms are evaluated over whole periods
after the attachment or the group's last scaling action (:mod:`resilin.jobflows.scaling_rules`), and
the first rule whose alarm fires sets the group's requested count (within the policy's
constraints), which :class:`resilin.cluster.operations.ResizeGroups` then carries out.  The rule's
cool-down holds the group's policy back afterwards, so rules do not flap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from resilin.cluster.cluster_metrics import MetricsHistory
from resilin.cluster.operation import ARRESTED, RESIZING, ClusterOperation
from resilin.cluster.runtime import ClusterRuntime
from resilin.jobflows import scaling_rules, states
from resilin.jobflows.documents import ClusterDoc, InstanceGroupDoc

log = logging.getLogger(__name__)

SCALING = (states.RUNNING, states.WAITING)


class AutomaticScaling(ClusterOperation):
    def __init__(self, metrics: MetricsHistory, clock: Callable[[], float] = time.time) -> None:
        self.metrics = metrics
        self.clock = clock
        self.since: dict[str, float] = {}  # group id → attachment or last action: windows start there
        self.held_until: dict[str, float] = {}  # group id → end of the last action's cool-down

    def wanted(self, runtime: ClusterRuntime) -> bool:
        cluster = runtime.cluster
        return cluster["state"] in SCALING and any(_policy(g) for g in cluster["groups"])

    def run(self, runtime: ClusterRuntime) -> None:
        now = self.clock()
        self._attach(runtime, now)
        self.metrics.refresh(runtime, now)
        for group in runtime.cluster["groups"]:
            policy = _policy(group)
            if (
                policy is None
                or group["state"] in (RESIZING, ARRESTED)
                or now < self.held_until.get(group["id"], 0)
            ):
                continue
            self._evaluate(runtime, group, policy, now)

    def _attach(self, runtime: ClusterRuntime, now: float) -> None:
        pending = [
            g["id"]
            for g in runtime.cluster["groups"]
            if (_policy(g) or {}).get("state") == states.AutoScalingPolicyState.PENDING
        ]
        if not pending:
            return

        def attach(c: ClusterDoc) -> None:
            for g in c["groups"]:
                policy = g.get("auto_scaling_policy")
                if g["id"] in pending and policy:
                    policy["state"] = states.AutoScalingPolicyState.ATTACHED
                    policy["Rules"] = scaling_rules.dimension_values(policy["Rules"], c["id"])

        runtime.store.update_cluster(runtime.cid, attach)
        for gid in pending:
            self.since[gid] = now

    def _evaluate(self, runtime: ClusterRuntime, group: InstanceGroupDoc, policy: dict, now: float) -> None:
        since = self.since.setdefault(group["id"], now)
        low, high = policy["Constraints"]["MinCapacity"], policy["Constraints"]["MaxCapacity"]
        for raw in policy["Rules"]:
            rule = scaling_rules.rule_of(raw)
            if not rule.breached(self.metrics.series(rule.metric), since, now):
                continue
            current = group["requested"]
            wanted = rule.new_capacity(current, low, high)
            self.since[group["id"]] = now
            self.held_until[group["id"]] = now + rule.cooldown
            if wanted == current:
                return  # at its limit: the alarm is spent, nothing to do
            message = f"Rule '{rule.name}' ({rule.metric}) set the requested count from {current} to {wanted}"
            log.info("%s: %s: %s", runtime.cid, group["id"], message)
            _set_requested(runtime, group["id"], wanted, message)
            return


def _set_requested(runtime: ClusterRuntime, group_id: str, wanted: int, message: str) -> None:
    def resize(c: ClusterDoc) -> None:
        for g in c["groups"]:
            if g["id"] == group_id:
                g["requested"] = wanted
                policy = g.get("auto_scaling_policy")
                if policy:
                    policy["state_reason"] = {"code": None, "message": message}

    runtime.store.update_cluster(runtime.cid, resize)


def _policy(group: InstanceGroupDoc) -> dict | None:
    if group["role"] == "MASTER" or group["state"] == states.GROUP_TERMINATED:
        return None
    policy = group.get("auto_scaling_policy")
    return dict(policy) if policy else None
