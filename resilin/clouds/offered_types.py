"""Which instance types the configured clouds offer, for ListSupportedInstanceTypes and fleets.

A local cloud offers its catalogue; an EC2 cloud's offer is not known ahead (any type is
tried, and the cloud says what it refuses when the cluster launches).  Each offer carries the
cloud's private range where the settings give it, for RunJobFlow's check of a multi-cloud cluster.
"""

from __future__ import annotations

from collections.abc import Sequence

from resilin.clouds.private_ranges import configured_range
from resilin.jobflows.releases import CloudOffer, OfferedType, OfferedTypes
from resilin.settings.config import Settings


def offered_types(settings: Settings) -> OfferedTypes:
    from resilin.provisioners.localcloud.catalogue import INSTANCE_TYPES

    local = tuple(OfferedType(t.name, t.vcpus, t.memory_mib) for t in INSTANCE_TYPES.values())
    offers = tuple(
        CloudOffer(
            cloud.name,
            cloud.name == settings.default_cloud,
            local if cloud.kind == "local" else None,
            configured_range(cloud),
            frozenset(cloud.storage.accounts) if cloud.storage is not None else None,
        )
        for cloud in settings.clouds
    )

    def offered() -> Sequence[CloudOffer]:
        return offers

    return offered
