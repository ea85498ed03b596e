"""Bucket versioning on the storage service, driven by boto3: versions, delete markers, the null
version of a suspended bucket, listings and their markers, copies and multipart uploads of
versions, and a bucket emptied the way clients do it."""

from __future__ import annotations

import datetime as dt
import itertools
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from resilin.storage.testing import ALICE, BOB, StorageProcess, boto3_client

_names = itertools.count()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with StorageProcess(tmp_path_factory.mktemp("s3v"), [ALICE, BOB]) as running:
        yield running


@pytest.fixture
def s3(service):
    return boto3_client(service.endpoint, ALICE)


@pytest.fixture
def bucket(s3):
    name = f"versioned-{next(_names)}-{int(time.time())}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def error_of(excinfo) -> tuple[int, str]:
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def versions(s3, bucket: str, **kwargs) -> list[tuple[str, str, bool, bool]]:
    """(key, version id, is latest, is a delete marker), in the listing's order."""
    page = s3.list_object_versions(Bucket=bucket, **kwargs)
    found = [
        (v["Key"], v["VersionId"], v["IsLatest"], False, v["LastModified"]) for v in page.get("Versions", [])
    ]
    found += [(m["Key"], m["VersionId"], m["IsLatest"], True, m["LastModified"]) for m in page.get("DeleteMarkers", [])]  # fmt: skip
    # The two lists interleave by key, then newest first (S3 returns them apart).
    return [f[:4] for f in sorted(found, key=lambda f: (f[0], -f[4].timestamp()))]


def test_versioning_status_is_set_and_read_back_and_bad_settings_are_refused(s3):
    name = f"plain-{next(_names)}-{int(time.time())}"
    s3.create_bucket(Bucket=name)
    assert "Status" not in s3.get_bucket_versioning(Bucket=name)
    for status in ("Enabled", "Suspended", "Enabled"):
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": status})
        assert s3.get_bucket_versioning(Bucket=name)["Status"] == status
    unchecked = boto3_client(s3.meta.endpoint_url, ALICE, parameter_validation=False)
    with pytest.raises(ClientError) as excinfo:
        unchecked.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "On"})
    assert error_of(excinfo) == (400, "MalformedXML")
    with pytest.raises(ClientError) as excinfo:
        s3.put_bucket_versioning(
            Bucket=name,
            VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"},
            MFA="dev 123456",
        )
    assert error_of(excinfo)[1] == "NotImplemented"
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    with pytest.raises(ClientError) as excinfo:
        boto3_client(s3.meta.endpoint_url, BOB).put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": "Suspended"}
        )
    assert error_of(excinfo) == (403, "AccessDenied")


def test_each_write_is_a_version_and_a_delete_leaves_a_marker_that_can_be_removed(s3, bucket):
    ids = [s3.put_object(Bucket=bucket, Key="k", Body=f"v{i}".encode())["VersionId"] for i in range(3)]
    assert len(set(ids)) == 3
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"
    for i, vid in enumerate(ids):
        got = s3.get_object(Bucket=bucket, Key="k", VersionId=vid)
        assert (got["Body"].read(), got["VersionId"]) == (f"v{i}".encode(), vid)
        assert s3.head_object(Bucket=bucket, Key="k", VersionId=vid)["ContentLength"] == 2
    assert versions(s3, bucket) == [
        ("k", ids[2], True, False),
        ("k", ids[1], False, False),
        ("k", ids[0], False, False),
    ]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]

    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="k")
    assert error_of(excinfo) == (404, "NoSuchKey")
    assert excinfo.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="k", VersionId=marker)
    assert error_of(excinfo)[0] == 405
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert versions(s3, bucket)[0] == ("k", marker, True, True)
    # The older versions are all still there, readable by id.
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=ids[0])["Body"].read() == b"v0"

    # Removing the marker brings the latest object back.
    removed = s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    assert (removed["DeleteMarker"], removed["VersionId"]) == (True, marker)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"
    # Removing the latest version for good: the one before becomes the latest.
    s3.delete_object(Bucket=bucket, Key="k", VersionId=ids[2])
    got = s3.get_object(Bucket=bucket, Key="k")
    assert (got["Body"].read(), got["VersionId"]) == (b"v1", ids[1])
    assert versions(s3, bucket) == [("k", ids[1], True, False), ("k", ids[0], False, False)]
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="k", VersionId=ids[2])
    assert error_of(excinfo) == (404, "NoSuchVersion")


