"""A local cloud's instances reach storage on the host, and no other service of the host.

Resilin runs with ``bind_host = "0.0.0.0"`` here, as when EC2 clouds must reach its storage, so
the EMR API, the cloud's EC2 endpoint and any other listener of the host are bound to every
address, the cloud's gateway included.  From inside a real instance of the cloud, only the
storage port answers.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess

import boto3
import pytest

from resilin.provisioners.localcloud import host_shield
from resilin.provisioners.localcloud import wan as wan_module
from resilin.provisioners.localcloud.machines import container_name
from resilin.provisioners.localcloud.podman import Podman
from resilin.provisioners.localcloud.process import remove_cloud
from resilin.provisioners.localcloud.server import bridge_interface
from resilin.service.ports import free_port
from resilin.service.process import new_process

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or os.geteuid() != 0, reason="needs podman as root"
)

CLOUD = f"shd{os.getpid() % 100000}"
SUBNET = f"10.79.{100 + os.getpid() % 150}.0/24"
NODE_IMAGE = os.environ.get("RESILIN_TEST_NODE_IMAGE", "localhost/resilin-node:latest")


@pytest.fixture(scope="module")
def resilin(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    proc = new_process(home, CLOUD, SUBNET, accounts=1, node_image=NODE_IMAGE)
    proc.bind_host = "0.0.0.0"
    proc.write_config(SUBNET)
    proc.start()
    wan = wan_module.default_network((home / "installation-id").read_text().strip())
    wan_bridge = Podman().network_inspect(wan).get("network_interface", "")
    try:
        yield proc
    finally:
        proc.stop()
        print(proc.log_tail(40))
        bridge = bridge_interface(CLOUD)
        remove_cloud(CLOUD)
    assert host_shield.listing(bridge) == ""  # removed with the cloud's network
    # The installation's WAN went when the server stopped (no instance used it), its shield too.
    assert not Podman().network_exists(wan) and host_shield.listing(wan_bridge) == ""


def test_the_installations_wan_is_made_and_the_host_shielded_from_it(resilin):
    wan = wan_module.default_network((resilin.home / "installation-id").read_text().strip())
    found = Podman().network_inspect(wan)
    subnet = ipaddress.ip_network(found["subnets"][0]["subnet"])
    assert subnet.subnet_of(wan_module.SHARED_SPACE) and found["internal"]
    assert f'iifname "{found["network_interface"]}" drop' in host_shield.listing(found["network_interface"])


def _reaches(container: str, host: str, port: int) -> bool:
    done = subprocess.run(
        ["podman", "exec", container, "nc", "-z", "-w", "3", host, str(port)], capture_output=True, timeout=60
    )
    return done.returncode == 0


def test_instances_reach_storage_and_nothing_else_of_the_host(resilin):
    creds = resilin.accounts[0]
    ec2 = boto3.client(
        "ec2",
        endpoint_url=f"http://127.0.0.1:{resilin.localcloud_port}",
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        region_name="us-east-1",
    )
    image = ec2.describe_images()["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, InstanceType="m5.large", MinCount=1, MaxCount=1)["Instances"][
        0
    ]
    iid = instance["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    gateway = str(next(ipaddress.ip_network(SUBNET).hosts()))
    other = socket.socket()
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    other.bind(("0.0.0.0", free_port()))  # some other service of the host, on every address
    other.listen(8)
    try:
        container = container_name(CLOUD, iid)
        # The host itself still reaches every service on the gateway address.
        for port in (resilin.storage_port, resilin.api_port, resilin.localcloud_port):
            with socket.create_connection((gateway, port), timeout=3):
                pass
        assert _reaches(container, gateway, resilin.storage_port)
        assert not _reaches(container, gateway, resilin.api_port)
        assert not _reaches(container, gateway, resilin.localcloud_port)
        assert not _reaches(container, gateway, other.getsockname()[1])
        bridge = bridge_interface(CLOUD)
        assert f'iifname "{bridge}" drop' in host_shield.listing(bridge)
    finally:
        other.close()
        ec2.terminate_instances(InstanceIds=[iid])
