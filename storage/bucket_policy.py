"""Bucket policies: the JSON document checked when it is put, and what it says of one request.

A policy is parsed once into :class:`Policy` (parsing validates it: every field, action, resource
and condition this module does not understand is refused with MalformedPolicy rather than
ignored).  :meth:`Policy.evaluate` answers "deny", "allow" or None (the policy says nothing) for
a principal, an action, a resource ARN and the request's condition values.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from resilin.storage.errors import S3Error

MAX_POLICY_BYTES = 20 * 1024
VERSIONS = ("2012-10-17", "2008-10-17")

# The S3 actions a bucket policy may name, by the resource they apply to.
OBJECT_ACTIONS = frozenset(
    "s3:" + name
    for name in (
        "GetObject GetObjectVersion PutObject DeleteObject DeleteObjectVersion GetObjectAcl "
        "GetObjectVersionAcl PutObjectAcl PutObjectVersionAcl GetObjectTagging GetObjectVersionTagging "
        "PutObjectTagging PutObjectVersionTagging DeleteObjectTagging DeleteObjectVersionTagging "
        "AbortMultipartUpload ListMultipartUploadParts GetObjectAttributes GetObjectVersionAttributes "
        "RestoreObject GetObjectRetention PutObjectRetention GetObjectLegalHold PutObjectLegalHold "
        "BypassGovernanceRetention GetObjectTorrent GetObjectVersionTorrent ReplicateObject "
        "ReplicateDelete ReplicateTags GetObjectVersionForReplication"
    ).split()
)
BUCKET_ACTIONS = frozenset(
    "s3:" + name
    for name in (
        "ListBucket ListBucketVersions ListBucketMultipartUploads GetBucketLocation GetBucketAcl "
        "PutBucketAcl GetBucketPolicy PutBucketPolicy DeleteBucketPolicy GetBucketPolicyStatus "
        "GetBucketPublicAccessBlock PutBucketPublicAccessBlock GetBucketOwnershipControls "
        "PutBucketOwnershipControls GetBucketCORS PutBucketCORS GetBucketTagging PutBucketTagging "
        "GetLifecycleConfiguration PutLifecycleConfiguration GetBucketVersioning PutBucketVersioning "
        "DeleteBucket GetBucketLogging PutBucketLogging GetBucketNotification PutBucketNotification "
        "GetBucketWebsite PutBucketWebsite DeleteBucketWebsite GetEncryptionConfiguration "
        "PutEncryptionConfiguration GetBucketObjectLockConfiguration PutBucketObjectLockConfiguration "
        "GetReplicationConfiguration PutReplicationConfiguration GetBucketRequestPayment "
        "PutBucketRequestPayment GetAccelerateConfiguration PutAccelerateConfiguration"
    ).split()
)
ACTIONS = OBJECT_ACTIONS | BUCKET_ACTIONS
_ACTIONS_LOWER = {a.lower(): a for a in ACTIONS}

# Condition keys whose values a request here can supply (lower-case: keys are case-insensitive).
CONDITION_KEYS = frozenset(
    {
        "aws:sourceip", "aws:securetransport", "aws:referer", "aws:useragent", "aws:principalaccount",
        "aws:principaltype", "aws:username", "s3:prefix", "s3:delimiter", "s3:max-keys", "s3:x-amz-acl",
        "s3:x-amz-content-sha256", "s3:x-amz-storage-class", "s3:x-amz-server-side-encryption",
        "s3:x-amz-copy-source", "s3:x-amz-metadata-directive", "s3:x-amz-grant-read",
        "s3:x-amz-grant-write", "s3:x-amz-grant-read-acp", "s3:x-amz-grant-write-acp",
        "s3:x-amz-grant-full-control", "s3:signatureversion", "s3:authtype", "s3:versionid",
        "s3:requestobjecttagkeys",
    }
)  # fmt: skip
# Per-tag keys: s3:ExistingObjectTag/<tag> (the object's tags), s3:RequestObjectTag/<tag> (x-amz-tagging).
TAG_KEY_PREFIXES = ("s3:existingobjecttag/", "s3:requestobjecttag/")
# Keys that, set to fixed values, keep a policy granting to everyone from counting as public.
_RESTRICTING_KEYS = frozenset({"aws:sourceip", "aws:principalaccount", "aws:username"})


def malformed(message: str) -> S3Error:
    return S3Error("MalformedPolicy", message, 400)


# -- condition operators ------------------------------------------------------------------------


def _like(pattern: str, value: str) -> bool:
    return _glob(pattern).fullmatch(value) is not None


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str) -> re.Pattern[str]:
    """``*`` any run of characters, ``?`` any one (case-sensitive, unlike fnmatch on some systems)."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.S)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def check(expected: str, actual: str) -> bool:
        a, e = _number(actual), _number(expected)
        return a is not None and e is not None and compare(a, e)

    return check


def _in_network(expected: str, actual: str) -> bool:
    try:
        return ipaddress.ip_address(actual) in ipaddress.ip_network(expected, strict=False)
    except ValueError:
        return False


