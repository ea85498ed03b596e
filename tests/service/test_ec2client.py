"""Resilin's EC2 provisioning client against moto's EC2 server on loopback: the API conversation
(key pairs, tagged launches, waits, lookups by tag, teardown, throttling retries)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from resilin.provisioners.ec2client import EC2Client, InstanceFailed, ProvisioningError, ProvisioningTimeout
from resilin.settings.config import CloudConfig
from tests.ec2_fault_proxy import FaultProxy

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAqaZPyrUup4yHw01+7HvvJ9NVjmfn0XZoNME/55HQuE test@resilin"


def _cloud(endpoint: str) -> CloudConfig:
    return CloudConfig(name="moto", endpoint=endpoint, access_key="testing", secret_key="testing")


@pytest.fixture
def client(moto_endpoint):
    return EC2Client(_cloud(moto_endpoint))


@pytest.fixture(scope="module")
def moto_image(moto_endpoint):
    images = EC2Client(_cloud(moto_endpoint)).ec2.describe_images(Owners=["amazon"])["Images"]
    return next(i for i in images if i.get("Name"))


def _throttling(upstream: str, n: int) -> FaultProxy:
    """moto behind a proxy that refuses the first ``n`` RunInstances as EC2 does when throttling."""
    proxy = FaultProxy(upstream)
    proxy.fail("RunInstances", "RequestLimitExceeded", 503, times=n)
    return proxy


def _run_bodies(proxy: FaultProxy) -> list[dict[str, list[str]]]:
    return [c.form for c in proxy.calls if c.action == "RunInstances"]


def test_full_provisioning_conversation(client, moto_image):
    fingerprint = client.import_key_pair("cluster-key", PUBLIC_KEY)
    assert fingerprint
    image = client.image_for(moto_image["Name"])
    assert image == moto_image["ImageId"] and client.image_for(image) == image

    ids = client.launch(
        image, "m5.xlarge", 2, "cluster-key", {"resilin:cluster": "j-MOTO", "role": "core"}, "#!/bin/sh"
    )
    assert len(ids) == 2
    infos = client.wait_running(ids, timeout=30)
    assert [i.id for i in infos] == ids
    assert all(i.state == "running" and i.private_ip and i.address for i in infos)

    described = client.describe(ids)
    tags = {t["Key"]: t["Value"] for t in described[ids[0]]["Tags"]}
    assert tags == {"resilin:cluster": "j-MOTO", "role": "core"}
    assert described[ids[0]]["KeyName"] == "cluster-key"
    assert sorted(i.id for i in client.find_by_tag("resilin:cluster", "j-MOTO")) == sorted(ids)

    client.terminate(ids)
    client.wait_terminated(ids, timeout=30)
    assert client.find_by_tag("resilin:cluster", "j-MOTO") == []
    assert {i.state for i in client.find_by_tag("resilin:cluster", "j-MOTO", states=["terminated"])} == {
        "terminated"
    }
    client.delete_key_pair("cluster-key")
    assert "cluster-key" not in {k["KeyName"] for k in client.ec2.describe_key_pairs()["KeyPairs"]}


def test_throttled_launch_is_retried_with_the_same_client_token(moto_endpoint, moto_image):
    with _throttling(moto_endpoint, n=2) as proxy:
        client = EC2Client(_cloud(proxy.endpoint))
        ids = client.launch(moto_image["ImageId"], "m5.large", 1, "", {"resilin:cluster": "j-THROTTLE"}, "")
    assert len(_run_bodies(proxy)) == 3
    assert len({body["ClientToken"][0] for body in _run_bodies(proxy)}) == 1
    direct = EC2Client(_cloud(moto_endpoint))
    assert [i.id for i in direct.find_by_tag("resilin:cluster", "j-THROTTLE")] == ids
    direct.terminate(ids)


def test_throttling_that_never_ends_gives_up(moto_endpoint, moto_image):
    with _throttling(moto_endpoint, n=100) as proxy:
        client = EC2Client(_cloud(proxy.endpoint), max_attempts=3)
        with pytest.raises(ClientError, match="RequestLimitExceeded"):
            client.launch(moto_image["ImageId"], "m5.large", 1, "", {}, "")
    assert len(_run_bodies(proxy)) == 3


def test_instance_that_ends_terminated_is_a_clear_error(client, moto_image):
    ids = client.launch(moto_image["ImageId"], "m5.large", 1, "", {}, "")
    client.ec2.terminate_instances(InstanceIds=ids)
    with pytest.raises(InstanceFailed) as err:
        client.wait_running(ids, timeout=30)
    assert err.value.instance_id == ids[0] and err.value.state in ("terminated", "shutting-down")


def test_host_keys_wait_for_the_console_block(client, moto_image):
    # moto's console is a canned boot log with no SSH HOST KEY KEYS block.
    ids = client.launch(moto_image["ImageId"], "m5.large", 1, "", {}, "")
    try:
        with pytest.raises(ProvisioningTimeout, match="no SSH host keys"):
            client.host_keys(ids[0], timeout=1.5)
    finally:
        client.terminate(ids)


def test_terminate_tolerates_instances_already_gone(client, moto_image):
    ids = client.launch(moto_image["ImageId"], "m5.large", 1, "", {}, "")
    client.terminate([*ids, "i-0000000000000000f"])
    client.wait_terminated([*ids, "i-0000000000000000f"], timeout=30)


def test_errors_that_are_not_throttling_surface_at_once(client):
    client.import_key_pair("dup", PUBLIC_KEY)
    try:
        with pytest.raises(ClientError) as err:
            client.import_key_pair("dup", PUBLIC_KEY)
        assert err.value.response["Error"]["Code"] == "InvalidKeyPair.Duplicate"
        assert err.value.response["ResponseMetadata"]["RetryAttempts"] == 0
    finally:
        client.delete_key_pair("dup")
    with pytest.raises(ProvisioningError, match="not found"):
        client.image_for("ami-0123456789abcdef0")
    with pytest.raises(ProvisioningError, match="no image named"):
        client.image_for("no-such-image-*")


def test_client_uses_the_cloud_endpoint(moto_endpoint):
    client = EC2Client(_cloud(moto_endpoint))
    assert client.ec2.meta.endpoint_url == moto_endpoint
    assert client.ec2.meta.region_name == "us-east-1"
