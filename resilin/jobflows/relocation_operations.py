"""RelocateCluster and DescribeClusterRelocation (Resilin's operations; botocore's EMR model gets
them from resilin.api.models).

RelocateCluster only records the request, as the cluster's ``relocation``, and wakes the
cluster's worker: the orchestrator's relocation pipeline (resilin.migrate.pipeline) moves the
cluster, writing its phase and progress there, and records the outcome in ``relocations``.
"""

from __future__ import annotations

import time

from resilin.jobflows import relocation_checks, relocations
from resilin.jobflows.base import ServiceBase
from resilin.jobflows.caller import Caller
from resilin.jobflows.documents import ClusterDoc


class RelocationOperations(ServiceBase):
    def relocate_cluster(self, who: str | Caller, params: dict) -> dict:
        cluster = self._cluster(who, params["ClusterId"])
        cid, target = cluster["id"], params["TargetCloud"]
        relocation = relocation_checks.plan(
            cluster,
            self.store.instances_of(cid),
            self.offered_types(),
            target,
            params.get("InstanceGroups"),
            time.time(),
        )

        def change(c: ClusterDoc) -> None:
            # Again inside the transaction: another request, or the cluster's end, may have come first.
            relocation_checks.check_relocatable(c)
            relocation_checks.moving_groups(c, [{"InstanceGroupId": gid} for gid in relocation["groups"]])
            c["relocation"] = relocation

        self.store.update_cluster(cid, change)
        self.store.notify(cid)  # the worker's monitor runs the move (resilin.cluster.operations.Relocate)
        return {
            "ClusterId": cid,
            "TargetCloud": target,
            "Relocation": relocations.relocation_view(relocation),
        }

    def describe_cluster_relocation(self, who: str | Caller, params: dict) -> dict:
        return relocations.describe(self._cluster(who, params["ClusterId"]))
