"""OverlayNetwork: the network of every cluster; for one in several clouds, the overlay joining them.

join: plan the gateways (resilin.overlay.plan) → ask each cloud for addresses, forwarding,
security-group rules and routes (ec2_apply) → write the gateways' configurations and bring
their tunnels up (node_apply) → probe every node from every other.  It is idempotent over the
cluster's full instance list and recorded step by step (state), so it runs again after a
resize into a new cloud or a gateway's replacement and changes only what differs.  A cluster
in one cloud makes nothing at all.  leave undoes what was recorded, at teardown.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from botocore.exceptions import BotoCoreError, ClientError

from resilin.clouds.ssh import Node
from resilin.cluster.network import ClusterNetwork, NetworkContext, NetworkFailure
from resilin.jobflows.documents import InstanceDoc
from resilin.overlay import node_apply
from resilin.overlay.ec2_apply import CloudOverlay
from resilin.overlay.gateway_config import render
from resilin.overlay.keys import WireGuardKeys
from resilin.overlay.plan import Member, OverlayPlan, PlanError, choose_gateways, plan_overlay
from resilin.overlay.ranges import overlapping_ranges_refusal
from resilin.overlay.state import Address, OverlayState, OverlayStore, RecordedPermission, RecordedRoute
from resilin.provisioners.ec2client import ProvisioningError, error_text

log = logging.getLogger(__name__)

PROBE_SECONDS = 60.0  # from the tunnels' start to every node reaching every other


class OverlayNetwork(ClusterNetwork):
    def __init__(self, probe_seconds: float = PROBE_SECONDS) -> None:
        self.probe_seconds = probe_seconds
        self._lock = threading.Lock()  # the lifecycle's join and the monitor's never overlap

    # -- placement ----------------------------------------------------------------
    def spread_refusal(self, clouds: Collection[str]) -> str | None:
        return None  # any set of clouds; their ranges are checked by ranges_refusal

    def ranges_refusal(self, ranges: Mapping[str, str]) -> str | None:
        """Why clouds with these private ranges (cloud → CIDR) cannot share a cluster; None if they can."""
        return overlapping_ranges_refusal(ranges)

    def reach_refusal(self, group_id: str, group_cloud: str, cluster_cloud: str) -> str | None:
        return None

    # -- joining ------------------------------------------------------------------
    def join(self, instances: list[InstanceDoc], context: NetworkContext) -> dict[str, str]:
        with self._lock:
            store = OverlayStore(context.store.redis, context.cid)
            state = store.load()
            if len({i["cloud"] for i in instances}) < 2 and state.empty:
                return {}  # one cloud: its own network carries the cluster
            try:
                _Join(instances, context, store, state, self.probe_seconds).run()
                return dict(state.gateways) if len(state.gateways) >= 2 else {}
            except (ClientError, BotoCoreError, ProvisioningError, LookupError) as exc:
                raise NetworkFailure(f"Joining the clouds' networks failed: {error_text(exc)}") from exc
            except PlanError as exc:
                raise NetworkFailure(f"The overlay network cannot be formed: {exc}") from exc

    def leave(self, context: NetworkContext) -> list[str]:
        with self._lock:
            store = OverlayStore(context.store.redis, context.cid)
            state = store.load()
            if state.empty:
                return []
            _stop_gateways(state, context)
            errors = _undo(state, context, store, _Wanted(), strict=False)
            store.forget()  # the keys go with it, whatever could not be undone (the reconciler's then)
            return errors


class _Wanted:
    """What the overlay should hold in the clouds; empty at leave."""

    def __init__(
        self,
        plan: OverlayPlan | None = None,
        tables: Mapping[str, str] | None = None,
        groups: Mapping[str, str] | None = None,
    ) -> None:
        self.routes: set[RecordedRoute] = set()
        self.permissions: set[RecordedPermission] = set()
        self.gateway_ids: set[str] = set()
        if plan is None:
            return
        tables, groups = tables or {}, groups or {}
        self.gateway_ids = {g.instance_id for g in plan.gateways.values()}
        for cloud, routes in plan.routes.items():
            self.routes |= {RecordedRoute(cloud, tables[cloud], r.destination, r.target) for r in routes}
        for cloud, permissions in plan.permissions.items():
            if groups.get(cloud):
                self.permissions |= {RecordedPermission(cloud, groups[cloud], p) for p in permissions}


class _Join:
    def __init__(
        self,
        instances: list[InstanceDoc],
        context: NetworkContext,
        store: OverlayStore,
        state: OverlayState,
        probe_seconds: float,
    ) -> None:
        self.instances = instances
        self.context = context
        self.store = store
        self.state = state
        self.probe_seconds = probe_seconds
        self.clouds: dict[str, CloudOverlay] = {}
        self._saving = threading.Lock()

    def cloud(self, name: str) -> CloudOverlay:
        if name not in self.clouds:
            self.clouds[name] = CloudOverlay(self.context.client_for(name), name)
        return self.clouds[name]

    def run(self) -> None:
        state, context = self.state, self.context
        members = [Member(i["ec2_id"], i["cloud"], i["role"], i["private_ip"]) for i in self.instances]
        gateways = choose_gateways(self.with_public_addresses(members), state.gateways)
        ids = {g.instance_id for g in gateways.values()}
        state.gateways = {cloud: g.instance_id for cloud, g in gateways.items()}
        state.keys = {i: state.keys.get(i) or WireGuardKeys.generate() for i in sorted(ids)}
        self.store.save(state)
        # A former gateway's address goes before anything else is made.
        _release_addresses(state, context, self.store, keep=ids, strict=True)
        tables: dict[str, str] = {}
        addresses: dict[str, str] = {}
        # The clouds are asked at once (each its own calls, in order); every gateway's address is
        # known before the plan that needs them.
        self.each_cloud(gateways, lambda cloud: self.make_gateway(cloud, gateways[cloud], tables, addresses))
        gateways = {cloud: replace(g, public_ip=addresses[cloud]) for cloud, g in gateways.items()}
        plan = plan_overlay(members, gateways)
        groups = {cloud: context.security_group_for(cloud) for cloud in gateways}
        wanted = _Wanted(plan, tables, groups)
        for cloud in sorted(set(gateways) - {c for c, g in groups.items() if g}):
            log.warning(
                "%s: no security group of the cluster's own in cloud %s to admit the overlay",
                context.cid,
                cloud,
            )
        _undo(state, context, self.store, wanted, strict=True)
        self.apply(wanted)
        self.start_gateways(plan)
        if len(gateways) >= 2:
            self.probe()

    def with_public_addresses(self, members: list[Member]) -> list[Member]:
        """``members`` with the public address each has now, in the clouds whose gateway is to be
        chosen (none kept): a node launched with one is preferred (``ssh_via_gateway``)."""
        kept = {m.cloud for m in members if self.state.gateways.get(m.cloud) == m.instance_id}
        public: dict[str, str] = {}

        def look(cloud: str) -> None:
            ids = [m.instance_id for m in members if m.cloud == cloud]
            try:
                found = self.cloud(cloud).client.describe(ids)
            except ClientError as exc:  # an instance gone meanwhile: the roles alone decide
                log.warning("%s: describing cloud %s's nodes: %s", self.context.cid, cloud, error_text(exc))
                return
            with self._saving:
                public.update({i: f.get("PublicIpAddress") or "" for i, f in found.items()})

        self.each_cloud({m.cloud for m in members} - kept, look)
        return [replace(m, public_ip=public.get(m.instance_id, "")) for m in members]

    def each_cloud(self, clouds: Collection[str], work: Callable[[str], None]) -> None:
        """``work`` for every cloud at once; the first failure is raised once all have ended."""
        with ThreadPoolExecutor(max_workers=max(1, len(clouds))) as pool:
            list(pool.map(work, sorted(clouds)))

    def record(self, change: Callable[[OverlayState], None]) -> None:
        """Change the state and save it at once (the clouds' threads share it)."""
        with self._saving:
            change(self.state)
            self.store.save(self.state)

    def make_gateway(
        self, cloud: str, gateway: Member, tables: dict[str, str], addresses: dict[str, str]
    ) -> None:
        """The gateway's public address ("" for a spoke), forwarding on, and its cloud's route table."""
        ec2 = self.cloud(cloud)
        found = ec2.describe(gateway.instance_id)
        public_ip = found.public_ip
        if not public_ip:
            allocated = ec2.allocate_address(self.context.tags)
            if allocated is not None:
                address = Address(cloud, allocated[0], allocated[1], gateway.instance_id)
                self.record(lambda state: state.addresses.append(address))  # before it is used: never leaked
                association = ec2.associate_address(address.allocation_id, gateway.instance_id)
                self.record(lambda state: setattr(address, "association_id", association))
                public_ip = address.public_ip
        ec2.make_router(gateway.instance_id)
        table = ec2.route_table(found.vpc_id)
        with self._saving:
            tables[cloud], addresses[cloud] = table, public_ip

    def apply(self, wanted: _Wanted) -> None:
        """Add the rules and routes the state does not record, each cloud at once."""
        permissions = _by_group(wanted.permissions - set(self.state.permissions))
        routes = sorted(wanted.routes - set(self.state.routes))

        def apply_in(cloud: str) -> None:
            for (name, group_id), added in permissions.items():
                if name == cloud:
                    self.cloud(cloud).authorize(group_id, [p.permission for p in added])
                    self.record(lambda state, added=added: state.permissions.extend(added))  # type: ignore[misc]
            for route in routes:
                if route.cloud == cloud:
                    self.cloud(cloud).put_route(route.table_id, route.destination, route.target)
                    self.record(lambda state, route=route: _put_route(state, route))  # type: ignore[misc]

        self.each_cloud({c for c, _ in permissions} | {r.cloud for r in routes}, apply_in)

    def start_gateways(self, plan: OverlayPlan) -> None:
        state = self.state
        public_keys = {cloud: state.keys[g.instance_id].public for cloud, g in plan.gateways.items()}
        docs = {i["ec2_id"]: i for i in self.instances}
        pushes = []
        for cloud, gateway in sorted(plan.gateways.items()):
            config = render(state.keys[gateway.instance_id].private, plan.peers.get(cloud, ()), public_keys)
            digest = hashlib.sha256(config.encode()).hexdigest()
            if state.configs.get(gateway.instance_id) != digest:
                pushes.append((gateway.instance_id, config, digest))

        def push(item: tuple[str, str, str]) -> None:
            instance_id, config, _ = item
            doc = docs[instance_id]
            node_apply.start_gateway(_name(doc), self.node(doc), config)

        with ThreadPoolExecutor(max_workers=max(1, len(pushes))) as pool:
            list(pool.map(push, pushes))
        for instance_id, _, digest in pushes:
            state.configs[instance_id] = digest
        # A node that is no longer a gateway stops its tunnel (and forgets its key).
        for instance_id in sorted(set(state.configs) - {g.instance_id for g in plan.gateways.values()}):
            doc = docs.get(instance_id)
            node = self.context.sessions.get(doc["id"]) if doc else None
            if node is not None and doc is not None:
                try:
                    node_apply.stop_gateway(_name(doc), node)
                except NetworkFailure as exc:
                    log.warning("%s: %s", self.context.cid, exc)
            del state.configs[instance_id]
        self.store.save(state)

    def node(self, doc: InstanceDoc) -> Node:
        node = self.context.sessions.get(doc["id"])
        if node is None:
            raise NetworkFailure(f"no SSH session to {_name(doc)}")
        return node

    def probe(self) -> None:
        nodes = [node_apply.ProbeNode(_name(i), self.node(i), i["private_ip"]) for i in self.instances]
        node_apply.probe_all(nodes, self.probe_seconds)
        log.info("%s: overlay network up across %d clouds", self.context.cid, len(self.state.gateways))


def _name(doc: InstanceDoc) -> str:
    return f"{doc['ec2_id']} ({doc['role'].lower()}, cloud {doc['cloud']})"


def _undo(
    state: OverlayState, context: NetworkContext, store: OverlayStore, keep: _Wanted, strict: bool
) -> list[str]:
    """Delete the recorded routes and rules ``keep`` does not hold, then the addresses of instances
    that are no longer gateways; errors are raised when ``strict`` (join), else returned (leave)."""
    errors: list[str] = []
    clients: dict[str, CloudOverlay] = {}

    def cloud(name: str) -> CloudOverlay:
        if name not in clients:
            clients[name] = CloudOverlay(context.client_for(name), name)
        return clients[name]

    def attempt(what: str, action: object) -> bool:
        try:
            action()  # type: ignore[operator]
            return True
        except (ClientError, BotoCoreError, KeyError) as exc:
            if strict:
                raise
            log.error("%s: %s failed: %s", context.cid, what, error_text(exc))
            errors.append(f"{what}: {error_text(exc)}")
            return False

    wanted_targets = {(r.cloud, r.table_id, r.destination): r.target for r in keep.routes}
    for route in list(state.routes):
        if (route.cloud, route.table_id, route.destination) in wanted_targets:
            continue  # kept, or replaced in place by apply
        if attempt(
            f"deleting route {route.destination} from {route.table_id} in cloud {route.cloud}",
            lambda r=route: cloud(r.cloud).delete_route(r.table_id, r.destination),
        ):
            state.routes.remove(route)
            store.save(state)
    for (name, group_id), permissions in _by_group(set(state.permissions) - keep.permissions).items():
        if attempt(
            f"revoking {len(permissions)} rule(s) from {group_id} in cloud {name}",
            lambda n=name, g=group_id, ps=permissions: cloud(n).revoke(g, [p.permission for p in ps]),
        ):
            state.permissions = [p for p in state.permissions if p not in permissions]
            store.save(state)
    return errors + _release_addresses(state, context, store, keep.gateway_ids, strict)


def _put_route(state: OverlayState, route: RecordedRoute) -> None:
    """Record ``route`` in place of any route to the same destination in the same table."""
    key = (route.cloud, route.table_id, route.destination)
    state.routes = [r for r in state.routes if (r.cloud, r.table_id, r.destination) != key] + [route]


def _by_group(permissions: Collection[RecordedPermission]) -> dict[tuple[str, str], list[RecordedPermission]]:
    """(cloud, group id) → its permissions, in a stable order (one EC2 call each)."""
    out: dict[tuple[str, str], list[RecordedPermission]] = {}
    for permission in sorted(permissions):
        out.setdefault((permission.cloud, permission.group_id), []).append(permission)
    return out


def _release_addresses(
    state: OverlayState, context: NetworkContext, store: OverlayStore, keep: set[str], strict: bool
) -> list[str]:
    errors: list[str] = []
    for address in list(state.addresses):
        if address.instance_id in keep:
            continue
        try:
            CloudOverlay(context.client_for(address.cloud), address.cloud).release_address(
                address.allocation_id, address.association_id
            )
        except (ClientError, BotoCoreError, KeyError) as exc:
            if strict:
                raise
            log.error("%s: releasing address %s failed: %s", context.cid, address.public_ip, error_text(exc))
            errors.append(
                f"releasing address {address.public_ip} in cloud {address.cloud}: {error_text(exc)}"
            )
            continue
        state.addresses.remove(address)
        store.save(state)
    return errors


def _stop_gateways(state: OverlayState, context: NetworkContext) -> None:
    """Stop the tunnels and delete the keys on the gateways that still answer (best effort)."""
    docs = {i["ec2_id"]: i for i in context.store.instances_of(context.cid)}

    def stop(instance_id: str) -> None:
        doc = docs.get(instance_id)
        node = context.sessions.get(doc["id"]) if doc else None
        if node is None or doc is None:
            return
        try:
            node_apply.stop_gateway(_name(doc), node)
        except NetworkFailure as exc:  # the instance goes next anyway, and its key with it
            log.warning("%s: %s", context.cid, exc)

    with ThreadPoolExecutor(max_workers=max(1, len(state.configs))) as pool:
        list(pool.map(stop, sorted(state.configs)))
