"""Operations on a running cluster, as objects the monitor (resilin.cluster.node_health) runs.

Each round the monitor asks every operation in turn whether it is wanted and runs those that
are: failed nodes are replaced, then groups are brought to their requested size, then groups
given new configurations have them applied (a reconfiguration waits for its group's resize,
as on EMR).  Automatic scaling policies set groups' requested sizes just before the resize.
An operation takes the cluster's runtime, never the thread that runs the cluster.
A relocation (RelocateCluster) is the last of them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from resilin.applications.base import Application
from resilin.clouds.instance_tags import sync_instance_tags, user_tags
from resilin.clouds.provisioning import TAG_CLUSTER
from resilin.cluster.autoscaling import AutomaticScaling
from resilin.cluster.cluster_metrics import MetricsHistory
from resilin.cluster.managed_scaling import ManagedScaling
from resilin.cluster.operation import ARRESTED, RESIZING, ClusterOperation
from resilin.cluster.resize import Resizer
from resilin.cluster.runtime import ClusterRuntime
from resilin.cluster.storage_sessions import StorageSessionError, StorageSessions
from resilin.jobflows import states
from resilin.jobflows.documents import ClusterDoc, InstanceDoc, InstanceGroupDoc
from resilin.migrate.pipeline import RelocationPipeline
from resilin.provisioners.ec2client import EC2Client

log = logging.getLogger(__name__)

STEP_TICK = 1.5  # longer than the step scheduler's tick (resilin.steps.step_phase)


def _active_groups(runtime: ClusterRuntime) -> list[InstanceGroupDoc]:
    return [g for g in runtime.cluster["groups"] if g["state"] not in (ARRESTED, states.GROUP_TERMINATED)]


class ReplaceFailedNodes(ClusterOperation):
    """Asks the cloud which instances still run.  A dead core or task instance is marked
    TERMINATED (INSTANCE_FAILURE), dropped from its group's RunningInstanceCount and from the
    application at once, so that its work is redone elsewhere; it is replaced (by
    :class:`ResizeGroups`) unless the cluster turned UnhealthyNodeReplacement off.  A dead
    master ends the cluster with INSTANCE_FAILURE.  The cluster's tags are kept on its instances."""

    def __init__(self, resizer: Resizer, application: Application) -> None:
        self.resizer = resizer
        self.application = application

    def wanted(self, runtime: ClusterRuntime) -> bool:
        return bool(runtime.live_instances())

    def run(self, runtime: ClusterRuntime) -> None:
        live = runtime.live_instances()
        running: set[str] = set()
        # Every cloud the cluster has instances in (a cluster may be spread over several).
        for cloud in sorted({runtime.placement.cloud_name} | {i.get("cloud") or "" for i in live} - {""}):
            client = runtime.placements(cloud).client
            found = client.find_tagged({TAG_CLUSTER: runtime.cid})
            running |= {i["InstanceId"] for i in found if i["State"]["Name"] == "running"}
            self.sync_tags(runtime, client, found)
        for instance in live:
            # Re-read: a resize may have retired it meanwhile.
            if instance["ec2_id"] not in running and self._still_live(runtime, instance):
                self.failed(runtime, instance)

    @staticmethod
    def sync_tags(runtime: ClusterRuntime, client: EC2Client, found: list[dict[str, Any]]) -> None:
        """Carry AddTags and RemoveTags over to the cluster's instances (a no-op when they agree)."""
        try:
            changed = sync_instance_tags(client, found, user_tags(runtime.cluster))
        except (ClientError, BotoCoreError) as exc:  # tried again next round
            log.warning("%s: updating the instances' tags failed: %s", runtime.cid, exc)
            return
        if changed:
            log.info("%s: tags updated on %d instance(s)", runtime.cid, changed)

    @staticmethod
    def _still_live(runtime: ClusterRuntime, instance: InstanceDoc) -> bool:
        return any(i["id"] == instance["id"] for i in runtime.live_instances())

    def failed(self, runtime: ClusterRuntime, instance: InstanceDoc) -> None:
        cid = runtime.cid
        log.warning(
            "%s: instance %s (%s, %s) failed", cid, instance["id"], instance["ec2_id"], instance["role"]
        )
        if instance["role"] == "MASTER":
            runtime.request_termination(
                states.INSTANCE_FAILURE,
                f"The master node {instance['ec2_id']} failed; the cluster cannot go on.",
            )
            runtime.wake.set()
            return
        replace = runtime.cluster.get("unhealthy_node_replacement") is not False

        def change(c: ClusterDoc) -> None:
            for g in c["groups"]:
                if g["id"] == instance["group_id"]:
                    g["running"] = max(0, g["running"] - 1)
                    if not replace:
                        g["requested"] = max(0, g["requested"] - 1)

        # The count drops as the instance is marked, before the application is told (which takes a while).
        runtime.store.update_cluster(cid, change)
        self.resizer.retire([instance], "Instance failed", code=states.INSTANCE_FAILURE)
        self.application.forget_failed(runtime, instance)


