"""Which EMR release labels Resilin can run, what each one gives, and which instance types it offers.

Every label runs the same software: the node image's Apache Hadoop on Debian 12, which
DescribeCluster and DescribeReleaseLabel report as it is, whatever line EMR shipped with the
label.  The catalogue records which applications a cluster of each label may ask for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from resilin.errors import ValidationError

HADOOP_VERSION = "3.5.0"  # what the node image carries (docker/node/)
DEFAULT_RELEASE_LABEL = "emr-7.5.0"
OS_RELEASE_LABEL = "debian-12"
# Spark's version is the one the node image carries: a cluster reads it from its master once
# Spark is set up (resilin.applications.spark), and DescribeCluster reports it from then on.
APPLICATIONS: tuple[dict[str, str], ...] = ({"Name": "Hadoop", "Version": HADOOP_VERSION}, {"Name": "Spark"})


@dataclass(frozen=True)
class Release:
    label: str
    hadoop: str = HADOOP_VERSION  # the Hadoop version Resilin installs
    applications: tuple[str, ...] = ("Hadoop", "Spark")

    @property
    def version(self) -> tuple[int, ...]:
        return _version_key(self.label)


# Every label EMR has published from emr-4.0.0 (the first release label; AMI versions came before),
# newest first, from the application version tables of EMR's release guide.
_PUBLISHED = (
    "7.5.0 7.4.0 7.3.0 7.2.0 7.1.0 7.0.0 "
    "6.15.0 6.14.0 6.13.0 6.12.0 6.11.1 6.11.0 6.10.1 6.10.0 6.9.1 6.9.0 6.8.1 6.8.0 6.7.0 "
    "6.6.0 6.5.0 6.4.0 6.3.1 6.3.0 6.2.1 6.2.0 6.1.1 6.1.0 6.0.1 6.0.0 "
    "5.36.2 5.36.1 5.36.0 5.35.0 5.34.0 5.33.1 5.33.0 5.32.1 5.32.0 5.31.1 5.31.0 5.30.2 5.30.1 "
    "5.30.0 5.29.0 5.28.1 5.28.0 5.27.1 5.27.0 5.26.0 5.25.0 5.24.1 5.24.0 5.23.1 5.23.0 5.22.0 "
    "5.21.2 5.21.1 5.21.0 5.20.1 5.20.0 5.19.1 5.19.0 5.18.1 5.18.0 5.17.2 5.17.1 5.17.0 5.16.1 "
    "5.16.0 5.15.1 5.15.0 5.14.2 5.14.1 5.14.0 5.13.1 5.13.0 5.12.3 5.12.2 5.12.1 5.12.0 5.11.4 "
    "5.11.3 5.11.2 5.11.1 5.11.0 5.10.1 5.10.0 5.9.1 5.9.0 5.8.3 5.8.2 5.8.1 5.8.0 5.7.1 5.7.0 "
    "5.6.1 5.6.0 5.5.4 5.5.3 5.5.2 5.5.1 5.5.0 5.4.1 5.4.0 5.3.2 5.3.1 5.3.0 5.2.3 5.2.2 5.2.1 "
    "5.2.0 5.1.1 5.1.0 5.0.3 5.0.2 5.0.1 5.0.0 "
    "4.9.6 4.9.5 4.9.4 4.9.3 4.9.2 4.9.1 4.8.5 4.8.4 4.8.3 4.8.2 4.8.1 4.8.0 4.7.4 4.7.3 4.7.2 "
    "4.7.1 4.7.0 4.6.1 4.6.0 4.5.0 4.4.0 4.3.0 4.2.0 4.1.0 4.0.0"
).split()

CATALOGUE: dict[str, Release] = {f"emr-{v}": Release(f"emr-{v}") for v in _PUBLISHED}
FIRST_CUSTOM_AMI_RELEASE = (5, 7, 0)  # EMR takes a CustomAmiId from emr-5.7.0 on

# Legacy AMI versions (before release labels): major.minor → EMR's Hadoop version then.
_AMI_VERSION = re.compile(r"^(2\.4|3\.\d+)(\.\d+)?$")
_AMI_HADOOP = {"2.4": "1.0.3"} | {f"3.{m}": "2.4.0" for m in range(0, 12)}


def release(label: str) -> Release:
    """The catalogue entry of ``label``; EMR's validation error for a label it does not hold."""
    found = CATALOGUE.get(label)
    if found is None:
        raise ValidationError(f"The requested release label '{label}' is not supported.")
    return found


