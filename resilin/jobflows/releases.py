"""Which EMR release labels Resilin can run, what each one gives, and which instance types it offers.

Every label runs the same software: the node image's Apache Hadoop on Debian 12.  The
catalogue lists the labels EMR has published that clients commonly ask for; any label of the
same families (emr-5.x.y, emr-6.x.y, emr-7.x.y) is accepted too, and gives the same Hadoop.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from resilin.errors import ValidationError

HADOOP_VERSION = "3.5.0"
DEFAULT_RELEASE_LABEL = "emr-7.5.0"
OS_RELEASE_LABEL = "debian-12"
_SUPPORTED_LABEL = re.compile(r"^emr-(5|6|7)\.\d{1,3}\.\d{1,3}$")
SUPPORTED_APPLICATIONS = {"hadoop"}
APPLICATIONS = ({"Name": "Hadoop", "Version": HADOOP_VERSION},)

# Newest first, as ListReleaseLabels answers.
RELEASE_LABELS: tuple[str, ...] = tuple(
    f"emr-{v}"
    for v in (
        "7.5.0 7.4.0 7.3.0 7.2.0 7.1.0 7.0.0 "
        "6.15.0 6.14.0 6.13.0 6.12.0 6.11.1 6.11.0 6.10.1 6.10.0 6.9.1 6.9.0 6.8.1 6.8.0 6.7.0 "
        "6.6.0 6.5.0 6.4.0 6.3.1 6.3.0 6.2.1 6.2.0 6.1.1 6.1.0 6.0.1 6.0.0 "
        "5.36.2 5.36.1 5.36.0 5.35.0 5.34.0 5.33.1 5.33.0 5.32.1 5.32.0 5.31.1 5.31.0 5.30.2 5.30.1 "
        "5.30.0 5.29.0 5.28.1 5.28.0"
    ).split()
)


def check_release_label(label: str) -> None:
    if not _SUPPORTED_LABEL.match(label):
        raise ValidationError(f"The requested release label '{label}' is not supported.")


def check_os_release_label(label: str, release: str) -> None:
    if label != OS_RELEASE_LABEL:
        raise ValidationError(
            f"The OS release label '{label}' is not available for {release}; use '{OS_RELEASE_LABEL}'."
        )


def applications(requested: list[dict]) -> list[dict]:
    """The applications a cluster runs: Hadoop always; anything else is refused for now."""
    for app in requested:
        if app.get("Name", "").lower() not in SUPPORTED_APPLICATIONS:
            raise ValidationError(f"Specified application: {app.get('Name')} is invalid.")
    return [dict(app) for app in APPLICATIONS]


def offers_application(spec: str) -> bool:
    """Whether the labels give ``Name`` or ``Name@Version`` (ListReleaseLabels' Application filter)."""
    name, _, version = spec.partition("@")
    return any(
        app["Name"].lower() == name.lower() and (not version or app["Version"] == version)
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
