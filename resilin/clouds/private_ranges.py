"""The private address range of each cloud, for refusing a cluster whose clouds' ranges overlap.

The overlay network routes each cloud's private addresses as they are (no NAT), so the clouds
of one cluster must not share any.  A local cloud's range is its ``subnet``; an ec2 cloud's is
its ``private_range`` setting, else the CIDR of its ``subnet_id`` read from the cloud
(DescribeSubnets) when a cluster is placed.  RunJobFlow checks what the settings say
(resilin.jobflows.placement_checks); placement checks again with what the clouds say.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from botocore.exceptions import BotoCoreError, ClientError

from resilin.overlay.ranges import overlapping_ranges_refusal
from resilin.provisioners.ec2client import EC2Client, ProvisioningError, error_text
from resilin.settings.cloud_config import CloudConfig


class PlacedCloud(Protocol):
    """A cloud a cluster is placed in (resilin.clouds.provisioning.Placement is one)."""

    cloud_name: str
    cloud: CloudConfig | None
    client: EC2Client


def configured_range(cloud: CloudConfig | None) -> str | None:
    """The range the settings give the cloud; None when only the cloud itself can tell."""
    if cloud is None:
        return None
    if cloud.kind == "local":
        return cloud.subnet or None
    return cloud.private_range or None


def placement_range(placement: PlacedCloud) -> str | None:
    """The cloud's private range: configured, else its subnet's CIDR (DescribeSubnets); None if unknowable."""
    cloud = placement.cloud
    known = configured_range(cloud)
    if known or cloud is None or not cloud.subnet_id:
        return known
    return placement.client.subnet_cidr(cloud.subnet_id)


def spread_refusal(placements: Sequence[PlacedCloud]) -> str | None:
    """Why a cluster spanning these clouds cannot be placed (ranges unknown or overlapping); None if it can."""
    if len({p.cloud_name for p in placements}) < 2:
        return None
    ranges: dict[str, str] = {}
    for placement in placements:
        try:
            found = placement_range(placement)
        except (ClientError, BotoCoreError, ProvisioningError) as exc:
            return (
                f"The private address range of cloud {placement.cloud_name} could not be read from "
                f"its subnet: {error_text(exc)}"
            )
        if found is None:
            return (
                f"The private address range of cloud {placement.cloud_name} is not known, so a cluster "
                "cannot span it and other clouds: set 'private_range' (or 'subnet_id') in its [[clouds]] "
                "table of resilin.toml."
            )
        ranges[placement.cloud_name] = found
    return overlapping_ranges_refusal(ranges)
