"""The ``[[clouds]]`` of ``resilin.toml``: what each cloud is, and the checks that reject a bad one.

Every setting is checked when the configuration is read, so that a typo or a
value of the wrong kind is reported with the cloud's name and the setting's
name, not discovered halfway through launching a cluster.
"""

from __future__ import annotations

import builtins
import ipaddress
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from resilin.settings.external_storage import ExternalStorage, ExternalStorageError, parse_external_storage

DEFAULT_REGION = "us-east-1"
CLOUD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")  # also part of network and container names
INSTANCE_TYPE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*\.[a-z0-9-]+$")


class CloudConfigError(ValueError):
    """One cloud's settings are wrong; the message names the cloud and the setting."""


@dataclass(frozen=True)
class InstanceTypeSpec:
    """An instance type a cloud offers: its size and, optionally, its price per hour."""

    name: str
    vcpus: int
    memory_mib: int
    hourly_price: float | None = None


@dataclass(frozen=True)
class Quota:
    """Most instances (and vCPUs) Resilin may run at once in a cloud; None: no limit of Resilin's own."""

    instances: int | None = None
    vcpus: int | None = None


@dataclass(frozen=True)
class CloudConfig:
    """One EC2-compatible cloud that clusters can be placed in."""

    name: str
    endpoint: str = ""  # EC2 endpoint URL; empty: AWS's for the region (local clouds get theirs at start)
    region: str = DEFAULT_REGION
    access_key: str = ""
    secret_key: str = ""
    profile: str = ""  # a named AWS profile instead of keys; neither: boto3's environment chain
    image_id: str = ""  # image for release labels not in ``images``; empty: the node image by name
    kind: str = "ec2"  # "local" for a cloud served by Resilin's bundled local cloud
    subnet: str = ""  # local clouds: the container network's subnet (CIDR)
    port: int = 0  # local clouds: the EC2 endpoint's port; 0: the next one after localcloud_port
    images: Mapping[str, str] = field(default_factory=dict)  # release label → image id or name
    instance_types: Mapping[str, InstanceTypeSpec] = field(
        default_factory=dict
    )  # empty: what the cloud offers
    subnet_id: str = ""  # ec2 clouds: the VPC subnet instances go in
    security_group_ids: tuple[str, ...] = ()  # extra groups every instance joins
    create_security_group: bool = True  # one group per cluster: SSH from Resilin, all traffic within
    ssh_cidr: str = ""  # who may SSH in; empty: the host (local clouds) or anywhere (ec2 clouds)
    # ec2 clouds: the private addresses its instances get (CIDR), checked against the other clouds of
    # a multi-cloud cluster; empty: the CIDR of ``subnet_id``, asked of the cloud when a cluster is placed.
    private_range: str = ""
    quota: Quota = Quota()
    fallback: tuple[str, ...] = ()  # clouds to try, in order, when this one has no capacity
    # One instance of a cluster here gets a public address (its gateway), the others none: Resilin
    # reaches them through it (SSH ProxyJump), as EMR users reach core nodes through the master.
    ssh_via_gateway: bool = False
    # An S3 service other than Resilin's storage for this cloud's clusters (``[clouds.storage]``).
    storage: ExternalStorage | None = None

    def image_for_release(self, release_label: str | None) -> str:
        """The image configured for ``release_label``: its own, else the cloud's default, else "".

        None is a cluster started by AMI version, without a release label."""
        own = self.images.get(release_label) if release_label is not None else None
        return own or self.image_id

    def offers(self, instance_type: str) -> bool:
        return not self.instance_types or instance_type in self.instance_types

    def vcpus_of(self, instance_type: str) -> int | None:
        spec = self.instance_types.get(instance_type)
        return spec.vcpus if spec else None


# Settings of one [[clouds]] table; anything else is a typo and is refused.
COMMON_KEYS = {
    "name",
    "storage",
    "kind",
    "region",
    "instance_types",
    "quota",
    "fallback",
    "images",
    "image_id",
    "ssh_via_gateway",
}
KEYS = {
    "local": COMMON_KEYS | {"subnet", "port"},
    "ec2": COMMON_KEYS
    | {
        "endpoint",
        "access_key",
        "secret_key",
        "profile",
        "subnet_id",
        "security_group_ids",
        "create_security_group",
        "ssh_cidr",
        "private_range",
    },
}


