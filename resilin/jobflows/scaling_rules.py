"""Automatic scaling policies' rules: which CloudWatch alarms Resilin can evaluate, checked when a
policy is put, and how a rule's alarm and action are worked out from metric samples.

EMR evaluates each rule's CloudWatch alarm on the cluster's metrics (namespace
``AWS/ElasticMapReduce``) and, when it fires, changes the group's size by the rule's action within
the policy's constraints, then waits its cool-down.  Resilin samples the same metrics itself
(YARN's and HDFS's own figures, :mod:`resilin.applications.hadoop.yarn_metrics`); a rule naming a
metric or statistic Resilin does not compute is refused when the policy is put, never ignored.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from resilin.errors import ValidationError

NAMESPACE = "AWS/ElasticMapReduce"
METRICS = frozenset({
    "YARNMemoryAvailablePercentage", "ContainerPendingRatio", "ContainerPending", "ContainerAllocated",
    "ContainerReserved", "AppsPending", "AppsRunning", "AppsSubmitted", "AppsCompleted", "AppsFailed",
    "AppsKilled", "MemoryAvailableMB", "MemoryAllocatedMB", "MemoryTotalMB", "MemoryReservedMB",
    "HDFSUtilization", "IsIdle",
})  # fmt: skip
COMPARISONS = {
    "GREATER_THAN_OR_EQUAL": lambda v, t: v >= t,
    "GREATER_THAN": lambda v, t: v > t,
    "LESS_THAN": lambda v, t: v < t,
    "LESS_THAN_OR_EQUAL": lambda v, t: v <= t,
}
STATISTICS: dict[str, Callable[[list[float]], float]] = {
    "AVERAGE": statistics.fmean,
    "MAXIMUM": max,
    "MINIMUM": min,
    "SUM": math.fsum,
    "SAMPLE_COUNT": lambda values: float(len(values)),
}
ADJUSTMENTS = ("CHANGE_IN_CAPACITY", "PERCENT_CHANGE_IN_CAPACITY", "EXACT_CAPACITY")
MIN_PERIOD = 60  # seconds: CloudWatch's shortest period for these metrics


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    comparison: str
    threshold: float
    period: int  # seconds
    periods: int  # EvaluationPeriods: consecutive breaching periods that fire the alarm
    statistic: str
    adjustment_type: str
    adjustment: int
    cooldown: int  # seconds

    def breached(self, samples: Sequence[tuple[float, float]], since: float, now: float) -> bool:
        """Whether the last ``periods`` whole periods before ``now``, all after ``since`` (the policy's
        attachment or its last action), each breach the threshold.  A period without samples does not
        (CloudWatch's INSUFFICIENT_DATA)."""
        if now - since < self.period * self.periods:
            return False
        compare = COMPARISONS[self.comparison]
        for k in range(self.periods):
            end = now - k * self.period
            values = [v for t, v in samples if end - self.period < t <= end]
            if not values or not compare(STATISTICS[self.statistic](values), self.threshold):
                return False
        return True

    def new_capacity(self, current: int, low: int, high: int) -> int:
        if self.adjustment_type == "EXACT_CAPACITY":
            wanted = self.adjustment
        elif self.adjustment_type == "PERCENT_CHANGE_IN_CAPACITY":
            change = current * self.adjustment / 100
            # At least one instance either way, as EC2 Auto Scaling rounds a percentage change.
            wanted = current + (math.ceil(change) if change > 0 else math.floor(change))
        else:
            wanted = current + self.adjustment
        return max(low, min(high, wanted))


def rule_of(raw: dict) -> Rule:
    """A ScalingRule of the API, checked; ValidationError for what Resilin cannot evaluate."""
    name = raw.get("Name", "")
    alarm = (raw.get("Trigger") or {}).get("CloudWatchAlarmDefinition") or {}
    action = (raw.get("Action") or {}).get("SimpleScalingPolicyConfiguration") or {}

    def refuse(what: str) -> ValidationError:
        return ValidationError(f"Scaling rule '{name}': {what}")

    if alarm.get("Namespace", NAMESPACE) != NAMESPACE:
        raise refuse(f"only metrics of the {NAMESPACE} namespace can be evaluated, not {alarm['Namespace']}.")
    metric = alarm.get("MetricName", "")
    if metric not in METRICS:
        raise refuse(f"metric {metric!r} is not one Resilin computes ({', '.join(sorted(METRICS))}).")
    if alarm.get("ComparisonOperator") not in COMPARISONS:
        raise refuse(f"unknown ComparisonOperator {alarm.get('ComparisonOperator')!r}.")
    statistic = alarm.get("Statistic", "AVERAGE")
    if statistic not in STATISTICS:
        raise refuse(f"unknown Statistic {statistic!r}.")
    period = int(alarm.get("Period", 0))
    if period < MIN_PERIOD or period % MIN_PERIOD:
        raise refuse(f"Period must be a multiple of {MIN_PERIOD} seconds, not {period}.")
    periods = int(alarm.get("EvaluationPeriods", 1))
    if periods < 1:
        raise refuse("EvaluationPeriods must be at least 1.")
    for dimension in alarm.get("Dimensions") or []:
        if dimension.get("Key") != "JobFlowId":
            raise refuse(f"only the JobFlowId dimension can be evaluated, not {dimension.get('Key')!r}.")
    adjustment_type = action.get("AdjustmentType", "CHANGE_IN_CAPACITY")
    if adjustment_type not in ADJUSTMENTS:
        raise refuse(f"unknown AdjustmentType {adjustment_type!r}.")
    if "ScalingAdjustment" not in action:
        raise refuse("the action needs a ScalingAdjustment.")
    cooldown = int(action.get("CoolDown", 0))
    if cooldown < 0:
        raise refuse("CoolDown must not be negative.")
    return Rule(name, metric, alarm["ComparisonOperator"], float(alarm["Threshold"]), period, periods,
                statistic, adjustment_type, int(action["ScalingAdjustment"]), cooldown)  # fmt: skip


def check_rules(rules: list[dict]) -> None:
    for raw in rules:
        rule_of(raw)


def dimension_values(rules: list[dict], cluster_id: str) -> list[dict]:
    """The rules as DescribeCluster shows them once attached: ``${emr.clusterId}`` in a dimension's
    value replaced by the cluster's id, as EMR does."""
    shown = []
    for raw in rules:
        alarm = (raw.get("Trigger") or {}).get("CloudWatchAlarmDefinition") or {}
        dimensions = [
            {**d, "Value": str(d.get("Value", "")).replace("${emr.clusterId}", cluster_id)}
            for d in alarm.get("Dimensions") or []
        ]
        if dimensions:
            trigger = {**raw["Trigger"], "CloudWatchAlarmDefinition": {**alarm, "Dimensions": dimensions}}
            raw = {**raw, "Trigger": trigger}
        shown.append(raw)
    return shown
