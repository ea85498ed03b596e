"""The local cloud's gateway pieces that need no container: which SourceDestCheck a
ModifyInstanceAttribute call asks for (decoded from what boto3 sends), the route commands an
instance gets from its account's route table, and the firewall's forward chain."""

from __future__ import annotations

import pytest
from botocore.serialize import EC2Serializer

from resilin.provisioners.localcloud import ec2protocol, firewall
from resilin.provisioners.localcloud.attributes import asked_source_dest_check
from resilin.provisioners.localcloud.errors import EC2Error
from resilin.provisioners.localcloud.routetables import commands
from resilin.provisioners.localcloud.store import LAUNCHED, TERMINATED, InstanceRecord


def _decoded(params: dict) -> dict:
    op = ec2protocol.operation("ModifyInstanceAttribute")
    body = EC2Serializer().serialize_to_request({"InstanceId": "i-0123456789abcdef0", **params}, op)["body"]
    return ec2protocol.decode([(k, str(v)) for k, v in body.items()], op.input_shape)


def test_source_dest_check_is_read_from_either_form_of_the_call():
    assert asked_source_dest_check(_decoded({"SourceDestCheck": {"Value": False}})) is False
    assert asked_source_dest_check(_decoded({"SourceDestCheck": {"Value": True}})) is True
    assert asked_source_dest_check(_decoded({"Attribute": "sourceDestCheck", "Value": "false"})) is False


@pytest.mark.parametrize(
    "params, code",
    [
        ({}, "InvalidParameterCombination"),
        ({"DisableApiTermination": {"Value": True}}, "UnsupportedOperation"),
        ({"Attribute": "kernel", "Value": "aki-1"}, "UnsupportedOperation"),
        ({"Groups": ["sg-0123456789abcdef0"]}, "UnsupportedOperation"),
        (
            {"SourceDestCheck": {"Value": False}, "EbsOptimized": {"Value": True}},
            "InvalidParameterCombination",
        ),
        ({"Attribute": "sourceDestCheck"}, "MissingParameter"),
        ({"Attribute": "sourceDestCheck", "Value": "maybe"}, "InvalidParameterValue"),
    ],
)
def test_other_attributes_and_bad_values_are_refused(params, code):
    with pytest.raises(EC2Error) as err:
        asked_source_dest_check(_decoded(params))
    assert err.value.code == code and err.value.status == 400


def _record(iid: str, ip: str, check: bool = True, phase: str = LAUNCHED) -> InstanceRecord:
    return InstanceRecord(
        instance_id=iid, account="1", reservation_id="r-1", image_id="ami-1", image="img",
        instance_type="t3.micro", launch_time=0.0, private_ip=ip, source_dest_check=check, phase=phase,
    )  # fmt: skip


def test_route_commands_send_the_others_via_the_gateway_and_the_gateway_into_its_tun():
    gateway, other, plain, gone = (
        _record("i-g", "10.9.0.2", check=False),
        _record("i-o", "10.9.0.3"),
        _record("i-p", "10.9.0.4"),
        _record("i-x", "10.9.0.5", phase=TERMINATED),
    )
    records = {r.instance_id: r for r in (gateway, other, plain, gone)}
    routes = [
        {"DestinationCidrBlock": "10.20.0.0/16", "InstanceId": "i-g"},
        {"DestinationCidrBlock": "10.30.0.7/32", "InstanceId": "i-p"},
        {"DestinationCidrBlock": "10.40.0.0/16", "InstanceId": "i-x"},
    ]
    assert [argv for argv, _ in commands(other, records, routes)] == [
        ["ip", "route", "replace", "10.20.0.0/16", "via", "10.9.0.2"],
        ["ip", "route", "replace", "10.30.0.7/32", "via", "10.9.0.4"],
        ["ip", "route", "del", "10.40.0.0/16"],  # its target is gone: a blackhole, taken out
    ]
    gateway_cmds = commands(gateway, records, routes)
    assert gateway_cmds[0] == (
        ["ip", "route", "replace", "10.20.0.0/16", "dev", "tun0", "src", "10.9.0.2"],
        True,
    )
    # A target with the check on has no TUN device: no route of its own, and no error if none was there.
    assert commands(plain, records, routes)[1] == (["ip", "route", "del", "10.30.0.7/32"], False)


def test_forwarded_packets_meet_the_same_rules_as_those_for_the_instance():
    script = firewall.ruleset([firewall.Allow("udp", 51820, 51820, ("203.0.113.7/32",))])
    ingress, forward = script.split("chain forward")
    rule = "ip saddr { 203.0.113.7/32 } udp dport 51820 accept"
    assert rule in ingress and rule in forward
    assert "hook forward priority filter; policy drop;" in forward
    assert "ct state established,related accept" in forward and "counter drop" in forward
    assert "lo" not in forward  # loopback is the instance's own traffic, never forwarded
