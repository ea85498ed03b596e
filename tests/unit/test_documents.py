"""The documents the operations build have exactly the fields resilin/jobflows/documents.py declares."""

from __future__ import annotations

from typing import Any

from resilin.jobflows import documents, states
from resilin.jobflows.instance_requests import fleet_group, new_group, stored_auto_scaling_policy
from resilin.jobflows.step_operations import new_step

POLICY = {
    "Constraints": {"MinCapacity": 1, "MaxCapacity": 4},
    "Rules": [
        {
            "Name": "grow",
            "Action": {"SimpleScalingPolicyConfiguration": {"ScalingAdjustment": 1}},
            "Trigger": {
                "CloudWatchAlarmDefinition": {
                    "ComparisonOperator": "GREATER_THAN",
                    "MetricName": "ContainerPendingRatio",
                    "Period": 300,
                    "Threshold": 0.5,
                }
            },
        }
    ],
}


def assert_shaped(doc: dict[str, Any], kind: type) -> None:
    """Every required field of ``kind`` is there, and nothing it does not declare."""
    keys = set(doc)
    assert kind.__required_keys__ <= keys, kind.__required_keys__ - keys
    assert keys <= kind.__required_keys__ | kind.__optional_keys__, keys - set(kind.__annotations__)


def test_instance_group():
    group = new_group(
        {"InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": 2, "AutoScalingPolicy": POLICY}
    )
    assert_shaped(group, documents.InstanceGroupDoc)
    assert group["state"] == states.InstanceGroupState.PROVISIONING
    assert_shaped(group["auto_scaling_policy"], documents.AutoScalingPolicyDoc)


def test_instance_fleet():
    fleet = fleet_group(
        {
            "InstanceFleetType": "CORE",
            "TargetOnDemandCapacity": 4,
            "InstanceTypeConfigs": [{"InstanceType": "m5.xlarge", "WeightedCapacity": 2}],
        },
        lambda _: None,
    )
    assert_shaped(fleet, documents.InstanceGroupDoc)
    assert_shaped(fleet["fleet"], documents.FleetDoc)
    assert fleet["requested"] == 2


def test_step():
    step = new_step(
        "j-1",
        {"Name": "wc", "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["true"]}},
    )
    assert_shaped(step, documents.StepDoc)
    assert step["state"] == states.StepState.PENDING
    assert step["action_on_failure"] == states.ActionOnFailure.TERMINATE_CLUSTER


def test_auto_scaling_policy_starts_pending():
    policy = stored_auto_scaling_policy(POLICY)
    assert_shaped(policy, documents.AutoScalingPolicyDoc)
    assert policy["state"] == states.AutoScalingPolicyState.PENDING