class _Table:
    """Typed reads from one TOML table, with errors that say where."""

    def __init__(self, table: Mapping[str, Any], where: str) -> None:
        self.table, self.where = table, where

    def fail(self, message: str) -> CloudConfigError:
        return CloudConfigError(f"{self.where}: {message}")

    def str(self, key: str, default: str = "", required: bool = False) -> str:
        if key not in self.table:
            if required:
                raise self.fail(f"'{key}' is required")
            return default
        value = self.table[key]
        if not isinstance(value, str):
            raise self.fail(f"'{key}' must be a string")
        return value

    def bool(self, key: builtins.str, default: bool) -> bool:
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"'{key}' must be true or false")
        return value

    def positive_int(self, key: builtins.str, value: Any, label: builtins.str | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(f"'{label or key}' must be a positive integer")
        return value

    def str_list(self, key: builtins.str) -> tuple[builtins.str, ...]:
        value = self.table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(f"'{key}' must be a list of names")
        return tuple(value)


def _endpoint(t: _Table) -> str:
    endpoint = t.str("endpoint")
    if endpoint:
        parts = urllib.parse.urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise t.fail(f"'endpoint' must be an http(s) URL, not {endpoint!r}")
    return endpoint


def _instance_types(t: _Table) -> dict[str, InstanceTypeSpec]:
    raw = t.table.get("instance_types", {})
    if not isinstance(raw, dict):
        raise t.fail(
            "'instance_types' must be a table of instance type → { vcpus, memory_mib, hourly_price }"
        )
    types = {}
    for name, spec in raw.items():
        if not INSTANCE_TYPE_NAME.match(name):
            raise t.fail(f"instance type {name!r} is not a type name such as 'm5.xlarge'")
        if not isinstance(spec, dict):
            raise t.fail(f"instance_types.{name} must be a table such as {{ vcpus = 4, memory_mib = 16384 }}")
        unknown = set(spec) - {"vcpus", "memory_mib", "hourly_price"}
        if unknown:
            raise t.fail(f"instance_types.{name}: unknown setting(s) {', '.join(sorted(unknown))}")
        price = spec.get("hourly_price")
        if price is not None and (isinstance(price, bool) or not isinstance(price, int | float) or price < 0):
            raise t.fail(f"'instance_types.{name}.hourly_price' must be a number ≥ 0")
        for key in ("vcpus", "memory_mib"):
            if key not in spec:
                raise t.fail(f"'instance_types.{name}.{key}' is required")
        types[name] = InstanceTypeSpec(
            name=name,
            vcpus=t.positive_int("", spec["vcpus"], f"instance_types.{name}.vcpus"),
            memory_mib=t.positive_int("", spec["memory_mib"], f"instance_types.{name}.memory_mib"),
            hourly_price=float(price) if price is not None else None,
        )
    return types


def _quota(t: _Table) -> Quota:
    raw = t.table.get("quota", {})
    if not isinstance(raw, dict):
        raise t.fail("'quota' must be a table such as { instances = 20, vcpus = 80 }")
    unknown = set(raw) - {"instances", "vcpus"}
    if unknown:
        raise t.fail(f"quota: unknown setting(s) {', '.join(sorted(unknown))}; known: instances, vcpus")
    return Quota(
        instances=t.positive_int("", raw["instances"], "quota.instances") if "instances" in raw else None,
        vcpus=t.positive_int("", raw["vcpus"], "quota.vcpus") if "vcpus" in raw else None,
    )


def _images(t: _Table) -> dict[str, str]:
    raw = t.table.get("images", {})
    if not isinstance(raw, dict) or not all(isinstance(v, str) and v for v in raw.values()):
        raise t.fail("'images' must be a table of release label → image id or name")
    for label in raw:
        if not re.match(r"^emr-\d+\.\d+\.\d+$", label):
            raise t.fail(f"images: {label!r} is not a release label such as 'emr-7.5.0'")
    return dict(raw)


def _storage(t: _Table) -> ExternalStorage | None:
    if "storage" not in t.table:
        return None
    try:
        return parse_external_storage(t.table["storage"], t.where)
    except ExternalStorageError as exc:
        raise CloudConfigError(str(exc)) from None


def parse_cloud(table: Mapping[str, Any], where: str) -> CloudConfig:
    """One ``[[clouds]]`` table, checked; ``where`` prefixes every error message."""
    if not isinstance(table, dict):
        raise CloudConfigError(f"{where}: must be a table")
    t = _Table(table, where)
    name = t.str("name", required=True)
    if not CLOUD_NAME.match(name):
        raise t.fail(
            f"name {name!r} must be 1 to 40 letters, digits, '-' or '_' (it is used in 'type@{name}')"
        )
    t.where = f"{where} ({name})"
    kind = t.str("kind", "ec2")
    if kind not in KEYS:
        raise t.fail(f"kind must be 'ec2' or 'local', not {kind!r}")
    unknown = set(table) - KEYS[kind]
    if unknown:
        raise t.fail(
            f"unknown setting(s) {', '.join(sorted(unknown))} for a {kind} cloud; "
            f"known: {', '.join(sorted(KEYS[kind]))}"
        )
    common: dict[str, Any] = dict(
        name=name,
        kind=kind,
        region=t.str("region", DEFAULT_REGION),
        image_id=t.str("image_id"),
        images=_images(t),
        instance_types=_instance_types(t),
        quota=_quota(t),
        fallback=t.str_list("fallback"),
        ssh_via_gateway=t.bool("ssh_via_gateway", False),
        storage=_storage(t),
    )
    if name in common["fallback"]:
        raise t.fail("'fallback' cannot name the cloud itself")
    if kind == "local":
        subnet = t.str("subnet", required=True)
        try:
            network = ipaddress.IPv4Network(subnet)
        except ValueError:
            raise t.fail(f"'subnet' must be an IPv4 network such as '10.77.1.0/24', not {subnet!r}") from None
        if network.num_addresses < 8 or not network.is_private:
            raise t.fail(f"'subnet' {subnet} must be a private network of at least 8 addresses")
        port = table.get("port", 0)
        if port != 0:
            port = t.positive_int("port", port)
            if port > 65535:
                raise t.fail("'port' must be a TCP port number")
        return CloudConfig(subnet=str(network), port=port, **common)

    access_key, secret_key, profile = t.str("access_key"), t.str("secret_key"), t.str("profile")
    if bool(access_key) != bool(secret_key):
        raise t.fail("'access_key' and 'secret_key' go together")
    if profile and access_key:
        raise t.fail("give either 'profile' or 'access_key'/'secret_key', not both")
    ssh_cidr = t.str("ssh_cidr")
    if ssh_cidr:
        try:
            ssh_cidr = str(ipaddress.ip_network(ssh_cidr))
        except ValueError:
            raise t.fail(f"'ssh_cidr' must be a network such as '203.0.113.7/32', not {ssh_cidr!r}") from None
    private_range = t.str("private_range")
    if private_range:
        try:
            private_range = str(ipaddress.ip_network(private_range))
        except ValueError:
            raise t.fail(
                f"'private_range' must be a network such as '10.1.0.0/16', not {private_range!r}"
            ) from None
    groups = t.str_list("security_group_ids")
    for group in groups:
        if not group.startswith("sg-"):
            raise t.fail(f"security_group_ids: {group!r} is not a security group id (sg-…)")
    subnet_id = t.str("subnet_id")
    if subnet_id and not subnet_id.startswith("subnet-"):
        raise t.fail(f"'subnet_id' {subnet_id!r} is not a subnet id (subnet-…)")
    return CloudConfig(
        endpoint=_endpoint(t),
        access_key=access_key,
        secret_key=secret_key,
        profile=profile,
        subnet_id=subnet_id,
        security_group_ids=groups,
        create_security_group=t.bool("create_security_group", True),
        ssh_cidr=ssh_cidr,
        private_range=private_range,
        **common,
    )


def parse_clouds(tables: Sequence[Any], where: str) -> tuple[CloudConfig, ...]:
    """Every ``[[clouds]]`` table, checked one by one and against each other."""
    if not isinstance(tables, list):
        raise CloudConfigError(f"{where}: 'clouds' must be an array of tables ([[clouds]])")
    clouds = tuple(parse_cloud(table, f"{where}: clouds[{i}]") for i, table in enumerate(tables))
    seen: dict[str, int] = {}
    for i, cloud in enumerate(clouds):
        if cloud.name in seen:
            raise CloudConfigError(
                f"{where}: clouds[{i}]: the name {cloud.name!r} is already used by clouds[{seen[cloud.name]}]"
            )
        seen[cloud.name] = i
    for cloud in clouds:
        for other in cloud.fallback:
            if other not in seen:
                raise CloudConfigError(
                    f"{where}: cloud {cloud.name}: fallback {other!r} is not one of the [[clouds]]"
                )
    local = [c for c in clouds if c.kind == "local"]
    # Non-overlapping, so that a future overlay can route between the local clouds' networks.
    for i, a in enumerate(local):
        for b in local[i + 1 :]:
            if ipaddress.IPv4Network(a.subnet).overlaps(ipaddress.IPv4Network(b.subnet)):
                raise CloudConfigError(
                    f"{where}: the subnets of local clouds {a.name} ({a.subnet}) and {b.name} ({b.subnet}) overlap"
                )
            if a.port and a.port == b.port:
                raise CloudConfigError(f"{where}: local clouds {a.name} and {b.name} both use port {a.port}")
    return clouds
