"""Automatic scaling over time, on a clock of the test's own: a rule whose alarm keeps firing acts
once, then waits out its cool-down, so the group does not flap."""

from __future__ import annotations

from resilin.cluster.autoscaling import AutomaticScaling
from resilin.cluster.cluster_metrics import MetricsHistory
from resilin.jobflows import states


def _rule(name: str, metric: str, comparison: str, threshold: float, adjustment: int, cooldown: int) -> dict:
    return {
        "Name": name,
        "Action": {"SimpleScalingPolicyConfiguration": {"ScalingAdjustment": adjustment, "CoolDown": cooldown}},
        "Trigger": {"CloudWatchAlarmDefinition": {
            "ComparisonOperator": comparison, "EvaluationPeriods": 1, "MetricName": metric,
            "Period": 60, "Statistic": "AVERAGE", "Threshold": threshold}},
    }  # fmt: skip


class _Store:
    def __init__(self, doc: dict) -> None:
        self.doc = doc

    def update_cluster(self, cid: str, change) -> None:
        change(self.doc)


class _Runtime:
    """What the operation uses of a running cluster: its document, kept in memory."""

    cid = "j-COOLDOWN"

    def __init__(self, doc: dict) -> None:
        self.store = _Store(doc)

    @property
    def cluster(self) -> dict:
        return self.store.doc


class _Metrics(MetricsHistory):
    """Samples of a load the test sets, instead of the master's daemons."""

    def __init__(self) -> None:
        super().__init__(sample_seconds=15)
        self.pending = 0.0

    def refresh(self, runtime, now: float) -> None:
        if now - self.last >= self.sample_seconds:
            self.samples.append((now, {"ContainerPending": self.pending, "AppsRunning": 1.0}))
            self.last = now


def test_a_firing_rule_acts_once_per_cool_down_and_the_group_does_not_flap():
    policy = {
        "Constraints": {"MinCapacity": 0, "MaxCapacity": 5},
        "Rules": [_rule("grow", "ContainerPending", "GREATER_THAN_OR_EQUAL", 1, 1, cooldown=300)],
        "state": states.AutoScalingPolicyState.PENDING,
    }
    doc = {
        "id": "j-COOLDOWN",
        "state": states.WAITING,
        "groups": [
            {"id": "ig-M", "role": "MASTER", "state": "RUNNING", "requested": 1},
            {"id": "ig-T", "role": "TASK", "state": "RUNNING", "requested": 0, "auto_scaling_policy": policy},
        ],
    }
    runtime, metrics = _Runtime(doc), _Metrics()
    metrics.pending = 8.0  # containers pend the whole time
    scaling = AutomaticScaling(metrics, clock=lambda: now)
    sizes = []
    for now in range(0, 900, 15):
        scaling.run(runtime)  # type: ignore[arg-type]
        sizes.append((now, doc["groups"][1]["requested"]))
    assert doc["groups"][1]["auto_scaling_policy"]["state"] == states.AutoScalingPolicyState.ATTACHED
    changes = [(t, n) for (t, n), (_, before) in zip(sizes[1:], sizes, strict=False) if n != before]
    # One step after the first whole period; then, the alarm still firing, one per cool-down
    # (300 s), not one per 60-second period as the alarm alone would give.
    assert [n for _, n in changes] == [1, 2, 3]
    assert changes[0][0] >= 60
    gaps = [b - a for (a, _), (b, _) in zip(changes, changes[1:], strict=False)]
    assert all(300 <= gap < 360 for gap in gaps), gaps

    # The load gone, a shrink rule is held back by the grow rule's cool-down as well.
    policy["Rules"].append(_rule("shrink", "ContainerPending", "LESS_THAN_OR_EQUAL", 0, -1, cooldown=0))
    metrics.pending = 0.0
    last_grow = changes[-1][0]
    shrunk_at = None
    for now in range(900, 1500, 15):
        scaling.run(runtime)  # type: ignore[arg-type]
        if shrunk_at is None and doc["groups"][1]["requested"] < 3:
            shrunk_at = now
    assert shrunk_at is not None and shrunk_at >= last_grow + 300
