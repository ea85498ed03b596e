"""Taking a running cluster back after Resilin restarted.

A cluster's instances, its daemons and the steps running on its master outlive Resilin, as they
would on any cloud.  What Resilin held only in memory is rebuilt from the cluster's documents and
from the clouds: where the cluster is placed and what it holds in each cloud (instances, security
group, key pair), an SSH session to every node with its pinned host keys and the cluster's key,
the network (joined again from what it recorded; a cluster in one cloud has none), and the
application's own memory.  A relocation cut short is settled on the way
(resilin.migrate.recovery), and whatever a cut-short operation launched but never recorded is
let go.  The steps are followed again by the step phase (StepScheduler.reattach).

A cluster that cannot be taken back (:class:`NotAdoptable`) ends, its instances released.
"""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError

from resilin.applications.base import Application, ApplicationError
from resilin.clouds.provisioning import ProvisioningFailed
from resilin.clouds.ssh import Node, SshError
from resilin.cluster import provision
from resilin.cluster.network import NetworkFailure
from resilin.cluster.node_setup import on_each
from resilin.cluster.runtime import ClusterRuntime
from resilin.jobflows.documents import InstanceDoc
from resilin.migrate import recovery
from resilin.provisioners.ec2client import ProvisioningError, error_text

log = logging.getLogger(__name__)

SSH_TIMEOUT = 60  # the nodes were running a moment ago: they answer at once or are lost


class NotAdoptable(Exception):
    """Why the cluster cannot be taken back; it ends."""


def cluster_clouds(runtime: ClusterRuntime) -> set[str]:
    """Every cloud the cluster may hold something in: its groups', its instances', a move's."""
    cluster = runtime.cluster
    names: set[str | None] = {g["cloud"] or None for g in cluster["groups"]}
    names |= {c or None for g in cluster["groups"] for c in g.get("spread") or {}}
    names |= {i["cloud"] for i in runtime.store.instances_of(runtime.cid)}
    relocation = cluster.get("relocation")
    if relocation:
        names.add(relocation["destination"])
    clouds = set()
    for name in names:
        try:
            clouds.add(runtime.placements(name).cloud_name)
        except KeyError:
            log.warning("%s: cloud %s is no longer configured", runtime.cid, name)
    return clouds


def adopt(runtime: ClusterRuntime, application: Application) -> None:
    """Take the cluster back (NotAdoptable if it cannot be)."""
    cid = runtime.cid
    provisioner = runtime.provisioner
    clouds = cluster_clouds(runtime)
    # Known before anything can fail, so that the cluster's release reaches every cloud.
    for cloud in clouds:
        provisioner.remember(cloud)
    move = recovery.settle_documents(runtime)
    live = runtime.live_instances()
    masters = [i for i in live if i["role"] == "MASTER"]
    if not masters:
        raise NotAdoptable("its master instance is not running")
    key = provision.load_key(runtime)
    if key is None:
        raise NotAdoptable(f"its SSH key is gone from {runtime.key_path.parent}")
    provisioner.key = key
    try:
        provisioner.placement = runtime.placements(masters[0]["cloud"])
        for cloud in sorted(clouds):
            placement = runtime.placements(cloud)
            if placement.cloud is not None and placement.cloud.ssh_via_gateway:
                raise NotAdoptable(f"cloud {cloud} reaches its nodes through a gateway")
            mine = [i for i in live if i["cloud"] == cloud]
            gone = provisioner.take_back(cloud, [i["ec2_id"] for i in mine])
            if gone:
                raise NotAdoptable(f"instance(s) {', '.join(gone)} in cloud {cloud} no longer run")
            strays = provisioner.release_strays(cloud, {i["ec2_id"] for i in mine})
            if strays:
                runtime.progress(
                    f"Released {len(strays)} instance(s) an interrupted operation left in cloud {cloud}"
                )
    except KeyError as exc:
        raise NotAdoptable(f"cloud {exc} is no longer configured") from None
    except (ProvisioningFailed, ProvisioningError, ClientError, BotoCoreError) as exc:
        raise NotAdoptable(f"its clouds could not be asked: {_text(exc)}") from None

    def reach(instance: InstanceDoc) -> None:
        node = Node(instance["public_ip"], instance["host_keys"], key)
        try:
            node.wait_reachable(SSH_TIMEOUT)
        except SshError as exc:
            raise NotAdoptable(f"instance {instance['ec2_id']} does not answer SSH: {exc}") from None
        runtime.sessions.add(instance["id"], node)

    on_each(live, reach)
    try:
        runtime.network.join(live, runtime.network_context())
    except NetworkFailure as exc:
        raise NotAdoptable(f"its network could not be joined again: {exc}") from None
    try:
        application.adopt(runtime)
    except ApplicationError as exc:
        raise NotAdoptable(str(exc)) from None
    if move is not None:
        recovery.finish(runtime, application, move)
    log.info("%s: taken back after a restart, %d instance(s)", cid, len(live))


def _text(exc: Exception) -> str:
    if isinstance(exc, ProvisioningFailed):
        return exc.message
    if isinstance(exc, (ClientError, BotoCoreError)):
        return error_text(exc)
    return str(exc)