def test_a_suspended_bucket_writes_and_deletes_the_null_version_and_keeps_the_others(s3, bucket):
    kept = s3.put_object(Bucket=bucket, Key="k", Body=b"kept")["VersionId"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert "VersionId" not in s3.put_object(Bucket=bucket, Key="k", Body=b"null one")
    s3.put_object(Bucket=bucket, Key="k", Body=b"null two")  # replaces the null version
    assert versions(s3, bucket) == [("k", "null", True, False), ("k", kept, False, False)]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"null two"
    deleted = s3.delete_object(Bucket=bucket, Key="k")  # a null delete marker, in the null version's place
    assert (deleted["DeleteMarker"], deleted["VersionId"]) == (True, "null")
    assert versions(s3, bucket) == [("k", "null", True, True), ("k", kept, False, False)]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    newer = s3.put_object(Bucket=bucket, Key="k", Body=b"newer")["VersionId"]
    assert versions(s3, bucket) == [
        ("k", newer, True, False),
        ("k", "null", False, True),
        ("k", kept, False, False),
    ]


def test_listings_page_through_versions_with_key_and_version_markers_and_group_prefixes(s3, bucket):
    written = {}
    for key in ("a", "b", "dir/c", "dir/d"):
        written[key] = [s3.put_object(Bucket=bucket, Key=key, Body=b"x")["VersionId"] for _ in range(2)]
    s3.delete_object(Bucket=bucket, Key="b")
    everything = versions(s3, bucket)
    assert len(everything) == 9
    paged, markers = [], {}
    while True:
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=2, **markers)
        entries = page.get("Versions", []) + page.get("DeleteMarkers", [])
        assert len(entries) <= 2
        paged += [(e["Key"], e["VersionId"]) for e in entries]
        if not page["IsTruncated"]:
            break
        markers = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
    assert sorted(paged) == sorted((e[0], e[1]) for e in everything) and len(paged) == 9
    grouped = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert grouped["CommonPrefixes"] == [{"Prefix": "dir/"}]
    assert {v["Key"] for v in grouped["Versions"]} == {"a", "b"}
    assert [
        v["VersionId"] for v in s3.list_object_versions(Bucket=bucket, Prefix="dir/d")["Versions"]
    ] == written["dir/d"][::-1]


