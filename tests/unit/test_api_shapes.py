"""Request validation and result checking against botocore's EMR model, without a server."""

from __future__ import annotations

import datetime as dt

import pytest

from resilin.api import model
from resilin.api.errors import UnknownOperation
from resilin.api.patterns import matches
from resilin.api.results import JSON_SCALARS, ResultShapeError, serialize_output
from resilin.api.shapes import parse_input
from resilin.errors import ValidationError

RUN = model.operation("RunJobFlow").input_shape
XML_STRING = model.emr_model().shape_for("XmlStringMaxLen256").metadata["pattern"]


def _message(shape, params) -> str:
    with pytest.raises(ValidationError) as info:
        parse_input(shape, params)
    assert info.value.code == "ValidationException" and info.value.status == 400
    return info.value.message


def test_valid_input_passes_through_with_timestamps_converted():
    shape = model.operation("ListClusters").input_shape
    params = parse_input(shape, {"CreatedAfter": 1700000000.5, "ClusterStates": ["RUNNING"]})
    assert params == {
        "CreatedAfter": dt.datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=dt.UTC),
        "ClusterStates": ["RUNNING"],
    }
    iso = parse_input(shape, {"CreatedBefore": "2024-01-02T03:04:05Z"})["CreatedBefore"]
    assert iso == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_null_members_are_absent():
    assert parse_input(model.operation("ListClusters").input_shape, {"Marker": None}) == {}


def test_missing_required_members():
    assert _message(RUN, {}) == (
        "2 validation errors detected: "
        "Value null at 'name' failed to satisfy constraint: Member must not be null; "
        "Value null at 'instances' failed to satisfy constraint: Member must not be null"
    )


def test_nested_paths_number_list_items_from_one():
    message = _message(
        RUN,
        {
            "Name": "x",
            "Instances": {"InstanceGroups": [{"InstanceRole": "MASTER", "InstanceType": "m5.xlarge"}]},
        },
    )
    assert message == (
        "1 validation error detected: Value null at 'instances.instanceGroups.1.member.instanceCount' "
        "failed to satisfy constraint: Member must not be null"
    )


@pytest.mark.parametrize(
    ("instances", "fragment"),
    [
        (
            {"InstanceCount": "3"},
            "Value '3' at 'instances.instanceCount' failed to satisfy constraint: Member must be an integer",
        ),
        ({"InstanceCount": True}, "Member must be an integer"),
        ({"InstanceCount": 2**40}, "Member must be between -2147483648 and 2147483647 (the integer range)"),
        ({"KeepJobFlowAliveWhenNoSteps": "yes"}, "Member must be a boolean"),
        ({"MasterInstanceType": 5}, "Member must be a string"),
        ({"InstanceGroups": {"a": 1}}, "Member must be a list"),
        ({"Placement": "us-east-1a"}, "Member must be a structure (PlacementType)"),
    ],
)
def test_wrong_types(instances, fragment):
    assert fragment in _message(RUN, {"Name": "x", "Instances": instances})


def test_enum_length_and_unknown_member():
    message = _message(RUN, {"Name": "n" * 300, "Instances": {}, "ScaleDownBehavior": "SOON", "Extra": 1})
    assert message.startswith("3 validation errors detected: ")
    assert (
        "Value 'SOON' at 'scaleDownBehavior' failed to satisfy constraint: Member must satisfy enum "
        "value set: [TERMINATE_AT_INSTANCE_HOUR, TERMINATE_AT_TASK_COMPLETION]"
    ) in message
    assert (
        "at 'name' failed to satisfy constraint: Member must have length less than or equal to 256" in message
    )
    assert (
        "Value '1' at 'extra' failed to satisfy constraint: Member is not a known member of RunJobFlowInput"
        in message
    )


