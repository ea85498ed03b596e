"""Two local clouds sharing a WAN, for real: Elastic IPs and public IPs at launch through boto3,
the WAN interface in the containers, security groups on it (connections tried from inside other
instances), the admin API's shaping measured, and nothing left on the WAN afterwards."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import time

import pytest

from resilin.provisioners.localcloud import delayline, shaping
from resilin.provisioners.localcloud import wan as wan_module
from resilin.provisioners.localcloud.admin_client import AdminClient, AdminError
from resilin.provisioners.localcloud.machines import container_name
from resilin.provisioners.localcloud.podman import Podman, PodmanError
from resilin.provisioners.localcloud.server import gateway_ip
from tests.localcloud_helpers import (
    ALICE,
    BOB,
    cloud_process,
    console_host_keys,
    discard_cloud,
    ec2_client,
    error_code,
    exec_python,
    free_wan_subnet,
    image_of,
    instances,
    tcp_probe,
    wait_state,
)

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or os.geteuid() != 0, reason="needs podman as root"
)

PUBLIC = [{"DeviceIndex": 0, "AssociatePublicIpAddress": True}]


@pytest.fixture(scope="module")
def wan():
    made = wan_module.Wan(f"test-wan-{secrets.token_hex(3)}", free_wan_subnet())
    yield made
    assert wan_module.remove_if_unused(made.network), "the WAN is still in use after the clouds went"


@pytest.fixture(scope="module")
def clouds(wan, redis_server, node_image, tmp_path_factory):
    """Two local clouds of one installation: the same Redis, the same WAN."""
    procs = [
        cloud_process(redis_server, [node_image], tmp_path_factory.mktemp(f"wan{i}"), prefix="wan", wan=wan)
        for i in range(2)
    ]
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        leaked = [name for proc in procs for name in discard_cloud(proc, redis_server)]
        assert leaked == [], "instances left behind"


@pytest.fixture(scope="module")
def ec2(clouds):
    return ec2_client(clouds[0])


def _launch(client, node_image, count=1, **options) -> list[str]:
    reservation = client.run_instances(
        ImageId=image_of(client, node_image),
        InstanceType="t3.micro",
        MinCount=count,
        MaxCount=count,
        **options,
    )
    return [i["InstanceId"] for i in reservation["Instances"]]


def _wan_addresses(cloud, instance_id) -> list[str]:
    """The addresses of the instance's container on the WAN's subnet, as its kernel has them."""
    code = "import socket, subprocess; print(subprocess.run(['ip', '-4', '-o', 'addr'], capture_output=True, text=True).stdout)"
    lines = exec_python(cloud.cloud, instance_id, code).splitlines()
    return [line.split()[3].split("/")[0] for line in lines if " inet 100." in line]


def _on_wan(wan, cloud, instance_id) -> bool:
    """Whether the instance's container is attached to the WAN network (podman's view)."""
    done = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"network={wan.network}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return container_name(cloud.cloud, instance_id) in done.stdout.split()


def test_elastic_ip_allocate_associate_describe_disassociate_release(ec2, clouds, wan, node_image):
    cloud = clouds[0]
    [iid] = _launch(ec2, node_image)
    try:
        allocated = ec2.allocate_address(Domain="vpc")
        ip, alloc = allocated["PublicIp"], allocated["AllocationId"]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(wan.subnet) and alloc.startswith("eipalloc-")
        [listed] = ec2.describe_addresses(AllocationIds=[alloc])["Addresses"]
        assert listed["PublicIp"] == ip and listed["Domain"] == "vpc" and "InstanceId" not in listed
        [running] = wait_state(ec2, [iid], "running")
        assert "PublicIpAddress" not in running and _wan_addresses(cloud, iid) == []

        association = ec2.associate_address(AllocationId=alloc, InstanceId=iid)["AssociationId"]
        [inst] = instances(ec2, InstanceIds=[iid])
        assert inst["PublicIpAddress"] == ip and inst["PublicDnsName"] == ""
        [eni] = inst["NetworkInterfaces"]
        assert eni["Association"]["PublicIp"] == ip and eni["PrivateIpAddress"] == inst["PrivateIpAddress"]
        assert eni["Association"]["IpOwnerId"] == ALICE.account_id  # an Elastic IP is the account's
        assert _wan_addresses(cloud, iid) == [ip]
        [listed] = ec2.describe_addresses(PublicIps=[ip])["Addresses"]
        assert (listed["InstanceId"], listed["AssociationId"], listed["NetworkInterfaceId"]) == (
            iid,
            association,
            eni["NetworkInterfaceId"],
        )
        assert listed["PrivateIpAddress"] == inst["PrivateIpAddress"]
        by_filter = ec2.describe_addresses(Filters=[{"Name": "instance-id", "Values": [iid]}])["Addresses"]
        assert [a["AllocationId"] for a in by_filter] == [alloc]

        # Bad input and other accounts get EC2's errors.
        assert error_code(ec2.release_address, AllocationId=alloc) == "InvalidIPAddress.InUse"
        missing = "eipalloc-0123456789abcdef0"
        assert (
            error_code(ec2.associate_address, AllocationId=missing, InstanceId=iid)
            == "InvalidAllocationID.NotFound"
        )
        assert (
            error_code(ec2.associate_address, AllocationId="eipalloc-x", InstanceId=iid)
            == "InvalidAllocationID.Malformed"
        )
        assert (
            error_code(ec2.associate_address, AllocationId=alloc, InstanceId="i-0123456789abcdef0")
            == "InvalidInstanceID.NotFound"
        )
        assert error_code(ec2.describe_addresses, AllocationIds=[missing]) == "InvalidAllocationID.NotFound"
        assert error_code(ec2.describe_addresses, PublicIps=["100.64.0.99"]) == "InvalidAddress.NotFound"
        assert (
            error_code(ec2.disassociate_address, AssociationId="eipassoc-0123456789abcdef0")
            == "InvalidAssociationID.NotFound"
        )
        assert error_code(ec2.allocate_address, Domain="standard") == "InvalidParameterValue"
        bob = ec2_client(cloud, BOB)
        assert bob.describe_addresses()["Addresses"] == []
        assert error_code(bob.release_address, AllocationId=alloc) == "InvalidAllocationID.NotFound"
        assert (
            error_code(bob.disassociate_address, AssociationId=association) == "InvalidAssociationID.NotFound"
        )

        # Kept across a stop and a start, as on EC2.
        ec2.stop_instances(InstanceIds=[iid])
        [stopped] = wait_state(ec2, [iid], "stopped")
        assert stopped["PublicIpAddress"] == ip
        ec2.start_instances(InstanceIds=[iid])
        wait_state(ec2, [iid], "running")
        assert _wan_addresses(cloud, iid) == [ip]

        ec2.disassociate_address(AssociationId=association)
        [inst] = instances(ec2, InstanceIds=[iid])
        assert "PublicIpAddress" not in inst and "Association" not in inst["NetworkInterfaces"][0]
        assert _wan_addresses(cloud, iid) == [] and not _on_wan(wan, cloud, iid)
        assert "InstanceId" not in ec2.describe_addresses(AllocationIds=[alloc])["Addresses"][0]
        ec2.release_address(AllocationId=alloc)
        assert ec2.describe_addresses()["Addresses"] == []
        assert error_code(ec2.release_address, AllocationId=alloc) == "InvalidAllocationID.NotFound"
    finally:
        ec2.terminate_instances(InstanceIds=[iid])
    wait_state(ec2, [iid], "terminated")


def test_a_public_ip_given_at_launch_goes_with_the_instance(ec2, clouds, wan, node_image, redis_server):
    cloud = clouds[0]
    assert (
        error_code(
            ec2.run_instances,
            ImageId=image_of(ec2, node_image),
            MinCount=1,
            MaxCount=1,
            NetworkInterfaces=PUBLIC,
            SecurityGroupIds=["sg-0123456789abcdef0"],
        )
        == "InvalidParameterCombination"
    )
    [iid] = _launch(ec2, node_image, NetworkInterfaces=PUBLIC)
    [inst] = wait_state(ec2, [iid], "running")
    ip = inst["PublicIpAddress"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(wan.subnet)
    assert inst["NetworkInterfaces"][0]["Association"] == {
        "PublicIp": ip,
        "PublicDnsName": "",
        "IpOwnerId": "amazon",
    }
    assert [g["GroupName"] for g in inst["SecurityGroups"]] == ["default"]
    assert _wan_addresses(cloud, iid) == [ip] and _on_wan(wan, cloud, iid)
    assert ec2.describe_addresses()["Addresses"] == []  # not an Elastic IP
    claims = redis_server.client().hgetall(f"localcloud-wan:{wan.network}:ips")
    assert claims.get(ip, "").startswith(f"{cloud.cloud}/")

    ec2.terminate_instances(InstanceIds=[iid])
    wait_state(ec2, [iid], "terminated")
    assert not _on_wan(wan, cloud, iid)
    assert ip not in redis_server.client().hgetall(f"localcloud-wan:{wan.network}:ips")


@pytest.fixture(scope="module")
def across(clouds, ec2, node_image):
    """a1 (an Elastic IP) and a2 (a public IP at launch) in the first cloud; b1 and b2 (public IPs at
    launch) in the second; all in their account's default group."""
    ec2_b = ec2_client(clouds[1])
    a_ids = _launch(ec2, node_image)
    a_ids += _launch(ec2, node_image, NetworkInterfaces=PUBLIC)
    b_ids = _launch(ec2_b, node_image, count=2, NetworkInterfaces=PUBLIC)
    try:
        a1, a2 = wait_state(ec2, a_ids, "running")
        alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
        ec2.associate_address(AllocationId=alloc, InstanceId=a1["InstanceId"])
        [a1] = instances(ec2, InstanceIds=[a1["InstanceId"]])
        b1, b2 = wait_state(ec2_b, b_ids, "running")
        console_host_keys(ec2, a1["InstanceId"])  # a1's sshd is up
        yield {"a1": a1, "a2": a2, "b1": b1, "b2": b2, "ec2_b": ec2_b}
    finally:
        ec2.terminate_instances(InstanceIds=a_ids)
        ec2_b.terminate_instances(InstanceIds=b_ids)
        wait_state(ec2, a_ids, "terminated")
        wait_state(ec2_b, b_ids, "terminated")
        ec2.release_address(AllocationId=alloc)


