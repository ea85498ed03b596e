"""Route tables: each account's main route table, and its routes put in that account's instances.

As in a default VPC, every account has one main route table per local cloud, with
the ``local`` route of the cloud's subnet.  Routes added to it (CreateRoute,
ReplaceRoute) send a destination to an instance, such as an overlay gateway with
SourceDestCheck off.  The cloud network is one bridge, so the effect is made in
the instances themselves, from the host: the target routes the destination into
its TUN device (``dev tun0``, when it has one), every other running instance of
the account routes it via the target's private address.  A route whose target
is terminated is a ``blackhole``: shown, and taken out of the instances.  Other
accounts' tables and instances are never touched.  The records are read on the
reactor thread; the commands run in threads.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, cast

from twisted.internet.defer import DeferredList, DeferredLock
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from resilin.provisioners.localcloud import filters, netns, view
from resilin.provisioners.localcloud.errors import EC2Error, invalid, missing
from resilin.provisioners.localcloud.srcdest import TUN
from resilin.provisioners.localcloud.store import LAUNCHED, POWER_ON, InstanceRecord, Store

log = logging.getLogger(__name__)

# Instances of an account, looked up as DescribeInstances does (EC2's errors for unknown ids).
Finder = Callable[[str, Sequence[str]], Awaitable[list[tuple[InstanceRecord, str]]]]
# A route command in an instance's namespace, and whether its failure is an error.
Command = tuple[list[str], bool]
# Targets of CreateRoute the local cloud has no such thing for.
OTHER_TARGETS = (
    "GatewayId", "NatGatewayId", "TransitGatewayId", "LocalGatewayId", "CarrierGatewayId",
    "VpcPeeringConnectionId", "EgressOnlyInternetGatewayId", "VpcEndpointId", "CoreNetworkArn",
    "OdbNetworkArn",
)  # fmt: skip


def is_running(record: InstanceRecord) -> bool:
    """Its container runs with its own namespace: routes and devices can be put there."""
    return record.phase == LAUNCHED and record.power == POWER_ON


def commands(
    record: InstanceRecord, records: dict[str, InstanceRecord], routes: list[dict[str, Any]]
) -> list[Command]:
    """The ``ip route`` commands that give ``record``'s instance its account's ``routes`` (stored form),
    ``records`` being the account's instances by id."""
    out: list[Command] = []
    for route in routes:
        dest, target = route["DestinationCidrBlock"], records.get(route["InstanceId"])
        if target is None or not view.is_live(target) or not target.private_ip:
            out.append((["ip", "route", "del", dest], False))  # a blackhole: out of the instances
        elif target.instance_id != record.instance_id:
            out.append((["ip", "route", "replace", dest, "via", target.private_ip], True))
        elif not record.source_dest_check:
            out.append((["ip", "route", "replace", dest, "dev", TUN, "src", record.private_ip], True))
        else:  # the target itself, without a TUN device: no route of its own
            out.append((["ip", "route", "del", dest], False))
    return out