# name -> (test of one expected value against one request value, negated)
_OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "stringequals": (lambda e, a: e == a, False),
    "stringnotequals": (lambda e, a: e == a, True),
    "stringequalsignorecase": (lambda e, a: e.lower() == a.lower(), False),
    "stringnotequalsignorecase": (lambda e, a: e.lower() == a.lower(), True),
    "stringlike": (_like, False),
    "stringnotlike": (_like, True),
    "numericequals": (_numeric(lambda a, e: a == e), False),
    "numericnotequals": (_numeric(lambda a, e: a == e), True),
    "numericlessthan": (_numeric(lambda a, e: a < e), False),
    "numericlessthanequals": (_numeric(lambda a, e: a <= e), False),
    "numericgreaterthan": (_numeric(lambda a, e: a > e), False),
    "numericgreaterthanequals": (_numeric(lambda a, e: a >= e), False),
    "ipaddress": (_in_network, False),
    "notipaddress": (_in_network, True),
    "bool": (lambda e, a: e.lower() == a.lower(), False),
}


@dataclass(frozen=True)
class Condition:
    operator: str  # lower-case, without IfExists
    if_exists: bool
    key: str  # lower-case
    values: tuple[str, ...]

    def holds(self, context: Mapping[str, Sequence[str]]) -> bool:
        actual = context.get(self.key)
        if self.operator == "null":
            return (actual is None) == (self.values[0].lower() == "true")
        test, negated = _OPERATORS[self.operator]
        if actual is None:
            # A key the request lacks matches nothing: negated operators hold, others do not.
            return self.if_exists or negated
        matched = any(test(e, a) for e in self.values for a in actual)
        return not matched if negated else matched


def _parse_conditions(block: Any) -> tuple[Condition, ...]:
    if not isinstance(block, dict):
        raise malformed("Condition must be an object of operators")
    found = []
    for operator, entries in block.items():
        name = str(operator).lower()
        if ":" in name:  # ForAnyValue:/ForAllValues: set operators
            raise malformed(f"Unsupported condition set operator {operator}")
        if_exists = name.endswith("ifexists")
        base = name[: -len("ifexists")] if if_exists else name
        if base not in _OPERATORS and base != "null":
            raise malformed(f"Unknown condition operator {operator}")
        if not isinstance(entries, dict) or not entries:
            raise malformed(f"Condition operator {operator} must map keys to values")
        for key, raw in entries.items():
            values = raw if isinstance(raw, list) else [raw]
            if not values or not all(isinstance(v, (str, int, float, bool)) for v in values):
                raise malformed(f"Invalid value for condition key {key}")
            texts = tuple(str(v).lower() if isinstance(v, bool) else str(v) for v in values)
            lowered = str(key).lower()
            if lowered not in CONDITION_KEYS and not lowered.startswith(TAG_KEY_PREFIXES):
                raise malformed(f"Policy has an invalid condition key {key}")
            if base == "null" and texts[0].lower() not in ("true", "false"):
                raise malformed("Null takes true or false")
            if base in ("ipaddress", "notipaddress"):
                for value in texts:
                    try:
                        ipaddress.ip_network(value, strict=False)
                    except ValueError:
                        raise malformed(f"Invalid IP address {value}") from None
            found.append(Condition(base, if_exists, lowered, texts))
    return tuple(found)


# -- statements ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    effect: str  # "Allow" or "Deny"
    principals: tuple[str, ...]  # account ids, or "*"
    actions: tuple[str, ...]  # patterns (lower-case)
    not_action: bool
    resources: tuple[str, ...]  # ARN patterns
    conditions: tuple[Condition, ...]

    def applies(
        self, account: str | None, action: str, resource: str, context: Mapping[str, Sequence[str]]
    ) -> bool:
        if "*" not in self.principals and (account is None or account not in self.principals):
            return False
        named = any(_like(p, action.lower()) for p in self.actions)
        if named == self.not_action:
            return False
        if not any(_like(r, resource) for r in self.resources):
            return False
        return all(c.holds(context) for c in self.conditions)

    @property
    def public(self) -> bool:
        """Allows everyone, with no condition fixing who or where from."""
        return (
            self.effect == "Allow"
            and "*" in self.principals
            and not any(c.key in _RESTRICTING_KEYS and not c.if_exists for c in self.conditions)
        )


def _strings(value: Any, what: str) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v for v in values):
        raise malformed(f"Invalid {what}")
    return values


_ACCOUNT_ARN = re.compile(r"^arn:aws:iam::([0-9]{12}):root$")


def _principals(value: Any) -> tuple[str, ...]:
    if value == "*":
        return ("*",)
    if not isinstance(value, dict) or set(value) != {"AWS"}:
        raise malformed("Invalid principal in policy")
    found = []
    for text in _strings(value["AWS"], "principal"):
        match = _ACCOUNT_ARN.match(text)
        if text == "*":
            found.append("*")
        elif re.fullmatch(r"[0-9]{12}", text):
            found.append(text)
        elif match:
            found.append(match.group(1))
        else:
            raise malformed("Invalid principal in policy")
    return tuple(found)


