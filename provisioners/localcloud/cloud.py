"""The local cloud's EC2 operations, over podman containers and Redis records.

Each operation takes the caller's account id and the decoded input (member
names as in botocore's model) and returns the output dict.  Key pairs, security
groups and the read-only offerings (images, instance types, zones) live in
their own modules, and the containers' life in :mod:`machines`.  Everything
touching Redis or records runs on the reactor thread, so record updates never
race each other; podman runs in threads.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import redis
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from resilin.provisioners.localcloud import catalogue, filters, view
from resilin.provisioners.localcloud import wan as wan_module
from resilin.provisioners.localcloud.attributes import InstanceAttributes
from resilin.provisioners.localcloud.console import Consoles
from resilin.provisioners.localcloud.errors import EC2Error, invalid
from resilin.provisioners.localcloud.faults import Faults
from resilin.provisioners.localcloud.keypairs import KeyPairs
from resilin.provisioners.localcloud.machines import LABEL, Machines
from resilin.provisioners.localcloud.offerings import Offerings
from resilin.provisioners.localcloud.podman import Podman
from resilin.provisioners.localcloud.public_addresses import PublicAddresses, wants_public_address
from resilin.provisioners.localcloud.routetables import RouteTables
from resilin.provisioners.localcloud.secgroups import SecurityGroups
from resilin.provisioners.localcloud.store import (
    LAUNCHED,
    LAUNCHING,
    POWER_ON,
    STARTING,
    STOPPED,
    STOPPING,
    TERMINATED,
    TERMINATING,
    InstanceRecord,
    Store,
)
from resilin.provisioners.localcloud.tags import check_tags, tags_from_specs
from resilin.provisioners.localcloud.wan import Wan
from resilin.provisioners.localcloud.wan_faults import WanFaults
from resilin.settings.config import CloudConfig

log = logging.getLogger(__name__)

INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
USER_DATA_LIMIT = 16 * 1024  # bytes, as on EC2
CONSOLE_LIMIT = 1024 * 1024  # bytes of console output returned

Operation = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


def _pseudo_id(prefix: str, cloud_name: str) -> str:
    return f"{prefix}-" + hashlib.sha256(f"{prefix}:{cloud_name}".encode()).hexdigest()[:17]


class LocalCloud:
    def __init__(
        self,
        cloud: CloudConfig,
        redis_client: redis.Redis,
        images: Sequence[str],
        podman: Podman | None = None,
        max_instances: int | None = None,
        terminated_ttl: int = 3600,
        wan: Wan | None = None,
    ) -> None:
        self.cloud = cloud
        self.network = f"resilin-{cloud.name}"  # server.network_name(); kept here to avoid an import cycle
        self.images = {catalogue.image_id(ref): ref for ref in images}
        self.podman = podman or Podman()
        self.store = Store(redis_client, cloud.name, terminated_ttl)
        self.types = catalogue.offered(cloud.instance_types)
        self.offerings = Offerings(cloud.name, cloud.region, self.images, self.podman, self.types)
        self.key_pairs = KeyPairs(self.store)
        self.max_instances = max_instances or cloud.quota.instances or 64  # per account, as EC2's limit
        self.max_vcpus = cloud.quota.vcpus  # per account; None: no vCPU limit
        self.faults = Faults()
        # One pseudo-VPC and subnet per cloud, so that callers that name them get consistent answers.
        self.vpc_id, self.subnet_id = _pseudo_id("vpc", cloud.name), _pseudo_id("subnet", cloud.name)
        self.groups = SecurityGroups(self.store, self.vpc_id, self._rules_changed)
        self.groups.in_use = self._group_users
        self.machines = Machines(
            cloud.name,
            self.network,
            self.podman,
            self.store,
            self.groups,
            self.types,
            self.faults,
            self._background,
        )
        self._addresses: list[str] = []  # instance addresses of the subnet (the gateway excluded)
        self.public = PublicAddresses(
            cloud.name,
            wan,
            self.store,
            self.podman,
            self.machines.container_name,
            self._find,
            self.max_instances,
        )
        self.machines.attach_wan, self.machines.ended = self.public.attach_blocking, self.public.ended
        self.wan_faults = WanFaults(self.public, cloud.name)  # the admin API's rate limits and delays
        self.public.before_detach = self.wan_faults.undelay
        self.route_tables = RouteTables(
            self.store,
            cloud.subnet or "",
            self.vpc_id,
            lambda account: _pseudo_id("rtb", f"{cloud.name}:{account}"),
            self._find,
            self._pid,
        )
        # An instance's one interface is eni- and its digits (view.interface_id): the route's target.
        self.route_tables.interface_owner = lambda account, eni: (
            "i-" + eni.removeprefix("eni-") if eni.startswith("eni-") else None
        )
        self.attributes = InstanceAttributes(self.store, self._find, self._pid, self.route_tables)
        self.machines.on_up = self.attributes.instance_up
        self.consoles = Consoles(self.podman)
        self.operations: dict[str, Operation] = {
            "RunInstances": self.run_instances,
            "DescribeInstances": self.describe_instances,
            "TerminateInstances": self.terminate_instances,
            "StopInstances": self.stop_instances,
            "StartInstances": self.start_instances,
            "CreateTags": self.create_tags,
            "DeleteTags": self.delete_tags,
            "DescribeTags": self.describe_tags,
            "GetConsoleOutput": self.get_console_output,
            "ImportKeyPair": self.key_pairs.import_key_pair,
            "DescribeKeyPairs": self.key_pairs.describe_key_pairs,
            "DeleteKeyPair": self.key_pairs.delete_key_pair,
            "CreateSecurityGroup": self.groups.create_security_group,
            "DeleteSecurityGroup": self.groups.delete_security_group,
            "DescribeSecurityGroups": self.groups.describe_security_groups,
            "AuthorizeSecurityGroupIngress": self.groups.authorize_security_group_ingress,
            "RevokeSecurityGroupIngress": self.groups.revoke_security_group_ingress,
            "DescribeImages": self.offerings.describe_images,
            "DescribeInstanceTypes": self.offerings.describe_instance_types,
            "DescribeAvailabilityZones": self.offerings.describe_availability_zones,
            **self.public.operations,
            "ModifyInstanceAttribute": self.attributes.modify_instance_attribute,
            "DescribeInstanceAttribute": self.attributes.describe_instance_attribute,
            "DescribeRouteTables": self.route_tables.describe_route_tables,
            "CreateRoute": self.route_tables.create_route,
            "ReplaceRoute": self.route_tables.replace_route,
            "DeleteRoute": self.route_tables.delete_route,
        }
        self._pending: set[Deferred] = set()  # background launches and removals in flight

    # Lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Make sure the cloud's network exists and finish work a previous run left half done."""
        if not self.cloud.subnet:
            raise ValueError(f"cloud {self.cloud.name} has no subnet")
        await deferToThread(
            self.podman.ensure_network, self.network, self.cloud.subnet, {f"{LABEL}.cloud": self.cloud.name}
        )
        gateway = await deferToThread(self.podman.network_gateway, self.network)
        self.groups.host_address = gateway  # where Resilin reaches instances from (the default group's SSH)
        if self.public.wan:
            await deferToThread(
                wan_module.ensure, self.public.wan.network, self.public.wan.subnet, self.podman
            )
            await self.wan_faults.recover()  # delay lines a crashed run left: the WAN wired as it was
        subnet = ipaddress.IPv4Network(self.cloud.subnet)
        self._addresses = [str(a) for a in subnet.hosts() if str(a) != gateway]
        containers = {c.labels.get(f"{LABEL}.instance-id", ""): c for c in await self.machines.containers()}
        await self.machines.resume(self.store.all_instances(), containers)
        self.public.settle()
        await self.public.recover(containers.values())

    def _pid(self, instance_id: str) -> int:
        """The process holding the instance's namespaces; 0 when it runs nothing (blocking)."""
        return self.podman.pid(self.machines.container_name(instance_id))

    def gateway_ip(self) -> str:
        """The host's address on the cloud network: how instances reach services on the host (blocking)."""
        return self.podman.network_gateway(self.network)

    async def idle(self) -> None:
        """Wait for background launches and removals (for orderly shutdown and tests)."""
        while self._pending:
            await DeferredList(list(self._pending))

    def _background(self, coro: Coroutine[Any, Any, object]) -> None:
        d = Deferred.fromCoroutine(coro)
        self._pending.add(d)

        def done(result: object) -> None:
            self._pending.discard(d)
            if isinstance(result, Failure):
                log.error("local cloud background task failed: %s", result.getTraceback())
            return None

        d.addBoth(done)

    # Security groups meet instances ------------------------------------------------

    def _group_users(self, account: str, group_id: str) -> list[str]:
        return [
            r.instance_id
            for r in self.store.instances(account)
            if view.is_live(r) and group_id in r.security_groups
        ]

    def _rules_changed(self, account: str, group_id: str) -> None:
        self.machines.rules_changed(account, group_id)

    def _group_names(self, account: str) -> dict[str, str]:
        return {gid: g["GroupName"] for gid, g in self.store.groups(account).items()}

    # Instance views ---------------------------------------------------------------

    async def _view(self, account: str) -> list[tuple[InstanceRecord, str]]:
        """Every instance of ``account`` (oldest first) with its current EC2 state name."""
        # Records first, containers second: a launch marks its record LAUNCHED only once the
        # container exists, so a LAUNCHED record is always matched by the listing that follows.
        records = {r.instance_id: r for r in self.store.instances(account)}
        containers = {
            c.labels.get(f"{LABEL}.instance-id"): c
            for c in await self.machines.containers()
            if c.labels.get(f"{LABEL}.account") == account
        }
        for iid, listed in containers.items():
            if iid and iid not in records:
                adopted = self.machines.adopt(listed, self.images)
                if adopted:
                    records[iid] = adopted
        out = []
        for record in records.values():
            container = containers.get(record.instance_id)
            name = view.state_name(record, container)
            if name == "terminated" and record.phase != TERMINATED:
                # Launched, but its container is gone: it ended without us.
                record = self.store.get(record.instance_id) or record
                record.phase, record.terminated_at = TERMINATED, time.time()
                record.state_reason = "Server.InternalError: Instance container disappeared"
                self.store.save(record)
                self.machines.members_changed(account, record.security_groups)
                self._background(self.route_tables.apply(account))  # routes to it become blackholes
            elif name == "stopped" and record.power == POWER_ON:
                # Its processes ended without a StopInstances: it shut itself down.
                record = self.store.get(record.instance_id) or record
                record.power = STOPPED
                record.state_reason = "Client.InstanceInitiatedShutdown: Instance initiated shutdown"
                self.store.save(record)
            elif container is not None and name == "running" and not record.private_ip:
                # An adopted instance whose labels lack its address: look it up.
                ip = await deferToThread(self.podman.ip_address, container.id, self.network)
                record = self.store.get(record.instance_id) or record  # it may have changed meanwhile
                record.private_ip = ip
                self.store.save(record)
            out.append((record, name))
        out.sort(key=lambda rn: (rn[0].launch_time, rn[0].launch_index))
        return out

    async def _find(self, account: str, ids: Sequence[str]) -> list[tuple[InstanceRecord, str]]:
        """The named instances of ``account``; Malformed / NotFound errors as EC2 words them."""
        for iid in ids:
            if not INSTANCE_ID.match(iid):
                raise EC2Error("InvalidInstanceID.Malformed", f'Invalid id: "{iid}"')
        found = {r.instance_id: (r, n) for r, n in await self._view(account)}
        unknown = [iid for iid in ids if iid not in found]
        if len(unknown) == 1:
            raise EC2Error("InvalidInstanceID.NotFound", f"The instance ID '{unknown[0]}' does not exist")
        if unknown:
            raise EC2Error(
                "InvalidInstanceID.NotFound", f"The instance IDs '{', '.join(unknown)}' do not exist"
            )
        return [found[iid] for iid in dict.fromkeys(ids)]

    def _shape(
        self,
        record: InstanceRecord,
        name: str,
        group_names: dict[str, str],
        public: tuple[str, str] = ("", ""),
    ) -> dict[str, Any]:
        return view.instance(
            record,
            name,
            self.cloud.region,
            self.types.get(record.instance_type),
            group_names,
            (self.vpc_id, self.subnet_id),
            public,
        )

    # Room: quotas per account, and the cloud's capacity -------------------------------

    def _room(self, account: str, itype: catalogue.InstanceType, wanted: int, starting: bool = False) -> int:
        """How many more instances of ``itype`` may run (at least ``wanted``, else EC2's error saying why).

        The instance limit counts every instance that holds an address of the shared subnet and a
        container, stopped ones included: otherwise launching and stopping in a loop would take every
        address of the subnet.  Stopped instances being started already count there (``starting``);
        the vCPU limit and the capacity count only instances that run."""
        records = self.store.instances(account)
        mine = [r for r in records if view.is_powered(r)]
        room = wanted
        if not starting:
            room = self.max_instances - sum(1 for r in records if view.holds_address(r))
            if room < wanted:
                raise EC2Error(
                    "InstanceLimitExceeded",
                    f"You have requested more instances ({wanted}) than your current instance limit of "
                    f"{self.max_instances} allows.",
                )
        if self.max_vcpus is not None:
            used = sum(self.types[r.instance_type].vcpus for r in mine if r.instance_type in self.types)
            vcpu_room = (self.max_vcpus - used) // itype.vcpus
            if vcpu_room < wanted:
                raise EC2Error(
                    "VcpuLimitExceeded",
                    f"You have requested more vCPU capacity than your current vCPU limit of "
                    f"{self.max_vcpus} allows.",
                )
            room = min(room, vcpu_room)
        if self.faults.take_insufficient_capacity():
            raise self._no_capacity(itype.name)
        if self.faults.capacity is not None:
            everyone = [r for r in self.store.all_instances() if view.is_powered(r)]
            free = self.faults.capacity - len(everyone)
            if free < wanted:
                raise self._no_capacity(itype.name)
            room = min(room, free)
        return room

    def _no_capacity(self, type_name: str) -> EC2Error:
        return EC2Error(
            "InsufficientInstanceCapacity",
            f"We currently do not have sufficient {type_name} capacity in the Availability Zone you "
            f"requested ({self.cloud.region}a). Our system will be working on provisioning additional capacity.",
            500,
        )

    def _allocate_address(self, instance_id: str) -> str:
        """A free address of the subnet, taking turns so that a freed one is reused last."""
        for _ in range(len(self._addresses)):
            ip = self._addresses[self.store.ip_cursor() % len(self._addresses)]
            if self.store.claim_ip(ip, instance_id):
                return ip
        raise EC2Error(
            "InsufficientFreeAddressesInSubnet", f"The subnet {self.cloud.subnet} has no free addresses", 400
        )

    # RunInstances -----------------------------------------------------------------

    async def run_instances(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        token = params.get("ClientToken") or ""
        earlier = self.store.token_reservation(account, token) if token else None
        if earlier:  # a retry of a launch we already made: the same answer
            return self._reservation(account, earlier, await self._view(account))

        image_id = params.get("ImageId") or ""
        image = self.offerings.image(image_id)
        type_name = params.get("InstanceType") or "m1.small"
        itype = catalogue.instance_type(type_name, self.types)
        low, high = params["MinCount"], params["MaxCount"]
        if low < 1:
            raise invalid("MinCount", low, "Must be at least 1.")
        if high < low:
            raise invalid("MaxCount", high, "MaxCount must be greater than or equal to MinCount.")
        public_key = ""
        if params.get("KeyName"):
            pair = self.store.key_pairs(account).get(params["KeyName"])
            if pair is None:
                raise EC2Error(
                    "InvalidKeyPair.NotFound", f"The key pair '{params['KeyName']}' does not exist"
                )
            public_key = pair["PublicKey"]
        user_data = params.get("UserData") or ""
        try:
            if len(base64.b64decode(user_data, validate=True)) > USER_DATA_LIMIT:
                raise invalid("UserData", "...", "User data is limited to 16384 bytes.")
        except (binascii.Error, ValueError):
            raise invalid("UserData", "...", "Invalid BASE64 encoding of user data.") from None
        public = wants_public_address(params)
        interface = (params.get("NetworkInterfaces") or [{}])[0]  # groups and subnet may be given there
        subnet_id = params.get("SubnetId") or interface.get("SubnetId")
        if subnet_id and subnet_id != self.subnet_id:
            raise EC2Error("InvalidSubnetID.NotFound", f"The subnet ID '{subnet_id}' does not exist")
        tags = tags_from_specs(params.get("TagSpecifications") or [], "instance")
        groups = self.groups.resolve(
            account,
            params.get("SecurityGroupIds") or interface.get("Groups") or [],
            params.get("SecurityGroups") or [],
        )

        # Decided from Redis without awaiting, so two concurrent launches cannot both take the last room.
        count = min(high, self._room(account, itype, low))
        reservation_id = catalogue.new_id("r")
        if token:
            self.store.claim_token(account, token, reservation_id)
        now = round(time.time(), 3)  # milliseconds, as EC2 shows them and as the labels keep them
        records = []
        for index in range(count):
            instance_id = catalogue.new_id("i")
            records.append(
                InstanceRecord(
                    instance_id=instance_id,
                    account=account,
                    reservation_id=reservation_id,
                    image_id=image_id,
                    image=image,
                    instance_type=type_name,
                    launch_time=now,
                    launch_index=index,
                    key_name=params.get("KeyName") or "",
                    public_key=public_key,
                    user_data_b64=user_data,
                    client_token=token,
                    tags=tags,
                    private_ip=self._allocate_address(instance_id),
                    security_groups=groups,
                )
            )
        if public:
            try:
                for record in records:
                    self.public.assign_at_launch(account, record.instance_id)
            except EC2Error:
                for record in records:
                    self.public.ended(record)
                raise
        for record in records:
            self.store.save(record)
        # Running members of groups that admit these groups must now admit the new addresses too.
        self.machines.members_changed(account, groups)
        self._background(self.machines.launch(records))
        return self._reservation(account, reservation_id, [(r, "pending") for r in records])

    def _reservation(
        self, account: str, reservation_id: str, instances: Sequence[tuple[InstanceRecord, str]]
    ) -> dict[str, Any]:
        names, public = self._group_names(account), self.public.by_instance()
        return {
            "ReservationId": reservation_id,
            "OwnerId": account,
            "Groups": [],
            "Instances": [
                self._shape(
                    r, n, names, public[r.instance_id].shown() if r.instance_id in public else ("", "")
                )
                for r, n in instances
                if r.reservation_id == reservation_id
            ],
        }

    # DescribeInstances / TerminateInstances ------------------------------------------

    INSTANCE_FILTERS: filters.Getters = {
        "instance-state-name": lambda rn: [rn[1]],
        "instance-state-code": lambda rn: [str(view.STATE_CODES[rn[1]])],
        "instance-id": lambda rn: [rn[0].instance_id],
        "image-id": lambda rn: [rn[0].image_id],
        "instance-type": lambda rn: [rn[0].instance_type],
        "key-name": lambda rn: [rn[0].key_name],
        "reservation-id": lambda rn: [rn[0].reservation_id],
        "private-ip-address": lambda rn: [rn[0].private_ip] if rn[0].private_ip else [],
        "client-token": lambda rn: [rn[0].client_token],
        "instance.group-id": lambda rn: rn[0].security_groups,
        "source-dest-check": lambda rn: [str(rn[0].source_dest_check).lower()],
    }

    async def describe_instances(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("Filters") or []
        filters.check(wanted, self.INSTANCE_FILTERS, tags=lambda rn: rn[0].tags)
        ids = params.get("InstanceIds") or []
        instances = await self._find(account, ids) if ids else await self._view(account)
        instances = [
            rn
            for rn in instances
            if filters.matches(rn, wanted, self.INSTANCE_FILTERS, lambda rn: rn[0].tags)
        ]
        order: dict[str, None] = dict.fromkeys(r.reservation_id for r, _ in instances)
        return {"Reservations": [self._reservation(account, rid, instances) for rid in order]}

    async def terminate_instances(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        changes, doomed = [], []
        for found, name in await self._find(account, params["InstanceIds"]):
            record = self.store.get(found.instance_id) or found  # fresh: background work may have saved it
            current = "terminated" if name == "terminated" else "shutting-down"
            if record.phase in (LAUNCHING, LAUNCHED):
                record.phase, record.terminated_at = TERMINATING, time.time()
                record.state_reason = "Client.UserInitiatedShutdown: User initiated shutdown"
                self.store.save(record)
                self.machines.members_changed(account, record.security_groups)
                doomed.append(record.instance_id)
            changes.append(self._change(record.instance_id, name, current))
        if doomed:
            await self.wan_faults.undelay(*doomed)
            # If a container is still being created, its launch removes it once podman returns.
            self._background(self.machines.remove(*doomed))
            self._background(self.route_tables.apply(account))  # routes to them become blackholes
        return {"TerminatingInstances": changes}

    @staticmethod
    def _change(instance_id: str, previous: str, current: str) -> dict[str, Any]:
        return {
            "InstanceId": instance_id,
            "CurrentState": view.state(current),
            "PreviousState": view.state(previous),
        }

    # StopInstances / StartInstances -----------------------------------------------------

    async def stop_instances(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        found = await self._find(account, params["InstanceIds"])
        for record, name in found:
            if name not in ("running", "stopping", "stopped"):
                raise EC2Error(
                    "IncorrectInstanceState",
                    f"The instance '{record.instance_id}' is not in a state from which it can be stopped.",
                )
        changes = []
        for found_record, name in found:
            record = self.store.get(found_record.instance_id) or found_record
            current = name
            if name == "running":
                record.power, current = STOPPING, "stopping"
                record.state_reason = "Client.UserInitiatedShutdown: User initiated shutdown"
                self.store.save(record)
                await self.wan_faults.undelay(record.instance_id)
                self._background(self.machines.power_off(record.instance_id))
            changes.append(self._change(record.instance_id, name, current))
        return {"StoppingInstances": changes}

    async def start_instances(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        found = await self._find(account, params["InstanceIds"])
        for record, name in found:
            if name not in ("stopped", "pending", "running"):
                raise EC2Error(
                    "IncorrectInstanceState",
                    f"The instance '{record.instance_id}' is not in a state from which it can be started.",
                )
        stopped = [r for r, n in found if n == "stopped"]
        for type_name in {r.instance_type for r in stopped}:
            itype = catalogue.instance_type(type_name, self.types)
            self._room(account, itype, sum(1 for r in stopped if r.instance_type == type_name), starting=True)
        changes = []
        for found_record, name in found:
            record = self.store.get(found_record.instance_id) or found_record
            current = name
            if name == "stopped":
                record.power, record.state_reason, current = STARTING, "", "pending"
                self.store.save(record)
                self._background(self.machines.power_on(record.instance_id))
            changes.append(self._change(record.instance_id, name, current))
        return {"StartingInstances": changes}

    async def kill(self, account: str | None, instance_id: str) -> dict[str, Any]:
        """The admin API's kill: the instance's processes die at once, as on a failing host."""
        record = self.store.get(instance_id) if INSTANCE_ID.match(instance_id or "") else None
        if record is None or (account is not None and record.account != account):
            raise EC2Error(
                "InvalidInstanceID.NotFound", f"The instance ID '{instance_id}' does not exist", 404
            )
        if record.phase != LAUNCHED or record.power not in (POWER_ON, STARTING, STOPPING):
            raise EC2Error("IncorrectInstanceState", f"The instance '{instance_id}' is not running", 409)
        await self.wan_faults.undelay(instance_id)
        await self.machines.kill(record)
        return {"InstanceId": instance_id, "State": "stopped"}

    # Tags ------------------------------------------------------------------------------

    async def _taggable(self, account: str, ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """Instance ids and group ids among ``ids``, each checked to exist."""
        groups = [r for r in ids if r.startswith("sg-")]
        instances = [r for r in ids if not r.startswith("sg-")]
        for gid in groups:
            self.groups.get(account, gid)
        if instances:
            await self._find(account, instances)
        return instances, groups

    def _retag(
        self, account: str, instances: list[str], groups: list[str], change: Callable[[dict], None]
    ) -> None:
        for iid in instances:
            record = self.store.get(iid)
            if record is not None:
                change(record.tags)
                check_tags(record.tags)
                self.store.save(record)
        for gid in groups:
            group = self.groups.get(account, gid)
            change(group["Tags"])
            check_tags(group["Tags"])
            self.store.save_group(account, group)

    async def create_tags(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        tags = {t.get("Key", ""): t.get("Value", "") for t in params["Tags"]}
        check_tags(tags)
        instances, groups = await self._taggable(account, params["Resources"])
        self._retag(account, instances, groups, lambda have: have.update(tags))
        return {}

    async def delete_tags(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        instances, groups = await self._taggable(account, params["Resources"])
        asked = params.get("Tags") or []

        def remove(have: dict[str, str]) -> None:
            if not asked:
                have.clear()
            for tag in asked:
                # Without a value, the key goes whatever its value; with one, only if it matches.
                if tag.get("Key") in have and (tag.get("Value") is None or have[tag["Key"]] == tag["Value"]):
                    del have[tag["Key"]]

        self._retag(account, instances, groups, remove)
        return {}

    TAG_FILTERS: filters.Getters = {
        "key": lambda t: [t["Key"]],
        "value": lambda t: [t["Value"]],
        "resource-id": lambda t: [t["ResourceId"]],
        "resource-type": lambda t: [t["ResourceType"]],
    }

    async def describe_tags(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("Filters") or []
        filters.check(wanted, self.TAG_FILTERS, tags=None)
        found = []
        for record, name in await self._view(account):
            if name != "terminated":
                found += [
                    {"ResourceId": record.instance_id, "ResourceType": "instance", "Key": k, "Value": v}
                    for k, v in sorted(record.tags.items())
                ]
        for gid, group in sorted(self.groups.all(account).items()):
            found += [
                {"ResourceId": gid, "ResourceType": "security-group", "Key": k, "Value": v}
                for k, v in sorted(group["Tags"].items())
            ]
        return {"Tags": [t for t in found if filters.matches(t, wanted, self.TAG_FILTERS)]}

    # Console ---------------------------------------------------------------------------

    async def get_console_output(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        iid = params["InstanceId"]
        record = self.store.get(iid) if INSTANCE_ID.match(iid or "") else None
        if record is None or record.account != account:
            # Not in the records (or not this account's): the full lookup adopts or refuses it.
            [(record, _)] = await self._find(account, [iid])
        out: dict[str, Any] = {"InstanceId": record.instance_id, "Timestamp": dt.datetime.now(dt.UTC)}
        # Polled by callers waiting for host keys, so no container listing: the record says enough.
        if record.phase in (LAUNCHING, LAUNCHED):
            name = self.machines.container_name(record.instance_id)
            try:
                text = await deferToThread(self.consoles.read, name)
            except Exception:
                text = b""  # no container yet, or gone meanwhile
            if len(text) > CONSOLE_LIMIT:
                # Keep the boot (host keys are printed there) and the most recent output.
                head = CONSOLE_LIMIT // 8
                text = text[:head] + b"\n[...]\n" + text[-(CONSOLE_LIMIT - head) :]
            if text:
                out["Output"] = base64.b64encode(text).decode()
        return out
