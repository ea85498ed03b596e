"""Gateways on the local cloud, for real: ModifyInstanceAttribute(SourceDestCheck) giving an instance
forwarding and a host-made TUN device it can use without any capability, the account's main route
table putting its routes into the instances, security groups applied to forwarded packets, and a
packet's round trip A → G's TUN device → A through the route."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from resilin.provisioners.localcloud import netns
from resilin.provisioners.localcloud.machines import container_name
from resilin.provisioners.localcloud.podman import Podman
from tests.localcloud_helpers import (
    BOB,
    cloud_process,
    discard_cloud,
    ec2_client,
    error_code,
    image_of,
    wait_state,
)

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or os.geteuid() != 0, reason="needs podman as root"
)

DEST = "198.18.7.0/24"  # a benchmarking range no cloud uses: only the route leads there
FAR = "198.18.7.9"
CAP_NET_ADMIN = 12

# Run in the gateway: attach to the host-made tun0 as the overlay daemon does (no capability), try
# to make another TUN device, then read one packet and write back a UDP reply swapping the ends.
TUN_PEER = r"""
import fcntl, os, struct, sys
TUNSETIFF, IFF_TUN, IFF_NO_PI, IFF_VNET_HDR = 0x400454CA, 0x0001, 0x1000, 0x4000
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", b"tun0", IFF_TUN | IFF_NO_PI | IFF_VNET_HDR))
other = os.open("/dev/net/tun", os.O_RDWR)
try:
    fcntl.ioctl(other, TUNSETIFF, struct.pack("16sH", b"tun9", IFF_TUN | IFF_NO_PI))
    print("made tun9", flush=True)
except OSError as exc:
    print("refused tun9", exc.errno, flush=True)
print("ready", os.getpid(), flush=True)
while True:
    frame = os.read(fd, 65536)
    packet = frame[10:]  # after the virtio-net header that IFF_VNET_HDR puts first
    if packet[0] >> 4 != 4 or packet[9] != 17:
        continue  # not IPv4 UDP (the kernel's own chatter)
    ihl = (packet[0] & 15) * 4
    src, dst = packet[12:16], packet[16:20]
    sport, dport = struct.unpack("!HH", packet[ihl:ihl + 4])
    payload = packet[ihl + 8:]
    print("got", ".".join(map(str, src)), ".".join(map(str, dst)), dport, payload.decode(), flush=True)
    reply = b"re:" + payload
    udp = struct.pack("!HHHH", dport, sport, 8 + len(reply), 0) + reply
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, dst, src)
    total = sum(struct.unpack("!10H", head))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    head = head[:10] + struct.pack("!H", ~total & 0xFFFF) + head[12:]
    os.write(fd, bytes(10) + head + udp)
"""

# Run in another instance: send a marker to FAR:port and wait for the reply (argv: port, marker).
UDP_CLIENT = f"""
import socket, sys
port, marker = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
for _ in range(6):
    s.sendto(marker.encode(), ("{FAR}", port))
    try:
        print(s.recvfrom(2048)[0].decode())
        break
    except OSError:
        pass
else:
    print("no reply")
