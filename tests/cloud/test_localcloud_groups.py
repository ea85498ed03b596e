"""Security groups on the local cloud, for real: the API as EC2 answers it, rules enforced between
real containers (connections tried from instances and from the host), Stop/StartInstances keeping
an instance's address, host keys and firewall, and user data run once at first boot."""

from __future__ import annotations

import os
import shutil
import socket
import time

import paramiko
import pytest

from resilin.clouds.ssh import KeyPair
from resilin.provisioners.localcloud import firewall
from resilin.provisioners.localcloud.podman import Podman
from resilin.provisioners.localcloud.server import gateway_ip
from tests.localcloud_helpers import (
    BOB,
    cloud_process,
    console_host_keys,
    discard_cloud,
    ec2_client,
    error_code,
    image_of,
    instances,
    ssh_run,
    wait_state,
)

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or os.geteuid() != 0, reason="needs podman as root"
)


@pytest.fixture(scope="module")
def cloud(redis_server, node_image, tmp_path_factory):
    proc = cloud_process(redis_server, [node_image], tmp_path_factory.mktemp("localcloud"), prefix="sg")
    try:
        proc.start()
        yield proc
    finally:
        assert discard_cloud(proc, redis_server) == [], "instances left behind"


@pytest.fixture(scope="module")
def key(ec2) -> paramiko.PKey:
    pair = KeyPair.generate("sg-tests")
    ec2.import_key_pair(KeyName="sg-tests", PublicKeyMaterial=pair.public_line.encode())
    return pair.pkey()


def _group(ec2, name: str) -> dict:
    return ec2.describe_security_groups(GroupNames=[name])["SecurityGroups"][0]


