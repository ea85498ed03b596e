"""The storage service driven by boto3, as EMR jobs and users drive it."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import itertools
import os
import time
import types
import zlib

import boto3
import boto3.s3.transfer
import botocore.httpchecksum
import pytest
import requests
from botocore.exceptions import ClientError
from lxml import etree

from resilin.storage.testing import ALICE, BOB, StorageProcess, boto3_client

MiB = 1024 * 1024
_names = itertools.count()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with StorageProcess(tmp_path_factory.mktemp("s3"), [ALICE, BOB]) as running:
        yield running


@pytest.fixture
def s3(service):
    return boto3_client(service.endpoint, ALICE)


@pytest.fixture
def bob(service):
    return boto3_client(service.endpoint, BOB)


@pytest.fixture
def bucket(s3):
    name = f"bucket-{next(_names)}-{int(time.time())}"
    s3.create_bucket(Bucket=name)
    return name


def error_of(excinfo) -> tuple[int, str]:
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


# -- buckets ---------------------------------------------------------------------------


def test_non_ascii_metadata_is_signed_stored_as_text_and_answered_as_s3_answers_it(s3, bucket):
    def utf8_metadata(**kwargs):
        headers = kwargs["params"]["headers"]
        headers["x-amz-meta-place"] = "Montréal ✓"  # botocore sends it as UTF-8
        headers["x-amz-meta-encoded"] = "=?UTF-8?B?w6l0w6k=?="  # already an RFC 2047 word: "été"
        headers["x-amz-meta-plain"] = "ascii =? stays"

    s3.meta.events.register("before-call.s3.PutObject", utf8_metadata)
    try:
        s3.put_object(Bucket=bucket, Key="utf8", Body=b"x")
    finally:
        s3.meta.events.unregister("before-call.s3.PutObject", utf8_metadata)
    # As S3 does: text that is not US-ASCII comes back as an RFC 2047 encoded word of its UTF-8.
    for answer in (s3.head_object, s3.get_object):
        got = answer(Bucket=bucket, Key="utf8")["Metadata"]
        assert got["place"] == "=?UTF-8?B?TW9udHLDqWFsIOKckw==?="
        assert base64.b64decode(got["place"][10:-2]).decode() == "Montréal ✓"
        assert got["encoded"] == "=?UTF-8?B?w6l0w6k=?="
        assert got["plain"] == "ascii =? stays"


def test_an_empty_continuation_token_lists_from_the_start(s3, bucket):
    for key in ("a", "b"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    listed = s3.list_objects_v2(Bucket=bucket, ContinuationToken="")
    assert listed["ContinuationToken"] == "" and [o["Key"] for o in listed["Contents"]] == ["a", "b"]


def test_list_buckets_pages_filters_and_refuses_bad_arguments(service, bob):
    names = [f"paged-{i}-{int(time.time())}" for i in range(5)]
    for name in names:
        bob.create_bucket(Bucket=name)
    listed, token, pages = [], None, 0
    while True:
        page = bob.list_buckets(
            MaxBuckets=2, Prefix="paged-", **({"ContinuationToken": token} if token else {})
        )
        assert page["Prefix"] == "paged-" and len(page["Buckets"]) <= 2
        listed += [b["Name"] for b in page["Buckets"]]
        pages += 1
        token = page.get("ContinuationToken")
        if not token:
            break
    assert listed == sorted(names) and pages == 3
    everything = bob.list_buckets()
    assert "ContinuationToken" not in everything and set(names) <= {b["Name"] for b in everything["Buckets"]}
    assert bob.list_buckets(BucketRegion="eu-west-3")["Buckets"] == []
    assert len(bob.list_buckets(BucketRegion="us-east-1", Prefix="paged-")["Buckets"]) == 5

    unchecked = boto3_client(service.endpoint, BOB, parameter_validation=False)
    for bad in ({"MaxBuckets": 0}, {"MaxBuckets": 10001}, {"ContinuationToken": "not-a-token"}):
        with pytest.raises(ClientError) as excinfo:
            unchecked.list_buckets(**bad)
        assert error_of(excinfo) == (400, "InvalidArgument"), bad
    for name in names:
        bob.delete_bucket(Bucket=name)


def test_object_versions_of_an_unversioned_bucket_are_null_and_empty_the_bucket(service, s3, bucket):
    keys = ["a", "dir/b", "dir/c", "e", "f"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    listed, markers, pages = [], {}, 0
    while True:
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=2, **markers)
        pages += 1
        assert "DeleteMarkers" not in page
        for version in page.get("Versions", []):
            assert (version["VersionId"], version["IsLatest"]) == ("null", True)
            listed.append(version["Key"])
        if not page["IsTruncated"]:
            break
        assert page["NextVersionIdMarker"] == "null"
        markers = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
    assert listed == keys and pages == 3
    grouped = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [v["Key"] for v in grouped["Versions"]] == ["a", "e", "f"]
    assert grouped["CommonPrefixes"] == [{"Prefix": "dir/"}]

    # The null version is the object; no other version exists.
    assert s3.get_object(Bucket=bucket, Key="a", VersionId="null")["Body"].read() == b"a"
    assert s3.head_object(Bucket=bucket, Key="a", VersionId="null")["ContentLength"] == 1
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="a", VersionId="3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY")
    assert error_of(excinfo) == (404, "NoSuchVersion")
    # Deleting a version that does not exist is no error (DeleteObjects is retried that way).
    s3.delete_object(Bucket=bucket, Key="a", VersionId="3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY")
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == b"a"
    with pytest.raises(ClientError) as excinfo:
        s3.list_object_versions(Bucket=bucket, VersionIdMarker="null")
    assert error_of(excinfo) == (400, "InvalidArgument")
    s3.delete_object(Bucket=bucket, Key="f", VersionId="null")
    result = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "e", "VersionId": "null"}, {"Key": "a", "VersionId": "not.an.id"}]},
    )
    assert result["Deleted"] == [{"Key": "e", "VersionId": "null"}]
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("a", "InvalidArgument")]

    # Every client's "empty the bucket": list the versions, delete them, then the bucket.
    boto3_resource = boto3.resource(
        "s3", endpoint_url=service.endpoint, aws_access_key_id=ALICE.access_key,
        aws_secret_access_key=ALICE.secret_key, region_name="us-east-1",
    )  # fmt: skip
    boto3_resource.Bucket(bucket).object_versions.delete()
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    s3.delete_bucket(Bucket=bucket)


def test_bad_acls_tags_and_object_lock_on_a_bucket_without_it_are_refused_and_change_nothing(s3, bucket):
    refused = [
        ({"ACL": "public-everything"}, 400, "InvalidArgument"),
        ({"GrantRead": 'id="someone"'}, 400, "InvalidArgument"),
        ({"GrantRead": 'emailAddress="someone@example.com"'}, 400, "UnresolvableGrantByEmailAddress"),
        ({"ACL": "public-read", "GrantRead": 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'},
         400, "InvalidRequest"),
        ({"Tagging": "a=1&a=2"}, 400, "InvalidTag"),
        (
            {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": dt.datetime(2100, 1, 1)},
            400,
            "InvalidRequest",
        ),
        ({"ObjectLockLegalHoldStatus": "ON"}, 400, "InvalidRequest"),
    ]  # fmt: skip
    for extra, status, code in refused:
        for call in (
            lambda e: s3.put_object(Bucket=bucket, Key="controlled", Body=b"x", **e),
            lambda e: s3.create_multipart_upload(Bucket=bucket, Key="controlled", **e),
        ):
            with pytest.raises(ClientError) as excinfo:
                call(extra)
            assert error_of(excinfo) == (status, code), extra
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    for extra, code in (
        ({"ACL": "public-everything"}, (400, "InvalidArgument")),
        ({"ObjectOwnership": "EveryoneOwns"}, (400, "InvalidArgument")),
        ({"ObjectOwnership": "BucketOwnerEnforced", "ACL": "public-read"},
         (400, "InvalidBucketAclWithObjectOwnership")),
    ):  # fmt: skip
        name = f"refused-{next(_names)}-{int(time.time())}"
        with pytest.raises(ClientError) as excinfo:
            s3.create_bucket(Bucket=name, **extra)
        assert error_of(excinfo) == code, extra
        assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_cors_rules_answer_preflights_and_browser_requests(service, s3, bob, bucket):
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_cors(Bucket=bucket)
    assert error_of(excinfo) == (404, "NoSuchCORSConfiguration")
    url = f"{service.endpoint}/{bucket}/page.txt"
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT"}
    assert requests.options(url, headers=preflight, timeout=10).status_code == 403  # no rules yet

    rules = [
        {
            "AllowedOrigins": ["https://*.example.com"],
            "AllowedMethods": ["PUT", "GET"],
            "AllowedHeaders": ["content-type", "x-amz-*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 300,
        }
    ]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == rules
    with pytest.raises(ClientError) as excinfo:  # another account can neither read nor change them
        bob.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    assert error_of(excinfo) == (403, "AccessDenied")

    asked = requests.options(
        url, headers=preflight | {"Access-Control-Request-Headers": "Content-Type, X-Amz-Date"}, timeout=10
    )
    assert asked.status_code == 200, asked.text
    assert asked.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert asked.headers["Access-Control-Allow-Headers"] == "content-type, x-amz-date"
    assert (asked.headers["Access-Control-Max-Age"], asked.headers["Access-Control-Allow-Methods"]) == (
        "300",
        "PUT, GET",
    )
    for refused in (
        preflight | {"Origin": "https://evil.org"},
        preflight | {"Access-Control-Request-Method": "DELETE"},
        preflight | {"Access-Control-Request-Headers": "authorization-extra"},
    ):
        assert requests.options(url, headers=refused, timeout=10).status_code == 403, refused
    assert (
        requests.options(url, headers={"Access-Control-Request-Method": "PUT"}, timeout=10).status_code == 400
    )
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)  # preflights changed nothing

    # The browser's request itself is signed (a presigned URL) and its answer carries the headers.
    s3.put_object(Bucket=bucket, Key="page.txt", Body=b"hello")
    signed = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "page.txt"})
    got = requests.get(signed, headers={"Origin": "https://app.example.com"}, timeout=10)
    assert got.status_code == 200 and got.content == b"hello"
    assert got.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert got.headers["Access-Control-Expose-Headers"] == "ETag"
    other = requests.get(signed, headers={"Origin": "https://evil.org"}, timeout=10)
    assert other.status_code == 200 and "Access-Control-Allow-Origin" not in other.headers
    assert requests.get(url, headers={"Origin": "https://app.example.com"}, timeout=10).status_code == 403

    s3.delete_bucket_cors(Bucket=bucket)
    assert requests.options(url, headers=preflight, timeout=10).status_code == 403
    with pytest.raises(ClientError) as excinfo:
        s3.put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]},
        )
    assert error_of(excinfo) == (400, "InvalidRequest")


def test_bucket_tagging(s3, bob, bucket):
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_tagging(Bucket=bucket)
    assert error_of(excinfo) == (404, "NoSuchTagSet")
    tags = [{"Key": "team", "Value": "data"}, {"Key": "cost-centre", "Value": ""}]
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == tags
    with pytest.raises(ClientError) as excinfo:
        bob.get_bucket_tagging(Bucket=bucket)
    assert error_of(excinfo) == (403, "AccessDenied")
    for bad in (
        [{"Key": "aws:owner", "Value": "x"}],
        [{"Key": "k" * 129, "Value": "x"}],
        [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}],
        [{"Key": f"k{i}", "Value": "v"} for i in range(51)],
    ):
        with pytest.raises(ClientError) as excinfo:
            s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": bad})
        assert error_of(excinfo) == (400, "InvalidTag"), bad[0]
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == tags  # refusals changed nothing
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_tagging(Bucket=bucket)
    assert error_of(excinfo) == (404, "NoSuchTagSet")


def _form_post(url: str, fields: dict, content: bytes, filename: str = "photo.jpg") -> requests.Response:
    return requests.post(url, data=fields, files={"file": (filename, content)}, timeout=30)


def test_browser_form_uploads_are_checked_against_their_signed_policy(service, s3, bob, bucket):
    form = s3.generate_presigned_post(
        bucket,
        "uploads/${filename}",
        Fields={"success_action_status": "201", "Content-Type": "image/jpeg", "x-amz-meta-album": "summer"},
        Conditions=[
            ["starts-with", "$key", "uploads/"],
            ["content-length-range", 1, 1000],
            {"success_action_status": "201"},
            ["starts-with", "$Content-Type", "image/"],
            {"x-amz-meta-album": "summer"},
        ],
        ExpiresIn=600,
    )
    done = _form_post(form["url"], form["fields"], b"jpeg bytes")
    assert done.status_code == 201, done.text
    # S3's PostResponse, without a namespace, as browsers' scripts read it
    answer = etree.fromstring(done.content)
    assert (answer.tag, answer.findtext("Bucket"), answer.findtext("Key")) == (
        "PostResponse", bucket, "uploads/photo.jpg",
    )  # fmt: skip
    got = s3.get_object(Bucket=bucket, Key="uploads/photo.jpg")
    assert got["Body"].read() == b"jpeg bytes"
    assert (got["ContentType"], got["Metadata"]) == ("image/jpeg", {"album": "summer"})
    assert done.headers["ETag"] == got["ETag"]

    fields = form["fields"]
    refused = [
        (fields | {"key": "elsewhere/x"}, b"x", 403, "AccessDenied"),  # the policy names the prefix
        (fields | {"x-amz-meta-album": "winter"}, b"x", 403, "AccessDenied"),
        (fields | {"acl": "public-read"}, b"x", 403, "AccessDenied"),  # a field no condition allows
        (fields, b"x" * 1001, 400, "EntityTooLarge"),
        (fields | {"x-amz-signature": "0" * 64}, b"x", 403, "SignatureDoesNotMatch"),
        ({k: v for k, v in fields.items() if k != "policy"}, b"x", 403, "AccessDenied"),
    ]
    for sent, content, status, code in refused:
        answer = _form_post(form["url"], sent, content, filename="refused.jpg")
        assert (answer.status_code, f"<Code>{code}</Code>" in answer.text) == (status, True), (
            sent,
            answer.text,
        )
    expired = s3.generate_presigned_post(bucket, "late", ExpiresIn=-60)
    answer = _form_post(expired["url"], expired["fields"], b"x")
    assert answer.status_code == 403 and "Policy expired" in answer.text
    # Another account's signed policy does not open this bucket.
    theirs = bob.generate_presigned_post(bucket, "intruder")
    answer = _form_post(theirs["url"], theirs["fields"], b"x")
    assert answer.status_code == 403 and "<Code>AccessDenied</Code>" in answer.text
    # A form signed the Signature Version 2 way is refused as such, not taken as anonymous.
    policy = base64.b64encode(b'{"expiration": "2100-01-01T00:00:00Z", "conditions": []}').decode()
    v2 = {"key": "v2.txt", "AWSAccessKeyId": ALICE.access_key, "policy": policy, "signature": "c2lnbmF0dXJl"}
    answer = _form_post(f"{service.endpoint}/{bucket}", v2, b"x")
    assert answer.status_code == 400 and "Please use AWS4-HMAC-SHA256" in answer.text
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["uploads/photo.jpg"]  # nothing refused was written

    redirected = s3.generate_presigned_post(
        bucket, "done.txt", Fields={"success_action_redirect": "https://app.example.com/thanks"},
        Conditions=[{"success_action_redirect": "https://app.example.com/thanks"}],
    )  # fmt: skip
    answer = requests.post(
        redirected["url"], data=redirected["fields"], files={"file": ("a.txt", b"a")}, allow_redirects=False,
        timeout=30,
    )  # fmt: skip
    assert answer.status_code == 303
    assert answer.headers["Location"].startswith("https://app.example.com/thanks?bucket=")
    plain = s3.generate_presigned_post(bucket, "plain.txt")
    # No more than a bounded head of the body is read before the file: here, empty fields.
    padded = plain["fields"] | {f"x-ignore-{n}": "" for n in range(40000)}
    answer = _form_post(plain["url"], padded, b"p")
    assert answer.status_code == 400 and "<Code>MaxPostPreDataLengthExceeded</Code>" in answer.text
    assert _form_post(plain["url"], plain["fields"], b"p").status_code == 204
    assert s3.get_object(Bucket=bucket, Key="plain.txt")["Body"].read() == b"p"
    # A form's tags come as a Tagging document in its "tagging" field.
    tagging = "<Tagging><TagSet><Tag><Key>from</Key><Value>browser</Value></Tag></TagSet></Tagging>"
    tagged = s3.generate_presigned_post(bucket, "tagged.txt", Fields={"tagging": tagging},
                                        Conditions=[{"tagging": tagging}])  # fmt: skip
    assert _form_post(tagged["url"], tagged["fields"], b"t").status_code == 204
    assert s3.get_object_tagging(Bucket=bucket, Key="tagged.txt")["TagSet"] == [
        {"Key": "from", "Value": "browser"}
    ]


def test_lifecycle_rules_expire_objects_and_are_refused_where_they_cannot_act(tmp_path):
    with StorageProcess(tmp_path / "s3", [ALICE], extra_args=["--lifecycle-interval", "0.5"]) as running:
        s3 = boto3_client(running.endpoint, ALICE)
        s3.create_bucket(Bucket="emr-logs")
        with pytest.raises(ClientError) as excinfo:
            s3.get_bucket_lifecycle_configuration(Bucket="emr-logs")
        assert error_of(excinfo) == (404, "NoSuchLifecycleConfiguration")
        for key in ("logs/j-1/step.log", "logs/j-2/step.log", "keep/result.csv", "tmp/big"):
            s3.put_object(Bucket="emr-logs", Key=key, Body=b"x" * (500 if key == "tmp/big" else 5))
        upload_id = s3.create_multipart_upload(Bucket="emr-logs", Key="logs/unfinished")["UploadId"]
        rules = [
            {"ID": "old logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
             "Expiration": {"Date": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)},
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3}},
            {"ID": "big tmp", "Filter": {"And": {"Prefix": "tmp/", "ObjectSizeGreaterThan": 1000}},
             "Status": "Enabled", "Expiration": {"Date": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)}},
            {"ID": "off", "Filter": {"Prefix": "keep/"}, "Status": "Disabled",
             "Expiration": {"Date": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)}},
        ]  # fmt: skip
        s3.put_bucket_lifecycle_configuration(Bucket="emr-logs", LifecycleConfiguration={"Rules": rules})
        stored = s3.get_bucket_lifecycle_configuration(Bucket="emr-logs")["Rules"]
        assert [(r["ID"], r["Status"]) for r in stored] == [("old logs", "Enabled"), ("big tmp", "Enabled"),
                                                             ("off", "Disabled")]  # fmt: skip

        def remaining() -> list[str]:
            return [o["Key"] for o in s3.list_objects_v2(Bucket="emr-logs").get("Contents", [])]

        deadline = time.time() + 15
        while remaining() != ["keep/result.csv", "tmp/big"] and time.time() < deadline:
            time.sleep(0.2)
        # Expired: the logs; kept: what a disabled rule names and a small object under a size filter.
        assert remaining() == ["keep/result.csv", "tmp/big"]
        # The upload started just now is not 3 days old.
        assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="emr-logs")["Uploads"]] == [upload_id]

        refused = [
            ({"ID": "t", "Filter": {"Prefix": ""}, "Status": "Enabled",
              "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}, 501, "NotImplemented"),
            ({"ID": "n", "Filter": {"Prefix": ""}, "Status": "Enabled",
              "Expiration": {"Date": dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC)}}, 400, "InvalidArgument"),
        ]  # fmt: skip
        for rule, status, code in refused:
            with pytest.raises(ClientError) as excinfo:
                s3.put_bucket_lifecycle_configuration(
                    Bucket="emr-logs", LifecycleConfiguration={"Rules": [rule]}
                )
            assert error_of(excinfo) == (status, code), rule["ID"]
        assert len(s3.get_bucket_lifecycle_configuration(Bucket="emr-logs")["Rules"]) == 3  # unchanged
        s3.delete_bucket_lifecycle(Bucket="emr-logs")
        with pytest.raises(ClientError) as excinfo:
            s3.get_bucket_lifecycle_configuration(Bucket="emr-logs")
        assert error_of(excinfo) == (404, "NoSuchLifecycleConfiguration")


def test_objects_a_lifecycle_rule_will_expire_say_when_on_put_get_and_head(s3):
    s3.create_bucket(Bucket="expiring")
    rules = [
        {"ID": "reports \"30\"", "Filter": {"Prefix": "reports/"}, "Status": "Enabled", "Expiration": {"Days": 30}},
        {"ID": "soon", "Filter": {"Prefix": "reports/daily/"}, "Status": "Enabled", "Expiration": {"Days": 2}},
        {"ID": "off", "Filter": {"Prefix": "keep/"}, "Status": "Disabled", "Expiration": {"Days": 1}},
    ]  # fmt: skip
    s3.put_bucket_lifecycle_configuration(Bucket="expiring", LifecycleConfiguration={"Rules": rules})

    def expiration(response: dict) -> str | None:
        return response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-expiration")

    def due(days: int) -> str:  # midnight UTC after the object's age reaches `days`, as S3 rounds
        moment = (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).date() + dt.timedelta(days=1)
        return moment.strftime("%a, %d %b %Y 00:00:00 GMT")

    put = s3.put_object(Bucket="expiring", Key="reports/q1.csv", Body=b"q1")
    assert expiration(put) == f'expiry-date="{due(30)}", rule-id="reports \\"30\\""'
    for answer in (s3.head_object, s3.get_object):
        assert expiration(answer(Bucket="expiring", Key="reports/q1.csv")) == expiration(put)
    daily = s3.put_object(Bucket="expiring", Key="reports/daily/d.csv", Body=b"d")
    assert expiration(daily) == f'expiry-date="{due(2)}", rule-id="soon"'  # the earliest rule
    for key in ("keep/k", "other"):
        assert expiration(s3.put_object(Bucket="expiring", Key=key, Body=b"k")) is None
        assert expiration(s3.head_object(Bucket="expiring", Key=key)) is None


def test_bucket_lifecycle(s3):
    s3.create_bucket(Bucket="life-cycle")
    assert "life-cycle" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    head = s3.head_bucket(Bucket="life-cycle")
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "us-east-1"
    assert s3.get_bucket_location(Bucket="life-cycle")["LocationConstraint"] is None
    s3.put_object(Bucket="life-cycle", Key="k", Body=b"x")
    with pytest.raises(ClientError) as excinfo:
        s3.delete_bucket(Bucket="life-cycle")
    assert error_of(excinfo) == (409, "BucketNotEmpty")
    s3.delete_object(Bucket="life-cycle", Key="k")
    s3.delete_bucket(Bucket="life-cycle")
    with pytest.raises(ClientError) as excinfo:
        s3.head_bucket(Bucket="life-cycle")
    assert error_of(excinfo)[0] == 404
    with pytest.raises(ClientError) as excinfo:
        s3.list_objects_v2(Bucket="life-cycle")
    assert error_of(excinfo) == (404, "NoSuchBucket")


def test_create_bucket_with_configuration_and_recreate(s3):
    # us-east-1 behaviour: the owner re-creating its bucket gets 200.
    s3.create_bucket(Bucket="recreated")
    s3.create_bucket(Bucket="recreated")
    with pytest.raises(ClientError) as excinfo:
        s3.create_bucket(Bucket="elsewhere", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert error_of(excinfo) == (400, "IllegalLocationConstraintException")


@pytest.mark.parametrize(
    "name",
    [
        "ab",
        "a" * 64,
        "UpperCase",
        "under_score",
        "-leading",
        "trailing-",
        "two..dots",
        "192.168.1.1",
        "xn--punycode",
    ],
)
def test_invalid_bucket_names(s3, name):
    with pytest.raises(ClientError) as excinfo:
        s3.create_bucket(Bucket=name)
    assert error_of(excinfo) == (400, "InvalidBucketName")


def test_buckets_belong_to_their_account(s3, bob, bucket):
    s3.put_object(Bucket=bucket, Key="secret.txt", Body=b"alice's")
    assert bucket not in [b["Name"] for b in bob.list_buckets()["Buckets"]]
    for call in (
        lambda: bob.get_object(Bucket=bucket, Key="secret.txt"),
        lambda: bob.put_object(Bucket=bucket, Key="x", Body=b"bob's"),
        lambda: bob.list_objects_v2(Bucket=bucket),
        lambda: bob.delete_object(Bucket=bucket, Key="secret.txt"),
        lambda: bob.delete_bucket(Bucket=bucket),
        lambda: bob.copy_object(
            Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "secret.txt"}
        ),
    ):
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_of(excinfo) == (403, "AccessDenied")
    with pytest.raises(ClientError) as excinfo:
        bob.head_bucket(Bucket=bucket)
    assert error_of(excinfo)[0] == 403
    with pytest.raises(ClientError) as excinfo:
        bob.create_bucket(Bucket=bucket)
    assert error_of(excinfo) == (409, "BucketAlreadyExists")
    # Bob cannot copy Alice's object into a bucket of his own either.
    bob.create_bucket(Bucket=f"{bucket}-bob")
    with pytest.raises(ClientError) as excinfo:
        bob.copy_object(
            Bucket=f"{bucket}-bob", Key="stolen", CopySource={"Bucket": bucket, "Key": "secret.txt"}
        )
    assert error_of(excinfo) == (403, "AccessDenied")
    assert s3.get_object(Bucket=bucket, Key="secret.txt")["Body"].read() == b"alice's"


# -- objects ---------------------------------------------------------------------------


def test_put_get_head_with_metadata(s3, bucket):
    body = b"hello, resilin\n" * 1000
    put = s3.put_object(
        Bucket=bucket,
        Key="dir/hello.txt",
        Body=body,
        ContentType="text/plain",
        Metadata={"origin": "test", "Mixed-Case": "Value"},
        CacheControl="no-cache",
        ContentDisposition='attachment; filename="hello.txt"',
    )
    etag = f'"{hashlib.md5(body).hexdigest()}"'
    assert put["ETag"] == etag
    got = s3.get_object(Bucket=bucket, Key="dir/hello.txt")
    assert got["Body"].read() == body
    assert got["ETag"] == etag
    assert got["ContentType"] == "text/plain"
    assert got["ContentLength"] == len(body)
    assert got["Metadata"] == {"origin": "test", "mixed-case": "Value"}
    assert got["CacheControl"] == "no-cache"
    assert got["ContentDisposition"] == 'attachment; filename="hello.txt"'
    assert abs(got["LastModified"] - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    headers = got["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amz-request-id"]
    assert headers["last-modified"].endswith(" GMT")
    head = s3.head_object(Bucket=bucket, Key="dir/hello.txt")
    assert head["ContentLength"] == len(body) and head["ETag"] == etag
    assert head["Metadata"]["origin"] == "test"


def test_default_content_type_and_empty_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["Body"].read() == b""
    assert got["ContentType"] == "binary/octet-stream"
    assert got["ETag"] == f'"{hashlib.md5(b"").hexdigest()}"'


def test_missing_object(s3, bucket):
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="nope")
    assert error_of(excinfo) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="nope")
    assert error_of(excinfo)[0] == 404


def test_overwrite_replaces_data_and_metadata(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", Metadata={"v": "1"}, ContentType="text/a")
    s3.put_object(Bucket=bucket, Key="k", Body=b"second!", Metadata={"w": "2"})
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"second!"
    assert got["Metadata"] == {"w": "2"}
    assert got["ContentType"] == "binary/octet-stream"


def test_range_requests(s3, bucket):
    body = bytes(range(256)) * 4
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    for header, expected, content_range in [
        ("bytes=0-9", body[:10], "bytes 0-9/1024"),
        ("bytes=1000-", body[1000:], "bytes 1000-1023/1024"),
        ("bytes=-24", body[-24:], "bytes 1000-1023/1024"),
        ("bytes=1020-5000", body[1020:], "bytes 1020-1023/1024"),
        ("bytes=-5000", body, "bytes 0-1023/1024"),
    ]:
        got = s3.get_object(Bucket=bucket, Key="r", Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"] == content_range
        assert got["Body"].read() == expected
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=1024-")
    assert error_of(excinfo) == (416, "InvalidRange")
    # An unparseable range is ignored, as S3 does: the whole object comes back.
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=abc")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200 and got["Body"].read() == body


def test_conditional_get(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"conditional")["ETag"]
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"conditional"
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0123"')
    assert error_of(excinfo) == (412, "PreconditionFailed")
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert error_of(excinfo)[0] == 304
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=later)
    assert error_of(excinfo)[0] == 304
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=earlier)["Body"].read() == b"conditional"
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=earlier)
    assert error_of(excinfo) == (412, "PreconditionFailed")
    # A matching If-Match wins over a failing If-Unmodified-Since (S3's rule).
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag, IfUnmodifiedSince=earlier)["ETag"] == etag
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="c", IfMatch='"nope"')
    assert error_of(excinfo)[0] == 412


def test_conditional_put(s3, bucket):
    s3.put_object(Bucket=bucket, Key="once", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="once", Body=b"2", IfNoneMatch="*")
    assert error_of(excinfo) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"1"
    etag = s3.head_object(Bucket=bucket, Key="once")["ETag"]
    # If-None-Match with ETags: only when the object has none of them; If-Match: * when it exists.
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="once", Body=b"2", IfNoneMatch=etag)
    assert error_of(excinfo) == (412, "PreconditionFailed")
    s3.put_object(Bucket=bucket, Key="once", Body=b"2", IfNoneMatch='"another"')
    s3.put_object(Bucket=bucket, Key="once", Body=b"3", IfMatch="*")
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"3"
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="never", Body=b"x", IfMatch="*")
    assert error_of(excinfo) == (404, "NoSuchKey")


def test_delete_object_and_delete_objects(s3, bucket):
    for key in ("a", "b", "c/d", "dir/"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert s3.delete_object(Bucket=bucket, Key="a")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.delete_object(Bucket=bucket, Key="never-was")["ResponseMetadata"]["HTTPStatusCode"] == 204
    verbose = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "b"}, {"Key": "missing"}]})
    assert sorted(d["Key"] for d in verbose["Deleted"]) == ["b", "missing"]
    quiet = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "c/d"}, {"Key": "dir/"}], "Quiet": True}
    )
    assert "Deleted" not in quiet and "Errors" not in quiet
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_copy_object(s3, bucket):
    etag = s3.put_object(
        Bucket=bucket, Key="src", Body=b"copy me", ContentType="text/x", Metadata={"a": "1"}
    )["ETag"]
    copied = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert copied["CopyObjectResult"]["ETag"] == etag
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert (got["Body"].read(), got["ContentType"], got["Metadata"]) == (b"copy me", "text/x", {"a": "1"})

    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource=f"{bucket}/src",
        MetadataDirective="REPLACE",
        ContentType="text/y",
        Metadata={"b": "2"},
    )
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert (got["ContentType"], got["Metadata"]) == ("text/y", {"b": "2"})

    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert error_of(excinfo) == (400, "InvalidRequest")
    # Replacing metadata in place is allowed.
    s3.copy_object(
        Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"}, MetadataDirective="REPLACE",
        Metadata={"c": "3"},
    )  # fmt: skip
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"c": "3"}

    # S3A copies with x-amz-copy-source-if-match to detect concurrent changes.
    s3.copy_object(
        Bucket=bucket, Key="guarded", CopySource={"Bucket": bucket, "Key": "src"}, CopySourceIfMatch=etag
    )
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(
            Bucket=bucket, Key="guarded", CopySource={"Bucket": bucket, "Key": "src"}, CopySourceIfMatch='"0"'
        )
    assert error_of(excinfo) == (412, "PreconditionFailed")
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "no-such"})
    assert error_of(excinfo) == (404, "NoSuchKey")

    other = f"{bucket}-other"
    s3.create_bucket(Bucket=other)
    s3.copy_object(Bucket=other, Key="weird key+ü", CopySource={"Bucket": bucket, "Key": "src"})
    s3.copy_object(Bucket=other, Key="back", CopySource={"Bucket": other, "Key": "weird key+ü"})
    assert s3.get_object(Bucket=other, Key="back")["Body"].read() == b"copy me"


# -- listings --------------------------------------------------------------------------


def test_list_objects_v2_delimiter_and_pagination(s3, bucket):
    keys = [f"logs/2024/{i:03d}.log" for i in range(25)] + ["logs/readme", "data/a", "data/b/c", "top"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")

    root = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in root["CommonPrefixes"]] == ["data/", "logs/"]
    assert [c["Key"] for c in root["Contents"]] == ["top"]
    assert root["KeyCount"] == 3

    logs = s3.list_objects_v2(Bucket=bucket, Prefix="logs/", Delimiter="/")
    assert [p["Prefix"] for p in logs["CommonPrefixes"]] == ["logs/2024/"]
    assert [c["Key"] for c in logs["Contents"]] == ["logs/readme"]

    seen, token, pages = [], None, 0
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=bucket, MaxKeys=7, **kwargs)
        pages += 1
        seen += [c["Key"] for c in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == sorted(keys) and pages == 5

    paginator = s3.get_paginator("list_objects_v2")
    prefixes = []
    for page in paginator.paginate(Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 1}):
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        prefixes += [c["Key"] for c in page.get("Contents", [])]
    assert prefixes == ["data/", "logs/", "top"]

    after = s3.list_objects_v2(Bucket=bucket, StartAfter="logs/2024/020.log", Prefix="logs/")
    assert [c["Key"] for c in after["Contents"]][:2] == ["logs/2024/021.log", "logs/2024/022.log"]

    # S3A's directory probe: is there anything under "data/"?
    probe = s3.list_objects_v2(Bucket=bucket, Prefix="data/", Delimiter="/", MaxKeys=2)
    assert probe["KeyCount"] == 2 and not probe["IsTruncated"]
    probe = s3.list_objects_v2(Bucket=bucket, Prefix="data/", MaxKeys=1)
    assert probe["KeyCount"] == 1 and probe["IsTruncated"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix="nothing/", MaxKeys=1)["KeyCount"] == 0


def test_list_order_is_utf8_byte_order_and_url_encoding(s3, bucket):
    keys = ["a b", "a+b", "a/b", "aé", "a\U0001f600", "a\uffff", "z", "A", "a%2F"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    listed = [c["Key"] for c in s3.list_objects_v2(Bucket=bucket)["Contents"]]  # boto3 asks for url encoding
    assert listed == sorted(keys, key=lambda k: k.encode("utf-8"))
    raw = requests.get(
        s3.generate_presigned_url("list_objects_v2", Params={"Bucket": bucket, "EncodingType": "url"})
    ).text
    assert (
        "<Key>a%20b</Key>" in raw and "<Key>a%2Bb</Key>" in raw and "<EncodingType>url</EncodingType>" in raw
    )
    for key in keys:
        assert s3.get_object(Bucket=bucket, Key=key)["ContentLength"] == 0


def test_list_objects_v1_with_marker(s3, bucket):
    keys = [f"k{i:02d}" for i in range(12)] + ["p/1", "p/2", "q/1"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"1")
    page = s3.list_objects(Bucket=bucket, MaxKeys=5)
    # Prefixes and keys come back as sent, whatever characters they hold (boto3 asks for url encoding).
    assert s3.list_objects(Bucket=bucket, Prefix="\n")["Prefix"] == "\n"
    assert s3.list_objects_v2(Bucket=bucket, Prefix="\n k")["Prefix"] == "\n k"
    assert [c["Key"] for c in page["Contents"]] == keys[:5] and page["IsTruncated"]
    page = s3.list_objects(Bucket=bucket, Marker="k04", MaxKeys=5)
    assert [c["Key"] for c in page["Contents"]] == keys[5:10]
    assert page["Contents"][0]["Owner"]["DisplayName"] == ALICE.account_id
    page = s3.list_objects(Bucket=bucket, Delimiter="/", Marker="k11", MaxKeys=1)
    assert page["CommonPrefixes"] == [{"Prefix": "p/"}] and page["NextMarker"] == "p/"
    page = s3.list_objects(Bucket=bucket, Delimiter="/", Marker=page["NextMarker"])
    assert page["CommonPrefixes"] == [{"Prefix": "q/"}] and not page["IsTruncated"]
    everything = [c["Key"] for p in s3.get_paginator("list_objects").paginate(Bucket=bucket, PaginationConfig={"PageSize": 4}) for c in p["Contents"]]  # fmt: skip
    assert everything == sorted(keys)


def test_directory_markers_as_s3a_uses_them(s3, bucket):
    s3.put_object(Bucket=bucket, Key="warehouse/table/", Body=b"")
    head = s3.head_object(Bucket=bucket, Key="warehouse/table/")
    assert head["ContentLength"] == 0
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="warehouse/table")
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="warehouse/table/", Delimiter="/", MaxKeys=2)
    assert [c["Key"] for c in listing["Contents"]] == ["warehouse/table/"]
    s3.put_object(Bucket=bucket, Key="warehouse/table/part-0000", Body=b"row")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "warehouse/table/"}]})
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="warehouse/", Delimiter="/")
    assert listing["CommonPrefixes"] == [{"Prefix": "warehouse/table/"}]


def test_long_and_unusual_keys(s3, bucket):
    long_key = "deep/" + "x" * 1000 + "/end"
    assert len(long_key.encode()) <= 1024
    unicode_key = "données/" + "é" * 400  # 800+ bytes, several path pieces on disk
    for key in (long_key, unicode_key, "a//b", "./dot", "trailing/."):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    listed = {c["Key"] for c in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert {long_key, unicode_key, "a//b", "./dot", "trailing/."} <= listed
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"")
    assert error_of(excinfo) == (400, "KeyTooLongError")
    s3.delete_object(Bucket=bucket, Key=long_key)
    assert long_key not in {c["Key"] for c in s3.list_objects_v2(Bucket=bucket)["Contents"]}


# -- multipart -----------------------------------------------------------------------


def test_upload_file_multipart_and_download(s3, bucket, tmp_path):
    source = tmp_path / "big.bin"
    data = hashlib.sha256(b"seed").digest() * (13 * MiB // 32)
    source.write_bytes(data)
    config = boto3.s3.transfer.TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.upload_file(str(source), bucket, "big.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    part_md5s = [hashlib.md5(data[i : i + 5 * MiB]).digest() for i in range(0, len(data), 5 * MiB)]
    assert head["ETag"] == f'"{hashlib.md5(b"".join(part_md5s)).hexdigest()}-3"'
    assert head["ContentLength"] == len(data)
    target = tmp_path / "back.bin"
    s3.download_file(bucket, "big.bin", str(target), Config=config)
    assert target.read_bytes() == data
    part = s3.get_object(Bucket=bucket, Key="big.bin", PartNumber=2)
    assert part["Body"].read() == data[5 * MiB : 10 * MiB]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_multipart_api(s3, bucket):
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ContentType="text/csv", Metadata={"m": "1"})
    upload_id = upload["UploadId"]
    listed = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in listed] == [("mp", upload_id)]
    first = b"a" * (5 * MiB)
    e1 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1, Body=first)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=2, Body=b"tail")["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MiB), (2, 4)]

    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": '"bad"'}]},
        )  # fmt: skip
    assert error_of(excinfo) == (400, "InvalidPart")
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]},
        )  # fmt: skip
    assert error_of(excinfo) == (400, "InvalidPartOrder")
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )  # fmt: skip
    expected = hashlib.md5(bytes.fromhex(e1.strip('"')) + bytes.fromhex(e2.strip('"'))).hexdigest()
    assert done["ETag"] == f'"{expected}-2"'
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["Body"].read() == first + b"tail"
    assert (got["ContentType"], got["Metadata"]) == ("text/csv", {"m": "1"})
    with pytest.raises(ClientError) as excinfo:
        s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)
    assert error_of(excinfo) == (404, "NoSuchUpload")


def _crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _two_part_upload(s3, bucket: str, key: str, kind: str) -> tuple[str, list[dict], bytes]:
    upload_id = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32", ChecksumType=kind
    )["UploadId"]
    bodies = [os.urandom(5 * MiB), os.urandom(1000)]
    parts = []
    for number, body in enumerate(bodies, 1):
        sent = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm="CRC32",
        )
        parts.append({"PartNumber": number, "ETag": sent["ETag"], "ChecksumCRC32": sent["ChecksumCRC32"]})
    return upload_id, parts, b"".join(bodies)


def test_complete_multipart_checks_the_objects_checksum_not_the_bodys(s3, bucket):
    # FULL_OBJECT: the header is the CRC32 of the whole object.
    upload_id, parts, data = _two_part_upload(s3, bucket, "full", "FULL_OBJECT")
    wrong = _crc32(data + b"x")
    for bad, code in (
        ({"ChecksumCRC32": wrong}, "BadDigest"),
        ({"ChecksumSHA256": _crc32(b"")}, "InvalidRequest"),
    ):
        with pytest.raises(ClientError) as excinfo:
            s3.complete_multipart_upload(
                Bucket=bucket, Key="full", UploadId=upload_id, MultipartUpload={"Parts": parts},
                ChecksumType="FULL_OBJECT", **bad,
            )  # fmt: skip
        assert error_of(excinfo)[1] == code, bad
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="full", UploadId=upload_id, MultipartUpload={"Parts": parts},
        ChecksumCRC32=_crc32(data), ChecksumType="FULL_OBJECT",
    )  # fmt: skip
    assert (done["ChecksumCRC32"], done["ChecksumType"]) == (_crc32(data), "FULL_OBJECT")
    assert s3.get_object(Bucket=bucket, Key="full")["Body"].read() == data
    # A part read on its own comes with the part's checksum.
    for number, part in enumerate(parts, 1):
        got = s3.get_object(Bucket=bucket, Key="full", PartNumber=number)
        assert (got["ChecksumCRC32"], got["ChecksumType"]) == (part["ChecksumCRC32"], "FULL_OBJECT")
        assert _crc32(got["Body"].read()) == part["ChecksumCRC32"]

    # COMPOSITE: the checksum of the parts' checksums, with or without its "-2".
    upload_id, parts, data = _two_part_upload(s3, bucket, "composite", "COMPOSITE")
    composite = _crc32(b"".join(base64.b64decode(p["ChecksumCRC32"]) for p in parts))
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="composite", UploadId=upload_id, MultipartUpload={"Parts": parts},
            ChecksumCRC32=_crc32(data),
        )  # fmt: skip
    assert error_of(excinfo) == (400, "BadDigest")
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="composite", UploadId=upload_id, MultipartUpload={"Parts": parts},
        ChecksumCRC32=f"{composite}-2",
    )  # fmt: skip
    assert (done["ChecksumCRC32"], done["ChecksumType"]) == (f"{composite}-2", "COMPOSITE")


def test_get_object_attributes(s3, bucket):
    upload_id, parts, data = _two_part_upload(s3, bucket, "parts", "FULL_OBJECT")
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="parts", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    every = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]
    got = s3.get_object_attributes(Bucket=bucket, Key="parts", ObjectAttributes=every)
    assert got["ETag"] == done["ETag"].strip('"')
    assert got["Checksum"] == {"ChecksumCRC32": _crc32(data), "ChecksumType": "FULL_OBJECT"}
    assert (got["StorageClass"], got["ObjectSize"]) == ("STANDARD", len(data))
    assert got["ObjectParts"]["TotalPartsCount"] == 2
    assert [(p["PartNumber"], p["Size"]) for p in got["ObjectParts"]["Parts"]] == [(1, 5 * MiB), (2, 1000)]
    page = s3.get_object_attributes(
        Bucket=bucket, Key="parts", ObjectAttributes=["ObjectParts"], MaxParts=1, PartNumberMarker=0
    )["ObjectParts"]
    assert (page["IsTruncated"], page["NextPartNumberMarker"], len(page["Parts"])) == (True, 1, 1)
    assert got["LastModified"] == s3.head_object(Bucket=bucket, Key="parts")["LastModified"]

    s3.put_object(Bucket=bucket, Key="plain", Body=b"12345")
    plain = s3.get_object_attributes(
        Bucket=bucket, Key="plain", ObjectAttributes=["ObjectSize", "ObjectParts"]
    )
    assert plain["ObjectSize"] == 5 and "ObjectParts" not in plain
    with pytest.raises(ClientError) as excinfo:
        s3.get_object_attributes(Bucket=bucket, Key="nothing", ObjectAttributes=["ETag"])
    assert error_of(excinfo) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as excinfo:  # botocore leaves enum values to the service
        s3.get_object_attributes(Bucket=bucket, Key="plain", ObjectAttributes=["Colour"])
    assert error_of(excinfo) == (400, "InvalidArgument")


def test_a_repeated_completion_gets_the_same_answer(s3, bucket):
    upload_id, parts, data = _two_part_upload(s3, bucket, "again", "FULL_OBJECT")
    request = {"Bucket": bucket, "Key": "again", "UploadId": upload_id, "MultipartUpload": {"Parts": parts}}
    first = s3.complete_multipart_upload(**request)
    again = s3.complete_multipart_upload(**request)  # as a client retries after a lost response
    for field in ("ETag", "Bucket", "Key", "ChecksumCRC32", "ChecksumType"):
        assert again[field] == first[field], field
    assert s3.get_object(Bucket=bucket, Key="again")["Body"].read() == data
    # Still no such upload for anything else, nor under another key.
    with pytest.raises(ClientError) as excinfo:
        s3.list_parts(Bucket=bucket, Key="again", UploadId=upload_id)
    assert error_of(excinfo) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(**(request | {"Key": "other"}))
    assert error_of(excinfo) == (404, "NoSuchUpload")


def test_multipart_small_parts_and_abort(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="small")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="small", UploadId=upload_id, PartNumber=1, Body=b"1")["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="small", UploadId=upload_id, PartNumber=2, Body=b"2")["ETag"]
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="small", UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
        )  # fmt: skip
    assert error_of(excinfo) == (400, "EntityTooSmall")
    s3.abort_multipart_upload(Bucket=bucket, Key="small", UploadId=upload_id)
    with pytest.raises(ClientError) as excinfo:
        s3.upload_part(Bucket=bucket, Key="small", UploadId=upload_id, PartNumber=3, Body=b"3")
    assert error_of(excinfo) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as excinfo:
        s3.abort_multipart_upload(Bucket=bucket, Key="small", UploadId="../../etc")
    assert error_of(excinfo) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="small")
    assert error_of(excinfo)[0] == 404


def test_upload_part_copy(s3, bucket):
    source = bytes(range(256)) * (24 * 1024)  # 6 MiB
    s3.put_object(Bucket=bucket, Key="source", Body=source)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
    p1 = s3.upload_part_copy(
        Bucket=bucket, Key="assembled", UploadId=upload_id, PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "source"}, CopySourceRange=f"bytes=0-{5 * MiB - 1}",
    )["CopyPartResult"]["ETag"]  # fmt: skip
    p2 = s3.upload_part_copy(
        Bucket=bucket, Key="assembled", UploadId=upload_id, PartNumber=2,
        CopySource={"Bucket": bucket, "Key": "source"}, CopySourceRange=f"bytes={5 * MiB}-{len(source) - 1}",
    )["CopyPartResult"]["ETag"]  # fmt: skip
    s3.complete_multipart_upload(
        Bucket=bucket, Key="assembled", UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1}, {"PartNumber": 2, "ETag": p2}]},
    )  # fmt: skip
    assert s3.get_object(Bucket=bucket, Key="assembled")["Body"].read() == source


# -- checksums and presigned URLs ----------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA1", "SHA256"])
def test_checksum_headers(s3, bucket, algorithm):
    body = b"checksummed body " * 100
    put = s3.put_object(Bucket=bucket, Key=f"sum-{algorithm}", Body=body, ChecksumAlgorithm=algorithm)
    assert put[f"Checksum{algorithm}"]
    got = s3.get_object(Bucket=bucket, Key=f"sum-{algorithm}", ChecksumMode="ENABLED")
    assert got[f"Checksum{algorithm}"] == put[f"Checksum{algorithm}"]
    assert got["Body"].read() == body  # botocore validated the checksum while reading


@pytest.mark.parametrize(
    "algorithm, check_value",  # the published check values: the CRC of b"123456789"
    [("CRC32C", 0xE3069283), ("CRC64NVME", 0xAE8B14860A799888)],
)
def test_crc_checksums_botocore_needs_awscrt_for(s3, bucket, algorithm, check_value):
    width = 8 if algorithm == "CRC64NVME" else 4
    good = base64.b64encode(check_value.to_bytes(width, "big")).decode()
    put = s3.put_object(Bucket=bucket, Key=algorithm, Body=b"123456789", **{f"Checksum{algorithm}": good})
    assert put[f"Checksum{algorithm}"] == good
    head = s3.head_object(Bucket=bucket, Key=algorithm, ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == good
    bad = base64.b64encode((check_value ^ 1).to_bytes(width, "big")).decode()
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key=algorithm, Body=b"123456789", **{f"Checksum{algorithm}": bad})
    assert error_of(excinfo) == (400, "BadDigest")


def test_wrong_checksum_is_refused(s3, bucket):
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="bad-sum", Body=b"data", ChecksumCRC32="AAAAAA==")
    assert error_of(excinfo) == (400, "BadDigest")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="bad-sum")


def test_boto3_aws_chunked_trailer_checksum(s3, bucket, monkeypatch):
    """botocore sends its default CRC32 as an aws-chunked trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER)
    over HTTPS only; make it believe the endpoint is HTTPS so it does so over our plain HTTP."""
    monkeypatch.setattr(botocore.httpchecksum, "urlparse", lambda url: types.SimpleNamespace(scheme="https"))
    sent = {}
    s3.meta.events.register("before-send.s3.PutObject", lambda request, **_: sent.update(request.headers))
    body = b"trailer checksum " * 5000
    put = s3.put_object(Bucket=bucket, Key="trailer", Body=io.BytesIO(body), ContentEncoding="deflate, gzip")
    assert sent["X-Amz-Content-SHA256"] == b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert sent["X-Amz-Trailer"] == b"x-amz-checksum-crc32"
    assert sent["Transfer-Encoding"] == b"chunked" and "Content-Length" not in sent
    got = s3.get_object(Bucket=bucket, Key="trailer", ChecksumMode="ENABLED")
    assert got["Body"].read() == body
    assert got["ChecksumCRC32"] == put["ChecksumCRC32"]
    assert got["ContentEncoding"] == "deflate, gzip"  # aws-chunked is not part of the stored encoding


def test_presigned_urls(s3, bucket):
    s3.put_object(Bucket=bucket, Key="shared.txt", Body=b"shared")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared.txt"}, ExpiresIn=60
    )
    response = requests.get(url)
    assert response.status_code == 200 and response.content == b"shared"
    assert response.headers["x-amz-request-id"]
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared.txt", "ResponseContentType": "text/csv"}
    )
    assert requests.get(url).headers["Content-Type"] == "text/csv"
    assert requests.get(url + "x").status_code == 403  # tampered signature
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "uploaded"})
    assert requests.put(put_url, data=b"via presigned PUT").status_code == 200
    assert s3.get_object(Bucket=bucket, Key="uploaded")["Body"].read() == b"via presigned PUT"


def test_data_survives_a_restart(tmp_path):
    with StorageProcess(tmp_path, [ALICE]) as first:
        client = boto3_client(first.endpoint, ALICE)
        client.create_bucket(Bucket="durable")
        client.put_object(Bucket="durable", Key="a/b", Body=b"kept", Metadata={"k": "v"})
    with StorageProcess(tmp_path, [ALICE]) as second:
        client = boto3_client(second.endpoint, ALICE)
        got = client.get_object(Bucket="durable", Key="a/b")
        assert (got["Body"].read(), got["Metadata"]) == (b"kept", {"k": "v"})
        assert [c["Key"] for c in client.list_objects_v2(Bucket="durable")["Contents"]] == ["a/b"]
        assert not list((tmp_path / "tmp").iterdir())


def test_storage_class_and_expected_owner(s3, bucket):
    s3.put_object(Bucket=bucket, Key="cold", Body=b"brr", StorageClass="STANDARD_IA")
    assert s3.head_object(Bucket=bucket, Key="cold")["StorageClass"] == "STANDARD_IA"
    assert s3.list_objects_v2(Bucket=bucket)["Contents"][0]["StorageClass"] == "STANDARD_IA"
    s3.copy_object(Bucket=bucket, Key="warm", CopySource={"Bucket": bucket, "Key": "cold"})
    assert "StorageClass" not in s3.head_object(Bucket=bucket, Key="warm")  # STANDARD is not sent
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="x", Body=b"", StorageClass="NO_SUCH_CLASS")
    assert error_of(excinfo) == (400, "InvalidStorageClass")
    s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=ALICE.account_id)
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="cold", ExpectedBucketOwner=BOB.account_id)
    assert error_of(excinfo) == (403, "AccessDenied")


def test_big_copies_do_not_stall_other_requests(s3, bucket, tmp_path):
    """Copying and hashing run in worker threads: small requests keep being answered meanwhile."""
    import threading

    source = tmp_path / "large.bin"
    source.write_bytes(os.urandom(48 * MiB))
    s3.upload_file(
        str(source), bucket, "large", Config=boto3.s3.transfer.TransferConfig(multipart_threshold=1024 * MiB)
    )
    done = threading.Event()
    copier = boto3_client(s3.meta.endpoint_url, ALICE)

    def copy() -> None:
        try:
            for i in range(2):
                copier.copy_object(
                    Bucket=bucket, Key=f"copy-{i}", CopySource={"Bucket": bucket, "Key": "large"}
                )
        finally:
            done.set()

    thread = threading.Thread(target=copy)
    thread.start()
    latencies = []
    while not done.is_set():
        started = time.monotonic()
        s3.head_object(Bucket=bucket, Key="large")
        latencies.append(time.monotonic() - started)
    thread.join()
    assert s3.head_object(Bucket=bucket, Key="copy-1")["ContentLength"] == 48 * MiB
    assert len(latencies) >= 3 and max(latencies) < 2.0, latencies


def test_server_side_encryption_requests(s3, bucket):
    s3.put_object(Bucket=bucket, Key="sse-s3", Body=b"x", ServerSideEncryption="AES256")
    assert s3.get_object(Bucket=bucket, Key="sse-s3")["Body"].read() == b"x"
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="kms", Body=b"x", ServerSideEncryption="aws:kms")
    assert error_of(excinfo) == (501, "NotImplemented")
    with pytest.raises(ClientError) as excinfo:
        s3.create_multipart_upload(Bucket=bucket, Key="kms", ServerSideEncryption="aws:kms")
    assert error_of(excinfo) == (501, "NotImplemented")


def test_listings_follow_overwrites_and_deletes(s3, bucket):
    """Listing entries are cached in memory: every write and delete must show in the next listing."""
    s3.put_object(Bucket=bucket, Key="a&b<c>'\"", Body=b"abc")
    s3.put_object(Bucket=bucket, Key="cached", Body=b"abc")
    first = {o["Key"]: o for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert first["cached"]["Size"] == 3 and first["a&b<c>'\""]["Size"] == 3
    etag = s3.put_object(Bucket=bucket, Key="cached", Body=b"abcde", ChecksumAlgorithm="SHA256")["ETag"]
    second = {o["Key"]: o for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert (second["cached"]["Size"], second["cached"]["ETag"]) == (5, etag)
    assert second["cached"]["ChecksumAlgorithm"] == ["SHA256"]
    s3.copy_object(Bucket=bucket, Key="cached", CopySource={"Bucket": bucket, "Key": "a&b<c>'\""})
    third = {o["Key"]: o for o in s3.list_objects(Bucket=bucket)["Contents"]}
    assert third["cached"]["Size"] == 3 and "Owner" in third["cached"]
    s3.delete_object(Bucket=bucket, Key="cached")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["a&b<c>'\""]