class RouteTables:
    def __init__(
        self,
        store: Store,
        subnet: str,
        vpc_id: str,
        table_id: Callable[[str], str],
        find: Finder,
        pid: Callable[[str], int],
    ) -> None:
        """``table_id``: an account's table id; ``pid``: the process holding an instance's namespaces (blocking)."""
        self.store, self.subnet, self.vpc_id = store, subnet, vpc_id
        self.table_id, self.find, self.pid = table_id, find, pid
        # Interface ids that stand for an instance (NetworkInterfaceId targets); none by default.
        self.interface_owner: Callable[[str, str], str | None] = lambda account, eni: None
        # One application at a time per account, each computed from the records when its turn
        # comes: the commands of an older change never land after those of a newer one.
        self._turns: dict[str, DeferredLock] = {}

    # The table as EC2 shows it ------------------------------------------------------

    def _shape(self, account: str) -> dict[str, Any]:
        rtb = self.table_id(account)
        records = {r.instance_id: r for r in self.store.instances(account)}
        routes: list[dict[str, Any]] = [
            {
                "DestinationCidrBlock": self.subnet,
                "GatewayId": "local",
                "Origin": "CreateRouteTable",
                "State": "active",
            }
        ]
        for route in self.store.route_table(account)["Routes"]:
            target = records.get(route["InstanceId"])
            shown = {
                "DestinationCidrBlock": route["DestinationCidrBlock"],
                "InstanceId": route["InstanceId"],
                "InstanceOwnerId": account,
                "Origin": "CreateRoute",
                "State": "active" if target is not None and view.is_live(target) else "blackhole",
            }
            if route.get("NetworkInterfaceId"):
                shown["NetworkInterfaceId"] = route["NetworkInterfaceId"]
            routes.append(shown)
        association = "rtbassoc-" + hashlib.sha256(rtb.encode()).hexdigest()[:17]
        return {
            "RouteTableId": rtb,
            "VpcId": self.vpc_id,
            "OwnerId": account,
            "Routes": routes,
            "Associations": [
                {
                    "Main": True,
                    "RouteTableAssociationId": association,
                    "RouteTableId": rtb,
                    "AssociationState": {"State": "associated"},
                }
            ],
            "PropagatingVgws": [],
            "Tags": [],
        }

    FILTERS: filters.Getters = {
        "route-table-id": lambda t: [t["RouteTableId"]],
        "vpc-id": lambda t: [t["VpcId"]],
        "owner-id": lambda t: [t["OwnerId"]],
        "association.main": lambda t: [str(a["Main"]).lower() for a in t["Associations"]],
        "association.route-table-association-id": lambda t: [
            a["RouteTableAssociationId"] for a in t["Associations"]
        ],
        "route.destination-cidr-block": lambda t: [r["DestinationCidrBlock"] for r in t["Routes"]],
        "route.instance-id": lambda t: [r["InstanceId"] for r in t["Routes"] if "InstanceId" in r],
        "route.state": lambda t: [r["State"] for r in t["Routes"]],
    }

    async def describe_route_tables(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("Filters") or []
        filters.check(wanted, self.FILTERS, tags=lambda t: {})
        table = self._shape(account)
        for rtb in params.get("RouteTableIds") or []:
            self._check_table(account, rtb)
        tables = [table] if filters.matches(table, wanted, self.FILTERS, lambda t: {}) else []
        return {"RouteTables": tables}

    def _check_table(self, account: str, rtb: str) -> None:
        if rtb != self.table_id(account):
            raise EC2Error("InvalidRouteTableID.NotFound", f"The routeTable ID '{rtb}' does not exist")

    # CreateRoute / ReplaceRoute / DeleteRoute -----------------------------------------

    def _destination(self, account: str, params: dict[str, Any]) -> str:
        self._check_table(account, params.get("RouteTableId") or "")
        if params.get("DestinationIpv6CidrBlock") or params.get("DestinationPrefixListId"):
            raise EC2Error("UnsupportedOperation", "The local cloud routes IPv4 destinations only.")
        dest = params.get("DestinationCidrBlock")
        if not dest:
            raise missing("DestinationCidrBlock")
        try:
            network = ipaddress.IPv4Network(dest)
        except ValueError:
            raise invalid("destinationCidrBlock", dest, "This is not a valid IPv4 CIDR block.") from None
        # Inside the cloud's own subnet a route would take instances' neighbours away from them.
        if self.subnet and network.subnet_of(ipaddress.IPv4Network(self.subnet)):
            raise EC2Error(
                "InvalidParameterValue",
                f"The destination CIDR block {dest} is equal to or more specific than one of this VPC's "
                "CIDR blocks. The local cloud does not route within its subnet.",
            )
        return str(network)

    async def _target(self, account: str, params: dict[str, Any]) -> dict[str, str]:
        """The route's target as stored: an instance, named directly or by its interface."""
        others = [name for name in OTHER_TARGETS if params.get(name)]
        named = [name for name in ("InstanceId", "NetworkInterfaceId") if params.get(name)] + others
        if not named:
            raise missing("InstanceId")
        if len(named) > 1:
            raise EC2Error(
                "InvalidParameterCombination", f"Only one target may be given; got {', '.join(named)}."
            )
        if others:
            raise EC2Error(
                "UnsupportedOperation", f"The local cloud routes to instances only, not by {others[0]}."
            )
        if params.get("NetworkInterfaceId"):
            eni = params["NetworkInterfaceId"]
            no_interface = EC2Error(
                "InvalidNetworkInterfaceID.NotFound", f"The networkInterface ID '{eni}' does not exist"
            )
            owner = self.interface_owner(account, eni)
            if owner is None:
                raise no_interface
            try:
                [(record, name)] = await self.find(account, [owner])
            except EC2Error as exc:
                raise no_interface from exc  # no instance of the account's has that interface
            return {"InstanceId": record.instance_id, "NetworkInterfaceId": eni}
        [(record, name)] = await self.find(account, [params["InstanceId"]])
        if name in ("terminated", "shutting-down"):
            raise EC2Error(
                "InvalidInstanceID.NotFound", f"The instance ID '{record.instance_id}' does not exist"
            )
        return {"InstanceId": record.instance_id}

    async def create_route(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        dest = self._destination(account, params)
        target = await self._target(account, params)
        table = self.store.route_table(account)  # read after the awaits: nothing changes it meanwhile
        if any(r["DestinationCidrBlock"] == dest for r in table["Routes"]):
            raise EC2Error(
                "RouteAlreadyExists",
                f"The route identified by {dest} already exists.",
            )
        table["Routes"].append({"DestinationCidrBlock": dest, **target})
        self.store.save_route_table(account, table)
        await self.apply(account)
        return {"Return": True}

    async def replace_route(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        dest = self._destination(account, params)
        target = await self._target(account, params)
        table = self.store.route_table(account)
        index = self._index(account, table, dest)
        table["Routes"][index] = {"DestinationCidrBlock": dest, **target}
        self.store.save_route_table(account, table)
        await self.apply(account)
        return {}

    async def delete_route(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        dest = self._destination(account, params)
        table = self.store.route_table(account)
        del table["Routes"][self._index(account, table, dest)]
        self.store.save_route_table(account, table)
        await self.apply(account, removed=[dest])
        return {}

    def _index(self, account: str, table: dict[str, Any], dest: str) -> int:
        for i, route in enumerate(table["Routes"]):
            if route["DestinationCidrBlock"] == dest:
                return i
        raise EC2Error(
            "InvalidRoute.NotFound",
            f"no route with destination-cidr-block {dest} in route table {self.table_id(account)}",
        )

    # The routes in the instances -------------------------------------------------------

    async def apply(
        self, account: str, instance_ids: Iterable[str] | None = None, removed: Sequence[str] = ()
    ) -> None:
        """Put the account's routes in its running instances (or in ``instance_ids``), taking the
        ``removed`` destinations out.  Failures are logged: an instance may stop meanwhile."""
        turn = self._turns.setdefault(account, DeferredLock())
        await turn.acquire()
        try:
            await self._apply(account, instance_ids, removed)
        finally:
            turn.release()

    async def _apply(self, account: str, instance_ids: Iterable[str] | None, removed: Sequence[str]) -> None:
        records = {r.instance_id: r for r in self.store.instances(account)}
        routes = self.store.route_table(account)["Routes"]
        chosen = records.keys() if instance_ids is None else [i for i in instance_ids if i in records]
        work = []
        for iid in chosen:
            record = records[iid]
            if not is_running(record):
                continue
            cmds = commands(record, records, routes) + [(["ip", "route", "del", d], False) for d in removed]
            if cmds:
                work.append(deferToThread(self._run, iid, cmds))
        for ok, result in await DeferredList(work, consumeErrors=True):
            if not ok:
                log.warning("routes not applied: %s", cast(Failure, result).getErrorMessage())

    def _run(self, instance_id: str, cmds: list[Command]) -> None:
        pid = self.pid(instance_id)
        if pid <= 0:
            return  # stopped meanwhile: its routes come back when it starts
        for argv, check in cmds:
            netns.run(pid, argv, check=check)
