"""What a cluster's progress says about where its nodes are: the clouds of its instances once they
run, and the overlay network once it joins them.  The messages go to the cluster's
StateChangeReason (``runtime.progress``), which DescribeCluster, the AWS CLI's ``wait`` and
``resilin demo`` show, and to Resilin's log.

The overlay (resilin.overlay) reports its own: after join and the all-to-all probe it calls
``runtime.progress(overlay_message(gateways))`` with each cloud's gateway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from resilin.jobflows.documents import InstanceDoc

_ROLES = ("MASTER", "CORE", "TASK")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def instances_message(instances: Sequence[InstanceDoc]) -> str:
    """E.g. ``3 instances running: master in cloud-a, 2 core in cloud-b`` (the master's cloud first)."""
    by_cloud: dict[str, dict[str, int]] = {}
    ordered = sorted(instances, key=lambda i: _ROLES.index(i["role"]) if i["role"] in _ROLES else len(_ROLES))
    for instance in ordered:
        roles = by_cloud.setdefault(instance["cloud"], {})
        roles[instance["role"]] = roles.get(instance["role"], 0) + 1
    parts = []
    for cloud, roles in by_cloud.items():
        kinds = [
            "master" if role == "MASTER" and n == 1 else f"{n} {role.lower()}" for role, n in roles.items()
        ]
        parts.append(f"{' and '.join(kinds)} in {cloud}")
    return f"{_plural(len(instances), 'instance')} running: {', '.join(parts)}"


def overlay_message(gateways: Mapping[str, str]) -> str:
    """E.g. ``overlay network up: 2 clouds, gateways i-0a1 (cloud-a), i-0b2 (cloud-b)``.

    ``gateways``: each cloud's gateway as the overlay names it (instance id, with its public
    address if it likes), in the order to show."""
    listed = ", ".join(f"{gateway} ({cloud})" for cloud, gateway in gateways.items())
    return f"overlay network up: {_plural(len(gateways), 'cloud')}, gateways {listed}"
