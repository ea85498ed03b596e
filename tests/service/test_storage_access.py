"""Access control of the storage service: ACLs, bucket policies, Block Public Access and object
ownership, driven by boto3 clients of two accounts and by unsigned requests."""

from __future__ import annotations

import itertools
import json
import time

import boto3
import pytest
import requests
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from resilin.storage.owners import canonical_user_id
from resilin.storage.testing import ALICE, BOB, StorageProcess, boto3_client

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
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
def anon(service):
    """A client that signs nothing: the anonymous principal."""
    return boto3.client(
        "s3",
        endpoint_url=service.endpoint,
        region_name="us-east-1",
        config=Config(
            signature_version=UNSIGNED, s3={"addressing_style": "path"}, retries={"max_attempts": 1}
        ),
    )


@pytest.fixture
def bucket(s3):
    name = f"access-{next(_names)}-{int(time.time())}"
    s3.create_bucket(Bucket=name)
    return name


def error_of(call, *args, **kwargs) -> tuple[int, str]:
    with pytest.raises(ClientError) as excinfo:
        call(*args, **kwargs)
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


DENIED = (403, "AccessDenied")


def grants_of(acl: dict) -> set[tuple[str, str]]:
    """(grantee ID or group URI, permission) of each grant of a Get*Acl answer."""
    return {(g["Grantee"].get("ID") or g["Grantee"]["URI"], g["Permission"]) for g in acl["Grants"]}


# -- unsigned requests and canned ACLs ------------------------------------------------------------


def test_unsigned_requests_get_only_what_everyone_is_granted(service, s3, anon, bucket):
    s3.put_object(Bucket=bucket, Key="private", Body=b"mine")
    assert error_of(anon.get_object, Bucket=bucket, Key="private") == DENIED
    assert error_of(anon.list_objects_v2, Bucket=bucket) == DENIED
    assert error_of(anon.put_object, Bucket=bucket, Key="new", Body=b"x") == DENIED
    assert error_of(anon.list_buckets) == DENIED
    assert error_of(anon.create_bucket, Bucket=f"anon-{int(time.time())}") == DENIED
    assert error_of(anon.get_object, Bucket="no-such-bucket-here", Key="k") == (404, "NoSuchBucket")

    s3.put_object(Bucket=bucket, Key="shared", Body=b"for all", ACL="public-read")
    assert anon.get_object(Bucket=bucket, Key="shared")["Body"].read() == b"for all"
    assert requests.get(f"{service.endpoint}/{bucket}/shared", timeout=10).content == b"for all"
    assert error_of(anon.list_objects_v2, Bucket=bucket) == DENIED  # the object's grant, not the bucket's

    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    assert [o["Key"] for o in anon.list_objects_v2(Bucket=bucket)["Contents"]] == ["private", "shared"]
    anon.put_object(Bucket=bucket, Key="dropped", Body=b"from anyone")
    # An unsigned writer's object belongs to the bucket's owner.
    assert s3.get_object(Bucket=bucket, Key="dropped")["Body"].read() == b"from anyone"
    assert s3.get_object_acl(Bucket=bucket, Key="dropped")["Owner"]["ID"] == canonical_user_id(
        ALICE.account_id
    )
    assert error_of(anon.get_bucket_acl, Bucket=bucket) == DENIED
    assert error_of(anon.put_bucket_acl, Bucket=bucket, ACL="private") == DENIED


def test_an_unsigned_upload_nobody_allows_is_refused_before_its_body(service, bucket):
    response = requests.put(f"{service.endpoint}/{bucket}/big", data=b"x" * 300_000, timeout=10)
    assert response.status_code == 403 and b"<Code>AccessDenied</Code>" in response.content
    assert response.headers.get("Connection") == "close"


def test_sigv2_stays_refused(service, bucket):
    reply = requests.get(f"{service.endpoint}/{bucket}?AWSAccessKeyId=AKIAALICE00000000001&Signature=x&Expires=9",
                         timeout=10)  # fmt: skip
    assert reply.status_code == 400 and b"InvalidRequest" in reply.content


