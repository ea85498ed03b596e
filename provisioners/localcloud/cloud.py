"""The local cloud's EC2 operations, over podman containers and Redis records.

Each operation takes the caller's account id and the decoded input (member
names as in botocore's model) and returns the output dict.  Podman calls run in
threads; everything touching Redis or records runs on the reactor thread, so
record updates never race each other.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from resilin.config import CloudConfig
from resilin.provisioners.localcloud import catalogue, filters, view
from resilin.provisioners.localcloud.errors import EC2Error, invalid, missing
from resilin.provisioners.localcloud.keys import parse_public_key
from resilin.provisioners.localcloud.podman import Container, Podman
from resilin.provisioners.localcloud.store import (
    LAUNCHED,
    LAUNCHING,
    TERMINATED,
    TERMINATING,
    InstanceRecord,
    Store,
)

log = logging.getLogger(__name__)

INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
IMAGE_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")
USER_DATA_LIMIT = 16 * 1024  # bytes, as on EC2
CONSOLE_LIMIT = 1024 * 1024  # bytes of console output returned
IMAGE_OWNER = "000000000000"  # the local cloud's own images, visible to every account

Operation = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]

LABEL = "resilin"  # prefix of every label the local cloud puts on a container


class LocalCloud:
    def __init__(
        self,
        cloud: CloudConfig,
        redis_client: redis.Redis,
        images: Sequence[str],
        podman: Podman | None = None,
        max_instances: int = 64,
        terminated_ttl: int = 3600,
    ) -> None:
        self.cloud = cloud
        self.network = f"resilin-{cloud.name}"  # server.network_name(); kept here to avoid an import cycle
        self.images = {catalogue.image_id(ref): ref for ref in images}
        self.podman = podman or Podman()
        self.store = Store(redis_client, cloud.name, terminated_ttl)
        self.max_instances = max_instances
        self.operations: dict[str, Operation] = {
            "RunInstances": self.run_instances,
            "DescribeInstances": self.describe_instances,
            "TerminateInstances": self.terminate_instances,
            "CreateTags": self.create_tags,
            "GetConsoleOutput": self.get_console_output,
            "ImportKeyPair": self.import_key_pair,
            "DescribeKeyPairs": self.describe_key_pairs,
            "DeleteKeyPair": self.delete_key_pair,
            "DescribeImages": self.describe_images,
            "DescribeInstanceTypes": self.describe_instance_types,
            "DescribeAvailabilityZones": self.describe_availability_zones,
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
        containers = {c.labels.get(f"{LABEL}.instance-id"): c for c in await self._containers()}
        for record in self.store.all_instances():
            if record.phase == LAUNCHING and record.instance_id not in containers:
                self._background(self._launch(record))
            elif record.phase == TERMINATING:
                self._background(self._remove(record.instance_id))

    def gateway_ip(self) -> str:
        """The host's address on the cloud network: how instances reach services on the host (blocking)."""
        return self.podman.network_gateway(self.network)

    async def idle(self) -> None:
        """Wait for background launches and removals (for orderly shutdown and tests)."""
        while self._pending:
            await DeferredList(list(self._pending))

    def _background(self, coro) -> None:
        d = Deferred.fromCoroutine(coro)
        self._pending.add(d)

        def done(result):
            self._pending.discard(d)
            if isinstance(result, Failure):
                log.error("local cloud background task failed: %s", result.getTraceback())
            return None

        d.addBoth(done)

    # Containers ------------------------------------------------------------------

    def _container_name(self, instance_id: str) -> str:
        return f"resilin-{self.cloud.name}-{instance_id}"

    async def _containers(self) -> list[Container]:
        return await deferToThread(self.podman.list, {f"{LABEL}.cloud": self.cloud.name})

    def _labels(self, record: InstanceRecord) -> dict[str, str]:
        labels = {
            f"{LABEL}.cloud": self.cloud.name,
            f"{LABEL}.account": record.account,
            f"{LABEL}.instance-id": record.instance_id,
            f"{LABEL}.reservation-id": record.reservation_id,
            f"{LABEL}.image-id": record.image_id,
            f"{LABEL}.instance-type": record.instance_type,
            f"{LABEL}.key-name": record.key_name,
            f"{LABEL}.launch-index": str(record.launch_index),
            f"{LABEL}.launch-time": f"{record.launch_time:.3f}",
        }
        # Tags at launch, for finding containers by hand; Redis has the current ones.
        for key, value in record.tags.items():
            if "=" not in key:
                labels[f"{LABEL}.tag.{key}"] = value
        return labels

    def _adopt(self, container: Container) -> InstanceRecord | None:
        """Rebuild a record from a container's labels (Redis lost its copy)."""
        labels = container.labels
        try:
            record = InstanceRecord(
                instance_id=labels[f"{LABEL}.instance-id"],
                account=labels[f"{LABEL}.account"],
                reservation_id=labels[f"{LABEL}.reservation-id"],
                image_id=labels[f"{LABEL}.image-id"],
                image=self.images.get(labels[f"{LABEL}.image-id"], ""),
                instance_type=labels[f"{LABEL}.instance-type"],
                launch_time=float(labels[f"{LABEL}.launch-time"]),
                launch_index=int(labels.get(f"{LABEL}.launch-index", "0")),
                key_name=labels.get(f"{LABEL}.key-name", ""),
                tags={
                    k[len(f"{LABEL}.tag.") :]: v for k, v in labels.items() if k.startswith(f"{LABEL}.tag.")
                },
                phase=LAUNCHED,
            )
        except (KeyError, ValueError):
            return None
        self.store.save(record)
        return record

    async def _launch(self, record: InstanceRecord) -> None:
        env = {"RESILIN_SSH_PUBKEY": record.public_key, "RESILIN_USER_DATA_B64": record.user_data_b64}
        itype = catalogue.INSTANCE_TYPES[record.instance_type]
        try:
            await deferToThread(
                self.podman.run,
                name=self._container_name(record.instance_id),
                image=record.image,
                hostname=record.instance_id,
                network=self.network,
                labels=self._labels(record),
                env=env,
                extra=itype.container_limits(),
            )
            ip = await deferToThread(
                self.podman.ip_address, self._container_name(record.instance_id), self.network
            )
        except Exception as exc:
            log.error("launch of %s failed: %s", record.instance_id, exc)
            try:
                await deferToThread(self.podman.remove, [self._container_name(record.instance_id)])
            except Exception as cleanup:
                log.error("cleanup of %s failed: %s", record.instance_id, cleanup)
            current = self.store.get(record.instance_id) or record
            current.phase, current.terminated_at = TERMINATED, time.time()
            cause = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
            current.state_reason = f"Server.InternalError: Internal error on launch ({cause})"
            self.store.save(current)
            return
        current = self.store.get(record.instance_id) or record
        if current.phase in (TERMINATING, TERMINATED):
            # Terminated while it was being created: finish the job now the container exists.
            await self._remove(record.instance_id)
            return
        current.phase, current.private_ip = LAUNCHED, ip
        self.store.save(current)

    async def _remove(self, instance_id: str) -> None:
        await deferToThread(self.podman.remove, [self._container_name(instance_id)])
        record = self.store.get(instance_id)
        if record is not None:
            record.phase = TERMINATED
            record.terminated_at = record.terminated_at or time.time()
            self.store.save(record)

    # Instance views ---------------------------------------------------------------

    async def _view(self, account: str) -> list[tuple[InstanceRecord, str]]:
        """Every instance of ``account`` (oldest first) with its current EC2 state name."""
        containers = {
            c.labels.get(f"{LABEL}.instance-id"): c
            for c in await self._containers()
            if c.labels.get(f"{LABEL}.account") == account
        }
        records = {r.instance_id: r for r in self.store.instances(account)}
        for iid, container in containers.items():
            if iid and iid not in records:
                adopted = self._adopt(container)
                if adopted:
                    records[iid] = adopted
        out = []
        for record in records.values():
            container = containers.get(record.instance_id)
            name = view.state_name(record, container)
            if name == "terminated" and record.phase != TERMINATED:
                # Launched, but its container is gone: it ended without us.
                record.phase, record.terminated_at = TERMINATED, time.time()
                record.state_reason = "Server.InternalError: Instance container disappeared"
                self.store.save(record)
            elif container is not None and name == "running" and not record.private_ip:
                # Running before _launch has recorded the address (or a restart cut it short): look it up.
                ip = await deferToThread(self.podman.ip_address, container.id, self.network)
                record = self.store.get(record.instance_id) or record  # it may have changed meanwhile
                record.private_ip = ip
                if record.phase == LAUNCHING:
                    record.phase = LAUNCHED
                self.store.save(record)
                name = view.state_name(record, container)
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

    # RunInstances -----------------------------------------------------------------

    def _image(self, params: dict[str, Any]) -> tuple[str, str]:
        image_id = params.get("ImageId")
        if not image_id:
            raise missing("ImageId")
        if not IMAGE_ID.match(image_id):
            raise EC2Error("InvalidAMIID.Malformed", f'Invalid id: "{image_id}" (expecting "ami-...")')
        if image_id not in self.images:
            raise EC2Error("InvalidAMIID.NotFound", f"The image id '[{image_id}]' does not exist")
        return image_id, self.images[image_id]

    @staticmethod
    def _tags(specs: list[dict[str, Any]], resource_type: str) -> dict[str, str]:
        tags: dict[str, str] = {}
        for spec in specs:
            if spec.get("ResourceType") != resource_type:
                continue
            for tag in spec.get("Tags") or []:
                tags[tag.get("Key", "")] = tag.get("Value", "")
        _check_tags(tags)
        return tags

    async def run_instances(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        image_id, image = self._image(params)
        type_name = params.get("InstanceType") or "m1.small"
        catalogue.instance_type(type_name)
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
        tags = self._tags(params.get("TagSpecifications") or [], "instance")

        # Counted from Redis without awaiting, so two concurrent launches cannot both take the last room.
        live = [r for r in self.store.instances(account) if view.is_live(r)]
        room = self.max_instances - len(live)
        if room < low:
            raise EC2Error(
                "InstanceLimitExceeded",
                f"You have requested more instances ({low}) than your current instance limit of "
                f"{self.max_instances} allows.",
            )

        reservation_id = catalogue.new_id("r")
        token = params.get("ClientToken") or ""
        if token:
            earlier = self.store.claim_token(account, token, reservation_id)
            if earlier != reservation_id:  # a retry of a launch we already made: same answer
                return self._reservation(account, earlier, await self._view(account))

        now = round(time.time(), 3)  # milliseconds, as EC2 shows them and as the labels keep them
        records = [
            InstanceRecord(
                instance_id=catalogue.new_id("i"),
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
            )
            for index in range(min(high, room))
        ]
        for record in records:
            self.store.save(record)
            self._background(self._launch(record))
        return self._reservation(account, reservation_id, [(r, "pending") for r in records])

    def _reservation(self, account: str, reservation_id: str, instances) -> dict[str, Any]:
        return {
            "ReservationId": reservation_id,
            "OwnerId": account,
            "Groups": [],
            "Instances": [
                view.instance(r, n, self.cloud.region)
                for r, n in instances
                if r.reservation_id == reservation_id
            ],
        }

    # DescribeInstances / TerminateInstances / CreateTags ------------------------------

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
        changes = []
        for found, name in await self._find(account, params["InstanceIds"]):
            record = self.store.get(found.instance_id) or found  # fresh: background work may have saved it
            current = "terminated" if name == "terminated" else "shutting-down"
            if record.phase in (LAUNCHING, LAUNCHED):
                record.phase, record.terminated_at = TERMINATING, time.time()
                record.state_reason = "Client.UserInitiatedShutdown: User initiated shutdown"
                self.store.save(record)
                # If the container is still being created, _launch removes it once podman returns.
                self._background(self._remove(record.instance_id))
            changes.append(
                {
                    "InstanceId": record.instance_id,
                    "CurrentState": view.state(current),
                    "PreviousState": view.state(name),
                }
            )
        return {"TerminatingInstances": changes}

    async def create_tags(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        tags = {t.get("Key", ""): t.get("Value", "") for t in params["Tags"]}
        _check_tags(tags)
        ids = params["Resources"]
        for found, _ in await self._find(account, ids):
            record = self.store.get(found.instance_id) or found
            record.tags.update(tags)
            _check_tags(record.tags)
            self.store.save(record)
        return {}

    async def get_console_output(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        [(record, name)] = await self._find(account, [params["InstanceId"]])
        out: dict[str, Any] = {"InstanceId": record.instance_id, "Timestamp": dt.datetime.now(dt.UTC)}
        if name != "terminated":
            try:
                text = await deferToThread(self.podman.logs, self._container_name(record.instance_id))
            except Exception:
                text = b""  # the container went away between the listing and now
            if len(text) > CONSOLE_LIMIT:
                # Keep the boot (host keys are printed there) and the most recent output.
                head = CONSOLE_LIMIT // 8
                text = text[:head] + b"\n[...]\n" + text[-(CONSOLE_LIMIT - head) :]
            if text:
                out["Output"] = base64.b64encode(text).decode()
        return out

    # Key pairs ------------------------------------------------------------------------

    async def import_key_pair(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        name = params["KeyName"]
        if not name or len(name) > 255:
            raise invalid("KeyName", name, "Key names must be 1 to 255 characters.")
        text, key_type, fingerprint = parse_public_key(params["PublicKeyMaterial"])
        tags = self._tags(params.get("TagSpecifications") or [], "key-pair")
        info = {
            "KeyPairId": catalogue.new_id("key"),
            "KeyName": name,
            "KeyFingerprint": fingerprint,
            "KeyType": key_type,
            "PublicKey": text,
            "CreateTime": time.time(),
            "Tags": tags,
        }
        if not self.store.add_key_pair(account, name, info):
            raise EC2Error("InvalidKeyPair.Duplicate", f"The keypair '{name}' already exists.")
        return {
            "KeyFingerprint": fingerprint,
            "KeyName": name,
            "KeyPairId": info["KeyPairId"],
            "Tags": _tag_list(tags),
        }

    KEY_FILTERS: filters.Getters = {
        "key-name": lambda k: [k["KeyName"]],
        "key-pair-id": lambda k: [k["KeyPairId"]],
        "fingerprint": lambda k: [k["KeyFingerprint"]],
        "key-type": lambda k: [k["KeyType"]],
    }

    async def describe_key_pairs(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("Filters") or []
        filters.check(wanted, self.KEY_FILTERS, tags=lambda k: k.get("Tags") or {})
        pairs = sorted(self.store.key_pairs(account).values(), key=lambda k: k["KeyName"])
        for field, selector, what in (
            ("KeyNames", "KeyName", "key pair"),
            ("KeyPairIds", "KeyPairId", "key pair ID"),
        ):
            asked = params.get(field) or []
            if asked:
                have = {k[selector] for k in pairs}
                unknown = [a for a in asked if a not in have]
                if unknown:
                    raise EC2Error("InvalidKeyPair.NotFound", f"The {what} '{unknown[0]}' does not exist")
                pairs = [k for k in pairs if k[selector] in asked]
        pairs = [
            k for k in pairs if filters.matches(k, wanted, self.KEY_FILTERS, lambda k: k.get("Tags") or {})
        ]
        return {
            "KeyPairs": [
                {
                    "KeyPairId": k["KeyPairId"],
                    "KeyName": k["KeyName"],
                    "KeyFingerprint": k["KeyFingerprint"],
                    "KeyType": k["KeyType"],
                    "CreateTime": dt.datetime.fromtimestamp(k["CreateTime"], dt.UTC),
                    "Tags": _tag_list(k.get("Tags") or {}),
                    "PublicKey": k["PublicKey"] if params.get("IncludePublicKey") else None,
                }
                for k in pairs
            ]
        }

    async def delete_key_pair(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        pairs = self.store.key_pairs(account)
        name = params.get("KeyName")
        if not name and params.get("KeyPairId"):
            name = next((n for n, k in pairs.items() if k["KeyPairId"] == params["KeyPairId"]), None)
            if name is None:
                raise EC2Error(
                    "InvalidKeyPair.NotFound", f"The key pair ID '{params['KeyPairId']}' does not exist"
                )
        if not name:
            raise missing("KeyName")
        # As on EC2, deleting a key pair that does not exist succeeds.
        pair = pairs.get(name)
        self.store.delete_key_pair(account, name)
        return {"Return": True, "KeyPairId": pair["KeyPairId"] if pair else None}

    # Images, instance types, zones -------------------------------------------------------

    IMAGE_FILTERS: filters.Getters = {
        "image-id": lambda i: [i["ImageId"]],
        "name": lambda i: [i["Name"]],
        "state": lambda i: [i["State"]],
        "architecture": lambda i: [i["Architecture"]],
        "image-type": lambda i: [i["ImageType"]],
        "is-public": lambda i: ["true"],
    }

    async def describe_images(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("Filters") or []
        filters.check(wanted, self.IMAGE_FILTERS, tags=None)
        asked = params.get("ImageIds") or []
        for image_id in asked:
            if not IMAGE_ID.match(image_id):
                raise EC2Error("InvalidAMIID.Malformed", f'Invalid id: "{image_id}" (expecting "ami-...")')
            if image_id not in self.images:
                raise EC2Error("InvalidAMIID.NotFound", f"The image id '[{image_id}]' does not exist")
        images = []
        for image_id, ref in self.images.items():
            if asked and image_id not in asked:
                continue
            available = await deferToThread(self.podman.image_exists, ref)
            images.append(
                {
                    "ImageId": image_id,
                    "Name": ref,
                    "ImageLocation": ref,
                    "Description": "Resilin node image (container)",
                    "State": "available" if available else "pending",
                    "OwnerId": IMAGE_OWNER,
                    "Public": True,
                    "Architecture": "x86_64",
                    "ImageType": "machine",
                    "RootDeviceType": "ebs",
                    "RootDeviceName": "/dev/xvda",
                    "VirtualizationType": "hvm",
                    "Hypervisor": "xen",
                    "PlatformDetails": "Linux/UNIX",
                }
            )
        return {"Images": [i for i in images if filters.matches(i, wanted, self.IMAGE_FILTERS)]}

    async def describe_instance_types(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        asked = params.get("InstanceTypes") or []
        for name in asked:
            if name not in catalogue.INSTANCE_TYPES:
                raise EC2Error(
                    "InvalidInstanceType", f"The following supplied instance types do not exist: [{name}]"
                )
        return {
            "InstanceTypes": [
                {
                    "InstanceType": t.name,
                    "CurrentGeneration": True,
                    "VCpuInfo": {
                        "DefaultVCpus": t.vcpus,
                        "DefaultCores": t.vcpus,
                        "DefaultThreadsPerCore": 1,
                    },
                    "MemoryInfo": {"SizeInMiB": t.memory_mib},
                    "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]},
                    "SupportedRootDeviceTypes": ["ebs"],
                    "SupportedVirtualizationTypes": ["hvm"],
                    "Hypervisor": "xen",
                }
                for t in catalogue.INSTANCE_TYPES.values()
                if not asked or t.name in asked
            ]
        }

    async def describe_availability_zones(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        region = self.cloud.region
        return {
            "AvailabilityZones": [
                {
                    "ZoneName": f"{region}a",
                    "ZoneId": f"{self.cloud.name}-az1",
                    "State": "available",
                    "RegionName": region,
                    "ZoneType": "availability-zone",
                    "Messages": [],
                }
            ]
        }


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]] | None:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())] or None


def _check_tags(tags: dict[str, str]) -> None:
    if len(tags) > 50:
        raise EC2Error("TagLimitExceeded", "The maximum number of tags per resource (50) has been reached")
    for key, value in tags.items():
        if not key or len(key) > 128:
            raise EC2Error("InvalidParameterValue", f"Tag key '{key}' must be 1 to 128 characters")
        if key.lower().startswith("aws:"):
            raise EC2Error(
                "InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use"
            )
        if len(value) > 256:
            raise EC2Error("InvalidParameterValue", f"The value of tag '{key}' is longer than 256 characters")
