"""Automatic scaling rules: alarms over whole periods, actions within the policy's constraints, and
EMR's metric names from YARN's and HDFS's own figures."""

from __future__ import annotations

import pytest

from resilin.applications.hadoop.yarn_metrics import emr_metrics
from resilin.errors import ValidationError
from resilin.jobflows import scaling_rules
from resilin.jobflows.scaling_rules import rule_of


def _raw(**alarm) -> dict:
    definition = {"ComparisonOperator": "GREATER_THAN_OR_EQUAL", "MetricName": "ContainerPending",
                  "Period": 60, "Threshold": 1.0} | alarm  # fmt: skip
    return {
        "Name": "grow",
        "Action": {"SimpleScalingPolicyConfiguration": {"ScalingAdjustment": 1, "CoolDown": 120}},
        "Trigger": {"CloudWatchAlarmDefinition": definition},
    }


def test_an_alarm_fires_only_when_every_whole_period_since_the_last_action_breaches():
    rule = rule_of(_raw(EvaluationPeriods=2))
    breaching = [(t, 3.0) for t in range(0, 200, 15)]
    assert rule.breached(breaching, since=0, now=120)
    assert not rule.breached(breaching, since=0, now=100)  # two whole periods have not passed
    assert not rule.breached(breaching, since=30, now=120)  # the first period began before `since`
    one_quiet = [(t, 0.0 if 10 <= t < 60 else 3.0) for t in range(0, 200, 5)]
    assert not rule.breached(one_quiet, since=0, now=120)  # the average of the first period: below
    assert not rule.breached(
        [(t, 3.0) for t in range(75, 200, 15)], since=0, now=120
    )  # a period without data
    maximum = rule_of(_raw(EvaluationPeriods=2, Statistic="MAXIMUM"))
    assert maximum.breached(one_quiet, since=0, now=120)


@pytest.mark.parametrize(
    ("kind", "adjustment", "current", "expected"),
    [
        ("CHANGE_IN_CAPACITY", 2, 1, 3),
        ("CHANGE_IN_CAPACITY", -5, 3, 1),  # not below MinCapacity
        ("CHANGE_IN_CAPACITY", 10, 3, 5),  # not above MaxCapacity
        ("PERCENT_CHANGE_IN_CAPACITY", 10, 3, 4),  # a percentage moves by one at least
        ("PERCENT_CHANGE_IN_CAPACITY", -50, 4, 2),
        ("EXACT_CAPACITY", 2, 5, 2),
    ],
)
def test_actions_stay_within_the_constraints(kind, adjustment, current, expected):
    raw = _raw()
    raw["Action"]["SimpleScalingPolicyConfiguration"] = {
        "AdjustmentType": kind,
        "ScalingAdjustment": adjustment,
    }
    assert rule_of(raw).new_capacity(current, 1, 5) == expected


@pytest.mark.parametrize(
    "alarm",
    [{"MetricName": "CPUUtilization"}, {"Namespace": "AWS/EC2"}, {"Period": 90}, {"Period": 0},
     {"EvaluationPeriods": 0}, {"ComparisonOperator": "EQUAL"},
     {"Dimensions": [{"Key": "InstanceId", "Value": "i-1"}]}],
)  # fmt: skip
def test_what_cannot_be_evaluated_is_refused(alarm):
    with pytest.raises(ValidationError, match="Scaling rule 'grow'"):
        rule_of(_raw(**alarm))


def test_the_cluster_id_placeholder_is_replaced_in_dimensions():
    raw = _raw(Dimensions=[{"Key": "JobFlowId", "Value": "${emr.clusterId}"}])
    [shown] = scaling_rules.dimension_values([raw], "j-ABC")
    assert shown["Trigger"]["CloudWatchAlarmDefinition"]["Dimensions"] == [
        {"Key": "JobFlowId", "Value": "j-ABC"}
    ]


def test_emr_metric_names_come_from_yarn_and_hdfs_figures():
    yarn = {"availableMB": 3072, "allocatedMB": 9216, "totalMB": 12288, "reservedMB": 0, "containersAllocated": 4,
            "containersPending": 6, "containersReserved": 0, "appsPending": 1, "appsRunning": 1, "appsSubmitted": 2,
            "appsCompleted": 0, "appsFailed": 0, "appsKilled": 0}  # fmt: skip
    metrics = emr_metrics(yarn, hdfs_used=25.0, hdfs_total=100.0)
    assert set(metrics) == scaling_rules.METRICS
    assert metrics["YARNMemoryAvailablePercentage"] == 25.0
    assert metrics["ContainerPendingRatio"] == 1.5 and metrics["HDFSUtilization"] == 25.0
    assert metrics["IsIdle"] == 0.0
    idle = emr_metrics({"totalMB": 0}, 0, 0)
    assert idle["IsIdle"] == 1.0 and idle["YARNMemoryAvailablePercentage"] == 0.0