def test_authenticated_read_is_for_any_signed_account_only(s3, bob, anon, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v", ACL="authenticated-read")
    assert bob.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    assert error_of(anon.get_object, Bucket=bucket, Key="k") == DENIED
    assert error_of(bob.delete_object, Bucket=bucket, Key="k") == DENIED


# -- grants across accounts ---------------------------------------------------------------------


def test_grant_headers_share_with_another_account_and_nothing_more(s3, bob, bucket):
    bob_id = canonical_user_id(BOB.account_id)
    s3.put_object(Bucket=bucket, Key="for-bob", Body=b"hi", GrantRead=f'id="{bob_id}"')
    s3.put_object(Bucket=bucket, Key="not-for-bob", Body=b"no")
    assert bob.get_object(Bucket=bucket, Key="for-bob")["Body"].read() == b"hi"
    assert bob.head_object(Bucket=bucket, Key="for-bob")["ContentLength"] == 2
    assert error_of(bob.get_object, Bucket=bucket, Key="not-for-bob") == DENIED
    assert error_of(bob.get_object_acl, Bucket=bucket, Key="for-bob") == DENIED
    assert error_of(bob.put_object, Bucket=bucket, Key="for-bob", Body=b"mine now") == DENIED
    assert error_of(bob.delete_object, Bucket=bucket, Key="for-bob") == DENIED
    assert error_of(bob.list_objects_v2, Bucket=bucket) == DENIED
    # A missing key: 403 to who may not list the bucket, as on S3.
    assert error_of(bob.get_object, Bucket=bucket, Key="absent") == DENIED
    acl = s3.get_object_acl(Bucket=bucket, Key="for-bob")
    assert grants_of(acl) == {(bob_id, "READ")}  # the header's grants replace the default


def test_bucket_write_grant_lets_another_account_write_objects_it_then_owns(s3, bob, bucket):
    s3.put_bucket_acl(
        Bucket=bucket,
        GrantWrite=f"id={BOB.account_id}",
        GrantRead=f'id="{canonical_user_id(BOB.account_id)}"',
        GrantFullControl=f'id="{canonical_user_id(ALICE.account_id)}"',
    )
    bob.put_object(Bucket=bucket, Key="bobs", Body=b"b")
    assert [o["Key"] for o in bob.list_objects_v2(Bucket=bucket)["Contents"]] == ["bobs"]
    # The writer owns its object: the bucket's owner cannot read it without a grant...
    assert error_of(s3.get_object, Bucket=bucket, Key="bobs") == DENIED
    bob.put_object(Bucket=bucket, Key="given", Body=b"g", ACL="bucket-owner-full-control")
    assert s3.get_object(Bucket=bucket, Key="given")["Body"].read() == b"g"
    # ... but may still delete it (WRITE on its bucket), and so may Bob, in one request.
    deleted = bob.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "bobs"}]})
    assert [d["Key"] for d in deleted["Deleted"]] == ["bobs"]
    s3.delete_object(Bucket=bucket, Key="given")
    assert error_of(bob.put_bucket_acl, Bucket=bucket, ACL="public-read") == DENIED
    assert error_of(bob.get_bucket_policy_status, Bucket=bucket) == DENIED
    assert error_of(bob.delete_bucket, Bucket=bucket) == DENIED


def test_delete_objects_refuses_key_by_key(s3, bob, bucket):
    s3.put_object(Bucket=bucket, Key="a", Body=b"")
    result = bob.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}]})
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("a", "AccessDenied")]
    assert s3.head_object(Bucket=bucket, Key="a")["ContentLength"] == 0


def test_copy_needs_read_on_the_source(s3, bob, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"data")
    mine = f"bob-{next(_names)}-{int(time.time())}"
    bob.create_bucket(Bucket=mine)
    source = {"Bucket": bucket, "Key": "src"}
    assert error_of(bob.copy_object, Bucket=mine, Key="copy", CopySource=source) == DENIED
    s3.put_object_acl(Bucket=bucket, Key="src", GrantRead=f"id={BOB.account_id}")
    bob.copy_object(Bucket=mine, Key="copy", CopySource=source)
    assert bob.get_object(Bucket=mine, Key="copy")["Body"].read() == b"data"