def test_numeric_ranges():
    shape = model.operation("ListReleaseLabels").input_shape
    assert parse_input(shape, {"MaxResults": 100}) == {"MaxResults": 100}
    assert _message(shape, {"MaxResults": 0}) == (
        "1 validation error detected: Value '0' at 'maxResults' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    )
    assert "Member must have value less than or equal to 100" in _message(shape, {"MaxResults": 101})


def test_many_errors_are_counted_but_listed_up_to_ten():
    steps = [{"Name": "s", "HadoopJarStep": {}} for _ in range(12)]
    message = _message(model.operation("AddJobFlowSteps").input_shape, {"JobFlowId": "j-1", "Steps": steps})
    assert message.startswith("12 validation errors detected: ")
    assert message.count("failed to satisfy constraint") == 10


def test_bad_timestamps():
    shape = model.operation("ListClusters").input_shape
    assert "Member must be a timestamp" in _message(shape, {"CreatedAfter": "yesterday"})
    assert "Member must be a timestamp" in _message(shape, {"CreatedAfter": 1e300})
    assert "Member must be a timestamp" in _message(shape, {"CreatedAfter": False})


def test_operation_without_input_members_rejects_parameters():
    shape = model.operation("GetBlockPublicAccessConfiguration").input_shape
    assert parse_input(shape, {}) == {}
    assert "is not a known member" in _message(shape, {"Anything": 1})


def test_unknown_operation():
    with pytest.raises(UnknownOperation):
        model.operation("Frobnicate")


def test_java_patterns_work_on_python_strings():
    assert matches(XML_STRING, "plain text\twith tab")
    assert matches(XML_STRING, "emoji \U0001f600 is a supplementary character")
    assert not matches(XML_STRING, "lone surrogate \ud800")
    assert not matches(XML_STRING, "control \x01 character")


def test_results_are_converted_for_json():
    shape = model.operation("ListClusters").output_shape
    created = dt.datetime(2024, 1, 2, 3, 4, 5, 250000, tzinfo=dt.UTC)
    result = {
        "Clusters": [
            {
                "Id": "j-1",
                "Name": "c",
                "Status": {
                    "State": "WAITING",
                    "Timeline": {"CreationDateTime": created, "EndDateTime": None},
                },
                "NormalizedInstanceHours": 0,
            }
        ],
        "Marker": None,
    }
    assert serialize_output(shape, result, JSON_SCALARS) == {
        "Clusters": [
            {
                "Id": "j-1",
                "Name": "c",
                "Status": {"State": "WAITING", "Timeline": {"CreationDateTime": 1704164645.25}},
                "NormalizedInstanceHours": 0,
            }
        ]
    }


@pytest.mark.parametrize(
    ("result", "fragment"),
    [
        ({"Clusters": [{"Id": 5}]}, "ListClustersOutput.Clusters[0].Id: expected a string"),
        ({"Clusters": [{"Bogus": 1}]}, "'Bogus' is not a member of ClusterSummary"),
        ({"Clusters": [{"Status": {"State": "SLEEPING"}}]}, "expected one of"),
        (
            {"Clusters": [{"Status": {"Timeline": {"CreationDateTime": dt.datetime(2024, 1, 1)}}}]},
            "expected an aware datetime",
        ),
        (
            {"Clusters": [{"Status": {"Timeline": {"CreationDateTime": 1704067200}}}]},
            "expected an aware datetime",
        ),
        ({"Clusters": {"Id": "j-1"}}, "expected a list"),
        ([], "expected a ListClustersOutput structure"),
    ],
)
def test_results_outside_their_shape(result, fragment):
    with pytest.raises(ResultShapeError) as info:
        serialize_output(model.operation("ListClusters").output_shape, result, JSON_SCALARS)
    assert fragment in str(info.value)


def test_operation_without_output():
    shape = model.operation("TerminateJobFlows").output_shape
    assert serialize_output(shape, {}, JSON_SCALARS) == {}
    assert serialize_output(shape, None, JSON_SCALARS) == {}
    with pytest.raises(ResultShapeError):
        serialize_output(shape, {"Done": True}, JSON_SCALARS)
