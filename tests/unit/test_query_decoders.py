"""The two Query decoders' strictness: EMR's passes what does not fit on to the validator, EC2's refuses it."""

from __future__ import annotations

import datetime as dt

import pytest

from resilin.api.model import operation
from resilin.api.query_protocol import DECODER
from resilin.api.shapes import parse_input
from resilin.errors import ValidationError
from resilin.provisioners.localcloud import ec2protocol
from resilin.provisioners.localcloud.errors import EC2Error


def _emr(name: str, pairs: list[tuple[str, str]]) -> object:
    return DECODER.decode(pairs, operation(name).input_shape)


def test_emr_decoder_types_what_fits_and_passes_the_rest_on():
    pairs = [
        ("Name", "c"),
        ("Instances.InstanceCount", "three"),
        ("Instances.KeepJobFlowAliveWhenNoSteps", "true"),
        ("Steps.member.1.Name", "s"),
        ("Bogus", "x"),
    ]
    decoded = _emr("RunJobFlow", pairs)
    assert decoded["Instances"] == {"InstanceCount": "three", "KeepJobFlowAliveWhenNoSteps": True}
    assert decoded["Steps"] == [{"Name": "s"}] and decoded["Bogus"] == "x"
    with pytest.raises(ValidationError) as err:
        parse_input(operation("RunJobFlow").input_shape, decoded)
    assert "instances.instanceCount" in err.value.message and "bogus" in err.value.message


def test_emr_decoder_reads_timestamps_and_refuses_unreadable_names():
    decoded = _emr("ListClusters", [("CreatedAfter", "2024-05-06T07:08:09Z")])
    assert decoded["CreatedAfter"] == dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    with pytest.raises(ValidationError, match="more than once"):
        _emr("ListClusters", [("Marker", "a"), ("Marker", "b")])
    with pytest.raises(ValidationError, match="both as a value and as a structure"):
        _emr("RunJobFlow", [("Instances", "x"), ("Instances.InstanceCount", "1")])


def test_ec2_decoder_refuses_what_does_not_fit():
    shape = ec2protocol.operation("RunInstances").input_shape
    with pytest.raises(EC2Error) as err:
        ec2protocol.decode([("MinCount", "1"), ("MaxCount", "three")], shape)
    assert err.value.code == "InvalidParameterValue" and "MaxCount" in err.value.message
