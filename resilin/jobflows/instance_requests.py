"""A RunJobFlow's ``Instances`` (or an AddInstanceGroups request) turned into Resilin's instance groups.

EMR lets a request describe instances three ways: a master and a slave type with a count,
instance groups, or instance fleets.  All three become the same internal groups, which the
cluster worker provisions; a fleet is kept as a group carrying its fleet specification, with
the instance type chosen from the fleet's candidates and the count that meets its capacity
(a core or task fleet whose candidates name several clouds is spread over them: one type per
cloud, resilin.jobflows.group_clouds).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from resilin.errors import ValidationError
from resilin.jobflows import ids, scaling_rules, states
from resilin.jobflows.documents import AutoScalingPolicyDoc, InstanceGroupDoc

INSTANCE_GROUP = "INSTANCE_GROUP"
INSTANCE_FLEET = "INSTANCE_FLEET"
MAX_TASK_GROUPS = 48
MAX_FLEET_INSTANCE_TYPES = 30
MAX_INSTANCES = 1000  # per group; far beyond what one cloud account launches at once

# Whether a cloud offers an instance type; None when the catalogue does not know (then any is tried).
TypeOffered = Callable[[str], bool | None]


def _any_type(_: str) -> bool | None:
    return None


def asks_custom_ami(group: InstanceGroupDoc) -> bool:
    """Whether a group (or any instance type of a fleet) names a CustomAmiId."""
    fleet = group.get("fleet")
    specifications = fleet["specifications"] if fleet else []
    return bool(group.get("custom_ami_id")) or any(s.get("CustomAmiId") for s in specifications)


def describe_groups(instances: dict, offered: TypeOffered = _any_type) -> tuple[list[InstanceGroupDoc], str]:
    """The cluster's instance groups and its InstanceCollectionType."""
    fleets = instances.get("InstanceFleets")
    groups_given = instances.get("InstanceGroups")
    types_given = instances.get("MasterInstanceType") or instances.get("SlaveInstanceType")
    if sum(1 for way in (fleets, groups_given, types_given) if way) > 1:
        raise ValidationError(
            "Please specify only one of instance fleets, instance groups, or master/slave instance types."
        )
    if fleets:
        groups = [fleet_group(f, offered) for f in fleets]
        collection = INSTANCE_FLEET
    elif groups_given:
        groups = [new_group(g) for g in groups_given]
        collection = INSTANCE_GROUP
    else:
        groups = _groups_from_types(instances)
        collection = INSTANCE_GROUP
    _check_roles(groups, collection)
    return groups, collection


def _groups_from_types(instances: dict) -> list[InstanceGroupDoc]:
    master_type = instances.get("MasterInstanceType")
    if not master_type:
        raise ValidationError(
            "A master instance type (or instance groups, or instance fleets) must be specified."
        )
    count = instances.get("InstanceCount", 1)
    if count < 1:
        raise ValidationError("InstanceCount must be at least 1.")
    if count - 1 > MAX_INSTANCES:
        raise ValidationError(f"InstanceCount must be at most {MAX_INSTANCES + 1}.")
    groups = [new_group({"InstanceRole": "MASTER", "InstanceType": master_type, "InstanceCount": 1})]
    if count > 1:
        slave_type = instances.get("SlaveInstanceType") or master_type
        groups.append(
            new_group({"InstanceRole": "CORE", "InstanceType": slave_type, "InstanceCount": count - 1})
        )
    return groups


def _check_roles(groups: list[InstanceGroupDoc], collection: str) -> None:
    kind = "fleet" if collection == INSTANCE_FLEET else "group"
    masters = [g for g in groups if g["role"] == "MASTER"]
    if len(masters) != 1:
        raise ValidationError(f"A cluster must have exactly one master instance {kind}.")
    if masters[0]["requested"] != 1:
        raise ValidationError(
            f"The master instance {kind} must have exactly one instance: Resilin runs a single master node."
        )
    if sum(1 for g in groups if g["role"] == "CORE") > 1:
        raise ValidationError(f"A cluster can have at most one core instance {kind}.")
    tasks = sum(1 for g in groups if g["role"] == "TASK")
    limit = 1 if collection == INSTANCE_FLEET else MAX_TASK_GROUPS
    if tasks > limit:
        raise ValidationError(f"A cluster can have at most {limit} task instance {kind}(s).")


