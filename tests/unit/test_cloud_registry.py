"""The cloud registry: each configured cloud as a Placement, made once, local clouds as served here."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from resilin.aws.sigv4 import Credentials
from resilin.clouds.registry import CloudRegistry
from resilin.settings.cloud_config import CloudConfig
from resilin.settings.config import Settings


@dataclass
class Served:
    endpoint: str
    gateway: str
    credentials: Credentials


def _registry(tmp_path, **extra) -> CloudRegistry:
    clouds = (
        CloudConfig(name="local", kind="local", region="us-east-1"),
        CloudConfig(
            name="aws",
            endpoint="https://ec2.eu-west-1.amazonaws.com",
            region="eu-west-1",
            access_key="AKIDAWS",
            secret_key="secret",
            image_id="ami-12345678",
            ssh_cidr="198.51.100.0/24",
        ),
    )
    settings = Settings(home=tmp_path, clouds=clouds, storage_port=8999, bind_host="192.0.2.1", extra=extra)
    served = {"local": Served("http://127.0.0.1:8997", "10.88.0.1", Credentials("AKIALOCAL", "s", "0" * 12))}
    return CloudRegistry(settings, served)


def test_a_local_cloud_is_reached_where_it_is_served_and_reaches_storage_on_its_gateway(tmp_path):
    registry = _registry(tmp_path)
    placement = registry(None)  # the default cloud
    assert placement is registry.placement("local")  # made once
    assert placement.cloud_name == "local" and placement.image_id == "localhost/resilin-node:latest"
    assert placement.storage_endpoint == "http://10.88.0.1:8999" and placement.ssh_cidr == "10.88.0.1/32"
    assert placement.client.cloud.endpoint == "http://127.0.0.1:8997"
    assert placement.client.cloud.access_key == "AKIALOCAL"
    assert placement.account_client is not None
    as_user = placement.account_client(Credentials("AKIDUSER", "u", "1" * 12))
    assert (as_user.cloud.endpoint, as_user.cloud.access_key) == ("http://127.0.0.1:8997", "AKIDUSER")


def test_another_cloud_is_reached_as_configured(tmp_path):
    placement = _registry(tmp_path)("aws")
    assert placement.client.cloud.endpoint == "https://ec2.eu-west-1.amazonaws.com"
    assert placement.image_id == "ami-12345678" and placement.ssh_cidr == "198.51.100.0/24"
    assert placement.storage_endpoint == "http://192.0.2.1:8999" and placement.account_client is None
    public = _registry(tmp_path, storage_public_endpoint="https://storage.example.org")("aws")
    assert public.storage_endpoint == "https://storage.example.org"


def test_an_unknown_cloud_is_a_key_error(tmp_path):
    registry = _registry(tmp_path)
    with pytest.raises(KeyError):
        registry("nowhere")
    assert registry.names == ["local", "aws"]
