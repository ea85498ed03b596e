"""Reconciliation: instances, security groups, key pairs and overlay leftovers (Elastic IPs, routes)
that belong to no live cluster are removed.

A Resilin that crashed mid-launch, a cloud that answered a RunInstances after
Resilin gave up on it, a teardown that failed: whatever the cause, at start and
then every ``reconcile_interval`` seconds (``resilin server`` times :meth:`Reconciler.sweep`)
each cloud is asked for what carries this installation's tag, and whatever
belongs to a cluster that is unknown or has ended is terminated (instances)
or deleted (groups and key pairs, once their instances are gone).  Only this installation's resources are touched.

The overlay network (resilin.overlay) leaves two more kinds behind when its teardown does not
run: Elastic IPs allocated for gateways, tagged like the instances (``resilin:cluster-id``,
``resilin:installation``), which are disassociated and released; and routes in a main route
table whose target is an instance of this installation belonging to no live cluster (a
gateway), which are deleted.  A route carries no tags: it is known as Resilin's by its target,
which the cloud still describes for a while after termination (an hour on EC2 and the local
cloud), so a route whose target is no longer known at all is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from resilin.clouds.provisioning import TAG_CLUSTER, TAG_INSTALLATION, PlacementLookup
from resilin.jobflows import states
from resilin.jobflows.store import JobFlowStore
from resilin.provisioners.ec2client import LIVE_STATES, UNSUPPORTED_ERRORS, EC2Client, error_code, tags_of

log = logging.getLogger(__name__)

# A route's target is known by its tags for as long as the cloud describes it, terminated or not.
ANY_STATE = [*LIVE_STATES, "terminated"]


@dataclass
class Sweep:
    """What one pass removed, per cloud."""

    instances: dict[str, list[str]] = field(default_factory=dict)
    security_groups: dict[str, list[str]] = field(default_factory=dict)
    key_pairs: dict[str, list[str]] = field(default_factory=dict)
    addresses: dict[str, list[str]] = field(default_factory=dict)  # allocation ids
    routes: dict[str, list[str]] = field(default_factory=dict)  # "rtb-… DESTINATION"
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
        described = client.find_tagged(mine, ANY_STATE)
        # Instance → cluster, terminated ones included: the overlay's routes and addresses are known by them.
        owners = {i["InstanceId"]: tags_of(i).get(TAG_CLUSTER, "") for i in described}
        self._sweep_routes(name, client, owners, result)
        orphans: dict[str, list[str]] = {}
        for inst in described:
            cid = tags_of(inst).get(TAG_CLUSTER, "")
            if cid and inst.get("State", {}).get("Name") in LIVE_STATES and not self._live(cid):
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
        self._sweep_addresses(name, client, owners, result)

    def _sweep_addresses(self, name: str, client: EC2Client, owners: dict[str, str], result: Sweep) -> None:
        """Elastic IPs of gone clusters: disassociated, then released.  An address is this
        installation's when it carries its tag, or is associated with one of its instances."""
        try:
            addresses = client.ec2.describe_addresses().get("Addresses", [])
        except ClientError as exc:
            if error_code(exc) not in UNSUPPORTED_ERRORS:
                raise
            return
        for address in addresses:
            tags = tags_of(address)
            if tags.get(TAG_INSTALLATION) == self.installation:
                cid = tags.get(TAG_CLUSTER, "")
            else:
                cid = owners.get(address.get("InstanceId") or "", "")
            if not cid or self._live(cid):
                continue
            allocation = address["AllocationId"]
            try:
                if address.get("AssociationId"):
                    client.ec2.disassociate_address(AssociationId=address["AssociationId"])
                client.ec2.release_address(AllocationId=allocation)
            except ClientError as exc:  # the next sweep tries again
                log.info("reconciliation: address %s not released yet: %s", allocation, exc)
                continue
            log.warning(
                "reconciliation: released address %s (%s) of cluster %s in cloud %s",
                allocation,
                address.get("PublicIp", ""),
                cid,
                name,
            )
            result.addresses.setdefault(name, []).append(allocation)

    def _sweep_routes(self, name: str, client: EC2Client, owners: dict[str, str], result: Sweep) -> None:
        """Routes of main route tables through an instance of this installation whose cluster is gone."""
        try:
            tables = client.ec2.describe_route_tables(
                Filters=[{"Name": "association.main", "Values": ["true"]}]
            ).get("RouteTables", [])
        except ClientError as exc:
            if error_code(exc) not in UNSUPPORTED_ERRORS:
                raise
            return
        routes = [(t["RouteTableId"], r) for t in tables for r in t.get("Routes", []) if r.get("InstanceId")]
        for table, route in routes:
            cid = owners.get(route["InstanceId"], "")
            destination = route.get("DestinationCidrBlock")
            if not cid or not destination or self._live(cid):
                continue
            try:
                client.ec2.delete_route(RouteTableId=table, DestinationCidrBlock=destination)
            except ClientError as exc:
                log.info("reconciliation: route %s in %s not deleted yet: %s", destination, table, exc)
                continue
            log.warning(
                "reconciliation: deleted route %s → %s of cluster %s in %s (cloud %s)",
                destination,
                route["InstanceId"],
                cid,
                table,
                name,
            )
            result.routes.setdefault(name, []).append(f"{table} {destination}")
