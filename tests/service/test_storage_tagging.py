"""Object tags: PutObjectTagging, GetObjectTagging, DeleteObjectTagging, ``x-amz-tagging`` on the
writes that make objects, ``x-amz-tagging-count`` on reads, and lifecycle rules filtered by tags —
on the real storage service, through boto3."""

from __future__ import annotations

import itertools
import time

import pytest
from botocore.exceptions import ClientError

from resilin.storage.testing import ALICE, BOB, StorageProcess, boto3_client

_names = itertools.count()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with StorageProcess(
        tmp_path_factory.mktemp("s3"), [ALICE, BOB], extra_args=["--lifecycle-interval", "0.5"]
    ) as running:
        yield running


@pytest.fixture
def s3(service):
    return boto3_client(service.endpoint, ALICE)


@pytest.fixture
def bucket(s3):
    name = f"tags-{next(_names)}-{int(time.time())}"
    s3.create_bucket(Bucket=name)
    return name


def error_of(call, **kwargs) -> tuple[int, str]:
    with pytest.raises(ClientError) as excinfo:
        call(**kwargs)
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def tag_set(tags: dict[str, str]) -> dict:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}


def tags_of(s3, bucket: str, key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def count_of(response: dict) -> str | None:
    return response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-tagging-count")


def test_tags_are_set_read_replaced_and_removed_without_touching_the_data(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="report.csv", Body=b"a,b\n1,2\n", Metadata={"team": "data"})
    assert s3.get_object_tagging(Bucket=bucket, Key="report.csv")["TagSet"] == []
    assert count_of(s3.head_object(Bucket=bucket, Key="report.csv")) is None
    s3.put_object_tagging(Bucket=bucket, Key="report.csv", Tagging=tag_set({"stage": "raw", "owner": "ana"}))
    assert tags_of(s3, bucket, "report.csv") == {"owner": "ana", "stage": "raw"}
    got = s3.get_object(Bucket=bucket, Key="report.csv")
    assert (
        got["Body"].read() == b"a,b\n1,2\n"
        and got["ETag"] == put["ETag"]
        and got["Metadata"] == {"team": "data"}
    )
    assert count_of(got) == "2" and count_of(s3.head_object(Bucket=bucket, Key="report.csv")) == "2"
    s3.put_object_tagging(Bucket=bucket, Key="report.csv", Tagging=tag_set({"stage": "clean"}))  # replaces
    assert tags_of(s3, bucket, "report.csv") == {"stage": "clean"}
    s3.delete_object_tagging(Bucket=bucket, Key="report.csv")
    assert tags_of(s3, bucket, "report.csv") == {}
    assert count_of(s3.head_object(Bucket=bucket, Key="report.csv")) is None


def test_writes_take_their_tags_from_the_tagging_header(s3, bucket):
    s3.put_object(Bucket=bucket, Key="put", Body=b"x", Tagging="k1=v1&empty=&sp=a%20b&bare")
    assert tags_of(s3, bucket, "put") == {"k1": "v1", "empty": "", "sp": "a b", "bare": ""}
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mpu", Tagging="part=yes")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mpu", UploadId=upload, PartNumber=1, Body=b"y")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})  # fmt: skip
    assert tags_of(s3, bucket, "mpu") == {"part": "yes"}
    # CopyObject keeps the source's tags, or replaces them when asked.
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "put"})
    assert tags_of(s3, bucket, "copied") == tags_of(s3, bucket, "put")
    s3.copy_object(Bucket=bucket, Key="retagged", CopySource={"Bucket": bucket, "Key": "put"},
                   TaggingDirective="REPLACE", Tagging="new=1")  # fmt: skip
    assert tags_of(s3, bucket, "retagged") == {"new": "1"}
    s3.copy_object(Bucket=bucket, Key="untagged", CopySource={"Bucket": bucket, "Key": "put"},
                   TaggingDirective="REPLACE")  # fmt: skip
    assert tags_of(s3, bucket, "untagged") == {}


