"""A cluster's instances: launched in a cloud, reached over SSH, and released again.

In the cloud a cluster goes to, Resilin imports the cluster's key pair, makes its
security group (SSH from Resilin, all traffic among the cluster, nothing else),
and launches each instance group tagged with the cluster, group and role.
Capacity is short on real clouds, so a launch asks for at least one instance,
retries the rest with backoff, and replaces instances that die while starting;
when a cloud has no room (capacity or quota), a cluster placed by default (no
``type@cloud``) goes on to the clouds its default cloud lists in ``fallback``.
Whatever fails, :meth:`ClusterProvisioner.release` / ``teardown`` terminate every
instance the cluster has in a cloud (those it launched, and any found by tag),
then delete its security group and key pair: nothing is left running.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from resilin.aws.sigv4 import Credentials
from resilin.clouds import private_ranges
from resilin.clouds.instance_tags import user_tags
from resilin.clouds.ssh import KeyPair, Node, SshError
from resilin.clouds.ssh_jump import CloudGateway
from resilin.cluster.network import ClusterNetwork, SingleCloudNetwork
from resilin.jobflows import group_clouds, ids, states
from resilin.jobflows.documents import ClusterDoc, InstanceDoc, InstanceGroupDoc
from resilin.provisioners.ec2client import (
    CAPACITY_ERRORS,
    QUOTA_ERRORS,
    UNSUPPORTED_ERRORS,
    Backoff,
    EC2Client,
    InstanceInfo,
    ProvisioningError,
    error_code,
    error_text,
)
from resilin.settings.cloud_config import CloudConfig
from resilin.settings.external_storage import ExternalStorage

log = logging.getLogger(__name__)

# Tags that identify what Resilin launched, so that it can always be found again.
TAG_CLUSTER = "resilin:cluster-id"
TAG_GROUP = "resilin:group-id"
TAG_ROLE = "resilin:role"
TAG_INSTALLATION = "resilin:installation"  # which Resilin: reconciliation touches only its own


# The web UIs: NameNode, DataNode, ResourceManager, NodeManager, JobHistory server, and
# Spark's history server (resilin.applications.spark.config.HISTORY_PORT) on Spark clusters.
WEB_UI_PORTS = (9870, 9864, 8088, 8042, 19888, 18080)


def web_ui_permissions(source_cidr: str) -> list[dict[str, Any]]:
    """Ingress for the web UIs from where Resilin runs, but never from the whole internet: an
    open ResourceManager runs anyone's code, so with a world-wide SSH range the UIs are left
    to an SSH tunnel, as on EMR."""
    if ipaddress.ip_network(source_cidr, strict=False).prefixlen == 0:
        return []
    return [
        {
            "IpProtocol": "tcp",
            "FromPort": port,
            "ToPort": port,
            "IpRanges": [{"CidrIp": source_cidr, "Description": "Hadoop web UI from Resilin"}],
        }
        for port in WEB_UI_PORTS
    ]


class ProvisioningFailed(Exception):
    """The cluster cannot have its instances: an EMR state-change code and a message for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class NoRoom(ProvisioningFailed):
    """This cloud cannot take the cluster (capacity, quota, type or image missing); another one might."""


@dataclass
class Placement:
    """A cloud clusters can go to: its EC2 client, default image, and the storage endpoint its nodes use."""

    cloud_name: str
    client: EC2Client
    image_id: str  # image (id or name) for release labels the cloud's ``images`` do not list
    storage_endpoint: str
    cloud: CloudConfig | None = None
    ssh_cidr: str = "0.0.0.0/0"  # where Resilin's SSH comes from, as the cloud sees it
    # The cloud's EC2 API as one of Resilin's accounts sees it (local clouds), to find its key pairs.
    account_client: Callable[[Credentials], EC2Client] | None = None
    _images: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def external_storage(self) -> ExternalStorage | None:
        """The S3 service this cloud's clusters use instead of Resilin's storage, if any."""
        return self.cloud.storage if self.cloud is not None else None

    def image(self, release_label: str | None) -> str:
        """The image id for a release label, looked up once (DescribeImages) and remembered."""
        ref = (self.cloud.image_for_release(release_label) if self.cloud else "") or self.image_id
        return self.image_of(ref)

    def image_of(self, ref: str) -> str:
        """The image id of an ``ami-`` id or image name, looked up once and remembered."""
        if ref not in self._images:
            self._images[ref] = self.client.image_for(ref)
        return self._images[ref]