def test_security_group_api_answers_as_ec2_does(ec2, cloud):
    default = _group(ec2, "default")
    [egress] = default["IpPermissionsEgress"]
    assert egress["IpProtocol"] == "-1" and egress["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]
    everything = next(p for p in default["IpPermissions"] if p["IpProtocol"] == "-1")
    assert everything["UserIdGroupPairs"][0]["GroupId"] == default["GroupId"]

    created = ec2.create_security_group(
        GroupName="web",
        Description="web servers",
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [{"Key": "tier", "Value": "front"}]}],
    )
    gid = created["GroupId"]
    assert gid.startswith("sg-") and created["Tags"] == [{"Key": "tier", "Value": "front"}]
    assert (
        error_code(ec2.create_security_group, GroupName="web", Description="again")
        == "InvalidGroup.Duplicate"
    )
    assert (
        error_code(ec2.create_security_group, GroupName="default", Description="x") == "InvalidGroup.Reserved"
    )
    assert error_code(ec2.create_security_group, GroupName="sg-1", Description="x") == "InvalidParameterValue"
    assert (
        error_code(ec2.create_security_group, GroupName="v", Description="x", VpcId="vpc-0123456789abcdef0")
        == "InvalidVpcID.NotFound"
    )

    added = ec2.authorize_security_group_ingress(
        GroupId=gid,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 80,
                "ToPort": 443,
                "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "inside"}],
            },
            {
                "IpProtocol": "icmp",
                "FromPort": 8,
                "ToPort": -1,
                "UserIdGroupPairs": [{"GroupId": default["GroupId"]}],
            },
        ],
    )
    assert added["Return"] is True and len(added["SecurityGroupRules"]) == 2
    assert {r["SecurityGroupRuleId"][:4] for r in added["SecurityGroupRules"]} == {"sgr-"}
    # The old flat form of the call works too.
    ec2.authorize_security_group_ingress(
        GroupName="web", IpProtocol="udp", FromPort=53, ToPort=53, CidrIp="0.0.0.0/0"
    )
    perms = {p["IpProtocol"]: p for p in _group(ec2, "web")["IpPermissions"]}
    assert perms["tcp"]["FromPort"] == 80 and perms["tcp"]["ToPort"] == 443
    assert perms["tcp"]["IpRanges"] == [{"CidrIp": "10.0.0.0/8", "Description": "inside"}]
    assert perms["icmp"]["UserIdGroupPairs"][0]["GroupId"] == default["GroupId"]
    assert perms["udp"]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]

    tcp_rule = [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]
    assert error_code(ec2.authorize_security_group_ingress, GroupId=gid, IpPermissions=tcp_rule) == (
        "InvalidPermission.Duplicate"
    )
    bad = [
        [{"IpProtocol": "tcpx", "FromPort": 1, "ToPort": 2, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}],
        [{"IpProtocol": "tcp", "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}],
        [{"IpProtocol": "tcp", "FromPort": 9, "ToPort": 2, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}],
        [{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 70000, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}],
        [{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2, "IpRanges": [{"CidrIp": "10.0.0.300/8"}]}],
        [{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2}],
    ]
    for perms_ in bad:
        assert error_code(ec2.authorize_security_group_ingress, GroupId=gid, IpPermissions=perms_) == (
            "InvalidParameterValue"
        ), perms_
    unknown_ref = [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-0123456789abcdef0"}]}]
    assert error_code(ec2.authorize_security_group_ingress, GroupId=gid, IpPermissions=unknown_ref) == (
        "InvalidGroup.NotFound"
    )
    assert error_code(ec2.describe_security_groups, GroupIds=["sg-nothex"]) == "InvalidGroupId.Malformed"
    assert (
        error_code(ec2.describe_security_groups, GroupIds=["sg-0123456789abcdef0"]) == "InvalidGroup.NotFound"
    )
    assert error_code(ec2.delete_security_group, GroupName="default") == "CannotDelete"

    assert [
        g["GroupName"]
        for g in ec2.describe_security_groups(Filters=[{"Name": "tag:tier", "Values": ["fr*"]}])[
            "SecurityGroups"
        ]
    ] == ["web"]
    tags = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["security-group"]}])["Tags"]
    assert {"Key": "tier", "Value": "front", "ResourceId": gid, "ResourceType": "security-group"} in tags
    ec2.delete_tags(Resources=[gid], Tags=[{"Key": "tier"}])
    assert _group(ec2, "web").get("Tags") in (None, [])

    # Other accounts see none of it.
    bob = ec2_client(cloud, BOB)
    assert "web" not in {g["GroupName"] for g in bob.describe_security_groups()["SecurityGroups"]}
    assert error_code(bob.delete_security_group, GroupId=gid) == "InvalidGroup.NotFound"

    revoked = ec2.revoke_security_group_ingress(GroupId=gid, IpPermissions=tcp_rule)
    assert revoked["Return"] is True and len(revoked["RevokedSecurityGroupRules"]) == 1
    again = ec2.revoke_security_group_ingress(GroupId=gid, IpPermissions=tcp_rule)
    assert again["Return"] is False and again["UnknownIpPermissions"][0]["IpProtocol"] == "tcp"
    assert ec2.delete_security_group(GroupId=gid)["Return"] is True
    assert error_code(ec2.delete_security_group, GroupId=gid) == "InvalidGroup.NotFound"


def _probe(ec2, key, via: dict, target_ip: str, port: int) -> str:
    """From instance ``via``, try a TCP connection to target_ip:port: "open" or "blocked"."""
    code = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('{target_ip}', {port}), 3).close(); print('open')\n"
        "except OSError:\n"
        "    print('blocked')\n"
    )
    command = f"python3 -c {shell_quote(code)}"
    return ssh_run(via["PrivateIpAddress"], console_host_keys(ec2, via["InstanceId"]), key, command)


def shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _host_probe(ip: str, port: int) -> str:
    """From the host: "open" only if the instance's own service answers (sshd's banner on 22, HTTP else).

    Merely connecting proves nothing: with no instance left on a network its bridge goes, and the
    address may be routed elsewhere.
    """
    try:
        with socket.create_connection((ip, port), 3) as conn:
            conn.settimeout(3)
            if port != 22:
                conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            answer = conn.recv(16)
    except OSError:
        return "blocked"
    return "open" if answer.startswith(b"SSH-" if port == 22 else b"HTTP/") else "blocked"