def _serve(cloud, instance_id, code) -> None:
    """Run a small server inside the instance, in the background."""
    subprocess.run(
        ["podman", "exec", "-d", container_name(cloud.cloud, instance_id), "python3", "-c", code],
        check=True,
        capture_output=True,
    )


UDP_SINK = (
    "import socket\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 5555))\n"
    "while True:\n"
    "    data, peer = s.recvfrom(100)\n"
    "    open('/tmp/udp-received', 'a').write(data.decode() + '\\n')\n"
)


def _send_udp(cloud, instance_id, address, text) -> None:
    code = (
        "import socket, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"for _ in range(5): s.sendto(b'{text}', ('{address}', 5555)); time.sleep(0.1)\n"
    )
    exec_python(cloud.cloud, instance_id, code)


def test_the_wan_admits_only_what_security_groups_allow(ec2, clouds, across):
    a, b = clouds
    a1, a2, b1, b2 = across["a1"], across["a2"], across["b1"], across["b2"]
    a1_id, public_a1 = a1["InstanceId"], a1["PublicIpAddress"]
    [default] = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"]
    # The default group: its members, and SSH from the host's address on the cloud's network only.
    ssh = next(p for p in default["IpPermissions"] if p["IpProtocol"] == "tcp")
    assert ssh["IpRanges"] == [{"CidrIp": f"{gateway_ip(a.cloud)}/32"}]

    # A member reaches a1 by its private address, but not over the WAN: members are admitted
    # by their private addresses, and a2 arrives on the WAN from its public one.
    assert tcp_probe(a.cloud, a2["InstanceId"], a1["PrivateIpAddress"], 22) == "open"
    assert tcp_probe(a.cloud, a2["InstanceId"], public_a1, 22) == "timeout"
    # Not even when it sends from its private address over the WAN (what a spoofer would do).
    assert tcp_probe(a.cloud, a2["InstanceId"], public_a1, 22, source=a2["PrivateIpAddress"]) == "timeout"
    # Another cloud's instances reach a1 over the WAN only where a rule admits them.
    assert tcp_probe(b.cloud, b1["InstanceId"], public_a1, 22) == "timeout"
    assert tcp_probe(b.cloud, b1["InstanceId"], a1["PrivateIpAddress"], 22) == "timeout"  # no route
    source = f"{b1['PublicIpAddress']}/32"
    ec2.authorize_security_group_ingress(
        GroupId=default["GroupId"],
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "IpRanges": [{"CidrIp": source}]},
            {"IpProtocol": "udp", "FromPort": 5555, "ToPort": 5555, "IpRanges": [{"CidrIp": source}]},
        ],
    )
    try:
        _serve(
            a, a1_id, "import http.server as h; h.test(HandlerClass=h.SimpleHTTPRequestHandler, port=8080)"
        )
        _serve(a, a1_id, UDP_SINK)
        deadline = time.monotonic() + 30
        while tcp_probe(b.cloud, b1["InstanceId"], public_a1, 8080) != "open":
            assert time.monotonic() < deadline, "b1 never reached a1:8080 over the WAN"
            time.sleep(1)
        assert tcp_probe(b.cloud, b2["InstanceId"], public_a1, 8080) == "timeout"  # not its /32
        assert tcp_probe(b.cloud, b1["InstanceId"], public_a1, 22) == "timeout"  # not that port
        _send_udp(b, b1["InstanceId"], public_a1, "from-b1")
        _send_udp(b, b2["InstanceId"], public_a1, "from-b2")
        time.sleep(1)
        received = exec_python(a.cloud, a1_id, "print(open('/tmp/udp-received').read())").split()
        assert "from-b1" in received and "from-b2" not in received
    finally:
        ec2.revoke_security_group_ingress(
            GroupId=default["GroupId"],
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "IpRanges": [{"CidrIp": source}]},
                {"IpProtocol": "udp", "FromPort": 5555, "ToPort": 5555, "IpRanges": [{"CidrIp": source}]},
            ],
        )