# -- Get/Put ACL documents ------------------------------------------------------------------------


def test_bucket_acl_document_round_trips_and_bad_ones_are_refused(s3, bucket):
    alice_id = canonical_user_id(ALICE.account_id)
    acl = s3.get_bucket_acl(Bucket=bucket)
    assert acl["Owner"] == {"ID": alice_id, "DisplayName": ALICE.account_id}
    assert grants_of(acl) == {(alice_id, "FULL_CONTROL")}
    policy = {
        "Owner": {"ID": alice_id},
        "Grants": [
            {"Grantee": {"Type": "CanonicalUser", "ID": alice_id}, "Permission": "FULL_CONTROL"},
            {"Grantee": {"Type": "Group", "URI": AUTHENTICATED_USERS}, "Permission": "READ"},
        ],
    }
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=policy)
    assert grants_of(s3.get_bucket_acl(Bucket=bucket)) == {
        (alice_id, "FULL_CONTROL"),
        (AUTHENTICATED_USERS, "READ"),
    }

    def refused(grants, owner=alice_id):
        return error_of(
            s3.put_bucket_acl, Bucket=bucket, AccessControlPolicy={"Owner": {"ID": owner}, "Grants": grants}
        )

    assert refused([{"Grantee": {"Type": "CanonicalUser", "ID": alice_id}, "Permission": "EVERYTHING"}]) == (
        400, "MalformedACLError")  # fmt: skip
    assert refused([{"Grantee": {"Type": "Group", "URI": "http://example.com/everyone"}, "Permission": "READ"}]) == (
        400, "InvalidArgument")  # fmt: skip
    assert refused([{"Grantee": {"Type": "AmazonCustomerByEmail", "EmailAddress": "a@b.c"}, "Permission": "READ"}]) == (
        400, "UnresolvableGrantByEmailAddress")  # fmt: skip
    assert refused([], owner=canonical_user_id(BOB.account_id)) == DENIED  # owners cannot be changed
    assert error_of(s3.put_bucket_acl, Bucket=bucket, ACL="public-read", AccessControlPolicy=policy) == (
        400, "UnexpectedContent")  # fmt: skip
    assert grants_of(s3.get_bucket_acl(Bucket=bucket)) == {
        (alice_id, "FULL_CONTROL"),
        (AUTHENTICATED_USERS, "READ"),
    }


def test_put_object_acl_changes_only_the_acl(s3, anon, bucket):
    s3.put_object(
        Bucket=bucket, Key="k", Body=b"0123456789" * 10_000, Metadata={"m": "v"}, ContentType="text/x"
    )
    before = s3.head_object(Bucket=bucket, Key="k")
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="public-read")
    after = s3.head_object(Bucket=bucket, Key="k")
    for field in ("ETag", "ContentLength", "ContentType", "Metadata", "LastModified"):
        assert after[field] == before[field], field
    assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"0123456789" * 10_000
    assert (ALL_USERS, "READ") in grants_of(s3.get_object_acl(Bucket=bucket, Key="k"))
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    assert error_of(anon.get_object, Bucket=bucket, Key="k") == DENIED
    assert error_of(s3.put_object_acl, Bucket=bucket, Key="absent", ACL="private") == (404, "NoSuchKey")


def test_multipart_and_copy_keep_the_acl_asked_for(s3, anon, bucket):
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ACL="public-read")
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"parts")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )  # fmt: skip
    assert anon.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"parts"
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "mp"})
    assert error_of(anon.get_object, Bucket=bucket, Key="copied") == DENIED  # a copy is private unless asked
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "mp"}, ACL="public-read")
    assert anon.get_object(Bucket=bucket, Key="copied")["Body"].read() == b"parts"


# -- bucket policies ------------------------------------------------------------------------------


