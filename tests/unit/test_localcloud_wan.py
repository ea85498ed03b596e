"""The local clouds' WAN without containers: its settings and their checks, the subnets installations
pick, the firewall's rules for the WAN, the shaping qdiscs, public addresses asked for at launch, and
the network interface DescribeInstances shows (checked against botocore's parser)."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from botocore.parsers import EC2QueryParser

from resilin.provisioners.localcloud import ec2protocol, firewall, shaping, view, wan, wan_faults
from resilin.provisioners.localcloud.errors import EC2Error
from resilin.provisioners.localcloud.public_addresses import wants_public_address
from resilin.provisioners.localcloud.store import LAUNCHED, InstanceRecord
from resilin.settings import config

ACCOUNT = (
    '[[accounts]]\naccount_id = "111111111111"\naccess_key = "AKIAEXAMPLE000000000"\nsecret_key = "s"\n\n'
)
CLOUD = '[[clouds]]\nname = "a"\nkind = "local"\nsubnet = "10.1.1.0/24"\n'


def _load(tmp_path, text: str):
    path = tmp_path / "resilin.toml"
    path.write_text(text)
    return config.load(tmp_path, path)


def test_the_wan_settings_are_read_and_checked(tmp_path):
    settings = _load(tmp_path, 'wan_subnet = "100.64.9.0/24"\nwan_network = "my-wan"\n' + ACCOUNT + CLOUD)
    assert (settings.wan_subnet, settings.wan_network) == ("100.64.9.0/24", "my-wan")
    unset = _load(tmp_path, ACCOUNT + CLOUD)
    assert (unset.wan_subnet, unset.wan_network) == ("", "")  # derived from the installation at start
    for line, message in [
        ('wan_subnet = "10.1.0.0/16"', "overlaps the subnet of local cloud a (10.1.1.0/24)"),
        ('wan_subnet = "8.8.8.0/24"', "must be a private or shared (100.64.0.0/10) network"),
        ('wan_subnet = "100.64.0.0/30"', "of at least 8 addresses"),
        ('wan_subnet = "not a network"', "'wan_subnet' must be an IPv4 network"),
        ("wan_subnet = 7", "'wan_subnet' must be an IPv4 network"),
        ('wan_network = "bad name"', "'wan_network' must be a podman network name"),
    ]:
        with pytest.raises(config.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            _load(tmp_path, line + "\n" + ACCOUNT + CLOUD)


def test_installations_get_their_own_wan_and_subnet():
    assert wan.default_network("rsl-0123456789abcdef") == "resilin-wan-0123456789abcdef"
    firsts = {next(wan.candidate_subnets(wan.default_network(f"rsl-{i:016x}"))) for i in range(200)}
    assert len(firsts) > 190  # different installations start at different subnets
    every = list(wan.candidate_subnets("resilin-wan-x"))
    assert len(every) == len(set(every)) == 1 << 14  # each /24 of 100.64.0.0/10 once
    assert all(ipaddress.ip_network(s).subnet_of(wan.SHARED_SPACE) for s in every)
    assert list(itertools.islice(wan.candidate_subnets("resilin-wan-x"), 3)) == every[:3]  # stable
    assert wan.Wan("w", "100.64.1.0/24").args() == ["--wan-network", "w", "--wan-subnet", "100.64.1.0/24"]


def test_group_members_are_admitted_on_the_cloud_interface_only_and_cidrs_anywhere():
    script = firewall.ruleset(
        [
            firewall.Allow("-1", None, None, ("10.1.1.5/32",), firewall.CLOUD_INTERFACE),
            firewall.Allow("udp", 51820, 51820, ("100.64.3.7/32",)),
        ]
    )
    assert '\t\tiifname "eth0" ip saddr { 10.1.1.5/32 } accept\n' in script
    assert "\t\tip saddr { 100.64.3.7/32 } udp dport 51820 accept\n" in script


def test_shaping_uses_a_token_bucket():
    tbf = shaping._qdisc(100)
    assert tbf[:3] == ["tbf", "rate", "100mbit"] and int(tbf[tbf.index("burst") + 1]) == 125000
    assert int(shaping._qdisc(1)[4]) == 16 * 1024  # never less than a few frames


def test_a_wan_fault_needs_a_rate_or_a_delay_within_bounds():
    assert wan_faults.check({"rate_mbit": 20}) == (20, 0)
    assert wan_faults.check({"delay_ms": 40}) == (None, 40)
    assert wan_faults.check({"rate_mbit": 100, "delay_ms": 5000}) == (100, 5000)
    for body in (
        {},
        [1],
        {"speed": 3},
        {"rate_mbit": 0},
        {"rate_mbit": True},
        {"delay_ms": -1},
        {"delay_ms": 5000.5},
        {"delay_ms": "40"},
        {"delay_ms": None},
        {"rate_mbit": 10, "delay_ms": False},
    ):
        with pytest.raises(EC2Error) as err:
            wan_faults.check(body)
        assert err.value.code == "InvalidParameterValue"


def test_public_addresses_at_launch_are_read_from_the_first_interface():
    assert wants_public_address({"NetworkInterfaces": [{"DeviceIndex": 0, "AssociatePublicIpAddress": True}]})
    assert not wants_public_address({"NetworkInterfaces": [{"DeviceIndex": 0}]})
    assert not wants_public_address({"SecurityGroupIds": ["sg-1"]})
    for params, code in [
        ({"NetworkInterfaces": [{"DeviceIndex": 1}]}, "InvalidParameterValue"),
        ({"NetworkInterfaces": [{"DeviceIndex": 0}, {"DeviceIndex": 0}]}, "InvalidParameterValue"),
        (
            {"NetworkInterfaces": [{"DeviceIndex": 0}], "SecurityGroupIds": ["sg-1"]},
            "InvalidParameterCombination",
        ),
    ]:
        with pytest.raises(EC2Error) as err:
            wants_public_address(params)
        assert err.value.code == code


def _record() -> InstanceRecord:
    return InstanceRecord(
        instance_id="i-0123456789abcdef0",
        account="111111111111",
        reservation_id="r-1",
        image_id="ami-1",
        image="img",
        instance_type="t3.micro",
        launch_time=1_700_000_000.0,
        phase=LAUNCHED,
        private_ip="10.1.1.5",
        security_groups=["sg-0123456789abcdef0"],
    )


def test_describe_instances_shows_the_public_address_on_the_interface():
    shaped = view.instance(
        _record(), "running", "us-east-1", None, {}, ("vpc-1", "subnet-1"), ("100.64.3.7", "amazon")
    )
    assert shaped["PublicIpAddress"] == "100.64.3.7" and shaped["PublicDnsName"] == ""
    [eni] = shaped["NetworkInterfaces"]
    assert eni["NetworkInterfaceId"] == view.interface_id("i-0123456789abcdef0") == "eni-0123456789abcdef0"
    assert eni["Association"]["PublicIp"] == "100.64.3.7"
    assert eni["PrivateIpAddresses"][0]["Association"]["PublicIp"] == "100.64.3.7"
    private = view.instance(_record(), "running", "us-east-1", None, {}, ("vpc-1", "subnet-1"))
    assert "PublicIpAddress" not in private and "Association" not in private["NetworkInterfaces"][0]
    assert "NetworkInterfaces" not in view.instance(
        _record(), "terminated", "us-east-1", None, {}, ("vpc-1", "s")
    )

    # The XML writer takes it, and botocore reads back what it was given.
    op = ec2protocol.operation("DescribeInstances")
    result = {"Reservations": [{"ReservationId": "r-1", "OwnerId": "111111111111", "Instances": [shaped]}]}
    xml = ec2protocol.response(op, result, "req-1")
    parsed = EC2QueryParser().parse({"body": xml, "headers": {}, "status_code": 200}, op.output_shape)
    [inst] = parsed["Reservations"][0]["Instances"]
    assert inst["NetworkInterfaces"][0]["Association"]["PublicIp"] == "100.64.3.7"
    assert inst["NetworkInterfaces"][0]["Attachment"]["DeviceIndex"] == 0