SINK = (
    "import socket, time\n"
    "srv = socket.create_server(('0.0.0.0', {port})); conn, _ = srv.accept()\n"
    "total, first = 0, None\n"
    "while True:\n"
    "    data = conn.recv(1 << 16)\n"
    "    if not data: break\n"
    "    first = first or time.monotonic(); total += len(data)\n"
    "print(total * 8 / (time.monotonic() - first) / 1e6)\n"
)


def _throughput(cloud_to, to_id, cloud_from, from_id, address, port, megabytes) -> float:
    """Mbit/s of a TCP transfer from one instance to another, as the receiver measures it."""
    receiver = subprocess.Popen(
        ["podman", "exec", container_name(cloud_to.cloud, to_id), "python3", "-c", SINK.format(port=port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        send = (
            "import socket, time\n"
            "for _ in range(50):\n"
            "    try:\n"
            f"        s = socket.create_connection(('{address}', {port}), 3); break\n"
            "    except OSError: time.sleep(0.2)\n"
            f"chunk = b'x' * (1 << 20)\n"
            f"for _ in range({megabytes}): s.sendall(chunk)\n"
            "s.close()\n"
        )
        exec_python(cloud_from.cloud, from_id, send, timeout=120)
        out, _ = receiver.communicate(timeout=120)
    finally:
        receiver.kill()
    return float(out.strip())


def test_shaping_the_wan_link_limits_throughput_both_ways(ec2, clouds, across):
    a, b = clouds
    a1, b1 = across["a1"], across["b1"]
    a1_id, b1_id = a1["InstanceId"], b1["InstanceId"]
    [default_a] = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"]
    [default_b] = across["ec2_b"].describe_security_groups(GroupNames=["default"])["SecurityGroups"]
    ec2.authorize_security_group_ingress(
        GroupId=default_a["GroupId"],
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 9000,
                "ToPort": 9000,
                "IpRanges": [{"CidrIp": f"{b1['PublicIpAddress']}/32"}],
            }
        ],
    )
    across["ec2_b"].authorize_security_group_ingress(
        GroupId=default_b["GroupId"],
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 9000,
                "ToPort": 9000,
                "IpRanges": [{"CidrIp": f"{a1['PublicIpAddress']}/32"}],
            }
        ],
    )
    time.sleep(1)  # the firewalls are refreshed in the background
    admin = AdminClient(a.endpoint, ALICE.access_key, ALICE.secret_key)
    inbound = lambda mb: _throughput(a, a1_id, b, b1_id, a1["PublicIpAddress"], 9000, mb)  # noqa: E731
    outbound = lambda mb: _throughput(b, b1_id, a, a1_id, b1["PublicIpAddress"], 9000, mb)  # noqa: E731

    unshaped = inbound(64)
    shaped = admin.shape_wan(a1_id, rate_mbit=20)
    assert (
        shaped["rate_mbit"] == pytest.approx(20)
        and admin.wan_shaping(a1_id)["PublicIp"] == a1["PublicIpAddress"]
    )
    limited_in, limited_out = inbound(8), outbound(8)
    print(f"WAN unshaped {unshaped:.0f} Mbit/s; shaped to 20: in {limited_in:.1f}, out {limited_out:.1f}")
    assert unshaped > 100
    assert 12 < limited_in < 23 and 12 < limited_out < 23
    assert admin.clear_wan_shaping(a1_id)["rate_mbit"] is None
    assert inbound(64) > 100

    # An instance without a public address, an unknown one, a bad rate.
    with pytest.raises(AdminError) as err:
        admin.shape_wan("i-0123456789abcdef0", rate_mbit=10)
    assert (err.value.status, err.value.code) == (404, "InvalidInstanceID.NotFound")
    for bad in ({"rate_mbit": -1}, {"delay_ms": 5001}, {"rate_mbit": 10, "delay_ms": -5}):
        with pytest.raises(AdminError) as err:
            admin.shape_wan(a1_id, **bad)
        assert (err.value.status, err.value.code) == (400, "InvalidParameterValue")
    assert admin.wan_shaping(a1_id)["rate_mbit"] is None and admin.wan_shaping(a1_id)["delay_ms"] == 0


