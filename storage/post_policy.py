"""The POST policy of a browser form upload: its SigV4 signature and its conditions.

A web page uploads straight to a bucket with an HTML form (POST Object) that the bucket owner's
application prepared: a base64 policy document naming what the form may send (its expiry, the
bucket, exact values or prefixes of fields, a size range) signed with the owner's key.  The form
carries no Authorization header; the policy's signature is what authenticates it, and every field
the form sends must be allowed by a condition (S3's rules, as in its "Creating a POST Policy").
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from calendar import timegm
from dataclasses import dataclass
from hashlib import sha256

from resilin.aws.sigv4 import CredentialLookup, Credentials, signing_key
from resilin.storage.errors import S3Error, access_denied, invalid_argument, invalid_request

# Fields no condition needs to name (and x-ignore-* ones).
UNCONDITIONED = {"policy", "x-amz-signature", "file"}


def _policy_failed(what: str) -> S3Error:
    return access_denied(f"Invalid according to Policy: {what}")


@dataclass(frozen=True)
class Policy:
    expiration: float
    conditions: list


def authenticate(fields: dict[str, str], lookup: CredentialLookup, region: str) -> Credentials:
    """The credentials whose key signed the form's policy; S3's errors if it was not signed right."""
    policy = fields.get("policy")
    if "x-amz-signature" not in fields and ("signature" in fields or "awsaccesskeyid" in fields):
        # A form signed the older way (Signature Version 2), refused as S3 refuses it where only
        # Signature Version 4 is accepted.
        raise invalid_request(
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
        )
    if policy is None or "x-amz-signature" not in fields:
        raise access_denied("Anonymous POST uploads are not allowed: the form needs a signed policy")
    if fields.get("x-amz-algorithm") != "AWS4-HMAC-SHA256":
        raise invalid_argument("Only the AWS4-HMAC-SHA256 algorithm is supported", "x-amz-algorithm",
                               fields.get("x-amz-algorithm", ""))  # fmt: skip
    parts = fields.get("x-amz-credential", "").split("/")
    if len(parts) != 5 or parts[3:] != ["s3", "aws4_request"] or len(parts[1]) != 8:
        raise invalid_argument("Invalid credential", "x-amz-credential", fields.get("x-amz-credential", ""))
    access_key, date, scope_region = parts[0], parts[1], parts[2]
    if scope_region != region:
        raise invalid_argument(f"The credential's region must be {region}", "x-amz-credential", scope_region)
    if not fields.get("x-amz-date", "").startswith(date):
        raise invalid_argument("x-amz-date must fall on the credential's date", "x-amz-date",
                               fields.get("x-amz-date", ""))  # fmt: skip
    credentials = lookup(access_key)
    if credentials is None:
        raise S3Error(
            "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", 403
        )
    expected = hmac.new(
        signing_key(credentials.secret_key, date, region, "s3"), policy.encode(), sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, fields["x-amz-signature"]):
        raise S3Error(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
            403,
        )
    token = credentials.session_token
    if token and not hmac.compare_digest(fields.get("x-amz-security-token", "").encode(), token.encode()):
        raise S3Error("InvalidToken", "The provided token is malformed or otherwise invalid.", 400)
    return credentials


def decode(policy_b64: str) -> Policy:
    try:
        document = json.loads(base64.b64decode(policy_b64, validate=True))
        expiration = timegm(time.strptime(document["expiration"][:19], "%Y-%m-%dT%H:%M:%S"))
        conditions = document["conditions"]
        if not isinstance(conditions, list):
            raise TypeError("conditions is not a list")
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise invalid_argument("Invalid Policy: Invalid JSON.", "policy") from None
    return Policy(float(expiration), conditions)


def check(
    policy: Policy, fields: dict[str, str], bucket: str, now: float | None = None
) -> tuple[int, int] | None:
    """AccessDenied unless the form's fields meet every condition and every field is conditioned;
    returns the content-length-range (checked once the file's size is known), if any."""
    if (time.time() if now is None else now) > policy.expiration:
        raise _policy_failed("Policy expired.")
    values = fields | {"bucket": bucket}
    covered: set[str] = set()
    size_range = None
    for condition in policy.conditions:
        if isinstance(condition, dict) and len(condition) == 1:
            [(name, wanted)] = condition.items()
            name = name.lower()
            covered.add(name)
            if values.get(name) != str(wanted):
                raise _policy_failed(f'Policy Condition failed: ["eq", "${name}", "{wanted}"]')
        elif isinstance(condition, list) and len(condition) == 3 and condition[0] == "content-length-range":
            low, high = condition[1], condition[2]
            if not (isinstance(low, int) and isinstance(high, int)) or low < 0 or low > high:
                raise invalid_argument("Invalid Policy: Invalid content-length-range.", "policy")
            size_range = (low, high)
        elif (
            isinstance(condition, list)
            and len(condition) == 3
            and condition[0] in ("eq", "starts-with")
            and isinstance(condition[1], str)
            and condition[1].startswith("$")
        ):
            op, name, wanted = condition[0], condition[1][1:].lower(), str(condition[2])
            covered.add(name)
            value = values.get(name, "")
            if (op == "eq" and value != wanted) or (op == "starts-with" and not value.startswith(wanted)):
                raise _policy_failed(f'Policy Condition failed: ["{op}", "${name}", "{wanted}"]')
        else:
            raise invalid_argument(f"Invalid Policy: Invalid Condition: {json.dumps(condition)}", "policy")
    extra = sorted(
        name
        for name in fields
        if name not in covered and name not in UNCONDITIONED and not name.startswith("x-ignore-")
    )
    if extra:
        raise _policy_failed(f"Extra input fields: {extra[0]}")
    return size_range
