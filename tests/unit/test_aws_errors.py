"""One error base for the three services, each rendered by its protocol's writer and read back by botocore."""

from __future__ import annotations

from botocore.parsers import EC2QueryParser, QueryParser, RestXMLParser

from resilin.api.query_protocol import error_response
from resilin.aws.errors import AwsError
from resilin.aws.timestamps import iso8601
from resilin.errors import EmrError, ValidationError
from resilin.provisioners.localcloud import ec2protocol
from resilin.provisioners.localcloud.errors import EC2Error
from resilin.storage import s3xml
from resilin.storage.errors import S3Error, no_such_key


def test_the_services_errors_share_one_base():
    assert issubclass(EmrError, AwsError) and issubclass(EC2Error, AwsError) and issubclass(S3Error, AwsError)
    emr, ec2, s3 = ValidationError("bad"), EC2Error("InvalidAction", "no such action"), no_such_key("k")
    assert (emr.code, emr.status, emr.message) == ("ValidationException", 400, "bad")
    assert (ec2.code, ec2.status, str(ec2)) == ("InvalidAction", 400, "InvalidAction: no such action")
    assert (s3.code, s3.status, s3.extra) == ("NoSuchKey", 404, {"Key": "k"})


def test_query_writer_renders_an_emr_error_botocore_reads():
    response = error_response(ValidationError("Value <x> & more"), "req-1")
    parsed = QueryParser().parse({"body": response.body, "headers": {}, "status_code": 400}, None)
    assert parsed["Error"] == {"Type": "Sender", "Code": "ValidationError", "Message": "Value <x> & more"}
    assert parsed["ResponseMetadata"]["RequestId"] == "req-1"


def test_ec2_writer_renders_an_ec2_error_botocore_reads():
    body = ec2protocol.error(EC2Error("Unavailable", "down", 503), "req-2")
    parsed = EC2QueryParser().parse({"body": body, "headers": {}, "status_code": 503}, None)
    assert parsed["Error"]["Code"] == "Unavailable" and parsed["Error"]["Message"] == "down"
    assert parsed["ResponseMetadata"]["RequestId"] == "req-2"


def test_iso8601_has_milliseconds_in_utc():
    assert iso8601(0) == "1970-01-01T00:00:00.000Z"
    assert iso8601(1714979289.1239) == "2024-05-06T07:08:09.123Z"


def test_s3_writer_renders_an_s3_error_botocore_reads():
    response = s3xml.error(no_such_key("a/b"), "/bucket/a/b", "REQ3", head=False)
    parsed = RestXMLParser().parse({"body": response.body, "headers": {}, "status_code": 404}, None)
    assert (parsed["Error"]["Code"], parsed["Error"]["Message"]) == (
        "NoSuchKey",
        "The specified key does not exist.",
    )
    assert parsed["Error"]["Key"] == "a/b" and response.status == 404
    assert b"<RequestId>REQ3</RequestId>" in response.body
    assert s3xml.error(no_such_key("a/b"), "/bucket/a/b", "REQ3", head=True).body == b""
