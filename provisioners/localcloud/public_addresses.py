"""Public addresses on the WAN: Elastic IPs (Allocate/Associate/Disassociate/Release/DescribeAddresses)
and the public IP an instance is given at launch (``AssociatePublicIpAddress``).

An instance with a public address has a second interface on the installation's WAN network
(:mod:`wan`) with that address; it goes with the address (DisassociateAddress) or the container.
As on EC2, a public IP given at launch ends with its instance, while an Elastic IP stays allocated
to its account until released; associating an Elastic IP with an instance that has a public IP
from its launch replaces that one.  A public address is kept across Stop/StartInstances.

Addresses are unique across the installation's clouds through Redis, which they share: a hash per
WAN network (``localcloud-wan:<network>:ips``) maps each address to the cloud and allocation that
claimed it, taken with HSETNX.  Podman's IPAM cannot do it, as it only knows addresses that an
attached container holds, and an Elastic IP may be allocated for a long time before (or without)
being associated with any instance.  Each cloud keeps its allocations under its own prefix.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from twisted.internet.threads import deferToThread

from resilin.provisioners.localcloud import catalogue, filters
from resilin.provisioners.localcloud.errors import EC2Error, invalid, missing
from resilin.provisioners.localcloud.machines import LABEL
from resilin.provisioners.localcloud.podman import Container, Podman
from resilin.provisioners.localcloud.store import TERMINATED, InstanceRecord, Store
from resilin.provisioners.localcloud.tags import tag_list, tags_from_specs
from resilin.provisioners.localcloud.view import interface_id
from resilin.provisioners.localcloud.wan import Wan

log = logging.getLogger(__name__)

ALLOCATION_ID = re.compile(r"^eipalloc-[0-9a-f]{8,17}$")
ASSOCIATION_ID = re.compile(r"^eipassoc-[0-9a-f]{8,17}$")
# Finds instances of an account by id: (record, EC2 state name), NotFound errors as EC2 words them.
Finder = Callable[[str, Sequence[str]], Awaitable[list[tuple[InstanceRecord, str]]]]


@dataclass
class Address:
    allocation_id: str
    public_ip: str
    account: str
    instance_id: str = ""
    association_id: str = ""
    auto: bool = False  # given at launch: not an Elastic IP, released with its instance
    tags: dict[str, str] = field(default_factory=dict)

    def shown(self) -> tuple[str, str]:
        """The address and its owner, as an instance's interface shows them (EC2's IpOwnerId)."""
        return self.public_ip, "amazon" if self.auto else self.account


def wants_public_address(params: dict[str, Any]) -> bool:
    """Whether RunInstances asks for a public IP (its device-0 interface's AssociatePublicIpAddress)."""
    specs = params.get("NetworkInterfaces") or []
    for spec in specs:
        if spec.get("DeviceIndex", 0) != 0 or spec.get("NetworkInterfaceId"):
            raise EC2Error(
                "InvalidParameterValue",
                "The local cloud gives each instance one network interface (DeviceIndex 0)",
            )
    if len(specs) > 1:
        raise EC2Error("InvalidParameterValue", "Only one network interface may be specified")
    if specs and (params.get("SecurityGroupIds") or params.get("SecurityGroups") or params.get("SubnetId")):
        raise EC2Error(
            "InvalidParameterCombination",
            "Network interfaces and an instance-level security groups or subnet may not be specified on the same request",
        )
    return bool(specs and specs[0].get("AssociatePublicIpAddress"))


class PublicAddresses:
    """A cloud's public addresses: its records, the WAN-wide claims, and the WAN attachments."""

    def __init__(
        self,
        cloud_name: str,
        wan: Wan | None,
        store: Store,
        podman: Podman,
        container_name: Callable[[str], str],
        find: Finder,
        limit: int,
    ) -> None:
        self.cloud_name, self.wan = cloud_name, wan
        self.store, self.redis, self.podman = store, store.redis, podman
        self.container_name, self.find = container_name, find
        self.limit = limit  # Elastic IPs per account
        self._key = store.prefix + "addresses"
        wan_prefix = f"localcloud-wan:{wan.network}:" if wan else ""
        self._claims, self._cursor = wan_prefix + "ips", wan_prefix + "cursor"
        self.pool: list[str] = []
        # Set by the cloud: called before an instance leaves the WAN (its delay line goes first).
        self.before_detach: Callable[[str], Awaitable[None]] | None = None
        if wan:
            net = ipaddress.IPv4Network(wan.subnet)
            gateway = str(next(net.hosts()))  # the host's address on the WAN (wan.ensure's network)
            self.pool = [str(a) for a in net.hosts() if str(a) != gateway]
        self.operations = {
            "AllocateAddress": self.allocate_address,
            "AssociateAddress": self.associate_address,
            "DisassociateAddress": self.disassociate_address,
            "ReleaseAddress": self.release_address,
            "DescribeAddresses": self.describe_addresses,
        }

    # Records ----------------------------------------------------------------------------

    def _all(self) -> list[Address]:
        raw = cast(dict[str, str], self.redis.hgetall(self._key))
        return [Address(**json.loads(v)) for v in raw.values()]

    def _save(self, address: Address) -> None:
        self.redis.hset(self._key, address.allocation_id, json.dumps(asdict(address)))

    def _claim(self, allocation_id: str) -> str:
        """A free address of the WAN, claimed for this cloud's ``allocation_id``; taken in turns."""
        if not self.wan:
            raise EC2Error("UnsupportedOperation", "This local cloud has no WAN network for public addresses")
        owner = f"{self.cloud_name}/{allocation_id}"
        for _ in range(len(self.pool)):
            ip = self.pool[int(self.redis.incr(self._cursor)) % len(self.pool)]
            if self.redis.hsetnx(self._claims, ip, owner):
                return ip
        raise EC2Error("InsufficientAddressCapacity", "There are no free public addresses on the WAN")

    def _release(self, address: Address) -> None:
        self.redis.hdel(self._key, address.allocation_id)
        if self.redis.hget(self._claims, address.public_ip) == f"{self.cloud_name}/{address.allocation_id}":
            self.redis.hdel(self._claims, address.public_ip)

    def by_instance(self) -> dict[str, Address]:
        """Associated addresses by instance id."""
        return {a.instance_id: a for a in self._all() if a.instance_id}

    def _mine(self, account: str) -> list[Address]:
        return [a for a in self._all() if a.account == account and not a.auto]

    # The instances' side ----------------------------------------------------------------

    def assign_at_launch(self, account: str, instance_id: str) -> str:
        """A public IP for a launching instance, recorded before its container exists."""
        address = Address(catalogue.new_id("eipalloc"), "", account, instance_id, auto=True)
        address.public_ip = self._claim(address.allocation_id)
        self._save(address)
        return address.public_ip

    def attach_blocking(self, instance_id: str) -> None:
        """Connect a created container to the WAN with its instance's address, if it has one."""
        address = self.by_instance().get(instance_id)
        if address is not None and self.wan:
            self.podman.connect(self.wan.network, self.container_name(instance_id), address.public_ip)

    def ended(self, record: InstanceRecord) -> None:
        """The instance is gone: its launch address is released, an Elastic IP disassociated."""
        for address in self._all():
            if address.instance_id == record.instance_id:
                self._let_go(address)

    def _let_go(self, address: Address) -> None:
        if address.auto:
            self._release(address)
        else:
            address.instance_id, address.association_id = "", ""
            self._save(address)

    async def recover(self, containers: Iterable[Container]) -> None:
        """At start: a container on the WAN whose address Redis lost keeps it (claimed again, as an
        address given at launch), so that it is never given to another instance."""
        if not self.wan:
            return
        known = self.by_instance()
        for container in containers:
            instance_id = container.labels.get(f"{LABEL}.instance-id", "")
            if not instance_id or instance_id in known:
                continue
            ip = await deferToThread(self.podman.ip_address, container.id, self.wan.network)
            if not ip:
                continue
            address = Address(catalogue.new_id("eipalloc"), ip, container.labels.get(f"{LABEL}.account", ""))
            address.instance_id, address.auto = instance_id, True
            if not self.redis.hsetnx(self._claims, ip, f"{self.cloud_name}/{address.allocation_id}"):
                log.warning("%s: %s of %s is claimed by another instance", self.cloud_name, ip, instance_id)
                continue
            self._save(address)

    def settle(self) -> None:
        """Let go of the addresses of instances that ended without :meth:`ended` being told.

        An instance without a record is left alone: after a loss of Redis, records come back when
        the instances are next listed (adopted from their containers' labels)."""
        for address in self._all():
            if address.instance_id:
                record = self.store.get(address.instance_id)
                if record is not None and record.phase == TERMINATED:
                    self._let_go(address)

    async def wan_link(self, instance_id: str) -> tuple[int, str]:
        """The process holding a running instance's namespaces and its public address (admin API)."""
        record = self.store.get(instance_id) if re.match(r"^i-[0-9a-f]{8,17}$", instance_id) else None
        if record is None:
            raise EC2Error(
                "InvalidInstanceID.NotFound", f"The instance ID '{instance_id}' does not exist", 404
            )
        address = self.by_instance().get(instance_id)
        if address is None:
            raise EC2Error(
                "IncorrectInstanceState", f"The instance '{instance_id}' has no public address", 409
            )
        try:
            pid = await deferToThread(self.podman.pid, self.container_name(instance_id))
        except Exception:
            pid = 0
        if pid <= 0:
            raise EC2Error("IncorrectInstanceState", f"The instance '{instance_id}' is not running", 409)
        return pid, address.public_ip

    # Operations -------------------------------------------------------------------------

    def _get(self, account: str, allocation_id: str) -> Address:
        if not ALLOCATION_ID.match(allocation_id or ""):
            raise EC2Error(
                "InvalidAllocationID.Malformed", f'Invalid id: "{allocation_id}" (expecting "eipalloc-...")'
            )
        found = next((a for a in self._mine(account) if a.allocation_id == allocation_id), None)
        if found is None:
            raise EC2Error(
                "InvalidAllocationID.NotFound", f"The allocation ID '{allocation_id}' does not exist"
            )
        return found

    def _by_public_ip(self, account: str, public_ip: str) -> Address:
        found = next((a for a in self._mine(account) if a.public_ip == public_ip), None)
        if found is None:
            raise EC2Error("InvalidAddress.NotFound", f"Address '{public_ip}' not found.")
        return found

    async def allocate_address(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("Domain", "vpc") != "vpc":
            raise invalid("Domain", params["Domain"], "The local cloud has VPC addresses only.")
        if params.get("Address") or params.get("PublicIpv4Pool") or params.get("IpamPoolId"):
            raise EC2Error("InvalidParameterValue", "The local cloud allocates addresses from its WAN only")
        tags = tags_from_specs(params.get("TagSpecifications") or [], "elastic-ip")
        self.settle()
        if len(self._mine(account)) >= self.limit:
            raise EC2Error("AddressLimitExceeded", "The maximum number of addresses has been reached.")
        address = Address(catalogue.new_id("eipalloc"), "", account, tags=tags)
        address.public_ip = self._claim(address.allocation_id)
        self._save(address)
        return {"PublicIp": address.public_ip, "AllocationId": address.allocation_id, "Domain": "vpc"}

    async def associate_address(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("AllocationId"):
            address = self._get(account, params["AllocationId"])
        elif params.get("PublicIp"):
            address = self._by_public_ip(account, params["PublicIp"])
        else:
            raise missing("AllocationId")
        instance_id = params.get("InstanceId") or ""
        eni = params.get("NetworkInterfaceId") or ""
        if eni:
            if not re.match(r"^eni-[0-9a-f]{8,17}$", eni) or (
                instance_id and interface_id(instance_id) != eni
            ):
                raise EC2Error(
                    "InvalidNetworkInterfaceID.NotFound", f"The networkInterface ID '{eni}' does not exist"
                )
            instance_id = instance_id or "i-" + eni.removeprefix("eni-")
        if not instance_id:
            raise missing("InstanceId")
        try:
            [(record, state)] = await self.find(account, [instance_id])
        except EC2Error as exc:
            if eni and exc.code == "InvalidInstanceID.NotFound":
                raise EC2Error(
                    "InvalidNetworkInterfaceID.NotFound", f"The networkInterface ID '{eni}' does not exist"
                ) from None
            raise
        if state not in ("running", "stopped"):
            raise EC2Error(
                "IncorrectInstanceState",
                f"The instance '{instance_id}' is not in a valid state for this operation.",
            )
        self.settle()
        address = self._get(account, address.allocation_id)  # fresh
        if address.instance_id == instance_id:
            return {"AssociationId": address.association_id}
        if address.instance_id and not params.get("AllowReassociation"):
            raise EC2Error(
                "Resource.AlreadyAssociated",
                f"resource {address.allocation_id} is already associated with associate-id {address.association_id}",
            )
        # The address leaves its instance, and the instance's own address (if any) goes.
        if address.instance_id:
            await self._detach(address.instance_id)
        previous = self.by_instance().get(instance_id)
        if previous is not None:
            await self._detach(instance_id)
            self._let_go(previous)
        address.instance_id, address.association_id = instance_id, catalogue.new_id("eipassoc")
        self._save(address)
        try:
            await deferToThread(
                self.podman.connect,
                self.wan.network if self.wan else "",
                self.container_name(instance_id),
                address.public_ip,
            )
        except Exception:
            address.instance_id, address.association_id = "", ""
            self._save(address)
            raise
        log.info("%s: %s associated with %s", self.cloud_name, address.public_ip, instance_id)
        return {"AssociationId": address.association_id}

    async def _detach(self, instance_id: str) -> None:
        if self.before_detach is not None:
            await self.before_detach(instance_id)
        if self.wan:
            await deferToThread(self.podman.disconnect, self.wan.network, self.container_name(instance_id))

    async def disassociate_address(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        self.settle()
        association_id = params.get("AssociationId") or ""
        if association_id:
            if not ASSOCIATION_ID.match(association_id):
                raise EC2Error(
                    "InvalidAssociationID.Malformed",
                    f'Invalid id: "{association_id}" (expecting "eipassoc-...")',
                )
            address = next((a for a in self._mine(account) if a.association_id == association_id), None)
            if address is None:
                raise EC2Error(
                    "InvalidAssociationID.NotFound", f"The association ID '{association_id}' does not exist"
                )
        elif params.get("PublicIp"):
            address = self._by_public_ip(account, params["PublicIp"])
        else:
            raise missing("AssociationId")
        if address.instance_id:
            await self._detach(address.instance_id)
            self._let_go(address)
        return {}

    async def release_address(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        self.settle()
        if params.get("AllocationId"):
            address = self._get(account, params["AllocationId"])
        elif params.get("PublicIp"):
            address = self._by_public_ip(account, params["PublicIp"])
        else:
            raise missing("AllocationId")
        if address.instance_id:
            raise EC2Error("InvalidIPAddress.InUse", f"Address {address.public_ip} is in use.")
        self._release(address)
        return {}

    ADDRESS_FILTERS: filters.Getters = {
        "allocation-id": lambda a: [a.allocation_id],
        "association-id": lambda a: [a.association_id] if a.association_id else [],
        "domain": lambda a: ["vpc"],
        "instance-id": lambda a: [a.instance_id] if a.instance_id else [],
        "network-interface-id": lambda a: [interface_id(a.instance_id)] if a.instance_id else [],
        "public-ip": lambda a: [a.public_ip],
    }

    async def describe_addresses(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("Filters") or []
        filters.check(wanted, self.ADDRESS_FILTERS, tags=lambda a: a.tags)
        self.settle()
        mine = sorted(self._mine(account), key=lambda a: ipaddress.IPv4Address(a.public_ip))
        chosen = [self._get(account, aid) for aid in params.get("AllocationIds") or []]
        chosen += [self._by_public_ip(account, ip) for ip in params.get("PublicIps") or []]
        chosen = chosen or mine
        chosen = [a for a in chosen if filters.matches(a, wanted, self.ADDRESS_FILTERS, lambda a: a.tags)]
        private = {r.instance_id: r.private_ip for r in self.store.instances(account)}
        return {"Addresses": [self._shape(a, private.get(a.instance_id, "")) for a in chosen]}

    def _shape(self, address: Address, private_ip: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "PublicIp": address.public_ip,
            "AllocationId": address.allocation_id,
            "Domain": "vpc",
            "Tags": tag_list(address.tags),
        }
        if address.instance_id:
            out |= {
                "InstanceId": address.instance_id,
                "AssociationId": address.association_id,
                "NetworkInterfaceId": interface_id(address.instance_id),
                "NetworkInterfaceOwnerId": address.account,
                "PrivateIpAddress": private_ip,
            }
        return out