def check_ami_version(ami_version: str) -> str:
    """The legacy AMI version as it will run (``3.11`` → ``3.11.0``); refused if unknown."""
    match = _AMI_VERSION.match(ami_version)
    if not match or match.group(1) not in _AMI_HADOOP:
        raise ValidationError(f"The requested AMI version '{ami_version}' is not supported.")
    return match.group(1) + (match.group(2) or ".0")


def _version_key(label: str) -> tuple[int, ...]:
    return tuple(int(p) for p in label.removeprefix("emr-").split("."))


# Newest first, as ListReleaseLabels answers.
RELEASE_LABELS: tuple[str, ...] = tuple(sorted(CATALOGUE, key=_version_key, reverse=True))


def check_release_label(label: str) -> None:
    release(label)


def check_custom_ami(custom_ami: bool, label: str | None) -> None:
    """EMR's rule: a custom AMI needs a release label, emr-5.7.0 or later (not an AMI version)."""
    if custom_ami and (label is None or release(label).version < FIRST_CUSTOM_AMI_RELEASE):
        raise ValidationError("Custom AMI is not allowed")


def check_os_release_label(label: str, release: str) -> None:
    if label != OS_RELEASE_LABEL:
        raise ValidationError(
            f"The OS release label '{label}' is not available for {release}; use '{OS_RELEASE_LABEL}'."
        )


def applications(requested: list[dict], label: str = DEFAULT_RELEASE_LABEL) -> list[dict]:
    """The applications a cluster runs, as DescribeCluster lists them: Hadoop always, and Spark when
    asked for (on a release label: the legacy AMI versions ran Hadoop alone).  Spark's Version is
    added once the cluster has read it from its nodes."""
    offered = {name.lower(): name for name in release(label).applications} if label else {"hadoop": "Hadoop"}
    wanted = set()
    for app in requested:
        name = app.get("Name", "")
        if name.lower() not in offered:
            raise ValidationError(f"Specified application: {name} is invalid.")
        wanted.add(offered[name.lower()])
    listed: list[dict] = [{"Name": "Hadoop", "Version": release(label).hadoop if label else HADOOP_VERSION}]
    if "Spark" in wanted:
        listed.append({"Name": "Spark"})
    return listed


def offers_application(spec: str) -> bool:
    """Whether the labels give ``Name`` or ``Name@Version`` (ListReleaseLabels' Application filter)."""
    name, _, version = spec.partition("@")
    return any(
        app["Name"].lower() == name.lower() and (not version or app.get("Version") == version)
        for app in APPLICATIONS
    )


# -- instance types ----------------------------------------------------------


@dataclass(frozen=True)
class OfferedType:
    name: str
    vcpus: int
    memory_mib: int
    storage_gb: int = 0
    architecture: str = "x86_64"


@dataclass(frozen=True)
class CloudOffer:
    """What one configured cloud offers; ``types`` is None when its catalogue is not known."""

    cloud: str
    default: bool
    types: tuple[OfferedType, ...] | None
    # Its instances' private addresses (CIDR) when the settings say; None: known once placed.
    private_range: str | None = None
    # Accounts with keys on the cloud's external S3 service; None: the cloud uses Resilin's storage.
    storage_accounts: frozenset[str] | None = None


OfferedTypes = Callable[[], Sequence[CloudOffer]]


def no_offered_types() -> Sequence[CloudOffer]:
    return ()


def is_offered(offers: Sequence[CloudOffer], instance_type: str) -> bool | None:
    """Whether ``type`` (or ``type@cloud``) is offered; None when the cloud's catalogue is unknown."""
    name, _, cloud = instance_type.partition("@")
    for offer in offers:
        if (cloud and offer.cloud == cloud) or (not cloud and offer.default):
            if offer.types is None:
                return None
            return any(t.name == name for t in offer.types)
    return False if cloud else None


def supported_instance_types(offers: Sequence[CloudOffer]) -> list[dict]:
    """ListSupportedInstanceTypes' entries: the default cloud's types by name, others' as type@cloud."""
    listed = []
    for offer in sorted(offers, key=lambda o: (not o.default, o.cloud)):
        for t in offer.types or ():
            family = t.name.partition(".")[0]
            listed.append(
                {
                    "Type": t.name if offer.default else f"{t.name}@{offer.cloud}",
                    "MemoryGB": round(t.memory_mib / 1024, 3),
                    "StorageGB": t.storage_gb,
                    "VCPU": t.vcpus,
                    "Is64BitsOnly": True,
                    "InstanceFamilyId": family,
                    "EbsOptimizedAvailable": False,
                    "EbsOptimizedByDefault": False,
                    "NumberOfDisks": 0 if not t.storage_gb else 1,
                    "EbsStorageOnly": not t.storage_gb,
                    "Architecture": t.architecture,
                }
            )
    return listed
