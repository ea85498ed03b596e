"""Reaching instances without a public address through their cloud's gateway (SSH ProxyJump), for
real: a local cloud with a WAN, one instance launched with a public address and two without, the
jump host found through the cloud's EC2 API, host keys pinned on both hops, and the nodes reaching
through another instance once the gateway is gone and that one has an Elastic IP."""

from __future__ import annotations

import os
import secrets
import shutil

import pytest

from resilin.clouds.ssh import KeyPair, Node, SshError
from resilin.clouds.ssh_jump import CloudGateway, JumpUnavailable
from resilin.provisioners.ec2client import EC2Client
from resilin.provisioners.localcloud import wan as wan_module
from resilin.settings.config import CloudConfig
from tests.localcloud_helpers import (
    ALICE,
    cloud_process,
    discard_cloud,
    ec2_client,
    free_wan_subnet,
    image_of,
    wait_state,
)

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or os.geteuid() != 0, reason="needs podman as root"
)

CLUSTER_TAG = "resilin:cluster-id"
ROLE_TAG = "resilin:role"


@pytest.fixture(scope="module")
def wan():
    made = wan_module.Wan(f"test-wan-{secrets.token_hex(3)}", free_wan_subnet())
    yield made
    assert wan_module.remove_if_unused(made.network), "the WAN is still in use after the cloud went"


@pytest.fixture(scope="module")
def setup(wan, redis_server, node_image, tmp_path_factory):
    """The gateway (public address at launch) and two nodes without one, in a group admitting SSH
    from anywhere (the host reaches the gateway over the WAN) and everything among its members."""
    proc = cloud_process(redis_server, [node_image], tmp_path_factory.mktemp("jump"), prefix="jmp", wan=wan)
    proc.start()
    try:
        ec2 = ec2_client(proc)
        key = KeyPair.generate("jump-test")
        ec2.import_key_pair(KeyName="jump", PublicKeyMaterial=key.public_line.encode())
        group = ec2.create_security_group(GroupName="jump", Description="jump test")["GroupId"]
        ec2.authorize_security_group_ingress(
            GroupId=group,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
                {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group}]},
            ],
        )
        cluster = f"j-{secrets.token_hex(4)}"

        def launch(role: str, public: bool) -> str:
            [inst] = ec2.run_instances(
                ImageId=image_of(ec2, node_image),
                InstanceType="t3.micro",
                MinCount=1,
                MaxCount=1,
                KeyName="jump",
                NetworkInterfaces=[{"DeviceIndex": 0, "AssociatePublicIpAddress": public, "Groups": [group]}],
                TagSpecifications=[
                    {
                        "ResourceType": "instance",
                        "Tags": [{"Key": CLUSTER_TAG, "Value": cluster}, {"Key": ROLE_TAG, "Value": role}],
                    }
                ],
            )["Instances"]
            return inst["InstanceId"]

        ids = [launch("MASTER", True), launch("CORE", False), launch("CORE", False)]
        running = {i["InstanceId"]: i for i in wait_state(ec2, ids, "running")}
        client = EC2Client(
            CloudConfig(name=proc.cloud, endpoint=proc.endpoint, access_key=ALICE.access_key,
                        secret_key=ALICE.secret_key)
        )  # fmt: skip
        yield {
            "ec2": ec2,
            "client": client,
            "key": key,
            "cluster": cluster,
            "instances": [running[i] for i in ids],
            "keys": {i: client.host_keys(i, timeout=90) for i in ids},
        }
        ec2.terminate_instances(InstanceIds=ids)
        wait_state(ec2, ids, "terminated")
        for address in ec2.describe_addresses()["Addresses"]:
            ec2.release_address(AllocationId=address["AllocationId"])
    finally:
        assert discard_cloud(proc, redis_server) == [], "instances left behind"


def _gateway(setup) -> CloudGateway:
    return CloudGateway("jump", setup["client"], {CLUSTER_TAG: setup["cluster"]}, setup["key"], ROLE_TAG, 90)


def _peer(node: Node) -> str:
    """The address the node's sshd sees Resilin's connection come from."""
    done = node.run("echo $SSH_CONNECTION", timeout=30)
    assert done.exit_status == 0, done.stderr
    return done.stdout.split()[0]


def test_nodes_without_a_public_address_are_reached_through_the_gateway(setup):
    gateway_inst, core, other = setup["instances"]
    assert gateway_inst.get("PublicIpAddress")
    assert not core.get("PublicIpAddress") and not other.get("PublicIpAddress")
    gateway = _gateway(setup)
    key = setup["key"]
    jump = gateway.adopt(
        gateway_inst["InstanceId"],
        lambda: Node(gateway_inst["PublicIpAddress"], setup["keys"][gateway_inst["InstanceId"]], key),
    )
    nodes = [
        Node(i["PrivateIpAddress"], setup["keys"][i["InstanceId"]], key, via=gateway) for i in (core, other)
    ]
    try:
        jump.wait_reachable(90)
        # Resilin's own connection to the gateway arrives over the WAN (from the host's address there).
        assert _peer(jump) != gateway_inst["PrivateIpAddress"]
        for node in nodes:
            node.wait_reachable(90)
            assert _peer(node) == gateway_inst["PrivateIpAddress"]
        assert gateway() is jump  # one connection to the gateway serves every node
    finally:
        for node in nodes:
            node.close()
        gateway.close()


def test_the_second_hop_pins_the_nodes_host_key(setup):
    gateway_inst, core, other = setup["instances"]
    gateway = _gateway(setup)
    # The core node's address with the other node's keys: refused, as a man in the middle would be.
    impostor = Node(core["PrivateIpAddress"], setup["keys"][other["InstanceId"]], setup["key"], via=gateway)
    try:
        with pytest.raises(SshError, match="host key does not match"):
            impostor.wait_reachable(60)
    finally:
        impostor.close()
        gateway.close()


def test_a_gone_gateway_is_replaced_by_the_instance_given_an_address(setup):
    ec2 = setup["ec2"]
    gateway_inst, core, other = setup["instances"]
    gateway = _gateway(setup)
    node = Node(other["PrivateIpAddress"], setup["keys"][other["InstanceId"]], setup["key"], via=gateway)
    try:
        node.wait_reachable(90)
        assert _peer(node) == gateway_inst["PrivateIpAddress"]
        # The gateway goes; the overlay gives the core node an Elastic IP (as it does when it re-forms).
        ec2.terminate_instances(InstanceIds=[gateway_inst["InstanceId"]])
        wait_state(ec2, [gateway_inst["InstanceId"]], "terminated")
        node.close()  # the node monitor closes the dead gateway's session, and with it this one's
        with pytest.raises(
            JumpUnavailable, match="no instance of the cluster in cloud jump has a public address"
        ):
            node.run("true", timeout=30)
        allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
        ec2.associate_address(AllocationId=allocation, InstanceId=core["InstanceId"])
        node.wait_reachable(90)
        assert _peer(node) == core["PrivateIpAddress"]
    finally:
        node.close()
        gateway.close()
