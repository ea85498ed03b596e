"""The podman side of the local cloud's instances: containers made, fenced, started, stopped and removed.

An instance's container is created with its private address and fenced by its
security groups' firewall before anything in it runs, so nothing in it is ever
reachable unfiltered: podman's start loads the firewall through the fence hook
(fence_hook.py), or, without the hook, the container is initialised (its network
namespace now exists), fenced from here, and only then started.  Firewalls of
running instances are refreshed whenever a group's rules or members change;
refreshes are coalesced, so a launch of eight instances costs a few passes, not
sixty-four.  Podman calls run in threads; records are read and saved on the
reactor thread only.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from resilin.provisioners.localcloud import firewall, view
from resilin.provisioners.localcloud.catalogue import InstanceType
from resilin.provisioners.localcloud.faults import Faults
from resilin.provisioners.localcloud.fence_hook import ANNOTATION
from resilin.provisioners.localcloud.podman import Container, Podman, PodmanError
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

log = logging.getLogger(__name__)

LABEL = "resilin"  # prefix of every label the local cloud puts on a container
# Seconds a terminated instance's processes get to exit before they are killed: what an instance
# holds dies with it, so there is nothing worth waiting longer for.
TERMINATE_GRACE = 1
# Every instance may open /dev/net/tun: harmless without CAP_NET_ADMIN, it lets a gateway attach to
# the TUN device the host makes for it (SourceDestCheck off).
INSTANCE_DEVICES = ("/dev/net/tun",)
# A container initialised then fenced from here: tries when its process vanished before the fence.
INIT_ATTEMPTS = 3
INIT_RETRY_SECONDS = 0.2


def init_and_fence(podman: Podman, name: str, ruleset: str | None) -> None:
    """Initialise the container (its network namespace now exists) and load ``ruleset`` there
    (blocking).  podman 4.3 lets a stop's late cleanup (conmon's exit command, after a stop through
    the REST service) undo an initialisation made since: when the initialised process is gone
    before its firewall is loaded, the container is initialised again."""
    for attempt in range(1, INIT_ATTEMPTS + 1):
        try:
            pid = podman.init(name)
        except PodmanError:
            # Initialised or running already: a restart, or a launch with others, cut this short.
            pid = podman.pid(name)
            if pid <= 0:
                raise
        if ruleset is None:
            return
        try:
            firewall.apply(pid, ruleset)
            return
        except firewall.FirewallError:
            if attempt == INIT_ATTEMPTS or os.path.exists(f"/proc/{pid}"):
                raise
            log.info("%s: its initialised process went away before it was fenced; again", name)
            time.sleep(INIT_RETRY_SECONDS)


def container_name(cloud_name: str, instance_id: str) -> str:
    """The podman container that is instance ``instance_id`` of cloud ``cloud_name``."""
    return f"resilin-{cloud_name}-{instance_id}"


class LaunchFault(Exception):
    """The instance was told (through the admin API) to die while starting."""


class Machines:
    def __init__(
        self,
        cloud_name: str,
        network: str,
        podman: Podman,
        store: Store,
        groups: SecurityGroups,
        types: dict[str, InstanceType],
        faults: Faults,
        background: Callable[[Any], None],
    ) -> None:
        self.cloud_name, self.network = cloud_name, network
        self.podman, self.store, self.groups = podman, store, groups
        self.types, self.faults = types, faults
        self.background = background
        self._dirty: set[str] = set()  # instances whose firewall must be recomputed
        self._refreshing = False
        self._version = 0  # bumped at every change of rules or members
        # Set by the cloud: a created container joins the WAN (blocking); an instance ended.
        self.attach_wan: Callable[[str], None] = lambda instance_id: None
        self.ended: Callable[[InstanceRecord], None] = lambda record: None
        # Called once an instance runs in a new namespace (launched, started again): its network's set-up.
        self.on_up: Callable[[InstanceRecord], Awaitable[None]] | None = None

    def container_name(self, instance_id: str) -> str:
        return container_name(self.cloud_name, instance_id)

    async def containers(self) -> list[Container]:
        return await deferToThread(self.podman.list, {f"{LABEL}.cloud": self.cloud_name})

    # Labels: what a container carries so the instance can be rebuilt without Redis ------------

    def labels(self, record: InstanceRecord) -> dict[str, str]:
        labels = {
            f"{LABEL}.cloud": self.cloud_name,
            f"{LABEL}.account": record.account,
            f"{LABEL}.instance-id": record.instance_id,
            f"{LABEL}.reservation-id": record.reservation_id,
            f"{LABEL}.image-id": record.image_id,
            f"{LABEL}.instance-type": record.instance_type,
            f"{LABEL}.key-name": record.key_name,
            f"{LABEL}.launch-index": str(record.launch_index),
            f"{LABEL}.launch-time": f"{record.launch_time:.3f}",
            f"{LABEL}.private-ip": record.private_ip,
            f"{LABEL}.security-groups": ",".join(record.security_groups),
        }
        # Tags at launch, for finding containers by hand; Redis has the current ones.
        for key, value in record.tags.items():
            if "=" not in key:
                labels[f"{LABEL}.tag.{key}"] = value
        return labels

    def adopt(self, container: Container, images: dict[str, str]) -> InstanceRecord | None:
        """Rebuild a record from a container's labels (Redis lost its copy)."""
        labels = container.labels
        tag_prefix = f"{LABEL}.tag."
        try:
            record = InstanceRecord(
                instance_id=labels[f"{LABEL}.instance-id"],
                account=labels[f"{LABEL}.account"],
                reservation_id=labels[f"{LABEL}.reservation-id"],
                image_id=labels[f"{LABEL}.image-id"],
                image=images.get(labels[f"{LABEL}.image-id"], ""),
                instance_type=labels[f"{LABEL}.instance-type"],
                launch_time=float(labels[f"{LABEL}.launch-time"]),
                launch_index=int(labels.get(f"{LABEL}.launch-index", "0")),
                key_name=labels.get(f"{LABEL}.key-name", ""),
                tags={k[len(tag_prefix) :]: v for k, v in labels.items() if k.startswith(tag_prefix)},
                private_ip=labels.get(f"{LABEL}.private-ip", ""),
                security_groups=[g for g in labels.get(f"{LABEL}.security-groups", "").split(",") if g],
                phase=LAUNCHED,
            )
        except (KeyError, ValueError):
            return None
        if record.private_ip:
            self.store.claim_ip(record.private_ip, record.instance_id)
        self.store.save(record)
        return record

    # Launch ------------------------------------------------------------------------------

    async def launch(self, records: list[InstanceRecord]) -> None:
        """Bring a reservation's instances up together: containers created side by side, then
        fenced and started with one podman call each for all of them (podman's per-call cost,
        not the containers, is what made many instances slow).  With the fence hook, podman's
        start loads each firewall itself; otherwise the containers are initialised, fenced from
        here, then started.  An instance that fails ends terminated; the others go on."""
        created, began = [], time.monotonic()
        version = self._version  # the rules the firewalls below are made from
        creations = [Deferred.fromCoroutine(self._create(r)) for r in records]
        for record, (ok, result) in zip(
            records, await DeferredList(creations, consumeErrors=True), strict=True
        ):
            if not ok:
                await self._launch_failed(record, cast(Failure, result).value)
            elif result is None:
                created.append(record)
            else:
                await self._launch_failed(record, result)
        if not created:
            return
        names = [self.container_name(r.instance_id) for r in created]
        marks = [time.monotonic()]
        try:
            if self.podman.fence_hook is None:
                pids = await deferToThread(self.podman.init_all, names)
                fences = [
                    deferToThread(firewall.apply, pids[name], self.ruleset(r))
                    for r, name in zip(created, names, strict=True)
                    if r.security_groups
                ]
                for ok, result in await DeferredList(fences, consumeErrors=True):
                    if not ok:
                        raise cast(Failure, result).value
                marks.append(time.monotonic())
            await deferToThread(self.podman.start_all, names)
            marks.append(time.monotonic())
        except Exception as exc:
            # Which one failed is not told: bring each up on its own, which says.
            log.warning("launching %d instances together failed (%s); one by one", len(created), exc)
            await DeferredList([Deferred.fromCoroutine(self.activate(r.instance_id)) for r in created])
            return
        steps = ["fenced and started"] if len(marks) == 2 else ["initialised and fenced", "started"]
        log.info(
            "launched %d instance(s): created %.2fs, %s",
            len(created), marks[0] - began,
            ", ".join(f"{step} {end - start:.2f}s" for step, start, end in zip(steps, marks, marks[1:], strict=False)),
        )  # fmt: skip
        for record in created:
            await self._launched(record, version)

    async def _create(self, record: InstanceRecord) -> Exception | None:
        """Create the instance's container; the error if podman refused."""
        env = {"RESILIN_SSH_PUBKEY": record.public_key, "RESILIN_USER_DATA_B64": record.user_data_b64}
        itype = self.types.get(record.instance_type)
        try:
            annotations = self._prepare_fence(record)
            await deferToThread(
                self.podman.create,
                name=self.container_name(record.instance_id),
                image=record.image,
                hostname=record.instance_id,
                network=self.network,
                labels=self.labels(record),
                env=env,
                ip=record.private_ip,
                limits=itype.container_limits() if itype else None,
                devices=INSTANCE_DEVICES,
                annotations=annotations,
            )
            await deferToThread(self.attach_wan, record.instance_id)  # before init: never unfenced
        except Exception as exc:
            return exc
        return None

    def _prepare_fence(self, record: InstanceRecord) -> dict[str, str]:
        """With the fence hook: keep the instance's firewall as it stands for its container's next
        start; the annotations that make the hook load it.  None needed without security groups."""
        hook = self.podman.fence_hook
        if hook is None or not record.security_groups:
            return {}
        return hook.prepare(self.container_name(record.instance_id), self.ruleset(record))

    async def activate(self, instance_id: str) -> None:
        """Take one created container to running behind its firewall, then call the instance launched."""
        record = self.store.get(instance_id)
        if record is None:
            return
        try:
            version = await self._fence_and_start(record)
        except Exception as exc:
            await self._launch_failed(record, exc)
            return
        await self._launched(record, version)

    async def _launched(self, record: InstanceRecord, version: int) -> None:
        """The container runs: the instance is launched, unless it was told to die or was terminated."""
        instance_id = record.instance_id
        if self.faults.take_launch_failure():
            try:
                await deferToThread(self.podman.kill, self.container_name(instance_id))
            finally:
                await self._launch_failed(record, LaunchFault("the instance died while starting"))
            return
        current = self.store.get(instance_id) or record
        if current.phase in (TERMINATING, TERMINATED):
            # Terminated while it was being made: finish the job now the container exists.
            await self.remove(instance_id)
            return
        current.phase = LAUNCHED
        self.store.save(current)
        if version != self._version:  # a rule or a member changed while we fenced it
            self.mark_dirty([instance_id])
        await self._up(current)

    async def _fence_and_start(self, record: InstanceRecord) -> int:
        """Take the container to running behind its firewall; returns the rules version applied.

        A container the fence hook guards is only started: the hook loads its firewall inside
        podman's start, under podman's lock on the container, where no stop's late cleanup can cut
        in.  Any other is initialised and fenced from here (init_and_fence), then started."""
        name = self.container_name(record.instance_id)
        version = self._version
        hook_ready = self._prepare_fence(record)  # with the hook, the script it loads is rewritten
        # Without the hook, or for a container made before it (no annotation): fenced from here.
        if not hook_ready or ANNOTATION not in await deferToThread(self.podman.annotations, name):
            ruleset = self.ruleset(record) if record.security_groups else None
            await deferToThread(init_and_fence, self.podman, name, ruleset)
        if await deferToThread(self.podman.status, name) != "running":
            await deferToThread(self.podman.start, name)
        return version

    async def _launch_failed(self, record: InstanceRecord, exc: Exception) -> None:
        log.error("launch of %s failed: %s", record.instance_id, exc)
        try:
            await deferToThread(
                self.podman.remove, [self.container_name(record.instance_id)], TERMINATE_GRACE
            )
        except Exception as cleanup:
            log.error("cleanup of %s failed: %s", record.instance_id, cleanup)
        if self.podman.fence_hook is not None:
            self.podman.fence_hook.forget([self.container_name(record.instance_id)])
        current = self.store.get(record.instance_id) or record
        current.phase, current.terminated_at = TERMINATED, time.time()
        if isinstance(exc, LaunchFault):
            current.state_reason = "Server.InternalError: Internal error on launch (the instance failed)"
        else:
            cause = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
            current.state_reason = f"Server.InternalError: Internal error on launch ({cause})"
        self.store.save(current)
        self.ended(current)
        self.members_changed(current.account, current.security_groups)

    # Stop, start, kill, remove -------------------------------------------------------------

    async def power_off(self, instance_id: str) -> None:
        await deferToThread(self.podman.stop, self.container_name(instance_id))
        record = self.store.get(instance_id)
        if record is not None and record.phase == LAUNCHED and record.power == STOPPING:
            record.power = STOPPED
            self.store.save(record)

    async def power_on(self, instance_id: str) -> None:
        record = self.store.get(instance_id)
        if record is None:
            return
        try:
            version = await self._fence_and_start(record)
        except Exception as exc:
            log.error("start of %s failed: %s", instance_id, exc)
            record = self.store.get(instance_id) or record
            if record.power == STARTING:
                record.power = STOPPED
                record.state_reason = f"Server.InternalError: Internal error on start ({exc})"[:300]
                self.store.save(record)
            return
        record = self.store.get(instance_id) or record
        if record.phase == LAUNCHED and record.power == STARTING:
            record.power = POWER_ON
            self.store.save(record)
        if version != self._version:
            self.mark_dirty([instance_id])
        await self._up(record)

    async def _up(self, record: InstanceRecord) -> None:
        if self.on_up is not None:
            try:
                await self.on_up(record)
            except Exception as exc:
                log.error("network set-up of %s failed: %s", record.instance_id, exc)

    async def kill(self, record: InstanceRecord) -> None:
        """Kill the instance's processes at once, as a failing host would (admin API)."""
        await deferToThread(self.podman.kill, self.container_name(record.instance_id))
        record = self.store.get(record.instance_id) or record
        record.power = STOPPED
        record.state_reason = "Server.InternalError: Internal error (the instance failed)"
        self.store.save(record)

    async def remove(self, *instance_ids: str) -> None:
        """Remove the instances' containers (one podman call for all) and call them terminated."""
        names = [self.container_name(iid) for iid in instance_ids]
        began = time.monotonic()
        await deferToThread(self.podman.remove, names, TERMINATE_GRACE)
        log.info("removed %d instance(s) in %.2fs", len(names), time.monotonic() - began)
        if self.podman.fence_hook is not None:
            self.podman.fence_hook.forget(names)
        for instance_id in instance_ids:
            record = self.store.get(instance_id)
            if record is not None:
                record.phase = TERMINATED
                record.terminated_at = record.terminated_at or time.time()
                self.store.save(record)
                self.ended(record)

    # Firewalls ---------------------------------------------------------------------------

    def ruleset(self, record: InstanceRecord) -> str:
        """The nft script enforcing the instance's security groups as they stand."""
        groups = self.groups.all(record.account)
        peers = [r for r in self.store.instances(record.account) if view.is_live(r) and r.private_ip]
        allows = []
        for gid in record.security_groups:
            for rule in groups.get(gid, {}).get("Rules", []):
                if rule.get("ReferencedGroupId"):
                    ref = rule["ReferencedGroupId"]
                    sources = tuple(f"{p.private_ip}/32" for p in peers if ref in p.security_groups)
                    # Members by their private addresses, and never from the WAN.
                    interface = firewall.CLOUD_INTERFACE
                else:
                    sources, interface = (rule.get("CidrIpv4") or rule.get("CidrIpv6"),), ""
                allows.append(
                    firewall.Allow(
                        rule["IpProtocol"], rule.get("FromPort"), rule.get("ToPort"), sources, interface
                    )
                )
        return firewall.ruleset(allows)

    def members_changed(self, account: str, group_ids: Iterable[str]) -> None:
        """Instances joined or left ``group_ids``: refresh whoever admits those groups by reference."""
        changed = set(group_ids)
        groups = self.groups.all(account)
        referring = {
            gid for gid, g in groups.items() if any(r.get("ReferencedGroupId") in changed for r in g["Rules"])
        }
        self._version += 1
        self.mark_dirty(
            r.instance_id
            for r in self.store.instances(account)
            if view.is_live(r) and referring.intersection(r.security_groups)
        )

    def rules_changed(self, account: str, group_id: str) -> None:
        self._version += 1
        self.mark_dirty(
            r.instance_id
            for r in self.store.instances(account)
            if view.is_live(r) and group_id in r.security_groups
        )

    def mark_dirty(self, instance_ids: Iterable[str]) -> None:
        self._dirty.update(instance_ids)
        if self._dirty and not self._refreshing:
            self._refreshing = True
            self.background(self._refresh())

    async def _refresh(self) -> None:
        try:
            while self._dirty:
                batch, self._dirty = self._dirty, set()
                refreshes = [Deferred.fromCoroutine(self._refresh_one(iid)) for iid in batch]
                for ok, result in await DeferredList(refreshes, consumeErrors=True):
                    if not ok:
                        log.error("firewall refresh failed: %s", cast(Failure, result).getErrorMessage())
        finally:
            self._refreshing = False

    async def _refresh_one(self, instance_id: str) -> None:
        record = self.store.get(instance_id)
        # Launching and starting instances load their rules themselves, and look again if these changed.
        if record is None or record.phase != LAUNCHED or record.power not in (POWER_ON, STOPPING):
            return
        if not record.security_groups:
            return
        try:
            pid = await deferToThread(self.podman.pid, self.container_name(instance_id))
            if pid > 0:
                await deferToThread(firewall.apply, pid, self.ruleset(record))
        except Exception:
            current = self.store.get(instance_id)
            if current is not None and current.phase == LAUNCHED and current.power == POWER_ON:
                raise
            # It stopped or went away meanwhile: nothing left to fence.

    async def resume(self, records: list[InstanceRecord], containers: dict[str, Container]) -> None:
        """After a restart of the service: finish what a previous run left half done."""
        for record in records:
            if record.phase == LAUNCHING:
                if record.instance_id in containers:
                    self.background(self.activate(record.instance_id))
                else:
                    self.background(self.launch([record]))
            elif record.phase == TERMINATING:
                self.background(self.remove(record.instance_id))
            elif record.phase == LAUNCHED and record.power == STARTING:
                self.background(self.power_on(record.instance_id))
            elif record.phase == LAUNCHED and record.power == STOPPING:
                self.background(self.power_off(record.instance_id))
        self.mark_dirty(r.instance_id for r in records if r.phase == LAUNCHED)
