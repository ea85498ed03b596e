"""The local cloud's model-driven Query decoder and XML encoder, checked against botocore's own
serializer and parser for the same EC2 model (no containers needed)."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from botocore.parsers import EC2QueryParser
from botocore.serialize import EC2Serializer

from resilin.provisioners.ec2client import parse_host_keys
from resilin.provisioners.localcloud import catalogue, ec2protocol
from resilin.provisioners.localcloud.errors import EC2Error


def _wire(operation: str, params: dict) -> list[tuple[str, str]]:
    """What boto3 would put in the form body for ``params``."""
    op = ec2protocol.operation(operation)
    body = EC2Serializer().serialize_to_request(params, op)["body"]
    return [(k, str(v)) for k, v in body.items()]


def _decode(operation: str, pairs: list[tuple[str, str]]) -> dict:
    return ec2protocol.decode(pairs, ec2protocol.operation(operation).input_shape)


def _parse(operation: str, xml: bytes, status: int = 200) -> dict:
    op = ec2protocol.operation(operation)
    response = {"body": xml, "headers": {}, "status_code": status}
    return EC2QueryParser().parse(response, op.output_shape)


def test_run_instances_round_trips_through_botocore_serializer():
    params = {
        "ImageId": "ami-0123456789abcdef0",
        "InstanceType": "m5.xlarge",
        "MinCount": 2,
        "MaxCount": 3,
        "KeyName": "cluster-key",
        "UserData": base64.b64encode(b"#!/bin/sh\necho hi\n").decode(),
        "ClientToken": "tok-1",
        "EbsOptimized": False,
        "TagSpecifications": [
            {
                "ResourceType": "instance",
                "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b c", "Value": "x=y&z"}],
            }
        ],
        "Placement": {"AvailabilityZone": "us-east-1a"},
    }
    wire = _wire("RunInstances", params)
    assert ("TagSpecification.1.Tag.2.Key", "b c") in wire  # ec2 protocol names, not member names
    assert ("ClientToken", "tok-1") in wire
    assert _decode("RunInstances", wire) == params


def test_describe_instances_filters_and_ids_decode():
    params = {
        "InstanceIds": ["i-0123456789abcdef0", "i-0123456789abcdef1"],
        "Filters": [
            {"Name": "tag:cluster", "Values": ["j-1", "j-2"]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ],
    }
    wire = _wire("DescribeInstances", params)
    assert ("Filter.1.Value.2", "j-2") in wire and ("InstanceId.2", "i-0123456789abcdef1") in wire
    assert _decode("DescribeInstances", wire) == params


def test_blob_is_base64_decoded():
    wire = _wire("ImportKeyPair", {"KeyName": "k", "PublicKeyMaterial": b"ssh-ed25519 AAAA k"})
    assert _decode("ImportKeyPair", wire)["PublicKeyMaterial"] == b"ssh-ed25519 AAAA k"


@pytest.mark.parametrize(
    "pairs, code, fragment",
    [
        ([("MinCount", "1"), ("MaxCount", "1"), ("Bogus", "x")], "UnknownParameter", "Bogus"),
        (
            [("MinCount", "1"), ("MaxCount", "1"), ("TagSpecification.1.Nope", "x")],
            "UnknownParameter",
            "Nope",
        ),
        ([("MinCount", "1"), ("MaxCount", "1"), ("InstanceIds.1", "x")], "UnknownParameter", "InstanceIds"),
        ([("MaxCount", "1")], "MissingParameter", "MinCount"),
        ([("MinCount", "one"), ("MaxCount", "1")], "InvalidParameterValue", "MinCount"),
        (
            [("MinCount", "1"), ("MaxCount", "1"), ("EbsOptimized", "yes")],
            "InvalidParameterValue",
            "EbsOptimized",
        ),
        (
            [("MinCount", "1"), ("MaxCount", "1"), ("SecurityGroupId.x", "sg")],
            "UnknownParameter",
            "SecurityGroupId.x",
        ),
        ([("MinCount", "1"), ("MaxCount", "1"), ("Placement", "zone")], "InvalidParameterValue", "Placement"),
    ],
)
def test_bad_parameters_are_refused_with_ec2_codes(pairs, code, fragment):
    with pytest.raises(EC2Error) as err:
        _decode("RunInstances", pairs)
    assert err.value.code == code and fragment in err.value.message


def test_envelope_and_presign_parameters_are_not_input():
    pairs = [("Action", "DescribeInstances"), ("Version", "2016-11-15"), ("X-Amz-Date", "20240101T000000Z")]
    assert _decode("DescribeInstances", pairs) == {}


def test_describe_instances_result_parses_with_botocore():
    launch = dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=dt.UTC)
    result = {
        "Reservations": [
            {
                "ReservationId": "r-0123456789abcdef0",
                "OwnerId": "123456789012",
                "Groups": [],
                "Instances": [
                    {
                        "InstanceId": "i-0123456789abcdef0",
                        "State": {"Code": 16, "Name": "running"},
                        "LaunchTime": launch,
                        "EbsOptimized": False,
                        "EnaSupport": True,
                        "AmiLaunchIndex": 0,
                        "PrivateIpAddress": "10.0.0.5",
                        "Tags": [{"Key": "k", "Value": "<&>"}],
                        "SecurityGroups": [],
                    }
                ],
            }
        ]
    }
    xml = ec2protocol.response(ec2protocol.operation("DescribeInstances"), result, "req-1")
    assert b"<item>" in xml and b"<reservationSet>" in xml and b"<ebsOptimized>false</ebsOptimized>" in xml
    assert b"2024-05-06T07:08:09.123Z" in xml
    parsed = _parse("DescribeInstances", xml)
    assert parsed.pop("ResponseMetadata")["RequestId"] == "req-1"
    # Empty lists come back absent, as they do from EC2 itself.
    expected = result["Reservations"][0] | {"Groups": []}
    got = parsed["Reservations"][0]
    assert got["Instances"][0]["LaunchTime"] == launch
    assert got["Instances"][0]["Tags"] == [{"Key": "k", "Value": "<&>"}]
    assert got["Instances"][0]["EbsOptimized"] is False and got["Instances"][0]["EnaSupport"] is True
    assert got["ReservationId"] == expected["ReservationId"] and got["OwnerId"] == expected["OwnerId"]


def test_encoder_refuses_members_the_shape_does_not_have():
    with pytest.raises(KeyError, match="Typo"):
        ec2protocol.response(ec2protocol.operation("DeleteKeyPair"), {"Typo": True}, "r")


def test_error_xml_parses_with_botocore():
    xml = ec2protocol.error(
        EC2Error("InvalidInstanceID.NotFound", "The instance ID 'i-1' does not exist"), "req-9"
    )
    op = ec2protocol.operation("DescribeInstances")
    parsed = EC2QueryParser().parse({"body": xml, "headers": {}, "status_code": 400}, op.output_shape)
    assert parsed["Error"]["Code"] == "InvalidInstanceID.NotFound"
    assert parsed["ResponseMetadata"]["RequestId"] == "req-9"


def test_unknown_action():
    with pytest.raises(EC2Error) as err:
        ec2protocol.operation("LaunchRockets")
    assert err.value.code == "InvalidAction"


def test_catalogue():
    assert catalogue.image_id("localhost/resilin-node:abc") == catalogue.image_id(
        "localhost/resilin-node:abc"
    )
    assert catalogue.image_id("a") != catalogue.image_id("b")
    limits = catalogue.instance_type("m5.xlarge").container_limits(host_cpus=2)
    assert limits.flags() == ["--cpus", "2", "--memory", "16384m"]
    assert limits.oci_resources() == {
        "cpu": {"period": 100_000, "quota": 200_000},
        "memory": {"limit": 16384 * 1024 * 1024},
    }
    with pytest.raises(EC2Error) as err:
        catalogue.instance_type("m5.huge")
    assert err.value.code == "InvalidParameterValue"
    assert len(catalogue.new_id("i")) == 19


def test_host_keys_block_is_parsed_from_console():
    console = (
        "booting\n-----BEGIN SSH HOST KEY KEYS-----\n"
        "ssh-ed25519 AAAAC3Nza root@old\n-----END SSH HOST KEY KEYS-----\n"
        "rebooted\n-----BEGIN SSH HOST KEY KEYS-----\n"
        "ecdsa-sha2-nistp256 AAAAE2Vj root@h\nssh-rsa AAAAB3Nz root@h\n"
        "-----END SSH HOST KEY KEYS-----\nsshd listening\n"
    )
    assert parse_host_keys(console) == ["ecdsa-sha2-nistp256 AAAAE2Vj", "ssh-rsa AAAAB3Nz"]
    assert parse_host_keys("-----BEGIN SSH HOST KEY KEYS-----\nssh-rsa AAAA\n") == []


def test_console_is_read_from_podmans_k8s_file_log():
    from resilin.provisioners.localcloud.console import parse_k8s_file

    log = (
        b"2026-11-21T06:59:51.388320860+00:00 stdout F resilin-init: generating SSH host keys\n"
        b"2026-11-21T06:59:55.727716476+00:00 stderr P a line written \n"
        b"2026-11-21T06:59:55.727716477+00:00 stderr F in two parts\n"
        b"2026-11-21T06:59:55.809627121+00:00 stdout F \n"
        b"cut off where a long log's head and tail meet\n"
        b"2026-11-21T06:59:56.107510785+00:00 stdout F ssh-ed25519 AAAAC3Nz root@i-1\n"
    )
    assert parse_k8s_file(log) == (
        b"resilin-init: generating SSH host keys\na line written in two parts\n\nssh-ed25519 AAAAC3Nz root@i-1\n"
    )