def new_group(config: dict) -> InstanceGroupDoc:
    """An instance group from an InstanceGroupConfig (RunJobFlow or AddInstanceGroups)."""
    role = config["InstanceRole"]
    count = config["InstanceCount"]
    if count < 0:
        raise ValidationError(f"Instance count for {role} instance group must be at least 0.")
    if count > MAX_INSTANCES:
        raise ValidationError(f"Instance count for {role} instance group must be at most {MAX_INSTANCES}.")
    market = config.get("Market") or "ON_DEMAND"
    if config.get("BidPrice") and market != "SPOT":
        raise ValidationError("A bid price may only be given for SPOT instance groups.")
    itype, _, cloud = config["InstanceType"].partition("@")
    policy = config.get("AutoScalingPolicy")
    ebs = config.get("EbsConfiguration") or {}
    return {
        "id": ids.instance_group_id(),
        "name": config.get("Name") or f"{role.title()} Instance Group",
        "role": role,
        "instance_type": itype,
        "cloud": cloud or None,
        "requested": count,
        "running": 0,
        "market": market,
        "bid_price": config.get("BidPrice"),
        "configurations": config.get("Configurations", []),
        "ebs_block_devices": _ebs_devices(ebs),
        "ebs_optimized": ebs.get("EbsOptimized"),
        "custom_ami_id": config.get("CustomAmiId"),
        "auto_scaling_policy": policy and stored_auto_scaling_policy(policy),
        "state": states.GROUP_PROVISIONING,
        "timeline": {"created": time.time()},
    }


def _ebs_devices(ebs: dict) -> list[dict[str, Any]]:
    devices = []
    for spec in ebs.get("EbsBlockDeviceConfigs", []):
        for n in range(spec.get("VolumesPerInstance", 1)):
            devices.append(
                {"VolumeSpecification": spec["VolumeSpecification"], "Device": f"/dev/sd{chr(98 + n)}"}
            )
    return devices


def stored_auto_scaling_policy(policy: dict) -> AutoScalingPolicyDoc:
    constraints = policy["Constraints"]
    if constraints["MinCapacity"] > constraints["MaxCapacity"]:
        raise ValidationError("The auto-scaling policy's MinCapacity must not exceed its MaxCapacity.")
    if constraints["MinCapacity"] < 0:
        raise ValidationError("The auto-scaling policy's MinCapacity must be at least 0.")
    names = [rule["Name"] for rule in policy["Rules"]]
    if not names:
        raise ValidationError("An auto-scaling policy needs at least one rule.")
    if len(set(names)) != len(names):
        raise ValidationError("The auto-scaling policy's rule names must be unique.")
    scaling_rules.check_rules(policy["Rules"])
    # Stored as given; PENDING until the running cluster attaches it (resilin.cluster.autoscaling).
    return {
        "Constraints": constraints,
        "Rules": policy["Rules"],
        "state": states.AutoScalingPolicyState.PENDING,
    }