def test_bad_tags_are_refused_and_change_nothing(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="keep=me")
    eleven = {f"k{i}": "v" for i in range(11)}
    refused = [
        (s3.put_object_tagging, {"Tagging": tag_set(eleven)}, (400, "InvalidTag")),
        (s3.put_object_tagging, {"Tagging": tag_set({"k" * 129: "v"})}, (400, "InvalidTag")),
        (s3.put_object_tagging, {"Tagging": tag_set({"k": "v" * 257})}, (400, "InvalidTag")),
        (s3.put_object_tagging, {"Tagging": tag_set({"aws:system": "v"})}, (400, "InvalidTag")),
        (s3.put_object, {"Body": b"y", "Tagging": "&".join(f"k{i}=v" for i in range(11))}, (400, "InvalidTag")),
        (s3.put_object, {"Body": b"y", "Tagging": "a=1&a=2"}, (400, "InvalidTag")),
        (s3.put_object, {"Body": b"y", "Tagging": "bad=%ZZ"}, (400, "InvalidArgument")),
        (s3.copy_object, {"CopySource": {"Bucket": bucket, "Key": "k"}, "TaggingDirective": "MERGE"},
         (400, "InvalidArgument")),
    ]  # fmt: skip
    for call, extra, expected in refused:
        assert error_of(call, Bucket=bucket, Key="k", **extra) == expected, extra
    assert tags_of(s3, bucket, "k") == {"keep": "me"}
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
    assert error_of(s3.put_object_tagging, Bucket=bucket, Key="missing", Tagging=tag_set({"a": "b"})) == (
        404, "NoSuchKey")  # fmt: skip
    assert error_of(s3.get_object_tagging, Bucket=bucket, Key="missing") == (404, "NoSuchKey")


def test_another_account_may_not_read_or_change_tags(service, s3, bucket):
    s3.put_object(Bucket=bucket, Key="private", Body=b"x", Tagging="secret=yes")
    bob = boto3_client(service.endpoint, BOB)
    assert error_of(bob.get_object_tagging, Bucket=bucket, Key="private")[0] == 403
    assert (
        error_of(bob.put_object_tagging, Bucket=bucket, Key="private", Tagging=tag_set({"a": "b"}))[0] == 403
    )
    assert tags_of(s3, bucket, "private") == {"secret": "yes"}


def test_lifecycle_rules_filtered_by_tags_expire_only_the_tagged_objects(s3, bucket):
    for key, tagging in (("logs/a", "expire=yes&team=x"), ("logs/b", "expire=no"), ("logs/c", ""),
                         ("other/d", "expire=yes&team=x")):  # fmt: skip
        s3.put_object(Bucket=bucket, Key=key, Body=b"x", Tagging=tagging)
    old = "2020-01-01T00:00:00Z"
    rules = [
        {"ID": "tagged logs", "Status": "Enabled", "Expiration": {"Date": old},
         "Filter": {"And": {"Prefix": "logs/", "Tags": [{"Key": "expire", "Value": "yes"},
                                                         {"Key": "team", "Value": "x"}]}}},
        {"ID": "one tag", "Status": "Enabled", "Expiration": {"Days": 3},
         "Filter": {"Tag": {"Key": "expire", "Value": "later"}}},
    ]  # fmt: skip
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    stored = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert stored[0]["Filter"]["And"]["Tags"] == [
        {"Key": "expire", "Value": "yes"},
        {"Key": "team", "Value": "x"},
    ]
    assert stored[1]["Filter"] == {"Tag": {"Key": "expire", "Value": "later"}}
    deadline = time.time() + 15
    while time.time() < deadline:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        if "logs/a" not in keys:
            break
        time.sleep(0.2)
    assert keys == ["logs/b", "logs/c", "other/d"]  # only the object under the prefix with both tags
    with_abort = {"ID": "x", "Status": "Enabled", "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                  "Filter": {"Tag": {"Key": "a", "Value": "b"}}}  # fmt: skip
    assert error_of(s3.put_bucket_lifecycle_configuration, Bucket=bucket,
                    LifecycleConfiguration={"Rules": [with_abort]}) == (400, "InvalidRequest")  # fmt: skip
