"""The local cloud's faithful failures, for real: quotas per account, faults set through the SigV4-signed
admin resource (refused capacity, partial fulfilment, throttling, instances dying while starting,
instances killed), each seen through boto3 and Resilin's EC2 client as EC2 would show it."""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from resilin.provisioners.ec2client import EC2Client
from resilin.provisioners.localcloud.admin_client import AdminClient, AdminError
from resilin.provisioners.localcloud.podman import Podman
from resilin.settings.config import CloudConfig
from tests.localcloud_helpers import (
    ALICE,
    BOB,
    cloud_process,
    discard_cloud,
    ec2_client,
    error_code,
    image_of,
    instances,
    wait_state,
)

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or os.geteuid() != 0, reason="needs podman as root"
)


@pytest.fixture(scope="module")
def cloud(redis_server, node_image, tmp_path_factory):
    # ALICE (the first account) operates the cloud; each account may run 3 instances and 8 vCPUs.
    proc = cloud_process(
        redis_server,
        [node_image],
        tmp_path_factory.mktemp("localcloud"),
        prefix="flt",
        max_instances=3,
        max_vcpus=8,
    )
    try:
        proc.start()
        yield proc
    finally:
        assert discard_cloud(proc, redis_server) == [], "instances left behind"


@pytest.fixture
def admin(cloud):
    client = AdminClient(cloud.endpoint, ALICE.access_key, ALICE.secret_key)
    client.clear_faults()
    yield client
    client.clear_faults()


@pytest.fixture
def launched(ec2):
    ids: list[str] = []
    yield ids
    live = [i["InstanceId"] for i in instances(ec2) if i["State"]["Name"] != "terminated"]
    if live:
        ec2.terminate_instances(InstanceIds=live)
        wait_state(ec2, live, "terminated")


def _run(ec2, node_image, launched: list[str], count: int, low: int | None = None, itype: str = "t3.micro"):
    reservation = ec2.run_instances(
        ImageId=image_of(ec2, node_image), InstanceType=itype, MinCount=low or count, MaxCount=count
    )
    ids = [i["InstanceId"] for i in reservation["Instances"]]
    launched.extend(ids)
    return ids


def test_admin_resource_is_for_the_operator_only(cloud, admin):
    # Unsigned: refused.
    request = urllib.request.Request(f"{cloud.endpoint}admin/faults", method="GET")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert err.value.code == 401
    # Signed by an account that is not the operator's: refused.
    with pytest.raises(AdminError) as denied:
        AdminClient(cloud.endpoint, BOB.access_key, BOB.secret_key).set_faults(throttle=5)
    assert (denied.value.status, denied.value.code) == (403, "AccessDenied")
    # Bad requests change nothing.
    for bad in (
        {"throttle": -1},
        {"capacity": "lots"},
        {"meteor_strike": 1},
        {"throttle_actions": "RunInstances"},
    ):
        with pytest.raises(AdminError) as refused:
            admin.set_faults(**bad)
        assert (refused.value.status, refused.value.code) == (400, "InvalidParameterValue")
    assert admin.faults() == {
        "insufficient_capacity": 0,
        "capacity": None,
        "throttle": 0,
        "throttle_actions": [],
        "launch_failures": 0,
    }
    with pytest.raises(AdminError) as missing:
        admin._request("GET", "nothing-here")
    assert missing.value.status == 404
    with pytest.raises(AdminError) as unknown:
        admin.kill("i-0123456789abcdef0")
    assert (unknown.value.status, unknown.value.code) == (404, "InvalidInstanceID.NotFound")


def test_quotas_per_account(ec2, cloud, node_image, launched):
    # 3 instances: a fourth is refused; 8 vCPUs: two m5.xlarge (4 each) fit, a third does not.
    assert error_code(ec2.run_instances, ImageId=image_of(ec2, node_image), MinCount=4, MaxCount=4) == (
        "InstanceLimitExceeded"
    )
    assert (
        error_code(
            ec2.run_instances,
            ImageId=image_of(ec2, node_image),
            InstanceType="m5.xlarge",
            MinCount=3,
            MaxCount=3,
        )
        == "VcpuLimitExceeded"
    )
    # With room for fewer than MaxCount but at least MinCount, EC2 launches what fits.
    ids = _run(ec2, node_image, launched, count=3, low=1, itype="m5.xlarge")
    assert len(ids) == 2
    # Another account has quotas of its own.
    bob = ec2_client(cloud, BOB)
    [bobs] = bob.run_instances(ImageId=image_of(bob, node_image), MinCount=1, MaxCount=1)["Instances"]
    bob.terminate_instances(InstanceIds=[bobs["InstanceId"]])
    wait_state(bob, [bobs["InstanceId"]], "terminated")