def fleet_group(config: dict, offered: TypeOffered) -> InstanceGroupDoc:
    """The group provisioning one instance fleet."""
    role = config["InstanceFleetType"]
    on_demand = config.get("TargetOnDemandCapacity", 0)
    spot = config.get("TargetSpotCapacity", 0)
    target = on_demand + spot
    candidates = config.get("InstanceTypeConfigs", [])
    if not candidates:
        raise ValidationError(f"The {role} instance fleet must list at least one instance type.")
    if len(candidates) > MAX_FLEET_INSTANCE_TYPES:
        raise ValidationError(
            f"An instance fleet can list at most {MAX_FLEET_INSTANCE_TYPES} instance types."
        )
    if role == "MASTER" and target != 1:
        raise ValidationError(
            "The master instance fleet must have a target capacity of exactly 1 (on-demand or spot)."
        )
    if role == "MASTER" and any(c.get("WeightedCapacity", 1) != 1 for c in candidates):
        raise ValidationError(
            "Instance types in the master instance fleet must have a weighted capacity of 1."
        )
    spread = _spread_choice(role, candidates, offered)
    # The first candidate the cloud offers, else the first listed (the worker reports what fails).
    chosen = next((c for c in candidates if offered(c["InstanceType"]) is not False), candidates[0])
    if spread:
        chosen = spread[0]
    weight = chosen.get("WeightedCapacity", 1)
    if weight < 1:
        raise ValidationError("WeightedCapacity must be at least 1.")
    count = math.ceil(target / weight)
    if count > MAX_INSTANCES:
        raise ValidationError(f"The {role} instance fleet would need more than {MAX_INSTANCES} instances.")
    itype, _, cloud = chosen["InstanceType"].partition("@")
    specifications = [
        {
            k: v
            for k, v in {
                "InstanceType": c["InstanceType"],
                "WeightedCapacity": c.get("WeightedCapacity", 1),
                "BidPrice": c.get("BidPrice"),
                "BidPriceAsPercentageOfOnDemandPrice": c.get("BidPriceAsPercentageOfOnDemandPrice"),
                "Configurations": c.get("Configurations"),
                "CustomAmiId": c.get("CustomAmiId"),
                "Priority": c.get("Priority"),
            }.items()
            if v is not None
        }
        for c in candidates
    ]
    group: InstanceGroupDoc = {
        "id": ids.instance_fleet_id(),
        "name": config.get("Name") or f"{role.title()} Instance Fleet",
        "role": role,
        "instance_type": itype,
        "cloud": cloud or None,
        "requested": count,
        "running": 0,
        "market": "ON_DEMAND",
        "configurations": chosen.get("Configurations", []),
        "state": states.GROUP_PROVISIONING,
        "timeline": {"created": time.time()},
        "fleet": {
            "TargetOnDemandCapacity": on_demand,
            "TargetSpotCapacity": spot,
            "weight": weight,
            "specifications": specifications,
            "LaunchSpecifications": config.get("LaunchSpecifications"),
            "ResizeSpecifications": config.get("ResizeSpecifications"),
            "Context": config.get("Context"),
        },
    }
    if spread:
        group["spread"] = {_cloud_of(c): c["InstanceType"].partition("@")[0] for c in spread}
    return group


def _cloud_of(candidate: dict) -> str:
    return candidate["InstanceType"].partition("@")[2]


def _spread_choice(role: str, candidates: list[dict], offered: TypeOffered) -> list[dict]:
    """For a core or task fleet whose candidates name several clouds: one candidate per cloud (the
    first that cloud offers, else its first), in the order the clouds are first named; else []."""
    clouds = list(dict.fromkeys(_cloud_of(c) for c in candidates))
    if role == "MASTER" or len(clouds) < 2:
        return []
    chosen = []
    for cloud in clouds:
        here = [c for c in candidates if _cloud_of(c) == cloud]
        chosen.append(next((c for c in here if offered(c["InstanceType"]) is not False), here[0]))
    # One capacity unit and one configuration for the fleet, whichever cloud an instance is in.
    if len({c.get("WeightedCapacity", 1) for c in chosen}) > 1:
        raise ValidationError(
            f"The {role} instance fleet is spread over clouds ({', '.join(c or 'default' for c in clouds)}): "
            "the instance types chosen in each must have the same WeightedCapacity."
        )
    if len({repr(c.get("Configurations") or []) for c in chosen}) > 1:
        raise ValidationError(
            f"The {role} instance fleet is spread over clouds: the instance types chosen in each "
            "must have the same Configurations."
        )
    return chosen