RTT = (
    "import socket, statistics, time\n"
    "samples = []\n"
    "while len(samples) < {count}:\n"
    "    s = socket.socket(); s.settimeout(3); start = time.monotonic()\n"
    "    try:\n"
    "        s.connect(('{address}', {port}))\n"
    "    except ConnectionRefusedError:\n"
    "        pass\n"
    "    except OSError:\n"
    "        continue  # the firewall does not admit it yet\n"
    "    finally:\n"
    "        s.close()\n"
    "    samples.append((time.monotonic() - start) * 1000); time.sleep(0.02)\n"
    "print(statistics.median(samples))\n"
)


def _rtt_ms(cloud, instance_id, address, port, count=15) -> float:
    """The median time from inside an instance to be refused a TCP connection: a round trip."""
    code = RTT.format(address=address, port=port, count=count)
    return float(exec_python(cloud.cloud, instance_id, code, timeout=120))


def _host_end(cloud, instance_id, public_ip) -> str:
    """The host's end (vethN) of the instance's WAN veth."""
    return shaping.wan_link(Podman().pid(container_name(cloud.cloud, instance_id)), public_ip).host


def _master(device) -> str | None:
    [link] = json.loads(
        subprocess.run(
            ["ip", "-j", "link", "show", "dev", device], capture_output=True, text=True, check=True
        ).stdout
    )
    return link.get("master")