def _custom_image(placement: Placement, group: InstanceGroupDoc, cluster: ClusterDoc) -> str | None:
    """The image a CustomAmiId asks for the group (its own, its fleet's chosen type's, else the
    cluster's), or None; refused (VALIDATION_ERROR) before anything is launched when the cloud has
    no such image."""
    fleet = group.get("fleet")
    chosen = next(
        (
            s
            for s in (fleet["specifications"] if fleet else [])
            if s["InstanceType"].split("@")[0] == group["instance_type"]
        ),
        {},
    )
    ref = group.get("custom_ami_id") or chosen.get("CustomAmiId") or cluster.get("custom_ami_id")
    if not ref:
        return None
    try:
        return placement.image_of(ref)
    except (ProvisioningError, ClientError, BotoCoreError) as exc:
        raise ProvisioningFailed(
            states.VALIDATION_ERROR, f"CustomAmiId {ref}: {error_text(exc)} (cloud {placement.cloud_name})"
        ) from exc


# The cloud a name stands for (None: the default cloud); KeyError for an unknown name.
# resilin.clouds.registry.CloudRegistry is the one Resilin runs with.
PlacementLookup = Callable[[str | None], Placement]


@dataclass(frozen=True)
class Limits:
    running_timeout: float = 300  # RunInstances → every instance running
    ssh_timeout: float = 300  # running → SSH answers with the pinned host key
    launch_attempts: int = 4  # RunInstances calls per instance group while capacity is short
    replacement_rounds: int = 2  # times instances that died while starting are replaced
    backoff_base: float = 2.0  # seconds; doubles at every capacity retry, with jitter
    backoff_cap: float = 30.0
    release_timeout: float = 300  # termination → gone, per cloud


@dataclass
class CloudResources:
    """What the cluster holds in one cloud, for release."""

    instances: list[str] = field(default_factory=list)
    security_group: str = ""
    key_name: str = ""
    gateway: str = ""  # the instance launched with a public address (ssh_via_gateway)


@dataclass
class Launched:
    group: InstanceGroupDoc
    instance_id: str


@dataclass
class ReadyInstance:
    """An instance that answers SSH: its EMR instance document and an open connection."""

    doc: InstanceDoc
    node: Node


