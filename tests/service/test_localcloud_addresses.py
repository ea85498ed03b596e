"""Public addresses of local clouds sharing a WAN, over a real Redis and without containers: every
address is given once across the installation's clouds, limits and bad input get EC2's errors,
and a public IP given at launch is let go once its instance has ended."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Coroutine
from typing import Any

import pytest

from resilin.provisioners.localcloud.cloud import LocalCloud
from resilin.provisioners.localcloud.errors import EC2Error
from resilin.provisioners.localcloud.store import TERMINATED, InstanceRecord
from resilin.provisioners.localcloud.wan import Wan
from resilin.settings.cloud_config import Quota
from resilin.settings.config import CloudConfig
from tests.localcloud_helpers import ALICE, BOB


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run an operation that needs no reactor (these never wait for podman)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the operation waited for something")


def _code(coro: Coroutine[Any, Any, Any]) -> str:
    with pytest.raises(EC2Error) as err:
        _run(coro)
    return err.value.code


@pytest.fixture
def wan_clouds(redis_client):
    """Two local clouds of one installation on a WAN of five public addresses (a /29 less the host's)."""
    wan = Wan(f"svc-wan-{secrets.token_hex(3)}", "100.64.200.0/29")
    clouds = [
        LocalCloud(
            CloudConfig(name=f"svc-{secrets.token_hex(3)}", kind="local", quota=Quota(instances=4)),
            redis_client,
            [],
            wan=wan,
        )
        for _ in range(2)
    ]
    yield clouds
    for key in redis_client.scan_iter(match=f"localcloud-wan:{wan.network}:*"):
        redis_client.delete(key)
    for cloud in clouds:
        for key in redis_client.scan_iter(match=f"localcloud:{cloud.cloud.name}:*"):
            redis_client.delete(key)


def _allocate(cloud: LocalCloud, account: str = ALICE.account_id) -> dict:
    return _run(cloud.public.allocate_address(account, {"Domain": "vpc"}))


def test_addresses_are_unique_across_the_installations_clouds(wan_clouds):
    a, b = wan_clouds
    got = [
        _allocate(a),
        _allocate(b),
        _allocate(a, BOB.account_id),
        _allocate(b),
        _allocate(b, BOB.account_id),
    ]
    ips = [g["PublicIp"] for g in got]
    assert len(set(ips)) == 5 and all(
        ipaddress.ip_address(ip) in ipaddress.ip_network("100.64.200.0/29") for ip in ips
    )
    assert "100.64.200.1" not in ips  # the host's address on the WAN
    assert _code(a.public.allocate_address(BOB.account_id, {})) == "InsufficientAddressCapacity"
    # A released address is free for any of the clouds again.
    _run(b.public.release_address(ALICE.account_id, {"AllocationId": got[1]["AllocationId"]}))
    assert _allocate(a)["PublicIp"] == got[1]["PublicIp"]


def test_address_limits_and_bad_input_get_ec2_errors(wan_clouds):
    a, _ = wan_clouds
    first = _allocate(a)
    for _ in range(3):
        _allocate(a)
    assert _code(a.public.allocate_address(ALICE.account_id, {})) == "AddressLimitExceeded"  # the quota: 4
    assert _code(a.public.allocate_address(BOB.account_id, {"Domain": "standard"})) == "InvalidParameterValue"
    assert _code(a.public.release_address(BOB.account_id, {"AllocationId": first["AllocationId"]})) == (
        "InvalidAllocationID.NotFound"
    )
    assert _code(a.public.release_address(ALICE.account_id, {"AllocationId": "eipalloc-nope"})) == (
        "InvalidAllocationID.Malformed"
    )
    assert _code(a.public.release_address(ALICE.account_id, {})) == "MissingParameter"
    assert _code(a.public.associate_address(ALICE.account_id, {"InstanceId": "i-0123456789abcdef0"})) == (
        "MissingParameter"
    )
    assert _code(a.public.disassociate_address(ALICE.account_id, {"AssociationId": "eipassoc-x"})) == (
        "InvalidAssociationID.Malformed"
    )
    assert _code(
        a.public.describe_addresses(ALICE.account_id, {"Filters": [{"Name": "nope", "Values": ["x"]}]})
    ) == ("InvalidParameterValue")
    listed = _run(
        a.public.describe_addresses(
            ALICE.account_id, {"Filters": [{"Name": "public-ip", "Values": [first["PublicIp"]]}]}
        )
    )
    assert [x["AllocationId"] for x in listed["Addresses"]] == [first["AllocationId"]]
    assert _run(a.public.describe_addresses(BOB.account_id, {}))["Addresses"] == []


def test_a_cloud_without_a_wan_refuses_public_addresses(redis_client):
    cloud = LocalCloud(CloudConfig(name=f"svc-{secrets.token_hex(3)}", kind="local"), redis_client, [])
    assert _code(cloud.public.allocate_address(ALICE.account_id, {})) == "UnsupportedOperation"


def test_a_launch_address_is_let_go_when_its_instance_has_ended(wan_clouds, redis_client):
    a, _ = wan_clouds
    record = InstanceRecord(
        instance_id="i-0123456789abcdef0",
        account=ALICE.account_id,
        reservation_id="r-1",
        image_id="ami-1",
        image="img",
        instance_type="t3.micro",
        launch_time=1.0,
    )
    ip = a.public.assign_at_launch(ALICE.account_id, record.instance_id)
    a.store.save(record)
    claims = f"localcloud-wan:{a.public.wan.network}:ips" if a.public.wan else ""
    assert redis_client.hexists(claims, ip) and a.public.by_instance()[record.instance_id].public_ip == ip
    assert _run(a.public.describe_addresses(ALICE.account_id, {}))["Addresses"] == []  # not an Elastic IP
    record.phase = TERMINATED  # ended without the cloud being told (a crash): the next look settles it
    a.store.save(record)
    a.public.settle()
    assert not redis_client.hexists(claims, ip) and a.public.by_instance() == {}


def test_wan_shaping_requests_are_checked_before_anything_is_touched(wan_clouds):
    a, _ = wan_clouds
    bodies = (
        {"rate_mbit": -1},
        {"rate_mbit": 0},
        {"rate_mbit": True},
        {"speed": 3},
        [1],
        {},
        {"delay_ms": 5001},
    )
    for body in bodies:
        assert _code(a.wan_faults.shape("i-0123456789abcdef0", body)) == "InvalidParameterValue"
    for body in ({"rate_mbit": 10}, {"delay_ms": 40}):
        assert _code(a.wan_faults.shape("i-0123456789abcdef0", body)) == "InvalidInstanceID.NotFound"