def _policy(bucket: str, *statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_policy_grants_another_account_reads_under_a_prefix(s3, bob, bucket):
    s3.put_object(Bucket=bucket, Key="public/a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="private/b", Body=b"b")
    policy = _policy(bucket, {
        "Effect": "Allow", "Principal": {"AWS": [f"arn:aws:iam::{BOB.account_id}:root"]},
        "Action": ["s3:GetObject"], "Resource": f"arn:aws:s3:::{bucket}/public/*",
    }, {
        "Effect": "Allow", "Principal": {"AWS": BOB.account_id}, "Action": "s3:ListBucket",
        "Resource": f"arn:aws:s3:::{bucket}", "Condition": {"StringLike": {"s3:prefix": "public/*"}},
    })  # fmt: skip
    s3.put_bucket_policy(Bucket=bucket, Policy=policy)
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(policy)
    assert bob.get_object(Bucket=bucket, Key="public/a")["Body"].read() == b"a"
    assert error_of(bob.get_object, Bucket=bucket, Key="private/b") == DENIED
    assert [o["Key"] for o in bob.list_objects_v2(Bucket=bucket, Prefix="public/")["Contents"]] == [
        "public/a"
    ]
    assert error_of(bob.list_objects_v2, Bucket=bucket) == DENIED
    assert error_of(bob.list_objects_v2, Bucket=bucket, Prefix="private/") == DENIED
    assert error_of(bob.put_object, Bucket=bucket, Key="public/c", Body=b"") == DENIED
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    s3.delete_bucket_policy(Bucket=bucket)
    assert error_of(bob.get_object, Bucket=bucket, Key="public/a") == DENIED
    assert error_of(s3.get_bucket_policy, Bucket=bucket) == (404, "NoSuchBucketPolicy")


def test_explicit_deny_wins_over_grants_and_allows(s3, bob, anon, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v", ACL="public-read")
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket, {
        "Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{bucket}/*"],
    }, {
        "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"StringNotEquals": {"aws:PrincipalAccount": ALICE.account_id}},
    }))  # fmt: skip
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    assert error_of(anon.get_object, Bucket=bucket, Key="k") == DENIED
    assert error_of(bob.get_object, Bucket=bucket, Key="k") == DENIED
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    bob.put_object(Bucket=bucket, Key="from-bob", Body=b"b")  # the Allow of s3:* still counts


def test_a_deny_everything_policy_never_locks_the_owner_out_of_the_policy(s3, bucket):
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket, {
        "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }))  # fmt: skip
    assert error_of(s3.put_object, Bucket=bucket, Key="k", Body=b"") == DENIED
    assert error_of(s3.list_objects_v2, Bucket=bucket) == DENIED
    s3.get_bucket_policy(Bucket=bucket)
    s3.delete_bucket_policy(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"")


def test_source_ip_and_referer_conditions(s3, anon, service, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket, {
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"},
                      "StringLike": {"aws:Referer": "https://app.example.com/*"}},
    }))  # fmt: skip
    url = f"{service.endpoint}/{bucket}/k"
    assert requests.get(url, headers={"Referer": "https://app.example.com/page"}, timeout=10).content == b"v"
    assert requests.get(url, headers={"Referer": "https://evil.example.org/"}, timeout=10).status_code == 403
    assert requests.get(url, timeout=10).status_code == 403
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket, {
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"NotIpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}},
    }))  # fmt: skip
    assert error_of(anon.get_object, Bucket=bucket, Key="k") == DENIED


def test_max_keys_condition_on_listing(s3, bob, bucket):
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket, {
        "Effect": "Allow", "Principal": {"AWS": BOB.account_id}, "Action": "s3:ListBucket",
        "Resource": f"arn:aws:s3:::{bucket}", "Condition": {"NumericLessThanEquals": {"s3:max-keys": "10"}},
    }))  # fmt: skip
    bob.list_objects_v2(Bucket=bucket, MaxKeys=10)
    assert error_of(bob.list_objects_v2, Bucket=bucket, MaxKeys=11) == DENIED
    assert error_of(bob.list_objects_v2, Bucket=bucket) == DENIED  # no max-keys: the condition fails


