"""Pure parts of storage access control: ACL headers and documents, bucket policy evaluation."""

from __future__ import annotations

import json

import pytest

from resilin.storage import acl, bucket_policy
from resilin.storage.errors import S3Error
from resilin.storage.owners import canonical_user_id

OWNER, OTHER = "111111111111", "222222222222"


def test_canned_acls():
    assert acl.canned("private", OWNER, OWNER) == acl.private(OWNER)
    assert acl.canned("public-read", OWNER, OWNER).is_public()
    assert not acl.canned("bucket-owner-read", OWNER, OWNER).is_public()
    given = acl.canned("bucket-owner-full-control", OTHER, OWNER)
    assert {(g.user_id, g.permission) for g in given.grants} == {
        (canonical_user_id(OTHER), "FULL_CONTROL"),
        (canonical_user_id(OWNER), "FULL_CONTROL"),
    }
    with pytest.raises(S3Error) as excinfo:
        acl.canned("aws-exec-read", OWNER, OWNER)
    assert excinfo.value.code == "InvalidArgument"


def test_grant_headers():
    grants = acl.parse_grant_header(
        "x-amz-grant-read", f'id="{canonical_user_id(OTHER)}", uri="{acl.ALL_USERS}",id={OWNER}'
    )
    assert [(g.user_id or g.group, g.permission) for g in grants] == [
        (canonical_user_id(OTHER), "READ"),
        (acl.ALL_USERS, "READ"),
        (canonical_user_id(OWNER), "READ"),
    ]
    for value, code in (
        ("", "InvalidArgument"),
        ('id="short"', "InvalidArgument"),
        ('uri="http://example.com/all"', "InvalidArgument"),
        ('emailAddress="a@b.c"', "UnresolvableGrantByEmailAddress"),
        ('id="x" garbage', "InvalidArgument"),
    ):
        with pytest.raises(S3Error) as excinfo:
            acl.parse_grant_header("x-amz-grant-write", value)
        assert excinfo.value.code == code, value


def test_acl_document_round_trip():
    original = acl.canned("log-delivery-write", OWNER, OWNER)
    body = acl.to_xml(original)
    from resilin.storage import s3xml

    back = acl.from_xml(s3xml.serialize(body), OWNER)
    assert back.owner == original.owner and set(back.grants) == set(original.grants)
    with pytest.raises(S3Error) as excinfo:
        acl.from_xml(b"<AccessControlPolicy><Owner/></AccessControlPolicy>", OWNER)
    assert excinfo.value.code == "MalformedACLError"


def _policy(*statements: dict) -> bucket_policy.Policy:
    return bucket_policy.parse(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}), "b")


def test_policy_evaluation_deny_wins_and_wildcards_match():
    policy = _policy(
        {"Effect": "Allow", "Principal": "*", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/docs/*"},
        {
            "Effect": "Deny",
            "Principal": {"AWS": OTHER},
            "Action": "s3:*",
            "Resource": "arn:aws:s3:::b/docs/secret?",
        },
    )
    assert policy.evaluate(OTHER, "s3:GetObject", "arn:aws:s3:::b/docs/a", {}) == "allow"
    assert policy.evaluate(None, "s3:GetObjectAcl", "arn:aws:s3:::b/docs/a", {}) == "allow"
    assert policy.evaluate(OTHER, "s3:GetObject", "arn:aws:s3:::b/docs/secret1", {}) == "deny"
    assert policy.evaluate(OWNER, "s3:GetObject", "arn:aws:s3:::b/docs/secret1", {}) == "allow"
    assert policy.evaluate(OTHER, "s3:PutObject", "arn:aws:s3:::b/docs/a", {}) is None
    assert policy.evaluate(OTHER, "s3:GetObject", "arn:aws:s3:::b/other", {}) is None
    assert policy.public
    assert policy.evaluate(OTHER, "s3:GetObject", "arn:aws:s3:::b/docs/a", {}, allows_ignored=True) is None
    assert (
        policy.evaluate(OTHER, "s3:GetObject", "arn:aws:s3:::b/docs/secret1", {}, allows_ignored=True)
        == "deny"
    )


def test_policy_conditions():
    policy = _policy(
        {
            "Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
            "Condition": {"StringEquals": {"s3:prefix": ["home/", "pub/"]},
                          "NumericLessThanEquals": {"s3:max-keys": 100},
                          "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        },
    )  # fmt: skip
    context = {"s3:prefix": ["pub/"], "s3:max-keys": ["50"], "aws:sourceip": ["10.1.2.3"]}
    assert policy.evaluate(None, "s3:ListBucket", "arn:aws:s3:::b", context) == "allow"
    assert (
        policy.evaluate(None, "s3:ListBucket", "arn:aws:s3:::b", {**context, "s3:max-keys": ["500"]}) is None
    )
    assert (
        policy.evaluate(None, "s3:ListBucket", "arn:aws:s3:::b", {**context, "aws:sourceip": ["8.8.8.8"]})
        is None
    )
    assert policy.evaluate(None, "s3:ListBucket", "arn:aws:s3:::b", {"aws:sourceip": ["10.0.0.1"]}) is None
    assert not policy.public  # a fixed source address keeps it from being public
    negated = _policy(
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*",
         "Condition": {"StringNotEquals": {"s3:x-amz-acl": "private"}, "Null": {"aws:Referer": "true"}}},
    )  # fmt: skip
    assert negated.evaluate(None, "s3:PutObject", "arn:aws:s3:::b/k", {}) == "deny"  # missing key: not equal
    assert negated.evaluate(None, "s3:PutObject", "arn:aws:s3:::b/k", {"s3:x-amz-acl": ["private"]}) is None
    assert negated.evaluate(None, "s3:PutObject", "arn:aws:s3:::b/k", {"aws:referer": ["x"]}) is None


@pytest.mark.parametrize(
    "change",
    [
        {"Condition": {"ForAnyValue:StringEquals": {"s3:prefix": "a"}}},
        {"Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}},
        {"Condition": {"Null": {"aws:Referer": "maybe"}}},
        {"Action": "s3:Get?bject"},  # matches GetObject: fine, so made invalid by the resource below
    ],
)
def test_policies_refused(change):
    statement = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::b/*",
    }
    statement.update(change)
    if change.get("Action") == "s3:Get?bject":
        statement["Resource"] = "arn:aws:s3:::b"
    with pytest.raises(S3Error) as excinfo:
        _policy(statement)
    assert (excinfo.value.code, excinfo.value.status) == ("MalformedPolicy", 400)


def test_not_principal_is_malformed_with_allow_and_not_implemented_with_deny():
    for effect, status in (("Allow", 400), ("Deny", 501)):
        statement = {"Effect": effect, "NotPrincipal": {"AWS": OTHER}, "Action": "s3:ListBucket",
                     "Resource": "arn:aws:s3:::b"}  # fmt: skip
        with pytest.raises(S3Error) as excinfo:
            _policy(statement)
        assert excinfo.value.status == status
