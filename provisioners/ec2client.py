"""Provisioning through any EC2-compatible cloud, with boto3's EC2 client only.

This is all Resilin's orchestrator needs from a cloud: import a key pair, make a
security group, launch tagged instances, wait until they run, learn their SSH
host keys from the console (cloud-init's ``SSH HOST KEY KEYS`` block, so keys
are pinned rather than trusted on first use), find them again by tag, and
terminate them.  Throttling is retried with exponential backoff and jitter;
launches carry a ClientToken so that a retried RunInstances never starts
instances twice.  Capacity and quota errors are not retried here: they are
classified (:func:`error_code`, :data:`CAPACITY_ERRORS`, :data:`QUOTA_ERRORS`)
so that the caller can retry later, launch the rest, or go to another cloud.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from resilin.settings.config import CloudConfig

# Error codes worth retrying: throttling and the cloud being briefly unwell.
RETRYABLE = {
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "Unavailable",
    "InternalError",
}
# The cloud has no room for the instances right now: worth retrying later, or elsewhere.
CAPACITY_ERRORS = {
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientHostCapacity",
    "InsufficientAddressCapacity",
}
# The account may not run more: retrying soon will not help, another cloud might.
QUOTA_ERRORS = {"InstanceLimitExceeded", "VcpuLimitExceeded", "MaxSpotInstanceCountExceeded"}
# The cloud does not implement an operation (some EC2-compatible clouds lack security groups, say).
UNSUPPORTED_ERRORS = {"UnsupportedOperation", "InvalidAction", "NotImplemented"}
HOST_KEYS_BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
HOST_KEYS_END = "-----END SSH HOST KEY KEYS-----"
LIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]
# Waits between polls of instances' states or consoles: 50 ms, growing by a quarter each time.
# A local cloud's instances run, and leave, within half a second, where a poll lands at most
# ~0.1 s after the change; a slow cloud sees about 30 calls in its first minute.
FIRST_POLL = 0.05
POLL_GROWTH = 1.25


class ProvisioningError(Exception):
    """Something the cloud refused or never did; the message says what and for which instances."""


class InstanceFailed(ProvisioningError):
    def __init__(self, instance_id: str, state: str, reason: str) -> None:
        super().__init__(
            f"instance {instance_id} is {state} instead of running: {reason or 'no reason given'}"
        )
        self.instance_id = instance_id
        self.state = state
        self.reason = reason


class ProvisioningTimeout(ProvisioningError):
    pass


def error_code(exc: BaseException) -> str:
    """The EC2 error code of a ClientError ("" for anything else)."""
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code", "")
    return ""


def error_text(exc: BaseException) -> str:
    """``Code: message`` for a ClientError, else the exception's own text."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '')}: {error.get('Message', '')}".strip(": ")
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class StartOutcome:
    """What became of launched instances: those running, and those that died on the way."""

    running: list[InstanceInfo]
    failed: list[InstanceFailed]


@dataclass(frozen=True)
class InstanceInfo:
    id: str
    private_ip: str
    public_ip: str
    dns: str
    state: str

    @property
    def address(self) -> str:
        """Where to reach the instance from Resilin's host: its public address if it has one."""
        return self.public_ip or self.dns or self.private_ip


def parse_host_keys(console: str) -> list[str]:
    """``type base64`` lines from the last complete SSH HOST KEY KEYS block of a console log."""
    end = console.rfind(HOST_KEYS_END)
    if end < 0:
        return []
    begin = console.rfind(HOST_KEYS_BEGIN, 0, end)
    if begin < 0:
        return []
    keys = []
    for line in console[begin + len(HOST_KEYS_BEGIN) : end].splitlines():
        fields = line.strip().split()
        if len(fields) >= 2 and (fields[0].startswith("ssh-") or fields[0].startswith("ecdsa-")):
            keys.append(f"{fields[0]} {fields[1]}")
    return keys


class Backoff:
    """Exponential backoff with full jitter, capped."""

    def __init__(self, base: float = 0.5, cap: float = 10.0, rng: random.Random | None = None) -> None:
        self.base, self.cap, self.attempt = base, cap, 0
        self.rng = rng or random.Random()

    def next(self) -> float:
        delay = min(self.cap, self.base * 2**self.attempt)
        self.attempt += 1
        return self.rng.uniform(delay / 2, delay)