@pytest.mark.parametrize(
    "document",
    [
        "{not json",
        '["a list"]',
        '{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "R"}]}',
        '{"Version": "2012-10-17", "Extra": 1, "Statement": []}',
        '{"Version": "1999-01-01", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", '
        '"Resource": "arn:aws:s3:::BUCKET/*"}]}',
    ],
)
def test_malformed_policies_are_refused(s3, bucket, document):
    document = document.replace("BUCKET", bucket)
    assert error_of(s3.put_bucket_policy, Bucket=bucket, Policy=document) == (400, "MalformedPolicy")
    assert error_of(s3.get_bucket_policy, Bucket=bucket) == (404, "NoSuchBucketPolicy")


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Maybe"},
        {"Action": "s3:GetEverything"},
        {"Action": "ec2:RunInstances"},
        {"Resource": "arn:aws:s3:::some-other-bucket/*"},
        {"Resource": "arn:aws:s3:::BUCKET"},  # s3:GetObject applies to objects only
        {"Principal": {"AWS": "not-an-account"}},
        {"Principal": {"Service": "ec2.amazonaws.com"}},
        {"Condition": {"StringEquals": {"aws:NoSuchKey": "x"}}},
        {"Condition": {"StringSortOf": {"aws:Referer": "x"}}},
        {"Condition": {"IpAddress": {"aws:SourceIp": "not-an-address"}}},
        {"Surprise": True},
    ],
)
def test_statements_with_anything_not_understood_are_refused(s3, bucket, statement):
    base = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    document = json.dumps({"Version": "2012-10-17", "Statement": [{**base, **statement}]})
    document = document.replace("BUCKET", bucket)
    assert error_of(s3.put_bucket_policy, Bucket=bucket, Policy=document) == (400, "MalformedPolicy")


def test_only_the_owner_manages_the_policy_unless_granted(s3, bob, bucket):
    document = _policy(bucket, {"Effect": "Allow", "Principal": {"AWS": BOB.account_id},
                                "Action": "s3:GetBucketPolicy", "Resource": f"arn:aws:s3:::{bucket}"})  # fmt: skip
    assert error_of(bob.put_bucket_policy, Bucket=bucket, Policy=document) == DENIED
    s3.put_bucket_policy(Bucket=bucket, Policy=document)
    assert json.loads(bob.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(document)
    assert error_of(bob.delete_bucket_policy, Bucket=bucket) == DENIED


# -- Block Public Access --------------------------------------------------------------------------


def _block(s3, bucket, **switches):
    names = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
    s3.put_public_access_block(
        Bucket=bucket, PublicAccessBlockConfiguration={n: switches.get(n, False) for n in names}
    )


PUBLIC_READ_POLICY = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}


def test_public_access_block_settings(s3, bob, anon, bucket):
    assert error_of(s3.get_public_access_block, Bucket=bucket) == (
        404,
        "NoSuchPublicAccessBlockConfiguration",
    )
    s3.put_object(Bucket=bucket, Key="k", Body=b"v", ACL="public-read")
    _block(s3, bucket, BlockPublicAcls=True)
    got = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert got == {"BlockPublicAcls": True, "IgnorePublicAcls": False, "BlockPublicPolicy": False,
                   "RestrictPublicBuckets": False}  # fmt: skip
    assert error_of(s3.put_object, Bucket=bucket, Key="k2", Body=b"", ACL="public-read") == DENIED
    assert error_of(s3.put_bucket_acl, Bucket=bucket, ACL="authenticated-read") == DENIED
    assert error_of(s3.put_object_acl, Bucket=bucket, Key="k", ACL="public-read-write") == DENIED
    assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"  # existing grants still count

    _block(s3, bucket, IgnorePublicAcls=True)
    assert error_of(anon.get_object, Bucket=bucket, Key="k") == DENIED
    s3.put_object_acl(Bucket=bucket, Key="k", GrantRead=f"id={BOB.account_id}")
    assert bob.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"  # not a public grant

    public = _policy(bucket, {**PUBLIC_READ_POLICY, "Resource": f"arn:aws:s3:::{bucket}/*"})
    _block(s3, bucket, BlockPublicPolicy=True)
    assert error_of(s3.put_bucket_policy, Bucket=bucket, Policy=public) == DENIED

    _block(s3, bucket, RestrictPublicBuckets=True)
    s3.put_bucket_policy(Bucket=bucket, Policy=public)
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    assert error_of(anon.get_object, Bucket=bucket, Key="k") == DENIED
    s3.delete_public_access_block(Bucket=bucket)
    assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    assert error_of(s3.get_public_access_block, Bucket=bucket) == (
        404,
        "NoSuchPublicAccessBlockConfiguration",
    )


