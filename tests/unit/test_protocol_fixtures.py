"""The protocol kernel against botocore's own protocol test suites (query and ec2).

Input: botocore serializes each case's parameters, the kernel's decoder reads the form body
back, and the result must be the parameters.  Output: the kernel's writer writes each case's
expected result (or error), botocore's parser reads it back, and it must be that result.
The fixtures are botocore's, vendored under fixtures/botocore_protocols (see its README).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.model import OperationModel, ServiceModel
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from resilin.aws.errors import AwsError
from resilin.aws.query import EC2QueryDecoder, QueryDecoder, parse_form
from resilin.aws.query_xml import EC2XmlWriter, QueryXmlWriter
from resilin.aws.shapes import ShapeWalker

FIXTURES = Path(__file__).parent / "fixtures" / "botocore_protocols"

# Cases for features the kernel deliberately does not serve, with the reason.
SKIPPED = {
    # botocore fills a missing idempotency token with a random UUID; the fixture expects a fixed one.
    "QueryProtocolIdempotencyTokenAutoFill": "the token is random",
    "Ec2ProtocolIdempotencyTokenAutoFill": "the token is random",
    # Errors with modeled members beyond Code and Message: the services' errors carry only those.
    "QueryComplexError": "errors carry a code and a message only",
    "Ec2ComplexError": "errors carry a code and a message only",
    # botocore's own suite skips these two: its parser (which clients use, and which the writer
    # follows) names a flattened list's items by the list member's locationName, the fixture by
    # the structure member's.
    "QueryXmlLists": "botocore reads flattened lists by the item name",
    "Ec2XmlLists": "botocore reads flattened lists by the item name",
}


def _cases(name: str) -> list[Any]:
    params = []
    for suite in json.loads((FIXTURES / name).read_text()):
        for case in suite["cases"]:
            marks = [pytest.mark.skip(reason=SKIPPED[case["id"]])] if case["id"] in SKIPPED else []
            params.append(pytest.param(suite, case, id=case["id"], marks=marks))
    return params


def _operation(suite: dict[str, Any], case: dict[str, Any]) -> OperationModel:
    description = copy.deepcopy(suite)
    description["operations"] = {case["given"]["name"]: case["given"]}
    model = ServiceModel(description)
    return OperationModel(case["given"], model)


class _Typed(ShapeWalker[Any, Any]):
    """A fixture's JSON value as the kernel gives it: timestamps as datetimes, blobs as bytes."""

    def structure(self, shape: Any, value: Any, path: str) -> Any:
        return {name: self.walk(shape.members[name], item, name) for name, item in value.items()}

    def list(self, shape: Any, value: Any, path: str) -> Any:
        return [self.walk(shape.member, item, path) for item in value]

    def map(self, shape: Any, value: Any, path: str) -> Any:
        return {key: self.walk(shape.value, item, path) for key, item in value.items()}

    def scalar(self, shape: Any, value: Any, path: str) -> Any:
        if shape.type_name == "timestamp":
            return dt.datetime.fromtimestamp(value, dt.UTC)
        if shape.type_name == "blob":
            return value.encode() if isinstance(value, str) else value
        if shape.type_name in ("float", "double"):
            return float(value)  # "NaN", "Infinity" and "-Infinity" are written as text
        return value


def _comparable(value: Any) -> Any:
    """NaN equal to itself, and no empty members (the wire does not carry them), for ==."""
    if isinstance(value, dict):
        return {key: _comparable(item) for key, item in value.items() if item not in ([], {})}
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


@pytest.mark.parametrize("suite, case", _cases("input_query.json") + _cases("input_ec2.json"))
def test_kernel_decodes_what_botocore_serializes(suite, case):
    operation = _operation(suite, case)
    protocol = suite["metadata"]["protocol"]
    params = _Typed().walk(operation.input_shape, case["params"], "") if operation.input_shape else {}
    request = create_serializer(protocol, include_validation=False).serialize_to_request(params, operation)
    pairs = parse_form(urlencode(request["body"]))  # the body as it travels
    if protocol == "ec2":
        decoder: QueryDecoder = EC2QueryDecoder(lambda code, message: AwsError(message, code, 400))
    else:
        decoder = QueryDecoder(lambda message: AwsError(message, "ValidationError", 400))
    assert _comparable(decoder.decode(pairs, operation.input_shape)) == _comparable(params)


@pytest.mark.parametrize("suite, case", _cases("output_query.json") + _cases("output_ec2.json"))
def test_botocore_parses_what_the_kernel_writes(suite, case):
    operation = _operation(suite, case)
    protocol = suite["metadata"]["protocol"]
    writer = (EC2XmlWriter if protocol == "ec2" else QueryXmlWriter)("https://example.com/doc/2020-01-08/")
    if "error" in case:
        error = AwsError(case.get("errorMessage", ""), case["errorCode"], 400)
        body = writer.error(error, "request-1")
    else:
        shape = operation.output_shape
        if protocol == "query" and shape is not None and shape.members:
            # As botocore's own protocol tests do: the fixtures leave the Query result wrapper out.
            shape.serialization["resultWrapper"] = f"{operation.name}Result"
        result = _Typed().walk(shape, case["result"], "") if shape is not None else {}
        body = writer.response(operation, result, "request-1")
    parser = create_parser(protocol)
    parsed = parser.parse(
        {"body": body, "headers": {}, "status_code": 400 if "error" in case else 200}, operation.output_shape
    )
    assert parsed.pop("ResponseMetadata")["RequestId"] == "request-1"
    if "error" in case:
        assert parsed["Error"]["Code"] == case["errorCode"]
        assert parsed["Error"].get("Message", "") == case.get("errorMessage", "")
    else:
        expected = _Typed().walk(operation.output_shape, case["result"], "") if operation.output_shape else {}
        assert _comparable(parsed) == _comparable(expected)