"""


@pytest.fixture(scope="module")
def cloud(redis_server, node_image, tmp_path_factory):
    proc = cloud_process(redis_server, [node_image], tmp_path_factory.mktemp("localcloud"), prefix="rt")
    try:
        proc.start()
        yield proc
    finally:
        assert discard_cloud(proc, redis_server) == [], "instances left behind"


def _exec(cloud, instance_id: str, *argv: str) -> str:
    done = subprocess.run(
        ["podman", "exec", container_name(cloud.cloud, instance_id), *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout.strip()


def _routes(cloud, instance_id: str) -> str:
    return _exec(cloud, instance_id, "ip", "route")


def _pid(cloud, instance_id: str) -> int:
    return Podman().pid(container_name(cloud.cloud, instance_id))


def _until(probe, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _launch(ec2, node_image, groups: list[str], count: int = 1) -> list[str]:
    found = ec2.run_instances(
        ImageId=image_of(ec2, node_image),
        InstanceType="t3.micro",
        MinCount=count,
        MaxCount=count,
        SecurityGroupIds=groups,
    )["Instances"]
    return [i["InstanceId"] for i in found]


def _capabilities(text: str) -> set[int]:
    mask = int(next(line.split()[1] for line in text.splitlines() if line.startswith("CapEff:")), 16)
    return {bit for bit in range(64) if mask >> bit & 1}


def _tun_peer(cloud, gateway: str) -> tuple[subprocess.Popen, str]:
    """TUN_PEER running in the gateway, attached to its tun0, and its pid inside the container."""
    peer = subprocess.Popen(
        ["podman", "exec", "-i", container_name(cloud.cloud, gateway), "python3", "-u", "-c", TUN_PEER],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert peer.stdout is not None
    assert peer.stdout.readline().strip().startswith("refused tun9 1")  # EPERM: no making devices
    ready, pid = peer.stdout.readline().split()
    assert ready == "ready"
    return peer, pid


def _end(cloud, gateway: str, peer: subprocess.Popen, pid: str) -> None:
    """Stop TUN_PEER in the container (killing podman exec's client would leave it running)."""
    _exec(cloud, gateway, "kill", pid)
    peer.wait(timeout=30)


def _table(ec2) -> dict:
    [table] = ec2.describe_route_tables()["RouteTables"]
    return table


def _forward_drops(cloud, instance_id: str) -> int:
    listing = netns.run(_pid(cloud, instance_id), ["nft", "list", "chain", "inet", "resilin", "forward"])
    line = next(line for line in listing.splitlines() if "counter" in line and "drop" in line)
    return int(line.split("packets")[1].split()[0])


def test_route_table_api_and_bad_input(ec2, cloud):
    table = _table(ec2)
    rtb = table["RouteTableId"]
    assert rtb.startswith("rtb-") and table["OwnerId"] == "111111111111"
    [local] = table["Routes"]
    assert local == {
        "DestinationCidrBlock": cloud.subnet,
        "GatewayId": "local",
        "Origin": "CreateRouteTable",
        "State": "active",
    }
    assert table["Associations"][0]["Main"] is True and table["Associations"][0]["RouteTableId"] == rtb
    vpc = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["VpcId"]
    assert table["VpcId"] == vpc
    for filters in (
        [{"Name": "vpc-id", "Values": [vpc]}],
        [{"Name": "association.main", "Values": ["true"]}],
        [{"Name": "route-table-id", "Values": [rtb]}],
    ):
        assert [t["RouteTableId"] for t in ec2.describe_route_tables(Filters=filters)["RouteTables"]] == [rtb]
    assert (
        ec2.describe_route_tables(Filters=[{"Name": "association.main", "Values": ["false"]}])["RouteTables"]
        == []
    )
    assert ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]["RouteTableId"] == rtb
    assert error_code(ec2.describe_route_tables, RouteTableIds=["rtb-0123456789abcdef0"]) == (
        "InvalidRouteTableID.NotFound"
    )
    assert error_code(ec2.describe_route_tables, Filters=[{"Name": "nope", "Values": ["x"]}]) == (
        "InvalidParameterValue"
    )
    bob = ec2_client(cloud, BOB)
    assert _table(bob)["RouteTableId"] != rtb

    i = "i-0123456789abcdef0"
    assert error_code(ec2.create_route, RouteTableId=rtb, DestinationCidrBlock=DEST, InstanceId=i) == (
        "InvalidInstanceID.NotFound"
    )
    assert error_code(
        ec2.create_route, RouteTableId="rtb-0123456789abcdef0", DestinationCidrBlock=DEST, InstanceId=i
    ) == ("InvalidRouteTableID.NotFound")
    # Another account's table is not found either.
    assert error_code(bob.create_route, RouteTableId=rtb, DestinationCidrBlock=DEST, InstanceId=i) == (
        "InvalidRouteTableID.NotFound"
    )
    for bad in ("10.0.0.300/24", "198.18.7.1/24", "nonsense", cloud.subnet):
        assert error_code(ec2.create_route, RouteTableId=rtb, DestinationCidrBlock=bad, InstanceId=i) == (
            "InvalidParameterValue"
        ), bad
    assert error_code(
        ec2.create_route,
        RouteTableId=rtb,
        DestinationCidrBlock=DEST,
        NetworkInterfaceId="eni-0123456789abcdef0",
    ) == ("InvalidNetworkInterfaceID.NotFound")
    assert error_code(
        ec2.create_route, RouteTableId=rtb, DestinationCidrBlock=DEST, GatewayId="igw-0123456789abcdef0"
    ) == ("UnsupportedOperation")
    assert error_code(ec2.create_route, RouteTableId=rtb, DestinationCidrBlock=DEST) == "MissingParameter"
    assert error_code(ec2.replace_route, RouteTableId=rtb, DestinationCidrBlock=DEST, InstanceId=i) == (
        "InvalidInstanceID.NotFound"
    )
    assert (
        error_code(ec2.delete_route, RouteTableId=rtb, DestinationCidrBlock=DEST) == "InvalidRoute.NotFound"
    )

    assert error_code(ec2.modify_instance_attribute, InstanceId=i, SourceDestCheck={"Value": False}) == (
        "InvalidInstanceID.NotFound"
    )
    assert error_code(ec2.modify_instance_attribute, InstanceId=i, DisableApiTermination={"Value": True}) == (
        "UnsupportedOperation"
    )
    assert error_code(ec2.modify_instance_attribute, InstanceId=i) == "InvalidParameterCombination"
    assert error_code(ec2.describe_instance_attribute, InstanceId=i, Attribute="kernel") == (
        "UnsupportedOperation"
    )
    assert error_code(ec2.describe_instance_attribute, InstanceId=i, Attribute="sourceDestCheck") == (
        "InvalidInstanceID.NotFound"
    )


