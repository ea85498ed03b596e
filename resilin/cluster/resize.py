"""Growing and shrinking a running cluster's instance groups, and letting instances go.

Growing launches instances through the cluster's cloud (tagged like the first ones), adds
their sessions to the cluster's (refused once teardown began: the instances are then released
with the others) and has the application make them part of the cluster; they are RUNNING
once it has.  Shrinking has the application decommission the instances first, then
terminates them.
"""

from __future__ import annotations

import logging
import time

from resilin.applications.base import Application, NodesRejected
from resilin.clouds import private_ranges
from resilin.clouds.provisioning import ProvisioningFailed
from resilin.cluster.network import NetworkFailure
from resilin.cluster.runtime import ClusterRuntime
from resilin.cluster.sessions import SessionsClosed
from resilin.jobflows import states
from resilin.jobflows.documents import InstanceDoc, InstanceGroupDoc
from resilin.jobflows.group_clouds import shrink_order

log = logging.getLogger(__name__)


class ResizeError(Exception):
    pass


class Resizer:
    def __init__(self, runtime: ClusterRuntime, application: Application) -> None:
        self.runtime = runtime
        self.application = application
        self.cid = runtime.cid
        self.store = runtime.store

    # -- growing --------------------------------------------------------
    def grow(self, group: InstanceGroupDoc, count: int) -> None:
        runtime = self.runtime
        placement = runtime.placement
        for cloud in runtime.provisioner.clouds_of(group):
            refusal = runtime.network.reach_refusal(group["id"], cloud, placement.cloud_name)
            if refusal is not None:
                raise ResizeError(refusal)
            self.check_ranges(cloud)
        present: dict[str, int] = {}
        for instance in runtime.live_instances():
            if instance["group_id"] == group["id"]:
                present[instance["cloud"]] = present.get(instance["cloud"], 0) + 1
        try:
            ready = runtime.provisioner.grow(runtime.cluster, group, count, present)
        except ProvisioningFailed as exc:
            raise ResizeError(exc.message) from None
        new = []
        for item in ready:
            item.doc.setdefault("timeline", {"created": time.time()})
            new.append((item.doc, item.node))
        try:
            for instance, node in new:
                runtime.sessions.add(instance["id"], node)
                self.store.put_instance(self.cid, instance)
        except SessionsClosed:  # teardown began: it releases the instances with the cluster's others
            for _, node in new:
                node.close()
            raise
        try:  # the new nodes (maybe in a new cloud) and the others reach each other before Hadoop uses them
            runtime.network.join(runtime.live_instances(), runtime.network_context())
        except NetworkFailure as exc:
            self.retire([i for i, _ in new], str(exc))
            raise ResizeError(str(exc)) from None
        try:
            self.application.add_nodes(runtime, new)
        except NodesRejected as exc:
            self.retire([i for i, _ in new], exc.message)
            raise ResizeError(exc.message) from None
        runtime.check_cancelled()
        for instance, _ in new:
            instance["state"] = states.INSTANCE_RUNNING
            instance.setdefault("timeline", {})["ready"] = time.time()
            self.store.put_instance(self.cid, instance)
        log.info("%s: %d %s instance(s) joined", self.cid, count, group["role"].lower())

    def check_ranges(self, cloud: str) -> None:
        """Growing into a cloud the cluster is not in yet: its private range must not overlap theirs
        (RunJobFlow and AddInstanceGroups checked what the settings say; this asks the clouds)."""
        present = {i["cloud"] for i in self.runtime.live_instances()}
        if cloud in present:
            return
        try:
            placements = [self.runtime.placements(c) for c in sorted(present | {cloud})]
        except KeyError as exc:
            raise ResizeError(f"Unknown cloud {exc.args[0]!r}") from None
        refusal = private_ranges.spread_refusal(placements)
        if refusal is not None:
            raise ResizeError(refusal)

    # -- shrinking ------------------------------------------------------
    def shrink(self, group: InstanceGroupDoc, count: int) -> None:
        live = [i for i in self.runtime.live_instances() if i["group_id"] == group["id"]]
        # The instances the request named go first, then the newest of the fullest cloud.
        victims = shrink_order(live, group.get("terminate_ec2_ids") or [])[:count]
        if not victims:
            return
        self.application.decommission(self.runtime, group, victims)
        self.retire(victims, "Instance group was shrunk")
        log.info("%s: %d %s instance(s) decommissioned and terminated", self.cid, len(victims), group["role"])

    def retire(self, instances: list[InstanceDoc], reason: str, code: str | None = None) -> None:
        """Terminate instances and record them as TERMINATED."""
        by_cloud: dict[str, list[str]] = {}
        for instance in instances:  # a cluster spread over clouds has instances in each
            by_cloud.setdefault(instance.get("cloud") or self.runtime.placement.cloud_name, []).append(
                instance["ec2_id"]
            )
        for cloud, ec2_ids in by_cloud.items():
            try:
                self.runtime.placements(cloud).client.terminate(ec2_ids)
            except Exception as exc:  # the teardown sweep by tag catches it at the latest
                log.warning("%s: terminating %s failed: %s", self.cid, ec2_ids, exc)
        for instance in instances:
            instance["state"] = states.INSTANCE_TERMINATED
            instance["state_reason"] = {"code": code, "message": reason}
            instance.setdefault("timeline", {})["end"] = time.time()
            self.store.put_instance(self.cid, instance)
            node = self.runtime.sessions.pop(instance["id"])
            if node is not None:
                node.close()
        self.rejoin()

    def rejoin(self) -> None:
        """Re-form the network without retired nodes (a gateway among them is replaced by another
        node of its cloud); a failure is logged, and the next join (a replacement's) tries again."""
        runtime = self.runtime
        if runtime.cancelled.is_set():
            return  # teardown's leave undoes it all
        try:
            runtime.network.join(runtime.live_instances(), runtime.network_context())
        except NetworkFailure as exc:
            log.warning("%s: re-forming the network failed: %s", self.cid, exc)