# -- object ownership ---------------------------------------------------------------------------


def test_bucket_owner_enforced_disables_acls(s3, bob, bucket):
    assert error_of(s3.get_bucket_ownership_controls, Bucket=bucket) == (
        404,
        "OwnershipControlsNotFoundError",
    )
    enforced = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert error_of(s3.put_bucket_ownership_controls, Bucket=bucket, OwnershipControls=enforced) == (
        400, "InvalidBucketAclWithObjectOwnership")  # fmt: skip
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=enforced)
    rules = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert error_of(s3.put_bucket_acl, Bucket=bucket, ACL="public-read") == (
        400,
        "AccessControlListNotSupported",
    )
    assert error_of(s3.put_object, Bucket=bucket, Key="k", Body=b"", ACL="public-read") == (
        400, "AccessControlListNotSupported")  # fmt: skip
    s3.put_object(Bucket=bucket, Key="k", Body=b"", ACL="bucket-owner-full-control")
    for refused in (lambda: s3.put_object(Bucket=bucket, Key="k2", Body=b"", ACL="private"),
                    lambda: s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")):  # fmt: skip
        with pytest.raises(ClientError) as excinfo:
            refused()
        assert excinfo.value.response["Error"]["Code"] == "AccessControlListNotSupported"
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket, {
        "Effect": "Allow", "Principal": {"AWS": BOB.account_id}, "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }))  # fmt: skip
    bob.put_object(Bucket=bucket, Key="from-bob", Body=b"b")
    # The bucket's owner owns every object: it reads Bob's without any grant.
    assert s3.get_object(Bucket=bucket, Key="from-bob")["Body"].read() == b"b"
    owner = s3.get_object_acl(Bucket=bucket, Key="from-bob")["Owner"]["ID"]
    assert owner == canonical_user_id(ALICE.account_id)
    s3.delete_bucket_ownership_controls(Bucket=bucket)
    assert error_of(s3.get_bucket_ownership_controls, Bucket=bucket) == (
        404,
        "OwnershipControlsNotFoundError",
    )


def test_bucket_owner_preferred_takes_objects_given_full_control(s3, bob, service):
    name = f"preferred-{next(_names)}-{int(time.time())}"
    s3.create_bucket(Bucket=name, ObjectOwnership="BucketOwnerPreferred")
    s3.put_bucket_acl(
        Bucket=name, GrantWrite=f"id={BOB.account_id}", GrantFullControl=f"id={ALICE.account_id}"
    )
    bob.put_object(Bucket=name, Key="given", Body=b"g", ACL="bucket-owner-full-control")
    bob.put_object(Bucket=name, Key="kept", Body=b"k")
    alice_id, bob_id = canonical_user_id(ALICE.account_id), canonical_user_id(BOB.account_id)
    assert s3.get_object_acl(Bucket=name, Key="given")["Owner"]["ID"] == alice_id
    assert bob.get_object_acl(Bucket=name, Key="kept")["Owner"]["ID"] == bob_id
    assert error_of(s3.get_object, Bucket=name, Key="kept") == DENIED


def test_restrict_public_buckets_sets_aside_every_allow_of_a_public_policy(s3, bob, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    for_bob = {"Effect": "Allow", "Principal": {"AWS": BOB.account_id}, "Action": "s3:GetObject",
               "Resource": f"arn:aws:s3:::{bucket}/*"}  # fmt: skip
    _block(s3, bucket, RestrictPublicBuckets=True)
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket, for_bob))
    assert bob.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"  # not public: it counts
    public = {**PUBLIC_READ_POLICY, "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"}
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket, for_bob, public))
    assert error_of(bob.get_object, Bucket=bucket, Key="k") == DENIED
    assert error_of(bob.list_objects_v2, Bucket=bucket) == DENIED
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