def _launch(ec2, node_image, group_ids: list[str], count: int = 1, user_data: str = "") -> list[dict]:
    params = dict(
        ImageId=image_of(ec2, node_image),
        InstanceType="t3.micro",
        MinCount=count,
        MaxCount=count,
        KeyName="sg-tests",
        SecurityGroupIds=group_ids,
    )
    if user_data:
        params["UserData"] = user_data
    return ec2.run_instances(**params)["Instances"]


def test_security_groups_are_enforced_between_instances_and_from_the_host(ec2, cloud, node_image, key):
    gateway = gateway_ip(cloud.cloud)
    cluster = ec2.create_security_group(GroupName="cluster", Description="one cluster")["GroupId"]
    outsider = ec2.create_security_group(GroupName="outsider", Description="someone else")["GroupId"]
    for gid in (cluster, outsider):
        ec2.authorize_security_group_ingress(
            GroupId=gid,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": f"{gateway}/32"}]}
            ],
        )
    ec2.authorize_security_group_ingress(
        GroupId=cluster, IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": cluster}]}]
    )
    a, b = _launch(ec2, node_image, [cluster], count=2)
    [c] = _launch(ec2, node_image, [outsider])
    ids = [a["InstanceId"], b["InstanceId"], c["InstanceId"]]
    try:
        # Addresses are given at launch, as EC2 does, and kept.
        assert all(i["PrivateIpAddress"] for i in (a, b, c))
        a, b, c = wait_state(ec2, ids, "running")
        assert a["SecurityGroups"] == [{"GroupId": cluster, "GroupName": "cluster"}]
        assert error_code(ec2.delete_security_group, GroupId=cluster) == "DependencyViolation"
        by_group = instances(ec2, Filters=[{"Name": "instance.group-id", "Values": [cluster]}])
        assert sorted(i["InstanceId"] for i in by_group) == sorted(ids[:2])

        # SSH from the host (the gateway) is allowed for all three.
        ssh_run(b["PrivateIpAddress"], console_host_keys(ec2, b["InstanceId"]), key,
                "nohup python3 -m http.server 8080 >/dev/null 2>&1 & sleep 1; echo started")  # fmt: skip
        assert _probe(ec2, key, a, b["PrivateIpAddress"], 8080) == "open"  # within the cluster: everything
        assert _probe(ec2, key, c, b["PrivateIpAddress"], 8080) == "blocked"  # another group: nothing
        assert _probe(ec2, key, c, b["PrivateIpAddress"], 22) == "blocked"  # not even SSH
        assert _host_probe(b["PrivateIpAddress"], 8080) == "blocked"  # the host: SSH only
        assert _host_probe(b["PrivateIpAddress"], 22) == "open"

        # Rules changed on a running instance's group take effect at once …
        web = [
            {
                "IpProtocol": "tcp",
                "FromPort": 8080,
                "ToPort": 8080,
                "UserIdGroupPairs": [{"GroupId": outsider}],
            }
        ]
        ec2.authorize_security_group_ingress(GroupId=cluster, IpPermissions=web)
        assert _eventually(lambda: _probe(ec2, key, c, b["PrivateIpAddress"], 8080)) == "open"
        ec2.revoke_security_group_ingress(GroupId=cluster, IpPermissions=web)
        assert _eventually(lambda: _probe(ec2, key, c, b["PrivateIpAddress"], 8080), "blocked") == "blocked"

        # … and so does a new member of the group: b lets d in, c still cannot reach d.
        [d] = _launch(ec2, node_image, [cluster])
        ids.append(d["InstanceId"])
        [d] = wait_state(ec2, [d["InstanceId"]], "running")
        assert _eventually(lambda: _probe(ec2, key, d, b["PrivateIpAddress"], 8080)) == "open"
        assert _probe(ec2, key, c, d["PrivateIpAddress"], 22) == "blocked"

        # The rules live in the instance's own namespace.
        [container] = Podman().list({"resilin.instance-id": b["InstanceId"]})
        table = firewall.listing(Podman().pid(container.id))
        assert "policy drop" in table and f"{gateway}" in table and d["PrivateIpAddress"] in table
    finally:
        ec2.terminate_instances(InstanceIds=ids)
        wait_state(ec2, ids, "terminated")
    assert Podman().list({"resilin.cloud": cloud.cloud, "resilin.instance-id": b["InstanceId"]}) == []
    # Once its instances are gone, a group can be deleted.
    ec2.delete_security_group(GroupId=cluster)
    ec2.delete_security_group(GroupId=outsider)