class ResizeGroups(ClusterOperation):
    """Every core and task group whose requested count differs from what runs is grown or shrunk;
    a group whose resize failed is ARRESTED (and left alone from then on)."""

    def __init__(self, resizer: Resizer) -> None:
        self.resizer = resizer

    def wanted(self, runtime: ClusterRuntime) -> bool:
        return any(g["role"] != "MASTER" for g in _active_groups(runtime))

    def run(self, runtime: ClusterRuntime) -> None:
        for group in _active_groups(runtime):
            if group["role"] != "MASTER":
                self.resize(runtime, group)

    def resize(self, runtime: ClusterRuntime, group: InstanceGroupDoc) -> bool:
        """Bring the group to its requested count; False if that failed and the group is arrested."""
        live = [i for i in runtime.live_instances() if i["group_id"] == group["id"]]
        difference = group["requested"] - len(live)
        if difference == 0:
            if group["state"] != settled(group) or group["running"] != len(live):
                set_group(runtime, group["id"], states.GROUP_RUNNING, len(live))
            return True
        set_group(runtime, group["id"], RESIZING, len(live))
        try:
            if difference > 0:
                self.resizer.grow(group, difference)
            else:
                self.resizer.shrink(group, -difference)
        except Exception as exc:  # the cloud or the application refused: the group is arrested
            log.warning("%s: resizing %s failed: %s", runtime.cid, group["id"], exc)
            set_group(runtime, group["id"], ARRESTED, None, f"Resizing failed: {exc}")
            return False
        running = sum(1 for i in runtime.live_instances() if i["group_id"] == group["id"])
        set_group(runtime, group["id"], states.GROUP_RUNNING, running)
        return True


class ApplyConfigurations(ClusterOperation):
    """A group given new configurations (ModifyInstanceGroups) has them applied to its nodes."""

    def __init__(self, application: Application) -> None:
        self.application = application

    def wanted(self, runtime: ClusterRuntime) -> bool:
        return any(g.get("pending_configurations") for g in _active_groups(runtime))

    def run(self, runtime: ClusterRuntime) -> None:
        for group in _active_groups(runtime):
            if group.get("pending_configurations"):
                self.application.reconfigure(runtime, group["id"])


class RenewStorageKeys(ClusterOperation):
    """Session keys on an external S3 service renewed at half their life and written to the
    nodes (resilin.cluster.storage_sessions); a failed renewal is tried again a minute later."""

    def __init__(self, application: Application) -> None:
        self.application = application

    def wanted(self, runtime: ClusterRuntime) -> bool:
        external = runtime.placement.external_storage
        if external is None or not external.session_seconds:
            return False
        current = StorageSessions(runtime.store.redis).current(runtime.cid)
        return current is not None and (current.renew_due(time.time()) or not current.pushed)

    def run(self, runtime: ClusterRuntime) -> None:
        external = runtime.placement.external_storage
        assert external is not None
        sessions = StorageSessions(runtime.store.redis)
        current = sessions.current(runtime.cid)
        now = time.time()
        if current is None or current.renew_due(now):
            try:
                sessions.assume(runtime.cid, runtime.cluster["account"], external, pushed=False)
            except StorageSessionError as exc:
                sessions.retry_later(runtime.cid, now)
                log.warning("%s: storage keys not renewed, trying again later: %s", runtime.cid, exc)
                return
        self.application.rewrite_storage_keys(runtime)
        sessions.pushed(runtime.cid)
        log.info("%s: new storage session keys written to the nodes", runtime.cid)


class Relocate(ClusterOperation):
    """RelocateCluster's move (resilin.migrate.pipeline), at a step boundary: the step scheduler
    starts no step while a relocation is asked for, and the move begins once none runs."""

    def __init__(self, application: Application) -> None:
        self.application = application

    def wanted(self, runtime: ClusterRuntime) -> bool:
        if not runtime.cluster.get("relocation"):
            return False
        return not any(s["state"] == states.STEP_RUNNING for s in runtime.store.steps_of(runtime.cid))

    def run(self, runtime: ClusterRuntime) -> None:
        # The scheduler may have read the cluster just before the request and started a step:
        # give it a tick, and begin only if still no step runs.
        time.sleep(STEP_TICK)
        if self.wanted(runtime):
            RelocationPipeline(runtime, self.application).run()


def running_cluster_operations(runtime: ClusterRuntime, application: Application) -> list[ClusterOperation]:
    """The operations the monitor runs, in the order it runs them each round."""
    resizer = Resizer(runtime, application)
    metrics = MetricsHistory()
    return [
        ReplaceFailedNodes(resizer, application),
        # The scaling policies decide groups' sizes; ResizeGroups, next, carries them out.
        AutomaticScaling(metrics),
        ManagedScaling(metrics),
        ResizeGroups(resizer),
        ApplyConfigurations(application),
        RenewStorageKeys(application),
        Relocate(application),
    ]


def set_group(
    runtime: ClusterRuntime, gid: str, state: str, running: int | None, message: str | None = None
) -> None:
    def change(c: ClusterDoc) -> None:
        for g in c["groups"]:
            if g["id"] == gid:
                g["state"] = settled(g) if state == states.GROUP_RUNNING else state
                if running is not None:
                    g["running"] = running
                g["state_reason"] = {"code": None, "message": message} if message else None
                if state == states.GROUP_RUNNING:
                    g.pop("terminate_ec2_ids", None)

    runtime.store.update_cluster(runtime.cid, change)


def settled(group: InstanceGroupDoc) -> str:
    """The state of a group that has its size: RECONFIGURING until its new configurations are applied."""
    return states.GROUP_RECONFIGURING if group.get("pending_configurations") else states.GROUP_RUNNING
