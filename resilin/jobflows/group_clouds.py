"""Which clouds an instance group's instances go to.

A group is in one cloud: the one its request named (``m5.xlarge@cloud-b``), else the cluster's.
An instance fleet whose core or task InstanceTypeConfigs name several clouds is Resilin's way to
spread one group over them (EMR's fleets choose one Availability Zone; Resilin's choose no single
cloud): its instances are shared out evenly, a new one goes to the cloud holding fewest, and a
shrink takes from the cloud holding most.  HDFS sees each cloud as a rack, so a core fleet spread
over two clouds keeps a replica of every block in each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from resilin.jobflows.documents import InstanceDoc, InstanceGroupDoc


def clouds_of_group(group: InstanceGroupDoc, home: str) -> list[str]:
    """The clouds ``group`` runs in, in the order its request gave them (``home``: the cluster's)."""
    spread = group.get("spread")
    if spread:
        return list(dict.fromkeys(cloud or home for cloud in spread))
    return [group["cloud"] or home]


def clouds_of_groups(groups: Iterable[InstanceGroupDoc], home: str) -> set[str]:
    """Every cloud ``groups`` run in."""
    return {cloud for group in groups for cloud in clouds_of_group(group, home) if cloud}


def instance_type_in(group: InstanceGroupDoc, cloud: str, home: str) -> str:
    """The instance type ``group`` launches in ``cloud``."""
    for named, instance_type in (group.get("spread") or {}).items():
        if (named or home) == cloud:
            return instance_type
    return group["instance_type"]


def additions(group: InstanceGroupDoc, present: Mapping[str, int], count: int, home: str) -> dict[str, int]:
    """How many of ``count`` new instances go to each cloud: each to the one holding fewest
    (``present``: cloud → live instances of the group), ties broken by the request's order."""
    clouds = clouds_of_group(group, home)
    held = {cloud: present.get(cloud, 0) for cloud in clouds}
    added = dict.fromkeys(clouds, 0)
    for _ in range(count):
        cloud = min(clouds, key=lambda c: (held[c], clouds.index(c)))
        held[cloud] += 1
        added[cloud] += 1
    return {cloud: n for cloud, n in added.items() if n}


def shrink_order(instances: Iterable[InstanceDoc], named: Iterable[str] = ()) -> list[InstanceDoc]:
    """The order a group's instances are let go in: those a request named first, then one at a
    time from the cloud holding most, newest first (so a spread group stays even)."""
    wanted = set(named)
    left = sorted(instances, key=lambda i: -(i.get("timeline") or {}).get("created", 0))
    order = [i for i in left if i["ec2_id"] in wanted]
    left = [i for i in left if i["ec2_id"] not in wanted]
    while left:
        held: dict[str, int] = {}
        for instance in left:
            held[instance.get("cloud") or ""] = held.get(instance.get("cloud") or "", 0) + 1
        fullest = max(held.values())
        victim = next(i for i in left if held[i.get("cloud") or ""] == fullest)
        order.append(victim)
        left.remove(victim)
    return order