class ClusterProvisioner:
    def __init__(
        self,
        cid: str,
        placement_for: PlacementLookup,
        installation: str,
        *,
        key: KeyPair | None = None,
        progress: Callable[[str], None] = lambda message: None,
        phase: Callable[[str], None] = lambda name: None,
        check_termination: Callable[[], None] = lambda: None,
        preflight: Callable[[Placement], None] = lambda placement: None,
        limits: Limits = Limits(),
        sleep: Callable[[float], None] = time.sleep,
        network: ClusterNetwork | None = None,
    ) -> None:
        self.cid = cid
        self.placement_for = placement_for
        self.installation = installation
        self.key = key
        self.progress = progress
        self.phase = phase  # told "instances_running" when every instance runs
        self.check_termination = check_termination
        # Checks of the request against a cloud before anything is made there (NoRoom if it cannot
        # go there, e.g. Ec2KeyName names no key pair of it), so a refused request launches nothing.
        self.preflight = preflight
        self.limits = limits
        self.sleep = sleep
        self.network = network or SingleCloudNetwork()  # whether the cluster may span clouds
        self.key_name = f"resilin-{cid}"
        self.resources: dict[str, CloudResources] = {}  # cloud name → what the cluster holds there
        self.placement: Placement | None = None  # where the cluster ended up
        self.gateways: dict[str, CloudGateway] = {}  # cloud → jump host of its nodes (ssh_via_gateway)

    # -- where ----------------------------------------------------------------------
    def _placement(self, name: str | None) -> Placement:
        try:
            return self.placement_for(name)
        except KeyError:
            raise ProvisioningFailed(states.VALIDATION_ERROR, f"Unknown cloud {name!r}") from None

    def candidates(self, cluster: ClusterDoc) -> list[str]:
        """The cloud the cluster's groups are placed in, then the clouds it may fall back to."""
        default = self._placement(None).cloud_name
        clouds = group_clouds.clouds_of_groups(cluster["groups"], default)
        if len(clouds) > 1:  # the clouds' private ranges must not overlap (the overlay does no NAT)
            refusal = private_ranges.spread_refusal([self._placement(c) for c in sorted(clouds)])
            if refusal is not None:
                raise ProvisioningFailed(states.VALIDATION_ERROR, refusal)
        refusal = self.network.spread_refusal(clouds)
        if refusal is not None:
            raise ProvisioningFailed(states.VALIDATION_ERROR, refusal)
        if len(clouds) > 1:
            return sorted(clouds)  # spread over these (the network joins them): no fallback
        [name] = clouds
        if any(g["cloud"] or g.get("spread") for g in cluster["groups"]):
            return [name]  # placed by the user (type@cloud): it stays there
        cloud = self._placement(name).cloud
        # A fallback must keep the cluster's data where its s3:// paths say: the same storage.
        storage = cloud.storage if cloud else None
        return [
            name,
            *(
                c
                for c in (cloud.fallback if cloud else ())
                if c != name and self._placement(c).external_storage == storage
            ),
        ]

    # -- provisioning ---------------------------------------------------------------
    def provision(self, cluster: ClusterDoc) -> list[ReadyInstance]:
        """Instances for every group of ``cluster``, reachable over SSH; ProvisioningFailed if not."""
        default = self._placement(None).cloud_name
        if len(group_clouds.clouds_of_groups(cluster["groups"], default)) > 1:
            self.candidates(cluster)  # the network's refusal, if it cannot join these clouds
            return self._provision_spread(cluster)
        placement, running = self.launch(cluster)
        self.check_termination()
        self.progress(f"Waiting for SSH on {len(running)} instance(s)")
        return self._reach(placement, running)

    def _provision_spread(self, cluster: ClusterDoc) -> list[ReadyInstance]:
        """Each group in its own cloud (``type@cloud``, or shared out over several for a spread
        fleet), the clouds at once; the cluster's placement is the master's cloud.  No fallback:
        the user chose the clouds."""
        default = self._placement(None).cloud_name
        master_group = next(g for g in cluster["groups"] if g["role"] == "MASTER")
        master = master_group["cloud"] or default
        parts: dict[str, list[InstanceGroupDoc]] = {}
        for group in cluster["groups"]:
            for name, count in group_clouds.additions(group, {}, group["requested"], default).items():
                parts.setdefault(name, []).append(_part_in(group, name, count, default))

        def launch_in(name: str) -> tuple[Placement, list[tuple[Launched, InstanceInfo]]]:
            try:
                return self._launch_in(name, {**cluster, "groups": parts[name]})
            except NoRoom as exc:
                raise ProvisioningFailed(exc.code, exc.message) from exc

        clouds = [master, *sorted(set(parts) - {master})]
        # Every cloud at once; what each launched is released at teardown whatever the others did.
        with ThreadPoolExecutor(max_workers=len(clouds)) as pool:
            futures = [pool.submit(launch_in, name) for name in clouds]
        self.placement = self._placement(master)
        launched = [future.result() for future in futures]
        self.check_termination()
        self.progress(f"Waiting for SSH on {sum(len(r) for _, r in launched)} instance(s)")
        ready: list[ReadyInstance] = []
        try:
            for placement, running in launched:
                ready += self._reach(placement, running)
        except ProvisioningFailed:
            for instance in ready:
                instance.node.close()
            raise
        return ready

    def launch(self, cluster: ClusterDoc) -> tuple[Placement, list[tuple[Launched, InstanceInfo]]]:
        """Every group's instances running in one cloud: the one placed in, else a fallback."""
        clouds = self.candidates(cluster)
        refusals: list[NoRoom] = []
        for i, name in enumerate(clouds):
            # Said in every later message too, so that a user polling DescribeCluster sees why.
            why = f" (fallback: {refusals[-1].message})" if refusals else ""
            try:
                return self._launch_in(name, cluster, why)
            except NoRoom as exc:
                refusals.append(exc)
                log.warning("%s: %s", self.cid, exc.message)
                self.release(name)
                if i + 1 < len(clouds):
                    self.progress(f"{exc.message}; trying cloud {clouds[i + 1]}")
        codes = {r.code for r in refusals}
        code = states.INSTANCE_FAILURE if states.INSTANCE_FAILURE in codes else refusals[0].code
        raise ProvisioningFailed(code, "; ".join(r.message for r in refusals))

    def grow(
        self,
        cluster: ClusterDoc,
        group: InstanceGroupDoc,
        count: int,
        present: Mapping[str, int] | None = None,
    ) -> list[ReadyInstance]:
        """``count`` more instances for ``group``, with the cluster's key pair and security group,
        running and reachable over SSH (resizing and node replacement).  A group placed by the
        user (type@cloud) grows in its cloud, maybe one new to the cluster; a fleet spread over
        clouds grows in those holding fewest of its instances (``present``: cloud → live ones)."""
        if self.placement is None:
            raise ProvisioningFailed(states.INTERNAL_ERROR, "the cluster has not been provisioned")
        home = self._group_home(group)
        ready: list[ReadyInstance] = []
        try:
            for name, n in group_clouds.additions(group, present or {}, count, home).items():
                ready += self._grow_in(self._placement(name), cluster, _part_in(group, name, n, home), n)
        except ProvisioningFailed:
            for instance in ready:  # all or nothing: what joined no cluster is let go
                instance.node.close()
                self._placement(instance.doc["cloud"]).client.terminate([instance.doc["ec2_id"]])
            raise
        return ready

    def check_room(self, cloud: str, groups: list[InstanceGroupDoc]) -> None:
        """NoRoom (or ProvisioningFailed for an unknown cloud) unless ``groups`` (each with its
        type and count there) fit cloud ``cloud``: its instance types and quotas.  Nothing is made."""
        placement = self._placement(cloud)
        self._check_offer(placement, groups)
        try:
            placement.image("")
        except (ProvisioningError, ClientError, BotoCoreError) as exc:
            raise NoRoom(
                states.VALIDATION_ERROR, f"Cloud {cloud} has no image for the cluster: {exc}"
            ) from exc

    def launch_into(
        self, cloud: str, cluster: ClusterDoc, groups: list[InstanceGroupDoc]
    ) -> list[ReadyInstance]:
        """Instances for ``groups`` (each placed in ``cloud`` with its type and count there), with
        the cluster's key pair and security group, reachable over SSH (relocation).  All or
        nothing: what was launched is terminated if any of it fails."""
        placement = self._placement(cloud)
        ready: list[ReadyInstance] = []
        try:
            for group in groups:
                ready += self._grow_in(placement, cluster, group, group["requested"])
        except ProvisioningFailed:
            for instance in ready:
                instance.node.close()
            if ready:
                placement.client.terminate([i.doc["ec2_id"] for i in ready])
            raise
        return ready

    def _group_home(self, group: InstanceGroupDoc) -> str:
        """Where a group's instances go when its request named no cloud: the cluster's cloud, or
        for a spread fleet's unnamed candidates the default cloud, as at provisioning."""
        if group.get("spread") or self.placement is None:
            return self._placement(None).cloud_name
        return self.placement.cloud_name

    def clouds_of(self, group: InstanceGroupDoc) -> list[str]:
        """The clouds ``group`` grows in."""
        return group_clouds.clouds_of_group(group, self._group_home(group))

    def _grow_in(
        self, placement: Placement, cluster: ClusterDoc, group: InstanceGroupDoc, count: int
    ) -> list[ReadyInstance]:
        resources = self.resources.setdefault(placement.cloud_name, CloudResources())
        try:
            image = placement.image(cluster.get("release_label", ""))
            self._import_key(placement, resources)
            self._make_security_group(placement, resources)
            ec2_ids = self._launch_group(placement, resources, group, image, count, cluster)
            running = self._wait_started(
                placement, resources, [Launched(group, i) for i in ec2_ids], image, cluster
            )
        except (ClientError, BotoCoreError, ProvisioningError) as exc:
            raise ProvisioningFailed(
                states.INSTANCE_FAILURE, f"Cloud {placement.cloud_name}: {error_text(exc)}"
            ) from exc
        try:
            return self._reach(placement, running)
        except ProvisioningFailed:
            placement.client.terminate([info.id for _, info in running])  # nothing half-joined stays
            raise

    def _launch_in(
        self, name: str, cluster: ClusterDoc, why: str = ""
    ) -> tuple[Placement, list[tuple[Launched, InstanceInfo]]]:
        placement = self._placement(name)
        self.placement = placement
        # The master first: under ssh_via_gateway the cloud's first instance is its gateway.
        groups = sorted((g for g in cluster["groups"] if g["requested"]), key=lambda g: g["role"] != "MASTER")
        self._check_offer(placement, groups)
        try:
            image = placement.image(cluster.get("release_label", ""))
        except (ProvisioningError, ClientError, BotoCoreError) as exc:
            raise NoRoom(
                states.VALIDATION_ERROR, f"Cloud {name} has no image for the cluster: {exc}"
            ) from exc
        resources = self.resources.setdefault(name, CloudResources())
        for group in groups:  # every CustomAmiId checked before anything is launched
            _custom_image(placement, group, cluster)
        self.progress(f"Launching {sum(g['requested'] for g in groups)} instance(s) in cloud {name}{why}")
        try:
            self.preflight(placement)
            self._import_key(placement, resources)
            self._make_security_group(placement, resources)
            launched = []
            for group in groups:
                ec2_ids = self._launch_group(placement, resources, group, image, group["requested"], cluster)
                launched += [Launched(group, i) for i in ec2_ids]
            running = self._wait_started(placement, resources, launched, image, cluster)
        except (ClientError, BotoCoreError) as exc:
            raise ProvisioningFailed(states.INSTANCE_FAILURE, f"Cloud {name}: {error_text(exc)}") from exc
        self.phase("instances_running")
        return placement, running

    def _check_offer(self, placement: Placement, groups: list[InstanceGroupDoc]) -> None:
        cloud, name = placement.cloud, placement.cloud_name
        if cloud is None:
            return
        for group in groups:
            if not cloud.offers(group["instance_type"]):
                raise NoRoom(
                    states.VALIDATION_ERROR,
                    f"Cloud {name} does not offer instance type {group['instance_type']} "
                    f"(it offers {', '.join(sorted(cloud.instance_types))})",
                )
        count = sum(g["requested"] for g in groups)
        if cloud.quota.instances is not None and count > cloud.quota.instances:
            raise NoRoom(
                states.VALIDATION_ERROR,
                f"The cluster's {count} instances exceed cloud {name}'s quota of {cloud.quota.instances}",
            )
        vcpus = [cloud.vcpus_of(g["instance_type"]) for g in groups]
        if cloud.quota.vcpus is not None and None not in vcpus:
            wanted = sum(v * g["requested"] for v, g in zip(vcpus, groups, strict=True) if v)
            if wanted > cloud.quota.vcpus:
                raise NoRoom(
                    states.VALIDATION_ERROR,
                    f"The cluster's {wanted} vCPUs exceed cloud {name}'s quota of {cloud.quota.vcpus}",
                )

    def _import_key(self, placement: Placement, resources: CloudResources) -> None:
        if self.key is None or resources.key_name:
            return
        tags = {TAG_CLUSTER: self.cid, TAG_INSTALLATION: self.installation}
        try:
            placement.client.import_key_pair(self.key_name, self.key.public_line, tags)
        except ClientError as exc:
            if error_code(exc) != "InvalidKeyPair.Duplicate":
                raise
            # Left by an earlier attempt at this cluster (a restart while STARTING): replace it.
            placement.client.delete_key_pair(self.key_name)
            placement.client.import_key_pair(self.key_name, self.key.public_line, tags)
        resources.key_name = self.key_name

    def _make_security_group(self, placement: Placement, resources: CloudResources) -> None:
        cloud = placement.cloud
        if resources.security_group or (cloud is not None and not cloud.create_security_group):
            return
        client = placement.client
        vpc = client.vpc_of_subnet(cloud.subnet_id) if cloud is not None and cloud.subnet_id else ""
        tags = {TAG_CLUSTER: self.cid, TAG_INSTALLATION: self.installation, "Name": f"resilin-{self.cid}"}
        name = f"resilin-{self.cid}"
        try:
            gid = client.create_security_group(name, f"Resilin cluster {self.cid}", tags, vpc)
        except ClientError as exc:
            if error_code(exc) in UNSUPPORTED_ERRORS:
                log.warning("cloud %s has no security groups; instances are not fenced", placement.cloud_name)
                return
            if error_code(exc) != "InvalidGroup.Duplicate":
                raise
            # Left by an earlier attempt at this cluster: take it over (its rules are the same).
            earlier = client.security_groups_by_tag({TAG_CLUSTER: self.cid})
            if not earlier:
                raise
            resources.security_group = earlier[0]["GroupId"]
            return
        resources.security_group = gid
        client.authorize_ingress(
            gid,
            [
                {
                    "IpProtocol": "tcp",
                    "FromPort": 22,
                    "ToPort": 22,
                    "IpRanges": [{"CidrIp": placement.ssh_cidr, "Description": "SSH from Resilin"}],
                },
                {
                    "IpProtocol": "-1",
                    "UserIdGroupPairs": [{"GroupId": gid, "Description": "the cluster's own instances"}],
                },
                *web_ui_permissions(placement.ssh_cidr),
            ],
        )

    def _tags(self, group: InstanceGroupDoc, cluster: ClusterDoc) -> dict[str, str]:
        tags = user_tags(cluster)  # the cluster's own tags, as EMR propagates them to its instances
        tags.update(
            {
                TAG_CLUSTER: self.cid,
                TAG_GROUP: group["id"],
                TAG_ROLE: group["role"],
                TAG_INSTALLATION: self.installation,
                # EMR's own tags, without the "aws:" prefix that clouds reserve for themselves.
                "elasticmapreduce:job-flow-id": self.cid,
                "elasticmapreduce:instance-group-role": group["role"],
                "Name": f"{cluster.get('name', self.cid)} {group['role'].lower()}",
            }
        )
        return tags

    def _launch_group(
        self,
        placement: Placement,
        resources: CloudResources,
        group: InstanceGroupDoc,
        image: str,
        count: int,
        cluster: ClusterDoc,
    ) -> list[str]:
        """``count`` instances for ``group``: partial launches are topped up, capacity errors retried."""
        image = _custom_image(placement, group, cluster) or image
        cloud, client, role = placement.cloud, placement.client, group["role"].lower()
        what = f"{count} {group['instance_type']} {role} instance(s)"
        launched: list[str] = []
        backoff = Backoff(self.limits.backoff_base, self.limits.backoff_cap)
        refusals = 0  # launches that got nothing; one that got some is topped up at once
        via_gateway = cloud is not None and cloud.ssh_via_gateway
        while len(launched) < count:
            self.check_termination()
            # ssh_via_gateway: the cloud's first instance alone gets a public address (its gateway).
            public = via_gateway and not resources.gateway
            wanted = 1 if public else count - len(launched)
            try:
                got = client.launch(
                    image_id=image,
                    instance_type=group["instance_type"],
                    count=wanted,
                    min_count=1,  # take what the cloud has; the rest is asked for again
                    key_name=resources.key_name,
                    tags=self._tags(group, cluster),
                    security_group_ids=[
                        *([resources.security_group] if resources.security_group else []),
                        *(cloud.security_group_ids if cloud else ()),
                    ],
                    subnet_id=cloud.subnet_id if cloud else "",
                    public_address=public if via_gateway else None,
                )
            except ClientError as exc:
                code = error_code(exc)
                if code in QUOTA_ERRORS:
                    raise NoRoom(
                        states.INSTANCE_FAILURE,
                        f"Cloud {placement.cloud_name} refused {what} ({error_text(exc)})",
                    ) from exc
                if code not in CAPACITY_ERRORS:
                    raise ProvisioningFailed(
                        states.INSTANCE_FAILURE,
                        f"Could not launch {what} in cloud {placement.cloud_name}: {error_text(exc)}",
                    ) from exc
                refusals += 1
                self.progress(
                    f"Cloud {placement.cloud_name} has no capacity for {wanted} {group['instance_type']} "
                    f"instance(s) ({code}); attempt {refusals} of {self.limits.launch_attempts}"
                )
                if refusals >= self.limits.launch_attempts:
                    raise NoRoom(
                        states.INSTANCE_FAILURE,
                        f"Cloud {placement.cloud_name} has no capacity for {what} ({code}: "
                        f"{len(launched)} launched after {refusals} refused attempts)",
                    ) from exc
                self._pause(backoff.next())
                continue
            resources.instances += got
            launched += got
            if public:
                resources.gateway = got[0]
            elif len(launched) < count:
                self.progress(
                    f"Cloud {placement.cloud_name} launched {len(launched)} of {what}; asking again for the rest"
                )
        return launched

    def _pause(self, seconds: float) -> None:
        """Sleep in short slices, so that a TerminateJobFlows is heeded within a second."""
        while seconds > 0:
            self.check_termination()
            self.sleep(min(1.0, seconds))
            seconds -= 1.0

    def _wait_started(
        self,
        placement: Placement,
        resources: CloudResources,
        launched: list[Launched],
        image: str,
        cluster: ClusterDoc,
    ) -> list[tuple[Launched, InstanceInfo]]:
        """Wait until every instance runs; those that die on the way are terminated and replaced."""
        client = placement.client
        ready: list[tuple[Launched, InstanceInfo]] = []
        waiting = launched
        for round_ in range(self.limits.replacement_rounds + 1):
            by_id = {item.instance_id: item for item in waiting}
            try:
                outcome = client.wait_started(list(by_id), timeout=self.limits.running_timeout)
            except ProvisioningError as exc:
                raise ProvisioningFailed(states.INSTANCE_FAILURE, f"Instances did not start: {exc}") from exc
            ready += [(by_id[info.id], info) for info in outcome.running]
            if not outcome.failed:
                return ready
            dead = [f.instance_id for f in outcome.failed]
            client.terminate(dead)
            if resources.gateway in dead:  # its replacement is the cloud's gateway
                resources.gateway = ""
            if round_ == self.limits.replacement_rounds:
                raise ProvisioningFailed(
                    states.INSTANCE_FAILURE,
                    f"Instances kept failing while starting in cloud {placement.cloud_name}: {outcome.failed[0]}",
                )
            self.progress(
                f"{len(dead)} instance(s) failed while starting ({outcome.failed[0]}); launching replacements"
            )
            waiting = []
            for gid in dict.fromkeys(by_id[i].group["id"] for i in dead):
                group = next(by_id[i].group for i in dead if by_id[i].group["id"] == gid)
                lost = sum(1 for i in dead if by_id[i].group["id"] == gid)
                waiting += [
                    Launched(group, i)
                    for i in self._launch_group(placement, resources, group, image, lost, cluster)
                ]
        raise AssertionError("unreachable")

    def _reach(
        self, placement: Placement, running: list[tuple[Launched, InstanceInfo]]
    ) -> list[ReadyInstance]:
        """SSH to every instance, pinning the host keys it printed on its console."""
        if self.key is None:
            raise ValueError("no SSH key to reach the instances with")
        client, key = placement.client, self.key
        gateway = self._gateway(placement)

        def reach(item: tuple[Launched, InstanceInfo]) -> ReadyInstance:
            launched, info = item
            try:
                host_keys = client.host_keys(info.id, timeout=self.limits.ssh_timeout)
                if gateway is None:
                    node = Node(info.address, host_keys, key)
                elif info.public_ip:  # the cloud's gateway: its session is the others' jump host too
                    address = gateway.address(info.private_ip, info.public_ip)
                    node = gateway.adopt(info.id, lambda: Node(address, host_keys, key))
                else:
                    node = Node(info.private_ip, host_keys, key, via=gateway)
                node.wait_reachable(self.limits.ssh_timeout)
                # Hadoop daemons register under the host's own name, so every node must resolve it.
                hostname = node.run("hostname", timeout=30).stdout.strip()
            except (SshError, ProvisioningError, ClientError, BotoCoreError) as exc:
                raise ProvisioningFailed(
                    states.INSTANCE_FAILURE,
                    f"Instance {info.id} ({launched.group['role'].lower()}) could not be reached"
                    f"{self._why_unreachable(client, info.id)}: {exc}",
                ) from exc
            doc: InstanceDoc = {
                "id": ids.instance_id(),
                "ec2_id": info.id,
                "cloud": placement.cloud_name,
                "group_id": launched.group["id"],
                "role": launched.group["role"],
                "instance_type": launched.group["instance_type"],
                "private_ip": info.private_ip,
                "public_ip": info.address,
                "public_dns": info.dns or info.address,
                "hostname": hostname,
                "state": states.INSTANCE_BOOTSTRAPPING,
                "host_keys": host_keys,
            }
            return ReadyInstance(doc, node)

        with ThreadPoolExecutor(max_workers=max(1, min(16, len(running)))) as pool:
            futures = [pool.submit(reach, item) for item in running]
            ready, failure = [], None
            for future in futures:
                try:
                    ready.append(future.result())
                except ProvisioningFailed as exc:
                    failure = failure or exc
        if failure is not None:
            for instance in ready:
                instance.node.close()
            raise failure
        return ready

    def _gateway(self, placement: Placement) -> CloudGateway | None:
        """The jump host of the cloud's nodes when its settings say ``ssh_via_gateway``."""
        if placement.cloud is None or not placement.cloud.ssh_via_gateway or self.key is None:
            return None
        if placement.cloud_name not in self.gateways:
            self.gateways[placement.cloud_name] = CloudGateway(
                placement.cloud_name,
                placement.client,
                {TAG_CLUSTER: self.cid},
                self.key,
                TAG_ROLE,
                self.limits.ssh_timeout,
                reach_private=placement.cloud.kind == "local",
            )
        return self.gateways[placement.cloud_name]

    @staticmethod
    def _why_unreachable(client: EC2Client, instance_id: str) -> str:
        """ ", which is stopped (reason)" when the instance died; "" when it seems alive or cannot be told."""
        try:
            inst = client.describe([instance_id]).get(instance_id)
        except (ClientError, BotoCoreError):
            return ""
        if not inst or inst["State"]["Name"] == "running":
            return ""
        reason = (inst.get("StateReason") or {}).get("Message", "")
        return f", which is {inst['State']['Name']}" + (f" ({reason})" if reason else "")

    # -- after a restart of Resilin (resilin.cluster.adoption) -----------------------------
    def remember(self, name: str) -> None:
        """Count cloud ``name`` among those the cluster is released from at its teardown (its
        instances and security group found by tag there, its key pair by name)."""
        self.resources.setdefault(name, CloudResources()).key_name = self.key_name

    def take_back(self, name: str, instance_ids: list[str]) -> list[str]:
        """What the cluster holds in cloud ``name`` known again (its instances, security group and
        key pair) for the cluster's later operations and release; the ids no longer running."""
        placement = self._placement(name)
        client = placement.client
        self.remember(placement.cloud_name)
        resources = self.resources[placement.cloud_name]
        resources.instances = list(instance_ids)
        try:
            groups = client.security_groups_by_tag({TAG_CLUSTER: self.cid})
        except ClientError as exc:
            if error_code(exc) not in UNSUPPORTED_ERRORS:
                raise
            groups = []
        resources.security_group = groups[0]["GroupId"] if groups else ""
        described = client.describe(instance_ids) if instance_ids else {}
        return [i for i in instance_ids if (described.get(i) or {}).get("State", {}).get("Name") != "running"]

    def release_strays(self, name: str, keep: set[str]) -> list[str]:
        """The cluster's instances in cloud ``name`` other than ``keep`` (launched by work a restart
        cut short) terminated, and waited for; their ids."""
        client = self._placement(name).client
        strays = sorted({i.id for i in client.find_by_tag(TAG_CLUSTER, self.cid)} - keep)
        if strays:
            client.terminate(strays)
            client.wait_terminated(strays, timeout=self.limits.release_timeout)
            log.info(
                "%s: terminated %d instance(s) left in cloud %s: %s", self.cid, len(strays), name, strays
            )
        return strays

    # -- release --------------------------------------------------------------------
    def teardown(self) -> list[str]:
        """Release the cluster in every cloud it touched; returns what could not be done."""
        errors: list[str] = []
        for name in list(self.resources):
            errors += self.release(name)
        return errors

    def reclaim(self, cloud_names: set[str | None]) -> list[str]:
        """Release whatever an earlier run left for this cluster in these clouds (found by tag and name)."""
        errors: list[str] = []
        for name in cloud_names:
            try:
                placement = self.placement_for(name)
            except KeyError:
                continue
            self.remember(placement.cloud_name)
            errors += self.release(placement.cloud_name)
        return errors

    def release(self, name: str) -> list[str]:
        """Terminate the cluster's instances in cloud ``name`` and wait until they are gone, then
        delete its security group and key pair.  Errors are logged and returned, never raised."""
        resources = self.resources.pop(name, None)
        gateway = self.gateways.pop(name, None)
        if gateway is not None:
            gateway.close()
        if resources is None:
            return []
        errors: list[str] = []
        try:
            client = self.placement_for(name).client
        except KeyError:
            return [f"cloud {name} is no longer configured"]
        known = set(resources.instances)
        try:
            client.terminate(sorted(known))
            # Then, while those shut down, whatever was launched but never answered for (a lost
            # RunInstances response), found by the cluster's tag.
            try:
                tagged = {i.id for i in client.find_by_tag(TAG_CLUSTER, self.cid)}
            except (ClientError, BotoCoreError) as exc:
                log.warning("%s: could not list instances in cloud %s: %s", self.cid, name, exc)
                tagged = set()
            client.terminate(sorted(tagged - known))
            every = sorted(known | tagged)
            if every:
                client.wait_terminated(every, timeout=self.limits.release_timeout)
                log.info("%s: terminated %d instance(s) in cloud %s", self.cid, len(every), name)
        except Exception as exc:
            log.error("%s: terminating instances in cloud %s failed: %s", self.cid, name, exc)
            errors.append(f"terminating instances in cloud {name}: {error_text(exc)}")
        groups = {resources.security_group} - {""}
        try:
            groups |= {g["GroupId"] for g in client.security_groups_by_tag({TAG_CLUSTER: self.cid})}
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) not in UNSUPPORTED_ERRORS:
                log.warning("%s: could not list security groups in cloud %s: %s", self.cid, name, exc)
        for gid in sorted(groups):
            try:
                client.delete_security_group(gid, timeout=self.limits.release_timeout)
            except Exception as exc:
                log.error("%s: deleting security group %s failed: %s", self.cid, gid, exc)
                errors.append(f"deleting security group {gid} in cloud {name}: {error_text(exc)}")
        if resources.key_name:
            try:
                client.delete_key_pair(resources.key_name)
            except Exception as exc:
                log.warning("%s: could not delete key pair %s: %s", self.cid, resources.key_name, exc)
        return errors


def _part_in(group: InstanceGroupDoc, cloud: str, count: int, home: str) -> InstanceGroupDoc:
    """The share of ``group`` launched in ``cloud``: ``count`` instances of its type there."""
    return {
        **group,
        "requested": count,
        "instance_type": group_clouds.instance_type_in(group, cloud, home),
        "cloud": cloud,
    }
