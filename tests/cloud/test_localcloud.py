"""The local cloud for real: its service on loopback (a child process), real podman containers,
real Redis, spoken to with boto3's EC2 client and reached over SSH with paramiko."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import boto3
import paramiko
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError

from resilin.aws.sigv4 import Credentials
from resilin.provisioners.ec2client import EC2Client, InstanceFailed
from resilin.provisioners.localcloud.admin_client import AdminClient, AdminError
from resilin.provisioners.localcloud.catalogue import image_id, new_id
from resilin.provisioners.localcloud.podman import Podman
from resilin.provisioners.localcloud.process import LocalCloudProcess, remove_cloud
from resilin.provisioners.localcloud.server import MAX_BODY, gateway_ip
from resilin.provisioners.localcloud.store import InstanceRecord, Store
from resilin.settings.config import CloudConfig
from tests.bodylimit import answer_to_chunked_body, answer_to_declared_length
from tests.localcloud_helpers import ALICE, BOB, cloud_process, discard_cloud
from tests.localcloud_helpers import console_host_keys as _host_keys
from tests.localcloud_helpers import ec2_client as _ec2
from tests.localcloud_helpers import error_code as _code
from tests.localcloud_helpers import free_subnet as _free_subnet
from tests.localcloud_helpers import image_of as _image
from tests.localcloud_helpers import instances as _instances
from tests.localcloud_helpers import ssh_run as _ssh
from tests.localcloud_helpers import wait_state as _wait

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or os.geteuid() != 0, reason="needs podman as root"
)

MISSING_IMAGE = "localhost/resilin-no-such-image:none"


@pytest.fixture(scope="module")
def cloud(redis_server, node_image, tmp_path_factory):
    name = "test-" + secrets.token_hex(3)  # containers are labelled resilin.cloud=test-…: leaks are findable
    proc = LocalCloudProcess(
        cloud=name,
        subnet=_free_subnet(),
        images=[node_image, MISSING_IMAGE],
        redis_url=redis_server.url,
        accounts=[ALICE, BOB],
        log_path=tmp_path_factory.mktemp("localcloud") / "localcloud.log",
    )
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()
        remove_cloud(name)
        client = redis_server.client()
        for key in client.scan_iter(match=f"localcloud:{name}:*"):
            client.delete(key)


@pytest.fixture
def ec2(cloud):
    return _ec2(cloud)


@pytest.fixture
def ssh_key():
    return paramiko.RSAKey.generate(2048)


@pytest.fixture
def launched(ec2, cloud):
    """Instance ids launched by a test; whatever is left is terminated afterwards."""
    ids: list[str] = []
    yield ids
    if ids:
        try:
            ec2.terminate_instances(InstanceIds=ids)
        except ClientError:
            pass


def test_boto3_launches_reaches_over_ssh_and_terminates(ec2, cloud, node_image, ssh_key, launched):
    public = f"ssh-rsa {ssh_key.get_base64()} test"
    ec2.import_key_pair(KeyName="e2e", PublicKeyMaterial=public.encode())
    reservation = ec2.run_instances(
        ImageId=_image(ec2, node_image),
        InstanceType="m5.large",
        MinCount=2,
        MaxCount=2,
        KeyName="e2e",
        UserData="#!/bin/sh\necho user data\n",
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": "cluster", "Value": "j-E2E"}, {"Key": "role", "Value": "core"}],
            }
        ],
    )
    ids = [i["InstanceId"] for i in reservation["Instances"]]
    launched.extend(ids)
    assert [i["State"]["Name"] for i in reservation["Instances"]] == ["pending", "pending"]
    assert reservation["OwnerId"] == ALICE.account_id

    running = _wait(ec2, ids, "running")
    network = ipaddress.ip_network(cloud.subnet)
    for inst in running:
        assert ipaddress.ip_address(inst["PrivateIpAddress"]) in network
        # No public address unless asked for (it would be on the WAN); the host reaches the private one.
        assert "PublicIpAddress" not in inst and inst["PublicDnsName"] == ""
        assert inst["PrivateDnsName"] == inst["PrivateIpAddress"]
        assert inst["NetworkInterfaces"][0]["PrivateIpAddress"] == inst["PrivateIpAddress"]
        assert {t["Key"]: t["Value"] for t in inst["Tags"]} == {"cluster": "j-E2E", "role": "core"}
        assert inst["KeyName"] == "e2e" and inst["InstanceType"] == "m5.large"
    by_tag = _instances(ec2, Filters=[{"Name": "tag:cluster", "Values": ["j-E2E"]}])
    assert sorted(i["InstanceId"] for i in by_tag) == sorted(ids)
    assert _instances(ec2, Filters=[{"Name": "tag:cluster", "Values": ["j-OTHER"]}]) == []
    assert (
        len(
            _instances(
                ec2,
                Filters=[{"Name": "tag-key", "Values": ["role"]}, {"Name": "instance-id", "Values": ids[:1]}],
            )
        )
        == 1
    )

    for inst in running:
        host_keys = _host_keys(ec2, inst["InstanceId"])
        assert "ssh-ed25519" in {t for t, _ in host_keys}  # every node image makes one
        assert _ssh(inst["PrivateIpAddress"], host_keys, ssh_key, "hostname") == inst["InstanceId"]

    # The pin is what protects the connection: a wrong key for the address is refused.
    wrong = [k for k in _host_keys(ec2, running[0]["InstanceId"]) if k[0] == "ssh-ed25519"]
    with pytest.raises(paramiko.BadHostKeyException):
        _ssh(running[1]["PrivateIpAddress"], wrong, ssh_key, "true")

    result = ec2.terminate_instances(InstanceIds=ids)["TerminatingInstances"]
    assert {r["CurrentState"]["Name"] for r in result} == {"shutting-down"}
    assert {r["PreviousState"]["Name"] for r in result} == {"running"}
    gone = _wait(ec2, ids, "terminated")
    assert all(i["StateReason"]["Code"] == "Client.UserInitiatedShutdown" for i in gone)
    assert Podman().list({"resilin.cloud": cloud.cloud, "resilin.instance-id": ids[0]}) == []
    assert Podman().list({"resilin.cloud": cloud.cloud, "resilin.instance-id": ids[1]}) == []
    # Terminated instances stay visible, like on EC2.
    assert len(_instances(ec2, Filters=[{"Name": "instance-state-name", "Values": ["terminated"]}])) >= 2


def test_container_limits_follow_the_instance_type(ec2, cloud, node_image, launched):
    [inst] = ec2.run_instances(
        ImageId=_image(ec2, node_image), InstanceType="t3.medium", MinCount=1, MaxCount=1
    )["Instances"]
    launched.append(inst["InstanceId"])
    _wait(ec2, [inst["InstanceId"]], "running")
    [container] = Podman().list({"resilin.instance-id": inst["InstanceId"]})
    info = json.loads(
        subprocess.run(["podman", "inspect", container.id], capture_output=True, check=True).stdout
    )[0]
    assert info["HostConfig"]["Memory"] == 4096 * 1024 * 1024
    assert info["HostConfig"]["NanoCpus"] == min(2, os.cpu_count()) * 10**9
    assert container.labels["resilin.account"] == ALICE.account_id
    assert container.labels["resilin.instance-type"] == "t3.medium"


def test_bad_input_is_refused_with_ec2_errors(ec2, node_image):
    ami = _image(ec2, node_image)
    assert _code(ec2.run_instances, MinCount=1, MaxCount=1) == "MissingParameter"
    assert _code(ec2.run_instances, ImageId=ami, InstanceType="m5.gigantic", MinCount=1, MaxCount=1) == (
        "InvalidParameterValue"
    )
    assert (
        _code(ec2.run_instances, ImageId="ami-00000000000000000", MinCount=1, MaxCount=1)
        == "InvalidAMIID.NotFound"
    )
    assert _code(ec2.run_instances, ImageId="not-an-ami", MinCount=1, MaxCount=1) == "InvalidAMIID.Malformed"
    assert _code(ec2.run_instances, ImageId=ami, MinCount=2, MaxCount=1) == "InvalidParameterValue"
    assert (
        _code(ec2.run_instances, ImageId=ami, MinCount=1, MaxCount=1, KeyName="nope")
        == "InvalidKeyPair.NotFound"
    )
    assert _code(ec2.describe_instances, InstanceIds=["i-0123456789abcdef0"]) == "InvalidInstanceID.NotFound"
    assert _code(ec2.terminate_instances, InstanceIds=["i-0123456789abcdef0"]) == "InvalidInstanceID.NotFound"
    assert _code(ec2.describe_instances, InstanceIds=["vm-1"]) == "InvalidInstanceID.Malformed"
    assert _code(ec2.get_console_output, InstanceId="i-0123456789abcdef0") == "InvalidInstanceID.NotFound"
    assert (
        _code(ec2.describe_instances, Filters=[{"Name": "flavour", "Values": ["x"]}])
        == "InvalidParameterValue"
    )
    assert _code(ec2.describe_images, ImageIds=["ami-00000000000000000"]) == "InvalidAMIID.NotFound"
    assert _code(ec2.import_key_pair, KeyName="bad", PublicKeyMaterial=b"not a key") == "InvalidKey.Format"
    assert _code(ec2.run_instances, ImageId=ami, MinCount=1, MaxCount=1, DryRun=True) == "DryRunOperation"


def _signed(cloud, body: str, creds=ALICE, headers: dict[str, str] | None = None) -> urllib.request.Request:
    request = AWSRequest(
        method="POST",
        url=cloud.endpoint,
        data=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"} | (headers or {}),
    )
    SigV4Auth(BotoCredentials(creds.access_key, creds.secret_key), "ec2", "us-east-1").add_auth(request)
    return urllib.request.Request(
        cloud.endpoint, data=body.encode(), headers=dict(request.headers), method="POST"
    )


def _send(request) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_unknown_action_and_unsupported_action(cloud):
    status, body = _send(_signed(cloud, "Action=LaunchRockets&Version=2016-11-15"))
    assert status == 400 and "<Code>InvalidAction</Code>" in body and "<RequestID>" in body
    status, body = _send(_signed(cloud, "Action=CreateVpc&Version=2016-11-15&CidrBlock=10.0.0.0/16"))
    assert status == 400 and "<Code>UnsupportedOperation</Code>" in body
    status, body = _send(_signed(cloud, "Action=DescribeInstances&Version=2016-11-15&Colour=blue"))
    assert status == 400 and "<Code>UnknownParameter</Code>" in body


def test_unsigned_and_badly_signed_requests_fail_auth(cloud):
    body = b"Action=DescribeInstances&Version=2016-11-15"
    status, text = _send(urllib.request.Request(cloud.endpoint, data=body, method="POST"))
    assert status == 401 and "<Code>AuthFailure</Code>" in text
    wrong_secret = Credentials(ALICE.access_key, "x" * 40, ALICE.account_id)
    assert _code(_ec2(cloud, wrong_secret).describe_instances) == "AuthFailure"
    unknown = Credentials("AKIAUNKNOWNUNKNOWN00", "y" * 40, "333333333333")
    assert _code(_ec2(cloud, unknown).describe_instances) == "AuthFailure"
    # Tampering with a signed body breaks the signature.
    request = _signed(cloud, "Action=DescribeInstances&Version=2016-11-15")
    request.data = b"Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-0123456789abcdef0"
    request.headers["Content-length"] = str(len(request.data))
    status, text = _send(request)
    assert status == 401 and "AuthFailure" in text


def test_a_captured_request_cannot_carry_another_body(ec2, cloud, node_image, launched):
    captured = _signed(cloud, "Action=DescribeInstances&Version=2016-11-15")
    run = (
        f"Action=RunInstances&Version=2016-11-15&ImageId={_image(ec2, node_image)}&MinCount=1&MaxCount=1"
        "&TagSpecification.1.ResourceType=instance"
        "&TagSpecification.1.Tag.1.Key=attack&TagSpecification.1.Tag.1.Value=payload-swap"
    ).encode()
    # The body swapped, and x-amz-content-sha256 claiming the captured body's hash.
    swapped = urllib.request.Request(
        cloud.endpoint,
        data=run,
        headers=captured.headers | {"X-amz-content-sha256": hashlib.sha256(captured.data).hexdigest()},
        method="POST",
    )
    status, text = _send(swapped)
    assert status == 401 and "<Code>AuthFailure</Code>" in text
    launched.extend(i["InstanceId"] for i in _instances(ec2))  # cleaned up, should the attack succeed
    assert _instances(ec2, Filters=[{"Name": "tag:attack", "Values": ["payload-swap"]}]) == []
    assert _send(captured)[0] == 200  # the request as signed still goes through
    # A payload left unsigned is S3's alone.
    unsigned = _signed(
        cloud,
        "Action=DescribeInstances&Version=2016-11-15",
        headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"},
    )
    status, text = _send(unsigned)
    assert status == 401 and "unsigned payload" in text


def test_a_captured_admin_request_cannot_carry_another_body(cloud):
    url = f"{cloud.endpoint}admin/faults"
    signed_body = b'{"throttle": 0}'
    request = AWSRequest(
        method="PUT", url=url, data=signed_body, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(BotoCredentials(ALICE.access_key, ALICE.secret_key), "ec2", "us-east-1").add_auth(request)
    headers = dict(request.headers) | {"X-Amz-Content-SHA256": hashlib.sha256(signed_body).hexdigest()}
    status, text = _send(
        urllib.request.Request(url, data=b'{"throttle": 1000}', headers=headers, method="PUT")
    )
    assert status == 401 and "AuthFailure" in text
    assert AdminClient(cloud.endpoint, ALICE.access_key, ALICE.secret_key).faults()["throttle"] == 0


def test_oversized_bodies_are_refused_before_they_are_read(cloud):
    address, form = ("127.0.0.1", cloud.port), {"Content-Type": "application/x-www-form-urlencoded"}
    answers = [
        answer_to_declared_length(address, "/", 10 * 1024**3, form),
        answer_to_declared_length(
            address, "/admin/faults", MAX_BODY + 1, {"Content-Type": "application/json"}
        ),
        answer_to_chunked_body(address, "/", MAX_BODY, form),
    ]
    for answer in answers:  # each read to the connection's close, with no 100 Continue before it
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413 ") and b"<Code>RequestEntityTooLarge</Code>" in body
    assert _send(_signed(cloud, "Action=DescribeInstances&Version=2016-11-15"))[0] == 200


def test_credentials_scoped_to_another_region_are_refused(cloud):
    ec2 = boto3.client(
        "ec2",
        endpoint_url=cloud.endpoint,
        region_name="eu-west-1",
        aws_access_key_id=ALICE.access_key,
        aws_secret_access_key=ALICE.secret_key,
        config=Config(retries={"total_max_attempts": 1}),
    )
    with pytest.raises(ClientError) as refused:
        ec2.describe_instances()
    error = refused.value.response["Error"]
    assert (
        error["Code"] == "AuthFailure" and "'eu-west-1' is wrong; expecting 'us-east-1'" in error["Message"]
    )
    with pytest.raises(AdminError) as denied:
        AdminClient(cloud.endpoint, ALICE.access_key, ALICE.secret_key, region="eu-west-1").faults()
    assert (denied.value.status, denied.value.code) == (401, "AuthFailure")
    assert AdminClient(cloud.endpoint, ALICE.access_key, ALICE.secret_key).faults()["throttle"] == 0


def test_accounts_do_not_see_each_others_instances_or_keys(ec2, cloud, node_image, launched, ssh_key):
    bob = _ec2(cloud, BOB)
    ec2.import_key_pair(KeyName="shared-name", PublicKeyMaterial=f"ssh-rsa {ssh_key.get_base64()}".encode())
    [inst] = ec2.run_instances(
        ImageId=_image(ec2, node_image), MinCount=1, MaxCount=1, KeyName="shared-name"
    )["Instances"]
    launched.append(inst["InstanceId"])
    iid = inst["InstanceId"]
    assert iid not in {i["InstanceId"] for i in _instances(bob)}
    assert _code(bob.describe_instances, InstanceIds=[iid]) == "InvalidInstanceID.NotFound"
    assert _code(bob.terminate_instances, InstanceIds=[iid]) == "InvalidInstanceID.NotFound"
    assert _code(bob.get_console_output, InstanceId=iid) == "InvalidInstanceID.NotFound"
    assert _code(
        bob.run_instances, ImageId=inst["ImageId"], MinCount=1, MaxCount=1, KeyName="shared-name"
    ) == ("InvalidKeyPair.NotFound")
    assert bob.describe_key_pairs()["KeyPairs"] == []
    # Bob may use the same key name for a key of his own.
    bob.import_key_pair(KeyName="shared-name", PublicKeyMaterial=f"ssh-rsa {ssh_key.get_base64()}".encode())
    assert _instances(ec2, InstanceIds=[iid])[0]["State"]["Name"] in ("pending", "running")


def test_key_pairs_images_and_instance_types(ec2, node_image, ssh_key):
    material = f"ssh-rsa {ssh_key.get_base64()} me@host".encode()
    created = ec2.import_key_pair(KeyName="kp", PublicKeyMaterial=material)
    assert created["KeyPairId"].startswith("key-") and created["KeyFingerprint"].count(":") == 15
    assert _code(ec2.import_key_pair, KeyName="kp", PublicKeyMaterial=material) == "InvalidKeyPair.Duplicate"
    [pair] = ec2.describe_key_pairs(KeyNames=["kp"], IncludePublicKey=True)["KeyPairs"]
    assert pair["KeyFingerprint"] == created["KeyFingerprint"] and pair["PublicKey"].startswith("ssh-rsa ")
    assert ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": ["k*"]}])["KeyPairs"]
    assert ec2.delete_key_pair(KeyName="kp")["Return"] is True
    assert _code(ec2.describe_key_pairs, KeyNames=["kp"]) == "InvalidKeyPair.NotFound"
    assert ec2.delete_key_pair(KeyName="kp")["Return"] is True  # as on EC2: deleting nothing succeeds

    images = {i["Name"]: i for i in ec2.describe_images()["Images"]}
    assert (
        images[node_image]["ImageId"] == image_id(node_image) and images[node_image]["State"] == "available"
    )
    assert images[MISSING_IMAGE]["State"] == "pending"
    named = ec2.describe_images(Filters=[{"Name": "name", "Values": [node_image.split(":")[0] + ":*"]}])[
        "Images"
    ]
    assert [i["ImageId"] for i in named] == [image_id(node_image)]

    types = {t["InstanceType"]: t for t in ec2.describe_instance_types()["InstanceTypes"]}
    assert types["m5.xlarge"]["VCpuInfo"]["DefaultVCpus"] == 4
    assert types["m5.xlarge"]["MemoryInfo"]["SizeInMiB"] == 16384
    assert _code(ec2.describe_instance_types, InstanceTypes=["m5.gigantic"]) == "InvalidInstanceType"
    [zone] = ec2.describe_availability_zones()["AvailabilityZones"]
    assert zone["ZoneName"] == "us-east-1a" and zone["State"] == "available"


def test_client_token_makes_run_instances_idempotent(ec2, node_image, launched):
    ami = _image(ec2, node_image)
    first = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, ClientToken="same-token")
    launched.extend(i["InstanceId"] for i in first["Instances"])
    again = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, ClientToken="same-token")
    assert again["ReservationId"] == first["ReservationId"]
    assert [i["InstanceId"] for i in again["Instances"]] == [i["InstanceId"] for i in first["Instances"]]

    # Tags added after launch are found by filters (with EC2's wildcards).
    ec2.create_tags(
        Resources=[first["Instances"][0]["InstanceId"]], Tags=[{"Key": "stage", "Value": "late-tag"}]
    )
    tagged = _instances(ec2, Filters=[{"Name": "tag:stage", "Values": ["late-*"]}])
    assert [i["InstanceId"] for i in tagged] == [first["Instances"][0]["InstanceId"]]
    assert _code(
        ec2.create_tags, Resources=[tagged[0]["InstanceId"]], Tags=[{"Key": "aws:x", "Value": "1"}]
    ) == ("InvalidParameterValue")


def test_failed_launch_ends_terminated_with_a_reason(ec2, cloud):
    [inst] = ec2.run_instances(ImageId=image_id(MISSING_IMAGE), MinCount=1, MaxCount=1)["Instances"]
    [gone] = _wait(ec2, [inst["InstanceId"]], "terminated")
    assert gone["StateReason"]["Code"] == "Server.InternalError"
    assert "image not known" in gone["StateReason"]["Message"]


def test_state_survives_a_restart_and_a_lost_redis(ec2, cloud, node_image, launched, redis_server):
    [inst] = ec2.run_instances(
        ImageId=_image(ec2, node_image),
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "keep", "Value": "me"}]}],
    )["Instances"]
    iid = inst["InstanceId"]
    launched.append(iid)
    [before] = _wait(ec2, [iid], "running")

    cloud.stop()
    cloud.start()
    [after] = _wait(ec2, [iid], "running")
    assert after["PrivateIpAddress"] == before["PrivateIpAddress"] and after["Tags"] == before["Tags"]

    # Even without its Redis record, the instance is found again from its container's labels.
    redis_server.client().delete(f"localcloud:{cloud.cloud}:instance:{iid}")
    [adopted] = _wait(ec2, [iid], "running")
    assert adopted["Tags"] == [{"Key": "keep", "Value": "me"}]
    assert adopted["LaunchTime"] == before["LaunchTime"]


def test_ec2client_provisions_on_the_local_cloud(cloud, node_image, ssh_key):
    """The orchestrator's path: Resilin's EC2 client, pinned host keys, SSH, teardown."""
    client = EC2Client(
        CloudConfig(
            name=cloud.cloud,
            endpoint=cloud.endpoint,
            access_key=ALICE.access_key,
            secret_key=ALICE.secret_key,
            kind="local",
        )
    )
    key_name = "cluster-" + hashlib.sha256(ssh_key.get_base64().encode()).hexdigest()[:8]
    client.import_key_pair(key_name, f"ssh-rsa {ssh_key.get_base64()}")
    ids = client.launch(
        client.image_for(node_image), "m5.xlarge", 1, key_name, {"cluster": "j-CLIENT"}, "echo hi"
    )
    try:
        [info] = client.wait_running(ids, timeout=120)
        keys = [k.split() for k in client.host_keys(info.id, timeout=60)]
        assert _ssh(info.address, keys, ssh_key, "hostname") == info.id
        # Instances reach services on the host through the network's gateway.
        gateway = gateway_ip(cloud.cloud)
        assert ipaddress.ip_address(gateway) in ipaddress.ip_network(cloud.subnet)
        with socket.create_server((gateway, 0)) as listener:
            port = listener.getsockname()[1]
            threading.Thread(
                target=lambda: listener.accept()[0].sendall(b"hello from the host"), daemon=True
            ).start()
            probe = f"python3 -c \"import socket; print(socket.create_connection(('{gateway}', {port}), 5).recv(64).decode())\""
            assert _ssh(info.address, keys, ssh_key, probe) == "hello from the host"
        assert [i.id for i in client.find_by_tag("cluster", "j-CLIENT")] == ids
    finally:
        client.terminate(ids)
        client.wait_terminated(ids, timeout=60)
        client.delete_key_pair(key_name)
    assert client.find_by_tag("cluster", "j-CLIENT") == []

    failing = client.launch(image_id(MISSING_IMAGE), "m1.small", 1, "", {}, "")
    with pytest.raises(InstanceFailed, match="terminated"):
        client.wait_running(failing, timeout=60)


def test_interrupted_launch_is_finished_after_a_restart(ec2, cloud, node_image, redis_server):
    """A launch accepted just before the service stopped (record written, no container yet)."""
    cloud.stop()
    record = InstanceRecord(
        instance_id=new_id("i"),
        account=ALICE.account_id,
        reservation_id=new_id("r"),
        image_id=image_id(node_image),
        image=node_image,
        instance_type="m1.small",
        launch_time=round(time.time(), 3),
    )
    Store(redis_server.client(), cloud.cloud).save(record)
    cloud.start()
    try:
        [inst] = _wait(ec2, [record.instance_id], "running")
        assert inst["PrivateIpAddress"]
    finally:
        ec2.terminate_instances(InstanceIds=[record.instance_id])
    _wait(ec2, [record.instance_id], "terminated")


def test_service_refuses_to_start_on_a_conflicting_network(cloud, node_image, redis_server, tmp_path):
    clash = LocalCloudProcess(
        cloud=cloud.cloud,  # same network name, different subnet
        subnet=_free_subnet(),
        images=[node_image],
        redis_url=redis_server.url,
        accounts=[ALICE],
        log_path=tmp_path / "clash.log",
    )
    with pytest.raises(RuntimeError, match="exited with 1"):
        clash.start(timeout=180)  # generous: podman is slow on a busy machine
    assert "exists with subnet" in (tmp_path / "clash.log").read_text()


def test_instances_reach_their_network_and_the_host_but_not_another_clouds(
    ec2, cloud, node_image, ssh_key, launched, redis_server, tmp_path
):
    """A cloud's network is its own: its instances reach each other and the host's address on it
    (where Resilin's services listen), and have no route to another local cloud's instances."""
    other = cloud_process(redis_server, [node_image], tmp_path)
    try:
        other.start()
        other_ec2 = _ec2(other)
        public = f"ssh-rsa {ssh_key.get_base64()} test"
        for client in (ec2, other_ec2):
            client.import_key_pair(KeyName="net", PublicKeyMaterial=public.encode())

        def launch(client, count: int) -> list[str]:
            reservation = client.run_instances(
                ImageId=_image(client, node_image),
                InstanceType="t3.micro",
                MinCount=count,
                MaxCount=count,
                KeyName="net",
            )
            return [i["InstanceId"] for i in reservation["Instances"]]

        ids = launch(ec2, 2)
        launched.extend(ids)
        [far_id] = launch(other_ec2, 1)
        near, neighbour = _wait(ec2, ids, "running")
        [far] = _wait(other_ec2, [far_id], "running")

        # Something of the host's listening on the cloud's gateway, as the storage service does.
        gateway = gateway_ip(cloud.cloud)
        listener = socket.create_server((gateway, 0))
        port = listener.getsockname()[1]
        try:

            def reaches(address: str, port: int) -> str:
                probe = (
                    f"timeout 5 bash -c 'echo > /dev/tcp/{address}/{port}' 2>/dev/null && echo yes || echo no"
                )
                return _ssh(near["PrivateIpAddress"], _host_keys(ec2, near["InstanceId"]), ssh_key, probe)

            assert reaches(gateway, port) == "yes"
            _host_keys(ec2, neighbour["InstanceId"])  # its sshd is up
            assert reaches(neighbour["PrivateIpAddress"], 22) == "yes"
            _host_keys(other_ec2, far_id)
            assert reaches(far["PrivateIpAddress"], 22) == "no"
        finally:
            listener.close()
        # The host reaches the other cloud's instance all the same.
        with socket.create_connection((far["PrivateIpAddress"], 22), timeout=30):
            pass
        other_ec2.terminate_instances(InstanceIds=[far_id])
        _wait(other_ec2, [far_id], "terminated")
    finally:
        assert discard_cloud(other, redis_server) == []
