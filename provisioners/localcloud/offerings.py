"""What a local cloud offers, read-only: DescribeImages, DescribeInstanceTypes, DescribeAvailabilityZones."""

from __future__ import annotations

import re
from typing import Any

from twisted.internet.threads import deferToThread

from resilin.provisioners.localcloud import catalogue, filters
from resilin.provisioners.localcloud.errors import EC2Error
from resilin.provisioners.localcloud.podman import Podman

IMAGE_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")
IMAGE_OWNER = "000000000000"  # the local cloud's own images, visible to every account


class Offerings:
    def __init__(
        self,
        cloud_name: str,
        region: str,
        images: dict[str, str],
        podman: Podman,
        types: dict[str, catalogue.InstanceType] | None = None,
    ) -> None:
        self.cloud_name, self.region = cloud_name, region
        self.types = types if types is not None else dict(catalogue.INSTANCE_TYPES)
        self.images = images  # ami id -> container image reference
        self.podman = podman

    def image(self, image_id: str | None) -> str:
        """The container image behind an ``ami-`` id, or the error EC2 would give."""
        if not image_id:
            raise EC2Error("MissingParameter", "The request must contain the parameter ImageId")
        if not IMAGE_ID.match(image_id):
            raise EC2Error("InvalidAMIID.Malformed", f'Invalid id: "{image_id}" (expecting "ami-...")')
        if image_id not in self.images:
            raise EC2Error("InvalidAMIID.NotFound", f"The image id '[{image_id}]' does not exist")
        return self.images[image_id]

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
            self.image(image_id)
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
            if name not in self.types:
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
                for t in self.types.values()
                if not asked or t.name in asked
            ]
        }

    async def describe_availability_zones(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        region = self.region
        return {
            "AvailabilityZones": [
                {
                    "ZoneName": f"{region}a",
                    "ZoneId": f"{self.cloud_name}-az1",
                    "State": "available",
                    "RegionName": region,
                    "ZoneType": "availability-zone",
                    "Messages": [],
                }
            ]
        }
