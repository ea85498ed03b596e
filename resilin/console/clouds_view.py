"""The console's clouds page: each configured cloud, what the signed-in account uses there, its
quota, and whether it works (the checks of ``resilin clouds check``)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from resilin.clouds_cli import check_cloud
from resilin.jobflows import states
from resilin.jobflows.caller import Caller
from resilin.jobflows.documents import InstanceDoc
from resilin.jobflows.group_clouds import clouds_of_group
from resilin.jobflows.releases import CloudOffer
from resilin.jobflows.store import JobFlowStore
from resilin.settings.config import CloudConfig, Settings

LIVE_INSTANCES = (states.INSTANCE_AWAITING, states.INSTANCE_PROVISIONING,
                  states.INSTANCE_BOOTSTRAPPING, states.INSTANCE_RUNNING)  # fmt: skip


def _vcpus(cloud: CloudConfig, offers: Sequence[CloudOffer], instance_type: str) -> int:
    configured = cloud.vcpus_of(instance_type)
    if configured is not None:
        return configured
    offer = next((o for o in offers if o.cloud == cloud.name), None)
    known = {t.name: t.vcpus for t in (offer.types or ())} if offer else {}
    return known.get(instance_type, 0)


def clouds_page(
    settings: Settings, store: JobFlowStore, offers: Sequence[CloudOffer], caller: Caller
) -> dict:
    """The page's data for ``caller``: only its own clusters count and are named."""
    active = [c for c in store.get_clusters(store.cluster_ids(caller.account_id)) if caller.can_see(c)
              and c["state"] not in states.FINAL_CLUSTER_STATES]  # fmt: skip
    instances: dict[str, list[InstanceDoc]] = {c["id"]: store.instances_of(c["id"]) for c in active}
    pages = []
    for cloud in settings.clouds:
        kept: list[tuple[str, str]] = []
        healthy = check_cloud(settings, cloud, io.StringIO(), kept)
        in_use = [i for c in active for i in instances[c["id"]]
                  if i["cloud"] == cloud.name and i["state"] in LIVE_INSTANCES]  # fmt: skip
        groups = []
        for c in active:
            home = next(
                (i["cloud"] for i in instances[c["id"]] if i["role"] == "MASTER"), settings.default_cloud
            )
            for g in c["groups"]:
                if cloud.name in clouds_of_group(g, home):
                    count = sum(1 for i in in_use if i["group_id"] == g["id"])
                    groups.append({"ClusterId": c["id"], "ClusterName": c["name"], "GroupId": g["id"],
                                   "GroupName": g["name"], "InstanceCount": count})  # fmt: skip
        pages.append(
            {
                "Name": cloud.name,
                "Kind": cloud.kind,
                "Default": cloud.name == settings.default_cloud,
                "Region": cloud.region,
                "Quota": {"Instances": cloud.quota.instances, "VCpus": cloud.quota.vcpus},
                "InUse": {
                    "Instances": len(in_use),
                    "VCpus": sum(_vcpus(cloud, offers, i["instance_type"]) for i in in_use),
                },
                "Healthy": healthy,
                "Checks": [{"Status": status, "Text": text} for status, text in kept],
                "Groups": groups,
            }
        )
    return {"Clouds": pages}
