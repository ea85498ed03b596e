"""Managed scaling over time, on a clock of the test's own: the cluster grows one node a window while
containers pend, within MaximumCapacityUnits and, for On-Demand groups, MaximumOnDemandCapacityUnits,
and shrinks back to MinimumCapacityUnits when YARN is idle."""

from __future__ import annotations

from resilin.cluster.cluster_metrics import MetricsHistory
from resilin.cluster.managed_scaling import ManagedScaling
from resilin.jobflows import states


class _Store:
    def __init__(self, doc: dict) -> None:
        self.doc = doc

    def update_cluster(self, cid: str, change) -> None:
        change(self.doc)


class _Runtime:
    cid = "j-MANAGED"

    def __init__(self, doc: dict) -> None:
        self.store = _Store(doc)

    @property
    def cluster(self) -> dict:
        return self.store.doc


class _Metrics(MetricsHistory):
    def __init__(self) -> None:
        super().__init__(sample_seconds=15)
        self.pending, self.free = 0.0, 100.0

    def refresh(self, runtime, now: float) -> None:
        if now - self.last >= self.sample_seconds:
            self.samples.append(
                (now, {"ContainerPending": self.pending, "YARNMemoryAvailablePercentage": self.free})
            )
            self.last = now


def _cluster(task_market: str) -> dict:
    return {
        "id": "j-MANAGED",
        "state": states.WAITING,
        "hdfs_replication": 1,
        "groups": [
            {"id": "ig-M", "role": "MASTER", "state": "RUNNING", "requested": 1, "market": "ON_DEMAND"},
            {"id": "ig-C", "role": "CORE", "state": "RUNNING", "requested": 1, "market": "ON_DEMAND"},
            {"id": "ig-T", "role": "TASK", "state": "RUNNING", "requested": 0, "market": task_market},
        ],
    }


class _Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(
    doc: dict, limits: dict, pending: float, free: float, start: int, end: int, metrics=None, scaling=None
):
    """Run the operation every 15 s from ``start`` to ``end`` under a steady load."""
    doc["managed_scaling_policy"] = {"ComputeLimits": {"UnitType": "Instances", **limits}}
    metrics = metrics or _Metrics()
    metrics.pending, metrics.free = pending, free
    scaling = scaling or ManagedScaling(metrics, clock=_Clock())
    runtime = _Runtime(doc)
    for moment in range(start, end, 15):
        scaling.clock.now = moment
        scaling.run(runtime)  # type: ignore[arg-type]
    return metrics, scaling


def _sizes(doc: dict) -> tuple[int, int]:
    return doc["groups"][1]["requested"], doc["groups"][2]["requested"]


def test_pending_containers_grow_the_task_group_to_the_maximum_then_idle_shrinks_it():
    doc = _cluster("ON_DEMAND")
    limits = {"MinimumCapacityUnits": 1, "MaximumCapacityUnits": 3}
    metrics, scaling = _run(doc, limits, pending=5, free=0, start=0, end=600)
    assert _sizes(doc) == (1, 2)  # one node a window, up to the maximum, task nodes first
    _run(doc, limits, pending=0, free=100, start=600, end=1200, metrics=metrics, scaling=scaling)
    assert _sizes(doc) == (1, 0)  # back to the minimum; the core node stays


def test_on_demand_groups_stop_at_maximum_on_demand_capacity_units():
    limits = {"MinimumCapacityUnits": 1, "MaximumCapacityUnits": 4, "MaximumOnDemandCapacityUnits": 2}
    on_demand = _cluster("ON_DEMAND")
    _run(on_demand, limits, pending=5, free=0, start=0, end=900)
    assert _sizes(on_demand) == (1, 1)  # 2 On-Demand units: the core node and one task node
    spot = _cluster("SPOT")
    _run(spot, limits, pending=5, free=0, start=0, end=900)
    assert _sizes(spot) == (1, 3)  # Spot task nodes count only against MaximumCapacityUnits
    # A limit lowered below what runs: On-Demand nodes go until the cluster is within it.
    over = _cluster("ON_DEMAND")
    over["groups"][2]["requested"] = 2
    _run(over, {**limits, "MaximumOnDemandCapacityUnits": 1}, pending=5, free=0, start=0, end=120)
    assert _sizes(over) == (1, 0)
