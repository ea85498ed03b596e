"""Instance fleets spread over clouds: which cloud each instance goes to, grows in and leaves from."""

from __future__ import annotations

import pytest

from resilin.errors import ValidationError
from resilin.jobflows.group_clouds import additions, clouds_of_group, instance_type_in, shrink_order
from resilin.jobflows.instance_requests import fleet_group, new_group


def _offered(instance_type: str) -> bool | None:
    return not instance_type.startswith("x9")  # x9.* is offered nowhere


def _fleet(types: list[str], target: int = 4, role: str = "CORE", **extra) -> dict:
    return fleet_group(
        {
            "InstanceFleetType": role,
            "TargetOnDemandCapacity": target,
            "InstanceTypeConfigs": [{"InstanceType": t, **extra} for t in types],
        },
        _offered,
    )


def test_a_fleet_naming_several_clouds_is_spread_over_them_in_the_order_given():
    fleet = _fleet(["x9.huge@b", "m5.large@b", "m5.xlarge@a", "c5.large@b"], target=5)
    assert fleet["spread"] == {"b": "m5.large", "a": "m5.xlarge"}  # the first offered type of each
    assert fleet["requested"] == 5
    assert clouds_of_group(fleet, "home") == ["b", "a"]
    assert instance_type_in(fleet, "a", "home") == "m5.xlarge"
    assert additions(fleet, {}, 5, "home") == {"b": 3, "a": 2}


def test_unnamed_candidates_are_the_home_clouds():
    fleet = _fleet(["m5.large", "m5.large@b"])
    assert clouds_of_group(fleet, "a") == ["a", "b"]
    assert instance_type_in(fleet, "a", "a") == "m5.large"
    # Home named twice (explicitly and by default) is one cloud.
    assert clouds_of_group(_fleet(["m5.large", "m5.large@a", "m5.large@b"]), "a") == ["a", "b"]


def test_a_fleet_in_one_cloud_and_a_master_fleet_are_not_spread():
    assert "spread" not in _fleet(["m5.large@b", "m5.xlarge@b"])
    master = _fleet(["m5.large@a", "m5.large@b"], target=1, role="MASTER")
    assert "spread" not in master and master["cloud"] == "a"
    group = new_group({"InstanceRole": "CORE", "InstanceType": "m5.large@b", "InstanceCount": 3})
    assert clouds_of_group(group, "a") == ["b"]
    assert additions(group, {"b": 3}, 2, "a") == {"b": 2}


def test_a_spread_fleet_refuses_weights_or_configurations_that_differ_by_cloud():
    with pytest.raises(ValidationError, match="WeightedCapacity"):
        fleet_group(
            {
                "InstanceFleetType": "TASK",
                "TargetOnDemandCapacity": 4,
                "InstanceTypeConfigs": [
                    {"InstanceType": "m5.large@a", "WeightedCapacity": 1},
                    {"InstanceType": "m5.xlarge@b", "WeightedCapacity": 2},
                ],
            },
            _offered,
        )
    with pytest.raises(ValidationError, match="Configurations"):
        fleet_group(
            {
                "InstanceFleetType": "CORE",
                "TargetOnDemandCapacity": 2,
                "InstanceTypeConfigs": [
                    {"InstanceType": "m5.large@a", "Configurations": [{"Classification": "yarn-site"}]},
                    {"InstanceType": "m5.large@b"},
                ],
            },
            _offered,
        )


def test_growth_goes_to_the_emptiest_cloud():
    fleet = _fleet(["m5.large@a", "m5.large@b", "m5.large@c"])
    assert additions(fleet, {"a": 2, "b": 0, "c": 1}, 1, "a") == {"b": 1}
    assert additions(fleet, {"a": 2, "b": 0, "c": 1}, 4, "a") == {"a": 1, "b": 2, "c": 1}
    # A replacement for a failed node goes back to the cloud that lost it.
    assert additions(fleet, {"a": 1, "b": 2, "c": 2}, 1, "a") == {"a": 1}


def _instance(ec2_id: str, cloud: str, created: float) -> dict:
    return {"ec2_id": ec2_id, "cloud": cloud, "timeline": {"created": created}}


def test_shrinking_takes_named_instances_first_then_the_newest_of_the_fullest_cloud():
    live = [
        _instance("i-a1", "a", 1),
        _instance("i-a2", "a", 5),
        _instance("i-a3", "a", 6),
        _instance("i-b1", "b", 2),
        _instance("i-b2", "b", 9),
    ]
    order = [i["ec2_id"] for i in shrink_order(live)]
    assert order == ["i-a3", "i-b2", "i-a2", "i-b1", "i-a1"]
    assert [i["ec2_id"] for i in shrink_order(live, ["i-b1"])][:2] == ["i-b1", "i-a3"]
