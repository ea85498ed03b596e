"""Managed scaling: the cluster's core and task groups grow and shrink with YARN's load, within the
managed scaling policy's compute limits.

Counted as the policy's UnitType says (instances, vCPUs, or fleet units), over the core and task
groups (the master is never scaled).  A cluster outside its limits is brought within them first.
Then, when containers have been pending for ``WINDOW_SECONDS``, one more node is asked for: in the
task group if there is one, else in the core group while ``MaximumCoreCapacityUnits`` allows (and
for an On-Demand group, while ``MaximumOnDemandCapacityUnits`` does); and
when for as long none pended and at least ``IDLE_MEMORY_PERCENT`` of YARN's memory was free, one
node less: a task node first, else a core node while HDFS keeps enough DataNodes for its
replication.  The resize path does the rest, decommissioning gracefully (YARN lets the node's
containers finish; HDFS moves a core node's blocks off first).  One step at a time, each judged on
metrics sampled after the previous one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from resilin.cluster.cluster_metrics import MetricsHistory
from resilin.cluster.operation import ARRESTED, RESIZING, ClusterOperation
from resilin.cluster.runtime import ClusterRuntime
from resilin.jobflows import states
from resilin.jobflows.documents import ClusterDoc, InstanceGroupDoc

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0  # how long a load must last before the cluster answers it
IDLE_MEMORY_PERCENT = 75.0
SCALING = (states.RUNNING, states.WAITING)


class ManagedScaling(ClusterOperation):
    def __init__(self, metrics: MetricsHistory, clock: Callable[[], float] = time.time) -> None:
        self.metrics = metrics
        self.clock = clock
        self.since: float | None = None  # when the policy was first seen, or last acted

    def wanted(self, runtime: ClusterRuntime) -> bool:
        cluster = runtime.cluster
        if cluster["state"] not in SCALING or not cluster.get("managed_scaling_policy"):
            self.since = None
            return False
        return True

    def run(self, runtime: ClusterRuntime) -> None:
        now = self.clock()
        cluster = runtime.cluster
        self.metrics.refresh(runtime, now)
        policy = cluster.get("managed_scaling_policy")
        if not policy:
            return
        limits = policy["ComputeLimits"]
        groups = [
            g
            for g in cluster["groups"]
            if g["role"] in ("CORE", "TASK") and g["state"] != states.GROUP_TERMINATED
        ]
        if self.since is None:
            self.since = now
        if any(g["state"] in (RESIZING, ARRESTED) for g in groups):
            return  # the last step is under way (or could not be made): judged afterwards
        unit = _unit_of(runtime, limits["UnitType"])
        current = sum(g["requested"] * unit(g) for g in groups)
        low, high = limits["MinimumCapacityUnits"], limits["MaximumCapacityUnits"]
        if current < low:
            self._grow(runtime, groups, unit, limits, current, "below MinimumCapacityUnits")
            return
        if current > high:
            self._shrink(runtime, cluster, groups, unit, low, current, "above MaximumCapacityUnits")
            return
        on_demand = [g for g in groups if _on_demand(g)]
        if sum(g["requested"] * unit(g) for g in on_demand) > limits.get(
            "MaximumOnDemandCapacityUnits", high
        ):
            self._shrink(
                runtime, cluster, on_demand, unit, low, current, "above MaximumOnDemandCapacityUnits"
            )
            return
        if now - self.since < WINDOW_SECONDS:
            return
        window = self.metrics.window(max(self.since, now - WINDOW_SECONDS), now)
        if len(window) < 2:
            return
        if all(m["ContainerPending"] > 0 for m in window):
            self._grow(runtime, groups, unit, limits, current, "containers pending")
        elif all(
            m["ContainerPending"] == 0 and m["YARNMemoryAvailablePercentage"] >= IDLE_MEMORY_PERCENT
            for m in window
        ):
            self._shrink(runtime, cluster, groups, unit, low, current, "YARN mostly idle")

    def _grow(self, runtime: ClusterRuntime, groups: list[InstanceGroupDoc], unit: Callable[[InstanceGroupDoc], int],
              limits: dict, current: int, why: str) -> None:  # fmt: skip
        high = limits["MaximumCapacityUnits"]
        high_core = limits.get("MaximumCoreCapacityUnits", high)
        high_on_demand = limits.get("MaximumOnDemandCapacityUnits", high)
        on_demand = sum(g["requested"] * unit(g) for g in groups if _on_demand(g))

        def may_grow(group: InstanceGroupDoc) -> bool:
            """One more node of the group keeps within the limits (On-Demand units counted apart)."""
            if current + unit(group) > high:
                return False
            return not (_on_demand(group) and on_demand + unit(group) > high_on_demand)

        task = next((g for g in groups if g["role"] == "TASK"), None)
        core = next((g for g in groups if g["role"] == "CORE"), None)
        if task is not None and may_grow(task):
            self._set(runtime, task, task["requested"] + 1, why)
        elif core is not None and may_grow(core) and (core["requested"] + 1) * unit(core) <= high_core:
            self._set(runtime, core, core["requested"] + 1, why)

    def _shrink(self, runtime: ClusterRuntime, cluster: ClusterDoc, groups: list[InstanceGroupDoc],
                unit: Callable[[InstanceGroupDoc], int], low: int, current: int, why: str) -> None:  # fmt: skip
        task = next((g for g in groups if g["role"] == "TASK" and g["requested"] > 0), None)
        core = next((g for g in groups if g["role"] == "CORE"), None)
        replication = int(cluster.get("hdfs_replication") or 1)
        if task is not None and current - unit(task) >= low:
            self._set(runtime, task, task["requested"] - 1, why)
        elif core is not None and core["requested"] > replication and current - unit(core) >= low:
            self._set(runtime, core, core["requested"] - 1, why)

    def _set(self, runtime: ClusterRuntime, group: InstanceGroupDoc, wanted: int, why: str) -> None:
        log.info("%s: managed scaling: %s %s → %d (%s)", runtime.cid, group["role"], group["id"], wanted, why)
        _set_requested(runtime, group["id"], wanted)
        self.since = self.clock()


def _on_demand(group: InstanceGroupDoc) -> bool:
    return (group.get("market") or "ON_DEMAND") == "ON_DEMAND"


def _set_requested(runtime: ClusterRuntime, group_id: str, wanted: int) -> None:
    def change(c: ClusterDoc) -> None:
        for g in c["groups"]:
            if g["id"] == group_id:
                g["requested"] = wanted

    runtime.store.update_cluster(runtime.cid, change)


def _unit_of(runtime: ClusterRuntime, unit_type: str) -> Callable[[InstanceGroupDoc], int]:
    """Capacity units of one instance of a group, as the policy counts them."""

    def unit(group: InstanceGroupDoc) -> int:
        if unit_type == "InstanceFleetUnits":
            return int(group["fleet"]["weight"]) if group.get("fleet") else 1
        if unit_type == "VCPU":
            cloud = runtime.placements(group.get("cloud")).cloud
            vcpus = cloud.vcpus_of(group["instance_type"]) if cloud else None
            return vcpus or 1
        return 1

    return unit
