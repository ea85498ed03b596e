"""The clouds a cluster's groups are placed in, and RunJobFlow's and AddInstanceGroups' refusal of
a cluster whose clouds' private ranges overlap (the overlay network routes them without NAT), or
whose cloud's external S3 service has no keys for the cluster's account.

Only the ranges the settings give are known here (a local cloud's subnet, an ec2 cloud's
``private_range``); a cloud whose range only the cloud itself can tell is checked again when
the cluster is placed (resilin.clouds.private_ranges).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from resilin.errors import ValidationError
from resilin.jobflows.documents import InstanceDoc, InstanceGroupDoc
from resilin.jobflows.group_clouds import clouds_of_groups
from resilin.jobflows.releases import CloudOffer
from resilin.overlay.ranges import overlapping_ranges_refusal


def default_cloud(offers: Sequence[CloudOffer]) -> str | None:
    return next((o.cloud for o in offers if o.default), None)


def home_cloud(
    offers: Sequence[CloudOffer], groups: Sequence[InstanceGroupDoc], instances: Sequence[InstanceDoc] = ()
) -> str | None:
    """The cluster's own cloud (its master's): where its groups placed without ``@cloud`` go."""
    master = next((i for i in instances if i["role"] == "MASTER"), None)
    if master is not None:
        return master["cloud"]
    master_group = next((g for g in groups if g["role"] == "MASTER"), None)
    return (master_group["cloud"] if master_group else None) or default_cloud(offers)


def clouds_of(groups: Iterable[InstanceGroupDoc], home: str | None) -> set[str]:
    return clouds_of_groups(groups, home or "")


def cluster_clouds(
    offers: Sequence[CloudOffer], groups: Sequence[InstanceGroupDoc], instances: Sequence[InstanceDoc]
) -> list[str]:
    """Every cloud the cluster's groups are placed in or its instances ran in, the master's first."""
    home = home_cloud(offers, groups, instances)
    found = clouds_of(groups, home) | {i["cloud"] for i in instances if i.get("cloud")}
    return sorted(found, key=lambda cloud: (cloud != home, cloud))


def check_ranges(offers: Sequence[CloudOffer], clouds: Iterable[str]) -> None:
    """ValidationError when the known private ranges of ``clouds`` overlap."""
    wanted = set(clouds)
    if len(wanted) < 2:
        return
    ranges = {o.cloud: o.private_range for o in offers if o.cloud in wanted and o.private_range}
    refusal = overlapping_ranges_refusal(ranges)
    if refusal is not None:
        raise ValidationError(refusal)


def check_storage(offers: Sequence[CloudOffer], home: str | None, account: str) -> None:
    """ValidationError when the cluster's cloud keeps data on an external S3 service that has no
    keys for ``account`` (resilin.settings.external_storage)."""
    offer = next((o for o in offers if o.cloud == home), None)
    if offer is not None and offer.storage_accounts is not None and account not in offer.storage_accounts:
        raise ValidationError(
            f"Cloud {home} keeps cluster data on an external S3 service, and this account has no "
            "access to it there. Ask the operator for keys, or place the cluster in another cloud."
        )