def test_stopped_instances_count_against_the_instance_limit(ec2, node_image, launched):
    # Stopped instances keep their address and container: were they not counted, launching and
    # stopping in a loop would take every address of the subnet the accounts share.
    ids = _run(ec2, node_image, launched, count=3)  # t3.micro: 6 of the 8 vCPUs
    wait_state(ec2, ids, "running")
    ec2.stop_instances(InstanceIds=ids)
    stopped = wait_state(ec2, ids, "stopped")
    assert all(i.get("PrivateIpAddress") for i in stopped)
    assert error_code(ec2.run_instances, ImageId=image_of(ec2, node_image), MinCount=1, MaxCount=1) == (
        "InstanceLimitExceeded"
    )
    # Already counted, they start again without more room; the vCPU limit counts them only then.
    ec2.start_instances(InstanceIds=ids[:2])
    wait_state(ec2, ids[:2], "running")
    # A terminated instance gives its room back.
    ec2.terminate_instances(InstanceIds=ids[2:])
    wait_state(ec2, ids[2:], "terminated")
    assert len(_run(ec2, node_image, launched, count=1)) == 1


def test_refused_and_partial_capacity(ec2, node_image, admin, launched):
    admin.set_faults(insufficient_capacity=1)
    with pytest.raises(ClientError) as err:
        _run(ec2, node_image, launched, count=1)
    assert err.value.response["Error"]["Code"] == "InsufficientInstanceCapacity"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert admin.faults()["insufficient_capacity"] == 0
    assert len(_run(ec2, node_image, launched, count=1)) == 1  # the next one goes through

    # Room for one more instance in the whole cloud: 3 asked, 1 required → 1 launched; then none.
    admin.set_faults(capacity=2)
    assert len(_run(ec2, node_image, launched, count=3, low=1)) == 1
    assert error_code(ec2.run_instances, ImageId=image_of(ec2, node_image), MinCount=1, MaxCount=1) == (
        "InsufficientInstanceCapacity"
    )


def test_throttling_is_answered_and_retried_by_resilins_client(ec2, cloud, node_image, admin):
    admin.set_faults(throttle=2, throttle_actions=["DescribeInstances"])
    assert error_code(ec2.describe_instances) == "RequestLimitExceeded"
    ec2.describe_images()  # other actions are not throttled
    client = EC2Client(
        CloudConfig(
            name=cloud.cloud,
            endpoint=cloud.endpoint,
            access_key=ALICE.access_key,
            secret_key=ALICE.secret_key,
        ),
        sleep=lambda s: None,
    )
    assert client.find_by_tag("nothing", "here") == []  # throttled once more, then answered
    assert admin.faults()["throttle"] == 0


def test_instances_that_die_while_starting_and_instances_killed(ec2, cloud, node_image, admin, launched):
    client = EC2Client(
        CloudConfig(
            name=cloud.cloud,
            endpoint=cloud.endpoint,
            access_key=ALICE.access_key,
            secret_key=ALICE.secret_key,
        )
    )
    admin.set_faults(launch_failures=1)
    ids = _run(ec2, node_image, launched, count=2)
    outcome = client.wait_started(ids, timeout=120)
    assert len(outcome.running) == 1 and len(outcome.failed) == 1
    [failed] = outcome.failed
    assert failed.state == "terminated" and "Server.InternalError" in failed.reason
    assert Podman().list({"resilin.instance-id": failed.instance_id}) == []  # nothing left of it

    [survivor] = outcome.running
    killed = admin.kill(survivor.id)
    assert killed == {"InstanceId": survivor.id, "State": "stopped"}
    [dead] = wait_state(ec2, [survivor.id], "stopped", timeout=60)
    assert dead["StateReason"]["Code"] == "Server.InternalError"
    [container] = Podman().list({"resilin.instance-id": survivor.id})
    assert container.state in ("exited", "stopped")  # its processes really died
    with pytest.raises(AdminError) as again:
        admin.kill(survivor.id)
    assert again.value.status == 409