def test_copies_and_multipart_uploads_make_versions_and_copy_from_an_older_one(s3, bucket):
    first = s3.put_object(Bucket=bucket, Key="src", Body=b"first")["VersionId"]
    s3.put_object(Bucket=bucket, Key="src", Body=b"second")
    copied = s3.copy_object(
        Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src", "VersionId": first}
    )
    assert copied["CopySourceVersionId"] == first and copied["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"first"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    part = s3.upload_part_copy(
        Bucket=bucket, Key="dst", UploadId=upload, PartNumber=1, CopySource={"Bucket": bucket, "Key": "src", "VersionId": first}
    )  # fmt: skip
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="dst", UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]},
    )  # fmt: skip
    assert done["VersionId"] not in (copied["VersionId"], first)
    assert [v[1] for v in versions(s3, bucket, Prefix="dst")] == [done["VersionId"], copied["VersionId"]]
    # An older version's tags and ACL are its own.
    s3.put_object_tagging(
        Bucket=bucket, Key="src", VersionId=first, Tagging={"TagSet": [{"Key": "t", "Value": "1"}]}
    )
    assert s3.get_object_tagging(Bucket=bucket, Key="src", VersionId=first)["TagSet"] == [
        {"Key": "t", "Value": "1"}
    ]
    assert s3.get_object_tagging(Bucket=bucket, Key="src")["TagSet"] == []
    s3.put_object_acl(Bucket=bucket, Key="src", VersionId=first, ACL="public-read")
    public = s3.get_object_acl(Bucket=bucket, Key="src", VersionId=first)["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("AllUsers") for g in public)
    assert len(s3.get_object_acl(Bucket=bucket, Key="src")["Grants"]) == 1


def test_a_bucket_with_versions_is_not_empty_until_every_version_is_deleted(service, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"1")
    s3.put_object(Bucket=bucket, Key="k", Body=b"2")
    s3.delete_object(Bucket=bucket, Key="k")
    with pytest.raises(ClientError) as excinfo:
        s3.delete_bucket(Bucket=bucket)
    assert error_of(excinfo) == (409, "BucketNotEmpty")
    resource = boto3.resource(
        "s3", endpoint_url=service.endpoint, aws_access_key_id=ALICE.access_key,
        aws_secret_access_key=ALICE.secret_key, region_name="us-east-1",
    )  # fmt: skip
    resource.Bucket(bucket).object_versions.delete()  # what clients do to empty a bucket
    assert versions(s3, bucket) == []
    s3.delete_bucket(Bucket=bucket)


def test_a_lifecycle_expiration_in_a_versioned_bucket_leaves_a_delete_marker_and_keeps_the_data(tmp_path):
    with StorageProcess(tmp_path / "s3", [ALICE], extra_args=["--lifecycle-interval", "0.5"]) as running:
        s3 = boto3_client(running.endpoint, ALICE)
        s3.create_bucket(Bucket="versioned-logs")
        s3.put_bucket_versioning(Bucket="versioned-logs", VersioningConfiguration={"Status": "Enabled"})
        kept = s3.put_object(Bucket="versioned-logs", Key="logs/step.log", Body=b"log")["VersionId"]
        rule = {"ID": "old logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
                "Expiration": {"Date": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)}}  # fmt: skip
        s3.put_bucket_lifecycle_configuration(
            Bucket="versioned-logs", LifecycleConfiguration={"Rules": [rule]}
        )
        deadline = time.time() + 15
        while "Contents" in s3.list_objects_v2(Bucket="versioned-logs") and time.time() < deadline:
            time.sleep(0.2)
        assert "Contents" not in s3.list_objects_v2(Bucket="versioned-logs")
        listed = versions(s3, "versioned-logs")
        assert [(k, latest, marker) for k, _, latest, marker in listed] == [
            ("logs/step.log", True, True),
            ("logs/step.log", False, False),
        ]
        assert (
            s3.get_object(Bucket="versioned-logs", Key="logs/step.log", VersionId=kept)["Body"].read()
            == b"log"
        )


