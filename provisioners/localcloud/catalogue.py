"""What the local cloud offers: instance types (mirroring EC2's names) and node images."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from resilin.provisioners.localcloud.errors import EC2Error
from resilin.provisioners.localcloud.podman import Limits
from resilin.settings.cloud_config import InstanceTypeSpec


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_mib: int

    def container_limits(self, host_cpus: int | None = None) -> Limits:
        """CPUs are clamped to the host's so that a big type still starts on a small host."""
        return Limits(min(self.vcpus, host_cpus or os.cpu_count() or 1), self.memory_mib)


INSTANCE_TYPES: dict[str, InstanceType] = {
    t.name: t
    for t in (
        InstanceType("t3.micro", 2, 1024),
        InstanceType("t3.small", 2, 2048),
        InstanceType("t3.medium", 2, 4096),
        InstanceType("t3.large", 2, 8192),
        InstanceType("m1.small", 1, 1740),
        InstanceType("m1.medium", 1, 3840),
        InstanceType("m1.large", 2, 7680),
        InstanceType("m4.large", 2, 8192),
        InstanceType("m4.xlarge", 4, 16384),
        InstanceType("m5.large", 2, 8192),
        InstanceType("m5.xlarge", 4, 16384),
        InstanceType("m5.2xlarge", 8, 32768),
        InstanceType("m5.4xlarge", 16, 65536),
        InstanceType("c5.large", 2, 4096),
        InstanceType("c5.xlarge", 4, 8192),
        InstanceType("c5.2xlarge", 8, 16384),
        InstanceType("r5.large", 2, 16384),
        InstanceType("r5.xlarge", 4, 32768),
        InstanceType("r5.2xlarge", 8, 65536),
    )
}


def offered(configured: Mapping[str, InstanceTypeSpec]) -> dict[str, InstanceType]:
    """The types a cloud offers: those its configuration lists, else the catalogue above."""
    if not configured:
        return dict(INSTANCE_TYPES)
    return {name: InstanceType(name, spec.vcpus, spec.memory_mib) for name, spec in configured.items()}


def instance_type(name: str, types: Mapping[str, InstanceType] = INSTANCE_TYPES) -> InstanceType:
    try:
        return types[name]
    except KeyError:
        raise EC2Error(
            "InvalidParameterValue",
            f"Invalid value '{name}' for InstanceType. The instance type is not offered.",
        ) from None


def image_id(image: str) -> str:
    """A stable ``ami-`` id for a container image reference, so ids survive restarts."""
    return "ami-" + hashlib.sha256(image.encode()).hexdigest()[:17]


def new_id(prefix: str) -> str:
    """EC2's long resource ids: a prefix and 17 hex digits."""
    return f"{prefix}-{secrets.token_hex(9)[:17]}"
