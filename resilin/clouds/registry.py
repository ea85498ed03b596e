"""The clouds clusters can go to, each as a :class:`Placement` made once and then kept.

Used by the orchestrator (a cluster's workers), provisioning and reconciliation.  A local
cloud is reached at the endpoint this process serves it on, with the key made for it at
start; its nodes reach storage and are reached from the cloud network's gateway.  Any
other cloud is reached as configured, its nodes reaching storage at the public endpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Protocol

from resilin.aws.sigv4 import Credentials
from resilin.clouds.provisioning import Placement
from resilin.provisioners.ec2client import EC2Client
from resilin.settings.cloud_config import CloudConfig
from resilin.settings.config import Settings


class LocalCloudEndpoint(Protocol):
    """A local cloud as this process serves it."""

    endpoint: str
    gateway: str
    credentials: Credentials


class CloudRegistry:
    def __init__(self, settings: Settings, local: Mapping[str, LocalCloudEndpoint]) -> None:
        self.settings = settings
        self.local = local
        self._placements: dict[str, Placement] = {}
        self._lock = threading.Lock()  # workers of several clusters ask at once

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.settings.clouds]

    def __call__(self, name: str | None) -> Placement:
        return self.placement(name)

    def placement(self, name: str | None) -> Placement:
        """The cloud named ``name`` (the default cloud for None); KeyError for an unknown one."""
        name = name or self.settings.default_cloud
        with self._lock:
            if name not in self._placements:
                self._placements[name] = self._make(name, self.settings.cloud(name))
            return self._placements[name]

    def _make(self, name: str, cloud: CloudConfig) -> Placement:
        settings = self.settings
        if name not in self.local:
            own = settings.extra.get(
                "storage_public_endpoint", f"http://{settings.bind_host}:{settings.storage_port}"
            )
            return Placement(
                name,
                EC2Client(cloud),
                cloud.image_id or settings.node_image,
                cloud.storage.endpoint if cloud.storage else own,
                cloud=cloud,
                ssh_cidr=cloud.ssh_cidr or "0.0.0.0/0",
            )
        local = self.local[name]

        def client_as(creds: Credentials) -> EC2Client:
            return EC2Client(
                replace(
                    cloud, endpoint=local.endpoint, access_key=creds.access_key, secret_key=creds.secret_key
                )
            )

        return Placement(
            name,
            client_as(local.credentials),
            cloud.image_id or settings.node_image,
            nodes_storage_endpoint(cloud, local.gateway, settings.storage_port),
            cloud=cloud,
            ssh_cidr=f"{local.gateway}/32",  # Resilin reaches its instances from the network's gateway
            # The cloud as an account of Resilin's sees it: where Ec2KeyName's key pairs are found.
            account_client=client_as,
        )


def nodes_storage_endpoint(cloud: CloudConfig, gateway: str, storage_port: int) -> str:
    """Storage as a local cloud's nodes reach it: through the host's address on their network.

    A service on the host's loopback (an external S3 there) is reached at the same port of that
    address; it must listen there too, and the host shield lets the nodes through to it."""
    external = cloud.storage
    if external is None:
        return f"http://{gateway}:{storage_port}"
    return external.endpoint_via(gateway) if external.on_loopback else external.endpoint