def _rdl_links() -> list[str]:
    lines = subprocess.run(
        ["ip", "-o", "link"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return [
        line.split(":")[1].strip().split("@")[0]
        for line in lines
        if line.split(":")[1].strip().startswith("rdl")
    ]


def _relays(device) -> list[int]:
    """The delay-line copiers running for ``device`` on this host."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"resilin.provisioners.localcloud.delay_relay" in argv and device.encode() in argv:
            found.append(int(entry))
    return found


def _cpu_seconds(pid) -> float:
    """User+system seconds a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _allow_tcp(ec2, port, source_ip):
    [default] = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"]
    permission = {
        "IpProtocol": "tcp",
        "FromPort": port,
        "ToPort": port,
        "IpRanges": [{"CidrIp": f"{source_ip}/32"}],
    }
    ec2.authorize_security_group_ingress(GroupId=default["GroupId"], IpPermissions=[permission])
    return lambda: ec2.revoke_security_group_ingress(GroupId=default["GroupId"], IpPermissions=[permission])


def test_a_wan_delay_adds_round_trip_time_and_keeps_the_rate(ec2, clouds, wan, across):
    """A delay line on a1's WAN link: a round trip from b1 takes 2×delay more, a rate still holds
    with it, and once it is taken off the WAN is wired as before."""
    a, b = clouds
    a1, b1 = across["a1"], across["b1"]
    a1_id, b1_id, public_a1 = a1["InstanceId"], b1["InstanceId"], a1["PublicIpAddress"]
    revokes = [_allow_tcp(ec2, 9100, b1["PublicIpAddress"]), _allow_tcp(ec2, 9001, b1["PublicIpAddress"])]
    revokes.append(_allow_tcp(across["ec2_b"], 9001, public_a1))
    admin = AdminClient(a.endpoint, ALICE.access_key, ALICE.secret_key)
    bridge = Podman().network_inspect(wan.network)["network_interface"]
    host_end = _host_end(a, a1_id, public_a1)
    try:
        baseline = _rtt_ms(b, b1_id, public_a1, 9100)
        shaped = admin.shape_wan(a1_id, delay_ms=40)
        assert (shaped["delay_ms"], shaped["rate_mbit"]) == (40, None)
        assert _master(host_end) is None and len(_rdl_links()) == 2 and len(_relays(host_end)) == 1
        delayed = _rtt_ms(b, b1_id, public_a1, 9100)
        print(f"RTT b1 -> a1: {baseline:.2f} ms unshaped, {delayed:.2f} ms with a delay of 40 ms each way")
        assert 70 <= delayed - baseline < 200

        # A rate and a delay together: a TCP stream still fills most of the rate, both ways.
        shaped = admin.shape_wan(a1_id, rate_mbit=100, delay_ms=20)
        assert shaped["rate_mbit"] == pytest.approx(100) and shaped["delay_ms"] == 20
        assert len(_rdl_links()) == 2 and len(_relays(host_end)) == 1  # the same line, a new delay
        [relay] = _relays(host_end)
        cpu = _cpu_seconds(relay)
        inbound = _throughput(a, a1_id, b, b1_id, public_a1, 9001, 48)
        outbound = _throughput(b, b1_id, a, a1_id, b1["PublicIpAddress"], 9001, 48)
        per_gb = (_cpu_seconds(relay) - cpu) / (2 * 48 * 2**20 / 1e9)
        rtt = _rtt_ms(b, b1_id, public_a1, 9100)
        print(
            f"rate 100 Mbit/s, delay 20 ms: in {inbound:.1f}, out {outbound:.1f} Mbit/s, RTT {rtt:.1f} ms; "
            f"the copier's CPU {per_gb:.1f} s per GB"
        )
        assert inbound >= 50 and outbound >= 50 and 30 <= rtt - baseline < 150

        # Off again: the WAN wired as it was, nothing left.
        cleared = admin.clear_wan_shaping(a1_id)
        assert (cleared["rate_mbit"], cleared["delay_ms"]) == (None, 0)
        assert _master(host_end) == bridge and _rdl_links() == [] and _relays(host_end) == []
        after = _rtt_ms(b, b1_id, public_a1, 9100)
        assert after < baseline + 10
        # Both ends delayed (as the overlay benchmark does to its gateways): a round trip crosses
        # each line twice, so it takes 4×delay more.
        admin_b = AdminClient(b.endpoint, ALICE.access_key, ALICE.secret_key)
        admin.shape_wan(a1_id, delay_ms=10)
        admin_b.shape_wan(b1_id, delay_ms=10)
        try:
            both = _rtt_ms(b, b1_id, public_a1, 9100)
            assert len(_rdl_links()) == 4 and 35 <= both - baseline < 100, both
        finally:
            admin_b.clear_wan_shaping(b1_id)
        # A delay with a rate, then the delay alone taken off by a new PUT.
        admin.shape_wan(a1_id, rate_mbit=50, delay_ms=10)
        assert admin.shape_wan(a1_id, rate_mbit=50)["delay_ms"] == 0
        assert _master(host_end) == bridge and _rdl_links() == [] and _relays(host_end) == []
    finally:
        admin.clear_wan_shaping(a1_id)
        for revoke in revokes:
            revoke()


def test_a_delayed_instance_leaves_no_delay_line_when_it_stops_dies_ends_or_its_cloud_dies(
    ec2, clouds, wan, node_image
):
    cloud = clouds[0]
    admin = AdminClient(cloud.endpoint, ALICE.access_key, ALICE.secret_key)
    bridge = Podman().network_inspect(wan.network)["network_interface"]
    [iid] = _launch(ec2, node_image, NetworkInterfaces=PUBLIC)
    try:
        [inst] = wait_state(ec2, [iid], "running")
        ip = inst["PublicIpAddress"]

        # Stopped: the line goes before the container does.
        admin.shape_wan(iid, delay_ms=30)
        host_end = _host_end(cloud, iid, ip)
        assert len(_relays(host_end)) == 1 and len(delayline.leftovers(cloud.cloud)) == 1
        ec2.stop_instances(InstanceIds=[iid])
        wait_state(ec2, [iid], "stopped")
        assert _rdl_links() == [] and _relays(host_end) == []
        ec2.start_instances(InstanceIds=[iid])
        wait_state(ec2, [iid], "running")
        assert admin.wan_shaping(iid)["delay_ms"] == 0  # a fault does not outlive its container

        # The cloud dies (SIGKILL): its copier follows it, and the cloud's next start rewires the WAN.
        admin.shape_wan(iid, delay_ms=30)
        host_end = _host_end(cloud, iid, ip)
        assert len(_relays(host_end)) == 1
        os.kill(cloud.child.pid, signal.SIGKILL)
        cloud.child.process.wait()
        deadline = time.monotonic() + 10
        while _relays(host_end):
            assert time.monotonic() < deadline, "the copier outlived its cloud"
            time.sleep(0.2)
        assert _master(host_end) is None and len(_rdl_links()) == 2  # left for the next start
        cloud.stop()
        cloud.start()
        assert admin.wan_shaping(iid)["delay_ms"] == 0  # answered once the cloud's start is done
        assert _master(host_end) == bridge and _rdl_links() == []

        # Killed (the admin API's failing host): the line goes too.
        admin.shape_wan(iid, delay_ms=30)
        host_end = _host_end(cloud, iid, ip)
        assert len(_relays(host_end)) == 1
        admin.kill(iid)
        assert _rdl_links() == [] and _relays(host_end) == []
        ec2.start_instances(InstanceIds=[iid])
        wait_state(ec2, [iid], "running")

        # Terminated: no line, no copier.
        admin.shape_wan(iid, rate_mbit=50, delay_ms=30)
        host_end = _host_end(cloud, iid, ip)
        assert len(_relays(host_end)) == 1
    finally:
        ec2.terminate_instances(InstanceIds=[iid])
    wait_state(ec2, [iid], "terminated")
    assert _rdl_links() == [] and _relays(host_end) == [] and delayline.leftovers(cloud.cloud) == []


def test_another_accounts_instance_cannot_reach_sshd(ec2, clouds, node_image):
    """The default group admits its members and the host: Bob's instance, on the same cloud network,
    does not reach Alice's sshd, while Alice's own second instance does."""
    cloud = clouds[0]
    bob = ec2_client(cloud, BOB)
    alice_ids = _launch(ec2, node_image, count=2)
    [bob_id] = _launch(bob, node_image)
    try:
        target, sibling = wait_state(ec2, alice_ids, "running")
        wait_state(bob, [bob_id], "running")
        console_host_keys(ec2, target["InstanceId"])  # its sshd is up
        assert tcp_probe(cloud.cloud, sibling["InstanceId"], target["PrivateIpAddress"], 22) == "open"
        assert tcp_probe(cloud.cloud, bob_id, target["PrivateIpAddress"], 22) == "timeout"
    finally:
        ec2.terminate_instances(InstanceIds=alice_ids)
        bob.terminate_instances(InstanceIds=[bob_id])
    wait_state(ec2, alice_ids, "terminated")
    wait_state(bob, [bob_id], "terminated")
    assert Podman().list({"resilin.cloud": cloud.cloud, "resilin.instance-id": bob_id}) == []


def test_a_public_address_survives_a_restart_that_lost_its_record(ec2, clouds, wan, node_image, redis_server):
    """Redis loses the cloud's addresses while it is down: at start the container's WAN address is
    claimed again, so it is neither lost from DescribeInstances nor handed to another instance."""
    cloud = clouds[0]
    [iid] = _launch(ec2, node_image, NetworkInterfaces=PUBLIC)
    try:
        [inst] = wait_state(ec2, [iid], "running")
        ip = inst["PublicIpAddress"]
        cloud.stop()
        client = redis_server.client()
        records = f"localcloud:{cloud.cloud}:addresses"
        [lost] = [k for k, v in client.hgetall(records).items() if json.loads(v)["instance_id"] == iid]
        client.hdel(records, lost)
        client.hdel(f"localcloud-wan:{wan.network}:ips", ip)
        cloud.start()
        [inst] = instances(ec2, InstanceIds=[iid])
        assert inst["PublicIpAddress"] == ip and _wan_addresses(cloud, iid) == [ip]
        assert client.hget(f"localcloud-wan:{wan.network}:ips", ip).startswith(f"{cloud.cloud}/")
    finally:
        ec2.terminate_instances(InstanceIds=[iid])
    wait_state(ec2, [iid], "terminated")
    assert not _on_wan(wan, cloud, iid)


def test_installations_make_wans_of_their_own():
    """Two installations' WANs by default: different networks, subnets of the shared space that
    do not overlap; an existing WAN keeps its subnet, and another subnet asked for is refused."""
    names = [f"test-wan-{secrets.token_hex(3)}" for _ in range(2)]
    try:
        first, second = (wan_module.ensure(name) for name in names)
        a, b = ipaddress.ip_network(first.subnet), ipaddress.ip_network(second.subnet)
        assert a.subnet_of(wan_module.SHARED_SPACE) and b.subnet_of(wan_module.SHARED_SPACE)
        assert not a.overlaps(b)
        assert wan_module.ensure(names[0]) == first  # made once, found again
        with pytest.raises(PodmanError, match="exists with subnet"):
            wan_module.ensure(names[0], second.subnet)
    finally:
        for name in names:
            assert wan_module.remove_if_unused(name)
    assert not any(Podman().network_exists(name) for name in names)