def test_gateway_tun_routes_and_forwarding_filter(ec2, cloud, node_image):
    bob = ec2_client(cloud, BOB)
    clients = ec2.create_security_group(GroupName="clients", Description="send through the gateway")[
        "GroupId"
    ]
    gateways = ec2.create_security_group(GroupName="gateways", Description="forward")["GroupId"]
    # The gateway admits UDP 9999 from the clients only: what it forwards is held to that too.
    ec2.authorize_security_group_ingress(
        GroupId=gateways,
        IpPermissions=[
            {
                "IpProtocol": "udp",
                "FromPort": 9999,
                "ToPort": 9999,
                "UserIdGroupPairs": [{"GroupId": clients}],
            }
        ],
    )
    others = ec2.create_security_group(GroupName="others", Description="not a client")["GroupId"]
    ids = [_launch(ec2, node_image, [group])[0] for group in (clients, others, gateways)]
    a, b, g = ids
    [bobs] = _launch(bob, node_image, [])
    peer = None
    try:
        running = {i["InstanceId"]: i for i in wait_state(ec2, ids, "running")}
        wait_state(bob, [bobs], "running")
        ip = {iid: running[iid]["PrivateIpAddress"] for iid in ids}
        assert running[g]["SourceDestCheck"] is True

        # /dev/net/tun is there, and no capability beyond podman's defaults came with it.
        plain = subprocess.run(
            ["podman", "run", "--rm", "--network", "none", node_image, "cat", "/proc/self/status"],
            capture_output=True, text=True, check=True, timeout=120,
        ).stdout  # fmt: skip
        status = _exec(cloud, g, "cat", "/proc/1/status")
        assert _capabilities(status) == _capabilities(plain) and CAP_NET_ADMIN not in _capabilities(status)
        assert _exec(cloud, g, "ls", "/dev/net/tun") == "/dev/net/tun"

        # SourceDestCheck off: forwarding on, and tun0 made by the host, owned by root, with vnet_hdr.
        ec2.modify_instance_attribute(InstanceId=g, SourceDestCheck={"Value": False})
        attribute = ec2.describe_instance_attribute(InstanceId=g, Attribute="sourceDestCheck")
        assert attribute["SourceDestCheck"] == {"Value": False}
        forwarding = [{"Name": "source-dest-check", "Values": ["false"]}]
        assert [
            i["InstanceId"]
            for r in ec2.describe_instances(Filters=forwarding)["Reservations"]
            for i in r["Instances"]
        ] == [g]
        assert (
            ec2.describe_instances(InstanceIds=[g])["Reservations"][0]["Instances"][0]["SourceDestCheck"]
            is False
        )
        assert _exec(cloud, g, "cat", "/sys/class/net/tun0/owner") == "0"
        flags = int(_exec(cloud, g, "cat", "/sys/class/net/tun0/tun_flags"), 16)
        assert flags & 0x0001 and flags & 0x1000 and flags & 0x4000  # IFF_TUN, IFF_NO_PI, IFF_VNET_HDR
        assert "mtu 1420" in _exec(cloud, g, "ip", "link", "show", "tun0")
        assert _exec(cloud, g, "cat", "/proc/sys/net/ipv4/ip_forward") == "1"
        assert CAP_NET_ADMIN not in _capabilities(_exec(cloud, g, "cat", "/proc/1/status"))

        # The route: via g in the others, into tun0 in g; nothing in Bob's instance.
        rtb = _table(ec2)["RouteTableId"]
        assert ec2.create_route(RouteTableId=rtb, DestinationCidrBlock=DEST, InstanceId=g)["Return"] is True
        assert error_code(ec2.create_route, RouteTableId=rtb, DestinationCidrBlock=DEST, InstanceId=a) == (
            "RouteAlreadyExists"
        )
        assert error_code(
            bob.create_route,
            RouteTableId=_table(bob)["RouteTableId"],
            DestinationCidrBlock=DEST,
            InstanceId=g,
        ) == ("InvalidInstanceID.NotFound")
        [route] = [r for r in _table(ec2)["Routes"] if r["DestinationCidrBlock"] == DEST]
        assert route["InstanceId"] == g and route["State"] == "active" and route["Origin"] == "CreateRoute"
        assert f"{DEST} via {ip[g]}" in _routes(cloud, a) and f"{DEST} via {ip[g]}" in _routes(cloud, b)
        assert f"{DEST} dev tun0 scope link src {ip[g]}" in _routes(cloud, g)
        assert DEST not in _routes(cloud, bobs) and len(_table(bob)["Routes"]) == 1

        # A packet a sends to the far side reaches g's TUN device; g's reply comes back to a.
        peer, inside = _tun_peer(cloud, g)
        assert _exec(cloud, a, "python3", "-c", UDP_CLIENT, "9999", "hello") == "re:hello"
        assert peer.stdout.readline().split() == ["got", ip[a], FAR, "9999", "hello"]

        # The gateway's groups hold for what it forwards: port 9998 is not admitted, b is not a client.
        dropped = _forward_drops(cloud, g)
        assert _exec(cloud, a, "python3", "-c", UDP_CLIENT, "9998", "blocked") == "no reply"
        assert _forward_drops(cloud, g) > dropped
        assert _exec(cloud, b, "python3", "-c", UDP_CLIENT, "9999", "from-b") == "no reply"
        # Admitting b's group by rule lets it through.
        ec2.authorize_security_group_ingress(
            GroupId=gateways,
            IpPermissions=[
                {
                    "IpProtocol": "udp",
                    "FromPort": 9999,
                    "ToPort": 9999,
                    "IpRanges": [{"CidrIp": f"{ip[b]}/32"}],
                }
            ],
        )
        assert _until(lambda: _exec(cloud, b, "python3", "-c", UDP_CLIENT, "9999", "from-b") == "re:from-b")

        # An instance launched afterwards gets the route.
        [c] = _launch(ec2, node_image, [clients])
        ids.append(c)
        wait_state(ec2, [c], "running")
        assert _until(lambda: f"{DEST} via {ip[g]}" in _routes(cloud, c))

        # Stop and start: the gateway keeps its attribute, its TUN device and its route, a client its route.
        _end(cloud, g, peer, inside)
        ec2.stop_instances(InstanceIds=[g, a])
        wait_state(ec2, [g, a], "stopped")
        ec2.start_instances(InstanceIds=[g, a])
        wait_state(ec2, [g, a], "running")
        assert _until(lambda: f"{DEST} dev tun0" in _routes(cloud, g))
        assert _until(lambda: f"{DEST} via {ip[g]}" in _routes(cloud, a))
        peer, inside = _tun_peer(cloud, g)
        assert _exec(cloud, a, "python3", "-c", UDP_CLIENT, "9999", "again") == "re:again"
        assert _exec(cloud, g, "cat", "/sys/class/net/tun0/owner") == "0"
        assert _exec(cloud, g, "cat", "/proc/sys/net/ipv4/ip_forward") == "1"
        assert ec2.describe_instance_attribute(InstanceId=g, Attribute="sourceDestCheck")[
            "SourceDestCheck"
        ] == {"Value": False}

        # ReplaceRoute moves it; a target that is terminated leaves a blackhole, out of the instances.
        ec2.replace_route(RouteTableId=rtb, DestinationCidrBlock=DEST, InstanceId=b)
        assert f"{DEST} via {ip[b]}" in _routes(cloud, a) and f"{DEST} via {ip[b]}" in _routes(cloud, g)
        assert DEST not in _routes(cloud, b)  # b forwards nothing: no route of its own
        ec2.terminate_instances(InstanceIds=[b])
        wait_state(ec2, [b], "terminated")
        assert _until(lambda: DEST not in _routes(cloud, a))
        [route] = [r for r in _table(ec2)["Routes"] if r["DestinationCidrBlock"] == DEST]
        assert route["State"] == "blackhole"

        # Back to g, then DeleteRoute takes it out everywhere.
        ec2.replace_route(RouteTableId=rtb, DestinationCidrBlock=DEST, InstanceId=g)
        assert f"{DEST} via {ip[g]}" in _routes(cloud, c)
        ec2.delete_route(RouteTableId=rtb, DestinationCidrBlock=DEST)
        for iid in (a, g, c):
            assert DEST not in _routes(cloud, iid)
        assert len(_table(ec2)["Routes"]) == 1

        # SourceDestCheck on again: tun0 gone (even from under the process still attached), forwarding off.
        ec2.modify_instance_attribute(InstanceId=g, Attribute="sourceDestCheck", Value="true")
        assert "tun0" not in _exec(cloud, g, "ls", "/sys/class/net")
        assert peer.wait(timeout=30) != 0  # its device went away
        peer = None
        assert _exec(cloud, g, "cat", "/proc/sys/net/ipv4/ip_forward") == "0"
        assert (
            ec2.describe_instances(InstanceIds=[g])["Reservations"][0]["Instances"][0]["SourceDestCheck"]
            is True
        )
    finally:
        if peer is not None:
            peer.kill()  # the instance goes, and the process in it
            peer.wait()
        ec2.terminate_instances(InstanceIds=ids)
        bob.terminate_instances(InstanceIds=[bobs])
        wait_state(ec2, ids, "terminated")
        wait_state(bob, [bobs], "terminated")
