"""Watches a running cluster: notices instances that die, and brings groups to their requested size.

One monitor thread per cluster, started once Hadoop is ready.  Every few seconds it asks
the cloud (DescribeInstances, by the cluster's tag) which instances still run.  A dead
core or task instance is marked TERMINATED (INSTANCE_FAILURE), dropped from its group's
RunningInstanceCount and from HDFS and YARN at once, so that Hadoop redoes its work
elsewhere; it is replaced unless the cluster turned UnhealthyNodeReplacement off.  A
dead master ends the cluster with INSTANCE_FAILURE.  Then every group whose requested
count differs from what runs is grown or shrunk (see resilin.cluster.resize), and a group given new
configurations has them applied to its nodes (see resilin.cluster.reconfigure), and the cluster's
tags are kept on its instances (see resilin.clouds.instance_tags).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from resilin.clouds.instance_tags import sync_instance_tags, user_tags
from resilin.clouds.provisioning import TAG_CLUSTER
from resilin.cluster.reconfigure import Reconfigurer
from resilin.cluster.resize import LIVE, ResizeError, Resizer
from resilin.jobflows import states
from resilin.jobflows.store import Doc
from resilin.provisioners.ec2client import EC2Client

if TYPE_CHECKING:
    from resilin.cluster.cluster_worker import ClusterWorker

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0
ARRESTED = "ARRESTED"
RESIZING = "RESIZING"


class ClusterMonitor(threading.Thread):
    def __init__(self, worker: ClusterWorker, poll: float = POLL_SECONDS) -> None:
        super().__init__(name=f"monitor-{worker.cid}", daemon=True)
        self.worker = worker
        self.cid = worker.cid
        self.store = worker.store
        self.poll = poll
        self.resizer = Resizer(worker)
        self.reconfigurer = Reconfigurer(worker, self.resizer)
        self._stopping = threading.Event()  # not _stop: Thread uses that name itself

    def stop(self, timeout: float = 30) -> None:
        self._stopping.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    def _ending(self) -> bool:
        return self._stopping.is_set() or bool(self.worker.cluster["terminate_requested"])

    def run(self) -> None:
        while not self._stopping.wait(self.poll):
            if self._ending():
                return
            try:
                self.check_health()
                if not self._ending():
                    self.reconcile()
            except Exception:  # keep watching whatever one round met
                log.exception("%s: monitor round failed", self.cid)

    # -- failed nodes ---------------------------------------------------
    def check_health(self) -> None:
        placement = self.worker.placement
        assert placement is not None
        live = [i for i in self.store.instances_of(self.cid) if i["state"] in LIVE]
        if not live:
            return
        found = placement.client.find_tagged({TAG_CLUSTER: self.cid})
        running = {i["InstanceId"] for i in found if i["State"]["Name"] == "running"}
        self.sync_tags(placement.client, found)
        for instance in live:
            # Re-read: a resize may have retired it meanwhile.
            if instance["ec2_id"] not in running and self._still_live(instance):
                self.failed(instance)

    def sync_tags(self, client: EC2Client, found: list[dict[str, Any]]) -> None:
        """Carry AddTags and RemoveTags over to the cluster's instances (a no-op when they agree)."""
        try:
            changed = sync_instance_tags(client, found, user_tags(self.worker.cluster))
        except (ClientError, BotoCoreError) as exc:  # tried again next round
            log.warning("%s: updating the instances' tags failed: %s", self.cid, exc)
            return
        if changed:
            log.info("%s: tags updated on %d instance(s)", self.cid, changed)

    def _still_live(self, instance: Doc) -> bool:
        return any(
            i["id"] == instance["id"] and i["state"] in LIVE for i in self.store.instances_of(self.cid)
        )

    def failed(self, instance: Doc) -> None:
        log.warning(
            "%s: instance %s (%s, %s) failed", self.cid, instance["id"], instance["ec2_id"], instance["role"]
        )
        if instance["role"] == "MASTER":
            self.worker._request_termination(
                states.INSTANCE_FAILURE,
                f"The master node {instance['ec2_id']} failed; the cluster cannot go on.",
            )
            self.worker.wake.set()
            return
        replace = self.worker.cluster.get("unhealthy_node_replacement") is not False

        def change(c: Doc) -> None:
            for g in c["groups"]:
                if g["id"] == instance["group_id"]:
                    g["running"] = max(0, g["running"] - 1)
                    if not replace:
                        g["requested"] = max(0, g["requested"] - 1)

        # The count drops as the instance is marked, before HDFS and YARN are told (which takes a while).
        self.store.update_cluster(self.cid, change)
        self.resizer.retire([instance], "Instance failed", code=states.INSTANCE_FAILURE)
        self.resizer.forget_failed(instance)

    # -- sizes and configurations -----------------------------------------
    def reconcile(self) -> None:
        for group in self.worker.cluster["groups"]:
            if group["state"] in (ARRESTED, states.GROUP_TERMINATED):
                continue
            if group["role"] != "MASTER" and not self.resize(group):
                continue
            # A reconfiguration waits for the group's resize, as on EMR.
            if group.get("pending_configurations"):
                self.reconfigurer.apply(group["id"])

    def resize(self, group: Doc) -> bool:
        """Bring the group to its requested count; False if that failed and the group is arrested."""
        live = [
            i
            for i in self.store.instances_of(self.cid)
            if i["group_id"] == group["id"] and i["state"] in LIVE
        ]
        difference = group["requested"] - len(live)
        if difference == 0:
            if group["state"] != _settled(group) or group["running"] != len(live):
                self._set_group(group["id"], states.GROUP_RUNNING, len(live))
            return True
        self._set_group(group["id"], RESIZING, len(live))
        try:
            if difference > 0:
                self.resizer.grow(group, difference)
            else:
                self.resizer.shrink(group, -difference)
        except (ResizeError, Exception) as exc:  # the cloud or Hadoop refused: the group is arrested
            log.warning("%s: resizing %s failed: %s", self.cid, group["id"], exc)
            self._set_group(group["id"], ARRESTED, None, f"Resizing failed: {exc}")
            return False
        running = sum(
            1
            for i in self.store.instances_of(self.cid)
            if i["group_id"] == group["id"] and i["state"] in LIVE
        )
        self._set_group(group["id"], states.GROUP_RUNNING, running)
        return True

    def _set_group(self, gid: str, state: str, running: int | None, message: str | None = None) -> None:
        def change(c: Doc) -> None:
            for g in c["groups"]:
                if g["id"] == gid:
                    g["state"] = _settled(g) if state == states.GROUP_RUNNING else state
                    if running is not None:
                        g["running"] = running
                    g["state_reason"] = {"code": None, "message": message} if message else None
                    if state == states.GROUP_RUNNING:
                        g.pop("terminate_ec2_ids", None)

        self.store.update_cluster(self.cid, change)


def _settled(group: Doc) -> str:
    """The state of a group that has its size: RECONFIGURING until its new configurations are applied."""
    return states.GROUP_RECONFIGURING if group.get("pending_configurations") else states.GROUP_RUNNING