class EC2Client:
    def __init__(
        self,
        cloud: CloudConfig,
        *,
        client: Any = None,
        max_attempts: int = 8,
        poll_cap: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cloud = cloud
        self.max_attempts = max_attempts
        self.poll_cap = poll_cap
        self.sleep = sleep
        # A named profile, else the keys given, else boto3's own chain (environment, instance role).
        session = boto3.Session(profile_name=cloud.profile) if cloud.profile else boto3
        self.ec2 = client or session.client(
            "ec2",
            endpoint_url=cloud.endpoint or None,
            region_name=cloud.region,
            aws_access_key_id=cloud.access_key or None,
            aws_secret_access_key=cloud.secret_key or None,
            # Retries are ours (below), so that throttling gets a real backoff and is counted once.
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=60),
        )

    # Calls -------------------------------------------------------------------------

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        backoff = Backoff()
        for attempt in range(1, self.max_attempts + 1):
            try:
                return getattr(self.ec2, operation)(**params)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code not in RETRYABLE or attempt == self.max_attempts:
                    raise
            except (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError):
                if attempt == self.max_attempts:
                    raise
            self.sleep(backoff.next())
        raise AssertionError("unreachable")

    @staticmethod
    def _code(exc: ClientError) -> str:
        return exc.response.get("Error", {}).get("Code", "")

    # Key pairs -----------------------------------------------------------------------

    def import_key_pair(self, name: str, public_key: str, tags: dict[str, str] | None = None) -> str:
        """Import an OpenSSH public key; returns the cloud's fingerprint of it."""
        params: dict[str, Any] = {"KeyName": name, "PublicKeyMaterial": public_key.encode()}
        if tags:
            params["TagSpecifications"] = [{"ResourceType": "key-pair", "Tags": _tag_list(tags)}]
        result = self._call("import_key_pair", **params)
        return result.get("KeyFingerprint", "")

    def delete_key_pair(self, name: str) -> None:
        self._call("delete_key_pair", KeyName=name)

    def key_pair_names(self, prefix: str = "") -> list[str]:
        pairs = self._call("describe_key_pairs").get("KeyPairs", [])
        return sorted(k["KeyName"] for k in pairs if k.get("KeyName", "").startswith(prefix))

    # Security groups -------------------------------------------------------------------

    def _subnet(self, subnet_id: str) -> dict[str, Any]:
        try:
            subnets = self._call("describe_subnets", SubnetIds=[subnet_id])["Subnets"]
        except ClientError as exc:
            if self._code(exc).startswith("InvalidSubnetID"):
                raise ProvisioningError(f"subnet {subnet_id} not found in cloud {self.cloud.name}") from None
            raise
        return subnets[0]

    def vpc_of_subnet(self, subnet_id: str) -> str:
        return self._subnet(subnet_id)["VpcId"]

    def subnet_cidr(self, subnet_id: str) -> str:
        """The subnet's IPv4 range (its instances' private addresses)."""
        return self._subnet(subnet_id)["CidrBlock"]

    def create_security_group(
        self, name: str, description: str, tags: dict[str, str], vpc_id: str = ""
    ) -> str:
        params: dict[str, Any] = {
            "GroupName": name,
            "Description": description,
            "TagSpecifications": [{"ResourceType": "security-group", "Tags": _tag_list(tags)}],
        }
        if vpc_id:
            params["VpcId"] = vpc_id
        return self._call("create_security_group", **params)["GroupId"]

    def authorize_ingress(self, group_id: str, permissions: list[dict[str, Any]]) -> None:
        self._call("authorize_security_group_ingress", GroupId=group_id, IpPermissions=permissions)

    def delete_security_group(self, group_id: str, timeout: float = 120) -> None:
        """Delete a group, waiting while instances that used it finish terminating (DependencyViolation)."""
        deadline = time.monotonic() + timeout
        delay = 1.0
        while True:
            try:
                self._call("delete_security_group", GroupId=group_id)
                return
            except ClientError as exc:
                code = self._code(exc)
                if code in ("InvalidGroup.NotFound", "InvalidSecurityGroupID.NotFound"):
                    return
                if code != "DependencyViolation" or time.monotonic() + delay > deadline:
                    raise
            self.sleep(delay)
            delay = min(self.poll_cap, delay * 1.5)

    def security_groups_by_tag(self, tags: dict[str, str]) -> list[dict[str, Any]]:
        """Groups carrying every ``tags`` key=value (boto3 SecurityGroup dicts)."""
        filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
        return self._call("describe_security_groups", Filters=filters).get("SecurityGroups", [])

    def public_key(self, name: str) -> str | None:
        """The OpenSSH public key of key pair ``name``, or None when the cloud has no such key pair."""
        try:
            pairs = self._call("describe_key_pairs", KeyNames=[name], IncludePublicKey=True)["KeyPairs"]
        except ClientError as exc:
            if self._code(exc) == "InvalidKeyPair.NotFound":
                return None
            raise
        if not pairs:
            return None
        return (pairs[0].get("PublicKey") or "").strip() or None

    def revoke_ingress(self, group_id: str, permissions: list[dict[str, Any]]) -> None:
        self._call("revoke_security_group_ingress", GroupId=group_id, IpPermissions=permissions)

    # Addresses, forwarding and routes (the multi-cloud overlay) -------------------------

    def allocate_address(self, tags: dict[str, str] | None = None) -> tuple[str, str]:
        """A new public address for instances in a VPC: (allocation id, address)."""
        params: dict[str, Any] = {"Domain": "vpc"}
        if tags:
            params["TagSpecifications"] = [{"ResourceType": "elastic-ip", "Tags": _tag_list(tags)}]
        result = self._call("allocate_address", **params)
        return result["AllocationId"], result["PublicIp"]

    def associate_address(self, allocation_id: str, instance_id: str) -> str:
        """Give ``instance_id`` the address ``allocation_id``; returns the association id."""
        result = self._call("associate_address", AllocationId=allocation_id, InstanceId=instance_id)
        return result.get("AssociationId", "")

    def disassociate_address(self, association_id: str) -> None:
        self._call("disassociate_address", AssociationId=association_id)

    def release_address(self, allocation_id: str) -> None:
        self._call("release_address", AllocationId=allocation_id)

    def set_source_dest_check(self, instance_id: str, enabled: bool) -> None:
        """Whether the instance drops traffic not addressed to or from itself (off on a router)."""
        self._call("modify_instance_attribute", InstanceId=instance_id, SourceDestCheck={"Value": enabled})

    def main_route_table(self, vpc_id: str) -> str:
        """The id of the VPC's main route table (the cloud's only one when it names no VPC)."""
        filters = [{"Name": "association.main", "Values": ["true"]}]
        if vpc_id:
            filters.insert(0, {"Name": "vpc-id", "Values": [vpc_id]})
        tables = self._call("describe_route_tables", Filters=filters).get("RouteTables", [])
        if not tables:
            raise ProvisioningError(f"VPC {vpc_id or '?'} of cloud {self.cloud.name} has no main route table")
        return tables[0]["RouteTableId"]

    def create_route(self, table_id: str, destination: str, instance_id: str) -> None:
        self._call(
            "create_route", RouteTableId=table_id, DestinationCidrBlock=destination, InstanceId=instance_id
        )

    def replace_route(self, table_id: str, destination: str, instance_id: str) -> None:
        self._call(
            "replace_route", RouteTableId=table_id, DestinationCidrBlock=destination, InstanceId=instance_id
        )

    def delete_route(self, table_id: str, destination: str) -> None:
        self._call("delete_route", RouteTableId=table_id, DestinationCidrBlock=destination)

    # Images --------------------------------------------------------------------------

    def image_for(self, name_or_id: str) -> str:
        """The image id for an ``ami-`` id (checked to exist) or an image name (wildcards allowed; newest wins)."""
        try:
            if name_or_id.startswith("ami-"):
                images = self._call("describe_images", ImageIds=[name_or_id])["Images"]
            else:
                images = self._call("describe_images", Filters=[{"Name": "name", "Values": [name_or_id]}])[
                    "Images"
                ]
        except ClientError as exc:
            if self._code(exc).startswith("InvalidAMIID"):
                raise ProvisioningError(f"image {name_or_id} not found in cloud {self.cloud.name}") from None
            raise
        if not images:
            raise ProvisioningError(f"no image named {name_or_id} in cloud {self.cloud.name}")
        images.sort(key=lambda i: i.get("CreationDate") or "")
        return images[-1]["ImageId"]

    # Instances -----------------------------------------------------------------------

    def launch(
        self,
        image_id: str,
        instance_type: str,
        count: int,
        key_name: str,
        tags: dict[str, str],
        user_data: str = "",
        client_token: str | None = None,
        *,
        min_count: int | None = None,
        security_group_ids: Sequence[str] = (),
        subnet_id: str = "",
        public_address: bool | None = None,
    ) -> list[str]:
        """Start ``count`` instances, or as few as ``min_count`` (default: all or none); returns their ids.

        ``public_address`` True or False asks for a public IP or none (AssociatePublicIpAddress);
        None leaves it to the subnet's default."""
        params: dict[str, Any] = {
            "ImageId": image_id,
            "InstanceType": instance_type,
            "MinCount": min_count or count,
            "MaxCount": count,
            "ClientToken": client_token or uuid.uuid4().hex,  # one token for every retry of this launch
        }
        if key_name:
            params["KeyName"] = key_name
        if public_address is not None:
            # EC2 takes the groups and subnet on the interface once one is described.
            interface: dict[str, Any] = {"DeviceIndex": 0, "AssociatePublicIpAddress": public_address}
            if security_group_ids:
                interface["Groups"] = list(security_group_ids)
            if subnet_id:
                interface["SubnetId"] = subnet_id
            params["NetworkInterfaces"] = [interface]
        else:
            if security_group_ids:
                params["SecurityGroupIds"] = list(security_group_ids)
            if subnet_id:
                params["SubnetId"] = subnet_id
        if tags:
            params["TagSpecifications"] = [{"ResourceType": "instance", "Tags": _tag_list(tags)}]
        if user_data:
            params["UserData"] = user_data  # boto3 base64-encodes it
        reservation = self._call("run_instances", **params)
        return [i["InstanceId"] for i in reservation["Instances"]]

    def describe(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Instance id → boto3 Instance dict, for the ids the cloud knows."""
        out = {}
        paginator_params: dict[str, Any] = {"InstanceIds": list(ids)}
        while True:
            page = self._call("describe_instances", **paginator_params)
            for reservation in page.get("Reservations", []):
                for inst in reservation.get("Instances", []):
                    out[inst["InstanceId"]] = inst
            if not page.get("NextToken"):
                return out
            paginator_params["NextToken"] = page["NextToken"]

    def _describe_known(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Like :meth:`describe`, but ids the cloud does not know (yet, or any more) are just absent."""
        try:
            return self.describe(ids)
        except ClientError as exc:
            if self._code(exc) != "InvalidInstanceID.NotFound":
                raise
        out = {}
        for iid in ids:
            try:
                out.update(self.describe([iid]))
            except ClientError as exc:
                if self._code(exc) != "InvalidInstanceID.NotFound":
                    raise
        return out

    @staticmethod
    def _info(inst: dict[str, Any]) -> InstanceInfo:
        return InstanceInfo(
            id=inst["InstanceId"],
            private_ip=inst.get("PrivateIpAddress", ""),
            public_ip=inst.get("PublicIpAddress", ""),
            dns=inst.get("PublicDnsName") or inst.get("PrivateDnsName") or "",
            state=inst["State"]["Name"],
        )

    def _poll_delays(self) -> Iterator[float]:
        delay = FIRST_POLL
        while True:
            yield delay
            delay = min(self.poll_cap, delay * POLL_GROWTH)

    def _poll(
        self, ids: Sequence[str], timeout: float, done: Callable[[dict[str, dict]], bool], what: str
    ) -> dict:
        deadline = time.monotonic() + timeout
        delays = self._poll_delays()
        while True:
            # Right after RunInstances, EC2 may not know the ids yet (eventual consistency).
            found = self._describe_known(ids)
            if done(found):
                return found
            delay = next(delays)
            if time.monotonic() + delay > deadline:
                states = {i: found[i]["State"]["Name"] if i in found else "unknown" for i in ids}
                raise ProvisioningTimeout(f"instances not {what} after {timeout:.0f}s: {states}")
            self.sleep(delay)

    def wait_started(self, ids: Sequence[str], timeout: float = 600) -> StartOutcome:
        """Wait until every instance either runs with an address or has died (stopped, terminated)."""
        failed: dict[str, InstanceFailed] = {}

        def done(found: dict[str, dict]) -> bool:
            settled = True
            for iid in ids:
                inst = found.get(iid)
                if inst is None:
                    settled = False
                    continue
                state = inst["State"]["Name"]
                if state in ("terminated", "shutting-down", "stopping", "stopped"):
                    reason = (inst.get("StateReason") or {}).get("Message") or inst.get(
                        "StateTransitionReason", ""
                    )
                    failed[iid] = InstanceFailed(iid, state, reason)
                elif state != "running" or not (inst.get("PrivateIpAddress") or inst.get("PublicIpAddress")):
                    settled = False
            return settled

        found = self._poll(ids, timeout, done, "running")
        running = [self._info(found[iid]) for iid in ids if iid not in failed]
        return StartOutcome(running, [failed[iid] for iid in ids if iid in failed])

    def wait_running(self, ids: Sequence[str], timeout: float = 600) -> list[InstanceInfo]:
        """Wait until every instance runs with an address; an instance that ends up stopped or
        terminated raises :class:`InstanceFailed`.  Returns infos in the order of ``ids``."""

        def done(found: dict[str, dict]) -> bool:
            for iid in ids:
                inst = found.get(iid)
                if inst is None:
                    return False
                state = inst["State"]["Name"]
                if state in ("terminated", "shutting-down", "stopping", "stopped"):
                    reason = (inst.get("StateReason") or {}).get("Message") or inst.get(
                        "StateTransitionReason", ""
                    )
                    raise InstanceFailed(iid, state, reason)
                if state != "running" or not (inst.get("PrivateIpAddress") or inst.get("PublicIpAddress")):
                    return False
            return True

        found = self._poll(ids, timeout, done, "running")
        return [self._info(found[iid]) for iid in ids]

    def host_keys(self, instance_id: str, timeout: float = 300) -> list[str]:
        """The instance's SSH host public keys (``type base64``), as it printed them on its console."""
        deadline = time.monotonic() + timeout
        delays = self._poll_delays()
        while True:
            # boto3 has already base64-decoded the console text.
            text = self._call("get_console_output", InstanceId=instance_id, Latest=True).get("Output") or ""
            keys = parse_host_keys(text)
            if keys:
                return keys
            delay = next(delays)
            if time.monotonic() + delay > deadline:
                raise ProvisioningTimeout(
                    f"instance {instance_id} printed no SSH host keys on its console within {timeout:.0f}s"
                )
            self.sleep(delay)

    def terminate(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if not ids:
            return
        try:
            self._call("terminate_instances", InstanceIds=ids)
        except ClientError as exc:
            if self._code(exc) != "InvalidInstanceID.NotFound":
                raise
            # Some are long gone; terminate the rest one by one.
            for iid in ids:
                try:
                    self._call("terminate_instances", InstanceIds=[iid])
                except ClientError as one:
                    if self._code(one) != "InvalidInstanceID.NotFound":
                        raise

    def wait_terminated(self, ids: Sequence[str], timeout: float = 300) -> None:
        """Wait until every instance is terminated (or forgotten by the cloud)."""
        ids = list(ids)
        if not ids:
            return

        def done(found: dict[str, dict]) -> bool:
            # An instance the cloud has forgotten is as terminated as it gets.
            return all(iid not in found or found[iid]["State"]["Name"] == "terminated" for iid in ids)

        self._poll(ids, timeout, done, "terminated")

    def create_tags(self, ids: Sequence[str], tags: dict[str, str]) -> None:
        """Add or overwrite ``tags`` on the resources ``ids``."""
        self._call("create_tags", Resources=list(ids), Tags=_tag_list(tags))

    def delete_tags(self, ids: Sequence[str], keys: Sequence[str]) -> None:
        """Remove the tags named ``keys`` (whatever their values) from the resources ``ids``."""
        self._call("delete_tags", Resources=list(ids), Tags=[{"Key": k} for k in keys])

    def find_by_tag(self, key: str, value: str, states: Sequence[str] = LIVE_STATES) -> list[InstanceInfo]:
        """Instances carrying tag ``key=value`` (not yet terminated, unless ``states`` says otherwise)."""
        return [self._info(i) for i in self.find_tagged({key: value}, states)]

    def find_tagged(self, tags: dict[str, str], states: Sequence[str] = LIVE_STATES) -> list[dict[str, Any]]:
        """boto3 Instance dicts carrying every ``tags`` key=value (a value of "*" matches any)."""
        params: dict[str, Any] = {
            "Filters": [
                *({"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()),
                {"Name": "instance-state-name", "Values": list(states)},
            ]
        }
        out = []
        while True:
            page = self._call("describe_instances", **params)
            for reservation in page.get("Reservations", []):
                out.extend(reservation.get("Instances", []))
            if not page.get("NextToken"):
                return out
            params["NextToken"] = page["NextToken"]


def tags_of(resource: dict[str, Any]) -> dict[str, str]:
    """A boto3 resource's ``Tags`` list as a dict."""
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]