def _actions(value: Any) -> tuple[str, ...]:
    patterns = []
    for text in _strings(value, "action"):
        lowered = text.lower()
        if lowered == "*":
            lowered = "s3:*"
        if not lowered.startswith("s3:"):
            raise malformed("Policy has invalid action")
        if "*" in lowered or "?" in lowered:
            if not any(_like(lowered, a) for a in _ACTIONS_LOWER):
                raise malformed("Policy has invalid action")
        elif lowered not in _ACTIONS_LOWER:
            raise malformed("Policy has invalid action")
        patterns.append(lowered)
    return tuple(patterns)


def _resources(value: Any, bucket: str) -> tuple[str, ...]:
    found = []
    for text in _strings(value, "resource"):
        if text == "*":
            text = "arn:aws:s3:::*"
        if not text.startswith("arn:aws:s3:::"):
            raise malformed("Policy has invalid resource")
        bucket_part = text[len("arn:aws:s3:::") :].partition("/")[0]
        if not fnmatch.fnmatchcase(bucket, bucket_part.replace("[", "[[]")):
            raise malformed("Policy has invalid resource")
        found.append(text)
    return tuple(found)


def _check_actions_apply(actions: tuple[str, ...], not_action: bool, resources: tuple[str, ...]) -> None:
    """Every action named must apply to one of the statement's resources (S3 checks this)."""
    if not_action:
        return
    has_object = any("/" in r or r.endswith("*") for r in resources)
    has_bucket = any("/" not in r for r in resources)
    for pattern in actions:
        matched = [a for a in _ACTIONS_LOWER if _like(pattern, a)]
        objects = any(_ACTIONS_LOWER[a] in OBJECT_ACTIONS for a in matched)
        buckets = any(_ACTIONS_LOWER[a] in BUCKET_ACTIONS for a in matched)
        if not ((objects and has_object) or (buckets and has_bucket)):
            raise malformed("Action does not apply to any resource(s) in statement")


_STATEMENT_FIELDS = {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource",
                     "NotResource", "Condition"}  # fmt: skip


def _statement(raw: Any, bucket: str) -> Statement:
    if not isinstance(raw, dict):
        raise malformed("Statement must be an object")
    unknown = set(raw) - _STATEMENT_FIELDS
    if unknown:
        raise malformed(f"Unknown field {sorted(unknown)[0]}")
    if raw.get("Effect") not in ("Allow", "Deny"):
        raise malformed("Invalid effect")
    if "NotPrincipal" in raw and raw["Effect"] == "Allow":
        raise malformed("NotPrincipal cannot be used with Allow")
    if "NotPrincipal" in raw or "NotResource" in raw:
        raise S3Error(
            "NotImplemented", "NotPrincipal and NotResource are not implemented by this server", 501
        )
    if "Principal" not in raw:
        raise malformed("Missing required field Principal")
    if ("Action" in raw) == ("NotAction" in raw):
        raise malformed("Missing required field Action")
    if "Resource" not in raw:
        raise malformed("Missing required field Resource")
    not_action = "NotAction" in raw
    actions = _actions(raw["NotAction" if not_action else "Action"])
    resources = _resources(raw["Resource"], bucket)
    _check_actions_apply(actions, not_action, resources)
    if "Sid" in raw and not isinstance(raw["Sid"], str):
        raise malformed("Invalid Sid")
    conditions = _parse_conditions(raw["Condition"]) if "Condition" in raw else ()
    return Statement(raw["Effect"], _principals(raw["Principal"]), actions, not_action, resources, conditions)


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...]

    def evaluate(
        self, account: str | None, action: str, resource: str, context: Mapping[str, Sequence[str]],
        *, allows_ignored: bool = False,
    ) -> str | None:  # fmt: skip
        """ "deny" (an explicit Deny applies), "allow", or None; ``allows_ignored``: only Deny
        statements count (a public policy under Block Public Access's RestrictPublicBuckets)."""
        verdict = None
        for statement in self.statements:
            if not statement.applies(account, action, resource, context):
                continue
            if statement.effect == "Deny":
                return "deny"
            if not allows_ignored:
                verdict = "allow"
        return verdict

    @property
    def public(self) -> bool:
        return any(s.public for s in self.statements)


def parse(text: str, bucket: str) -> Policy:
    """Check a policy document for ``bucket``; MalformedPolicy (400) says what is wrong."""
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise malformed("Policies must be less than 20 KB")
    return _parse_cached(text, bucket)


@functools.lru_cache(maxsize=256)
def _parse_cached(text: str, bucket: str) -> Policy:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested past what json.loads can take
        raise malformed("This policy contains invalid Json") from None
    if not isinstance(doc, dict):
        raise malformed("This policy contains invalid Json")
    unknown = set(doc) - {"Version", "Id", "Statement"}
    if unknown:
        raise malformed(f"Unknown field {sorted(unknown)[0]}")
    if "Version" in doc and doc["Version"] not in VERSIONS:
        raise malformed("The policy must contain a valid version string")
    raw = doc.get("Statement")
    statements = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else None
    if not statements:
        raise malformed("Missing required field Statement")
    return Policy(tuple(_statement(s, bucket) for s in statements))
