"""RelocateCluster's checks, and the ``relocation`` it records when they pass.

Everything here is decided from the cluster's document, its instances and the configured clouds'
offers, before anything is written: a refused request changes nothing.  What only the clouds can
tell (room and quota in the destination) is checked by the relocation pipeline before anything
stops.  Every refusal is EMR's InvalidRequestException.
"""

from __future__ import annotations

from collections.abc import Sequence

from resilin.errors import InvalidRequest, ValidationError
from resilin.jobflows import placement_checks, releases, states
from resilin.jobflows.documents import ClusterDoc, InstanceDoc, InstanceGroupDoc, RelocationDoc
from resilin.jobflows.group_clouds import clouds_of_group
from resilin.jobflows.instance_requests import INSTANCE_FLEET
from resilin.jobflows.releases import CloudOffer
from resilin.jobflows.relocations import RelocationPhase, phase_words

RELOCATABLE_STATES = (states.RUNNING, states.WAITING)
TYPES_HINT = "ListSupportedInstanceTypes lists the instance types of each cloud"


def check_relocatable(cluster: ClusterDoc) -> None:
    """A cluster in a state that can be relocated, using groups, and not being relocated already."""
    cid = cluster["id"]
    if cluster.get("instance_collection_type") == INSTANCE_FLEET:
        raise InvalidRequest(
            f"RelocateCluster supports instance groups only; cluster {cid} uses instance fleets."
        )
    if cluster["state"] not in RELOCATABLE_STATES or cluster.get("terminate_requested"):
        state = cluster["state"]
        if state in RELOCATABLE_STATES:  # its termination is asked for: it is on its way out
            state = states.TERMINATING
        raise InvalidRequest(f"Cluster {cid} is {state}: only a WAITING or RUNNING cluster can be relocated.")
    relocation = cluster.get("relocation")
    if relocation:
        raise InvalidRequest(
            f"Cluster {cid} is already being relocated to {relocation['destination']} "
            f"({phase_words(relocation['phase'])}); DescribeClusterRelocation follows it."
        )


def _check_cloud(offers: Sequence[CloudOffer], target: str) -> None:
    names = [offer.cloud for offer in offers]
    if target not in names:
        configured = ", ".join(names) if names else "none"
        raise InvalidRequest(
            f"TargetCloud '{target}' is not a configured cloud; the configured clouds are: {configured}."
        )


def moving_groups(
    cluster: ClusterDoc, named: Sequence[dict] | None
) -> list[tuple[InstanceGroupDoc, str | None]]:
    """The groups that move, each with the instance type the request gives it (None: keep its own).

    Without ``named``, every group with instances (a full move)."""
    groups = {g["id"]: g for g in cluster["groups"]}
    if named is None:
        return [
            (g, None) for g in cluster["groups"] if g["state"] != states.GROUP_TERMINATED and g["requested"]
        ]
    if not named:
        raise InvalidRequest("InstanceGroups, when given, must name at least one instance group.")
    chosen: list[tuple[InstanceGroupDoc, str | None]] = []
    seen: set[str] = set()
    for config in named:
        gid = config["InstanceGroupId"]
        group = groups.get(gid)
        if group is None:
            raise InvalidRequest(f"Instance group id '{gid}' is not valid.")
        if gid in seen:
            raise InvalidRequest(f"Instance group '{gid}' is named more than once.")
        seen.add(gid)
        if group["state"] == states.GROUP_TERMINATED:
            raise InvalidRequest(f"Instance group '{gid}' is terminated: it has nothing to relocate.")
        if not group["requested"]:
            raise InvalidRequest(f"Instance group '{gid}' has no instances: it has nothing to relocate.")
        chosen.append((group, config.get("InstanceType") or None))
    return chosen


def _destination_type(
    group: InstanceGroupDoc, asked: str | None, target: str, offers: Sequence[CloudOffer]
) -> str:
    """The group's instance type in ``target``: the one asked for (``type`` or ``type@target``), else its own."""
    instance_type = group["instance_type"]
    if asked:
        instance_type, _, cloud = asked.partition("@")
        if cloud and cloud != target:
            raise InvalidRequest(
                f"InstanceType '{asked}' of instance group '{group['id']}' names cloud {cloud}, not the TargetCloud {target}."
            )
    # None: the cloud's catalogue is not known ahead, so any type is tried (as RunJobFlow does).
    if releases.is_offered(offers, f"{instance_type}@{target}") is False:
        raise InvalidRequest(
            f"Cloud {target} does not offer instance type {instance_type} (instance group '{group['id']}'); "
            f"{TYPES_HINT}."
        )
    return instance_type


def _clouds(groups: Sequence[InstanceGroupDoc], live: Sequence[InstanceDoc], home: str | None) -> set[str]:
    """Where ``groups`` are: where they were placed and where their instances run."""
    ids = {g["id"] for g in groups}
    placed = {cloud for g in groups for cloud in clouds_of_group(g, home or "") if cloud}
    return placed | {i["cloud"] for i in live if i["group_id"] in ids and i.get("cloud")}


def plan(
    cluster: ClusterDoc,
    instances: Sequence[InstanceDoc],
    offers: Sequence[CloudOffer],
    target: str,
    named: Sequence[dict] | None,
    now: float,
) -> RelocationDoc:
    """The ``relocation`` to record for the request, or InvalidRequest saying why it cannot be."""
    check_relocatable(cluster)
    _check_cloud(offers, target)
    moving = moving_groups(cluster, named)
    live = [i for i in instances if i["state"] != states.INSTANCE_TERMINATED]
    home = placement_checks.home_cloud(offers, cluster["groups"], live)
    source = _clouds([g for g, _ in moving], live, home)
    if source <= {target}:
        what = "The instance groups named are" if named is not None else f"Cluster {cluster['id']} is"
        raise InvalidRequest(f"{what} already in cloud {target}.")
    groups = {group["id"]: _destination_type(group, asked, target, offers) for group, asked in moving}
    staying = [
        g for g in cluster["groups"] if g["id"] not in groups and g["state"] != states.GROUP_TERMINATED
    ]
    try:
        # The clouds the cluster spans afterwards must be joinable, as RunJobFlow's groups must be.
        placement_checks.check_ranges(offers, _clouds(staying, live, home) | {target})
        if any(g["role"] == "MASTER" for g, _ in moving):  # the cluster's home becomes the target
            placement_checks.check_storage(offers, target, cluster["account"])
    except ValidationError as exc:
        raise InvalidRequest(exc.message) from None
    ordered = sorted(source, key=lambda cloud: (cloud != home, cloud))
    return {
        "destination": target,
        "groups": groups,
        "phase": RelocationPhase.PENDING.value,
        "requested": now,
        "progress": {},
        "source": ", ".join(ordered),
    }