def _eventually(probe, wanted: str = "open", timeout: float = 30) -> str:
    """Firewalls of running instances are refreshed in the background: give them a moment."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result == wanted or time.monotonic() > deadline:
            return result
        time.sleep(1)


def test_stopped_and_started_again_at_once_the_instance_runs_fenced_every_time(ec2, cloud, node_image, key):
    # podman 4.3 lets a stop's late cleanup undo an initialisation that follows it at once; the
    # start path must not be cut by it (seen about once in eight cycles before it was made safe).
    [inst] = _launch(ec2, node_image, [])
    iid = inst["InstanceId"]
    try:
        wait_state(ec2, [iid], "running")
        for cycle in range(8):
            ec2.stop_instances(InstanceIds=[iid])
            deadline = time.monotonic() + 60
            # Started the moment it is stopped, as a client polling hard would.
            while instances(ec2, InstanceIds=[iid])[0]["State"]["Name"] != "stopped":
                assert time.monotonic() < deadline, cycle
                time.sleep(0.02)
            ec2.start_instances(InstanceIds=[iid])
            wait_state(ec2, [iid], "running", timeout=60)  # a failed start goes back to stopped
            [container] = Podman().list({"resilin.instance-id": iid})
            assert "tcp dport 22" in firewall.listing(Podman().pid(container.id)), cycle
    finally:
        ec2.terminate_instances(InstanceIds=[iid])
    wait_state(ec2, [iid], "terminated")


def test_stop_and_start_keep_address_and_host_keys_and_user_data_runs_once(ec2, cloud, node_image, key):
    script = "#!/bin/sh\necho ran >> /var/tmp/user-data-runs\n"
    [inst] = _launch(ec2, node_image, [], user_data=script)
    iid = inst["InstanceId"]
    try:
        [running] = wait_state(ec2, [iid], "running")
        ip = running["PrivateIpAddress"]
        # No group named: the default group, which lets SSH in from the host.
        assert [g["GroupName"] for g in running["SecurityGroups"]] == ["default"]
        keys = console_host_keys(ec2, iid)
        assert ssh_run(ip, keys, key, "cat /var/tmp/user-data-runs") == "ran"

        [change] = ec2.stop_instances(InstanceIds=[iid])["StoppingInstances"]
        assert (change["PreviousState"]["Name"], change["CurrentState"]["Name"]) == ("running", "stopping")
        [stopped] = wait_state(ec2, [iid], "stopped", timeout=60)
        assert (
            stopped["PrivateIpAddress"] == ip
            and stopped["StateReason"]["Code"] == "Client.UserInitiatedShutdown"
        )
        assert _host_probe(ip, 22) == "blocked"
        # Stopping a stopped instance changes nothing; a terminated one cannot be stopped.
        assert (
            ec2.stop_instances(InstanceIds=[iid])["StoppingInstances"][0]["CurrentState"]["Name"] == "stopped"
        )

        [change] = ec2.start_instances(InstanceIds=[iid])["StartingInstances"]
        assert (change["PreviousState"]["Name"], change["CurrentState"]["Name"]) == ("stopped", "pending")
        [again] = wait_state(ec2, [iid], "running", timeout=60)
        assert again["PrivateIpAddress"] == ip
        assert sorted(console_host_keys(ec2, iid)) == sorted(keys)
        assert ssh_run(ip, keys, key, "cat /var/tmp/user-data-runs") == "ran"  # once, at first boot
        [container] = Podman().list({"resilin.instance-id": iid})
        assert "tcp dport 22" in firewall.listing(Podman().pid(container.id))  # fenced again after the start
    finally:
        ec2.terminate_instances(InstanceIds=[iid])
    wait_state(ec2, [iid], "terminated")
    assert error_code(ec2.stop_instances, InstanceIds=[iid]) == "IncorrectInstanceState"
    assert error_code(ec2.start_instances, InstanceIds=[iid]) == "IncorrectInstanceState"
