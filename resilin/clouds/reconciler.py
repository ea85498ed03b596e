"""Reconciliation: instances, security groups and key pairs that belong to no live cluster are removed.

A Resilin that crashed mid-launch, a cloud that answered a RunInstances after
Resilin gave up on it, a teardown that failed: whatever the cause, at start and
then every ``reconcile_interval`` seconds (``resilin server`` times :meth:`Reconciler.sweep`)
each cloud is asked for what carries this installation's tag, and whatever
belongs to a cluster that is unknown or has ended is terminated (instances)
or deleted (groups and key pairs, once their instances are gone).  Only this installation's resources are touched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from resilin.clouds.provisioning import TAG_CLUSTER, TAG_INSTALLATION, PlacementLookup
from resilin.jobflows import states
from resilin.jobflows.store import JobFlowStore
from resilin.provisioners.ec2client import UNSUPPORTED_ERRORS, error_code, tags_of

log = logging.getLogger(__name__)


@dataclass
class Sweep:
    """What one pass removed, per cloud."""

    instances: dict[str, list[str]] = field(default_factory=dict)
    security_groups: dict[str, list[str]] = field(default_factory=dict)
    key_pairs: dict[str, list[str]] = field(default_factory=dict)
    unreachable: list[str] = field(default_factory=list)


class Reconciler:
    def __init__(
        self,
        store: JobFlowStore,
        clouds: Sequence[str],
        placement_for: PlacementLookup,
        installation: str,
        interval: float,
    ) -> None:
        self.store = store
        self.clouds = list(clouds)
        self.placement_for = placement_for
        self.installation = installation
        self.interval = interval

    def _live(self, cid: str) -> bool:
        cluster = self.store.get_cluster(cid)
        return cluster is not None and cluster["state"] not in states.FINAL_CLUSTER_STATES

    def _ended(self, cid: str) -> bool:
        cluster = self.store.get_cluster(cid)
        return cluster is not None and cluster["state"] in states.FINAL_CLUSTER_STATES

    def sweep(self) -> Sweep:
        result = Sweep()
        for name in self.clouds:
            try:
                self._sweep_cloud(name, result)
            except (ClientError, BotoCoreError, KeyError, OSError) as exc:
                log.warning("reconciliation: cloud %s could not be checked: %s", name, exc)
                result.unreachable.append(name)
        return result

    def _sweep_cloud(self, name: str, result: Sweep) -> None:
        client = self.placement_for(name).client
        mine = {TAG_INSTALLATION: self.installation}
        orphans: dict[str, list[str]] = {}
        for inst in client.find_tagged(mine):
            cid = tags_of(inst).get(TAG_CLUSTER, "")
            if cid and not self._live(cid):
                orphans.setdefault(cid, []).append(inst["InstanceId"])
        if orphans:
            doomed = sorted(i for ids in orphans.values() for i in ids)
            log.warning(
                "reconciliation: terminating %d instance(s) in cloud %s that belong to no live cluster: %s",
                len(doomed),
                name,
                ", ".join(f"{cid}: {' '.join(ids)}" for cid, ids in sorted(orphans.items())),
            )
            client.terminate(doomed)
            result.instances[name] = doomed
        try:
            groups = client.security_groups_by_tag(mine)
        except ClientError as exc:
            if error_code(exc) not in UNSUPPORTED_ERRORS:
                raise
            groups = []
        for group in groups:
            cid = tags_of(group).get(TAG_CLUSTER, "")
            if not cid or self._live(cid):
                continue
            try:  # one try: while its instances are still terminating, the next sweep will do
                client.delete_security_group(group["GroupId"], timeout=0)
            except ClientError as exc:
                log.info("reconciliation: security group %s not deleted yet: %s", group["GroupId"], exc)
                continue
            log.warning("reconciliation: deleted security group %s of cluster %s", group["GroupId"], cid)
            result.security_groups.setdefault(name, []).append(group["GroupId"])
        # Key pairs may carry no tags on some clouds: they are named after their cluster instead.
        for key_name in client.key_pair_names("resilin-j-"):
            if self._ended(key_name.removeprefix("resilin-")):
                client.delete_key_pair(key_name)
                log.warning("reconciliation: deleted key pair %s in cloud %s", key_name, name)
                result.key_pairs.setdefault(name, []).append(key_name)