def test_object_lock_retention_and_legal_holds_keep_versions_from_deletion(service, s3):
    name = f"locked-{next(_names)}-{int(time.time())}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    with pytest.raises(ClientError) as excinfo:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Suspended"})
    assert error_of(excinfo) == (409, "InvalidBucketState")
    default = {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
    }
    s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=default)
    assert s3.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"] == default

    # The bucket's default retention: GOVERNANCE for a day, bypassed only when asked and allowed.
    governed = s3.put_object(Bucket=name, Key="k", Body=b"governed")["VersionId"]
    head = s3.head_object(Bucket=name, Key="k")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert 0 < (head["ObjectLockRetainUntilDate"] - dt.datetime.now(dt.UTC)).total_seconds() <= 86400
    with pytest.raises(ClientError) as excinfo:
        s3.delete_object(Bucket=name, Key="k", VersionId=governed)
    assert error_of(excinfo) == (403, "AccessDenied")
    shorter = {"Mode": "GOVERNANCE", "RetainUntilDate": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)}
    with pytest.raises(ClientError) as excinfo:
        s3.put_object_retention(Bucket=name, Key="k", Retention=shorter)
    assert error_of(excinfo) == (403, "AccessDenied")
    # A plain DELETE only adds a marker; the locked version stays readable.
    assert s3.delete_object(Bucket=name, Key="k")["DeleteMarker"] is True
    assert s3.get_object(Bucket=name, Key="k", VersionId=governed)["Body"].read() == b"governed"

    # COMPLIANCE with a legal hold, given on the PUT: nothing deletes it, bypass or not.
    until = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)
    held = s3.put_object(Bucket=name, Key="c", Body=b"c", ObjectLockMode="COMPLIANCE",
                         ObjectLockRetainUntilDate=until, ObjectLockLegalHoldStatus="ON")["VersionId"]  # fmt: skip
    assert s3.get_object_retention(Bucket=name, Key="c")["Retention"] == {
        "Mode": "COMPLIANCE",
        "RetainUntilDate": until,
    }
    assert s3.get_object_legal_hold(Bucket=name, Key="c")["LegalHold"] == {"Status": "ON"}
    for bypass in (False, True):
        with pytest.raises(ClientError) as excinfo:
            s3.delete_object(Bucket=name, Key="c", VersionId=held, BypassGovernanceRetention=bypass)
        assert error_of(excinfo) == (403, "AccessDenied")
    s3.put_object_legal_hold(Bucket=name, Key="c", LegalHold={"Status": "OFF"})
    result = s3.delete_objects(Bucket=name, Delete={"Objects": [{"Key": "c", "VersionId": held}]},
                               BypassGovernanceRetention=True)  # fmt: skip
    assert [e["Code"] for e in result["Errors"]] == ["AccessDenied"]  # COMPLIANCE still holds
    with pytest.raises(ClientError) as excinfo:
        s3.put_object_retention(Bucket=name, Key="c", Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
                                BypassGovernanceRetention=True)  # fmt: skip
    assert error_of(excinfo) == (403, "AccessDenied")

    # The owner may bypass GOVERNANCE; then the version goes for good.
    s3.delete_object(Bucket=name, Key="k", VersionId=governed, BypassGovernanceRetention=True)
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=name, Key="k", VersionId=governed)
    assert error_of(excinfo) == (404, "NoSuchVersion")

    # Bad configurations and retentions are refused and change nothing.
    bad = [
        ({"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 0}}},
         (400, "InvalidRetentionPeriod")),
        ({"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1, "Years": 1}}},
         (400, "MalformedXML")),
        ({"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "governance", "Days": 1}}},
         (400, "MalformedXML")),
    ]  # fmt: skip
    for configuration, expected in bad:
        with pytest.raises(ClientError) as excinfo:
            s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=configuration)
        assert error_of(excinfo) == expected
    assert s3.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"] == default
    plain = f"unlocked-{next(_names)}-{int(time.time())}"
    s3.create_bucket(Bucket=plain)
    with pytest.raises(ClientError) as excinfo:
        s3.put_object_lock_configuration(Bucket=plain, ObjectLockConfiguration=default)
    assert error_of(excinfo) == (409, "InvalidBucketState")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(
            Bucket=plain, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until
        )
    assert error_of(excinfo) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as excinfo:
        s3.get_object_lock_configuration(Bucket=plain)
    assert error_of(excinfo) == (404, "ObjectLockConfigurationNotFoundError")


def test_versions_delete_markers_and_locks_survive_a_restart_of_the_service(tmp_path):
    service = StorageProcess(tmp_path / "s3", [ALICE]).start()
    try:
        s3 = boto3_client(service.endpoint, ALICE)
        s3.create_bucket(Bucket="kept-versions", ObjectLockEnabledForBucket=True)
        first = s3.put_object(Bucket="kept-versions", Key="k", Body=b"1", ObjectLockLegalHoldStatus="ON")[
            "VersionId"
        ]
        s3.put_object(Bucket="kept-versions", Key="k", Body=b"2")
        s3.delete_object(Bucket="kept-versions", Key="k")
        before = versions(s3, "kept-versions")
        service.process.kill()  # no chance to tidy anything up
        service.process.wait()
        service.start()
        s3 = boto3_client(service.endpoint, ALICE)
        assert versions(s3, "kept-versions") == before
        assert s3.get_object(Bucket="kept-versions", Key="k", VersionId=first)["Body"].read() == b"1"
        with pytest.raises(ClientError) as excinfo:
            s3.delete_object(Bucket="kept-versions", Key="k", VersionId=first)
        assert error_of(excinfo) == (403, "AccessDenied")  # the legal hold is on the version itself
    finally:
        service.stop()
