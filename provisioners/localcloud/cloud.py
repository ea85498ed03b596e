"""The local cloud's instance operations, over podman containers and Redis records.

Each operation takes the caller's account id and the decoded input (member
names as in botocore's model) and returns the output dict; key pairs and the
read-only offerings (images, instance types, zones) live in their own modules.  Podman calls run in
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
from resilin.provisioners.localcloud.errors import EC2Error, invalid
from resilin.provisioners.localcloud.keypairs import KeyPairs
from resilin.provisioners.localcloud.offerings import Offerings
from resilin.provisioners.localcloud.podman import Container, Podman
from resilin.provisioners.localcloud.store import (
    LAUNCHED,
    LAUNCHING,
    TERMINATED,
    TERMINATING,
    InstanceRecord,
    Store,
)
from resilin.provisioners.localcloud.tags import check_tags, tags_from_specs

log = logging.getLogger(__name__)

INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
USER_DATA_LIMIT = 16 * 1024  # bytes, as on EC2
CONSOLE_LIMIT = 1024 * 1024  # bytes of console output returned

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
        self.offerings = Offerings(cloud.name, cloud.region, self.images, self.podman)
        self.key_pairs = KeyPairs(self.store)
        self.max_instances = max_instances
        self.operations: dict[str, Operation] = {
            "RunInstances": self.run_instances,
            "DescribeInstances": self.describe_instances,
            "TerminateInstances": self.terminate_instances,
            "CreateTags": self.create_tags,
            "GetConsoleOutput": self.get_console_output,
            "ImportKeyPair": self.key_pairs.import_key_pair,
            "DescribeKeyPairs": self.key_pairs.describe_key_pairs,
            "DeleteKeyPair": self.key_pairs.delete_key_pair,
            "DescribeImages": self.offerings.describe_images,
            "DescribeInstanceTypes": self.offerings.describe_instance_types,
            "DescribeAvailabilityZones": self.offerings.describe_availability_zones,
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
        # Records first, containers second: a launch marks its record LAUNCHED only once the
        # container exists, so a LAUNCHED record is always matched by the listing that follows.
        records = {r.instance_id: r for r in self.store.instances(account)}
        containers = {
            c.labels.get(f"{LABEL}.instance-id"): c
            for c in await self._containers()
            if c.labels.get(f"{LABEL}.account") == account
        }
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

    async def run_instances(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        image_id = params.get("ImageId") or ""
        image = self.offerings.image(image_id)
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
        tags = tags_from_specs(params.get("TagSpecifications") or [], "instance")

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
        check_tags(tags)
        ids = params["Resources"]
        for found, _ in await self._find(account, ids):
            record = self.store.get(found.instance_id) or found
            record.tags.update(tags)
            check_tags(record.tags)
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
