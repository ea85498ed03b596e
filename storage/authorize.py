"""Whether a request may do what it asks: the bucket policy, the ACLs and Block Public Access.

The order is S3's: an explicit Deny in the bucket policy refuses (even the bucket's owner, but
never its own management of the policy, so an owner cannot lock itself out); the bucket's owner
may do anything to the bucket and to the objects it owns; otherwise an Allow in the policy or a
grant in the bucket's or object's ACL is needed.  Block Public Access can set aside public grants
(IgnorePublicAcls) and a public policy's Allows for anyone outside the owner's account
(RestrictPublicBuckets); with object ownership BucketOwnerEnforced no ACL counts.

An unsigned request is the anonymous principal (account ``""``): it gets what is granted to
everyone and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from resilin.storage import acl, actions, bucket_policy, ownership, public_access
from resilin.storage.errors import access_denied
from resilin.storage.owners import canonical_user_id

if TYPE_CHECKING:
    from resilin.storage.context import Call
    from resilin.storage.objfile import ObjectMeta
    from resilin.storage.store import BucketInfo, Store

ANONYMOUS = ""  # the account of an unsigned request

# Actions an ACL grant can allow: (whose ACL: "bucket" or "object", permission needed).
ACL_PERMISSIONS = {
    "s3:ListBucket": ("bucket", "READ"),
    "s3:ListBucketVersions": ("bucket", "READ"),
    "s3:ListBucketMultipartUploads": ("bucket", "READ"),
    "s3:PutObject": ("bucket", "WRITE"),
    "s3:DeleteObject": ("bucket", "WRITE"),
    "s3:DeleteObjectVersion": ("bucket", "WRITE"),
    "s3:AbortMultipartUpload": ("bucket", "WRITE"),
    "s3:ListMultipartUploadParts": ("bucket", "WRITE"),
    "s3:GetBucketAcl": ("bucket", "READ_ACP"),
    "s3:PutBucketAcl": ("bucket", "WRITE_ACP"),
    "s3:GetObject": ("object", "READ"),
    "s3:GetObjectVersion": ("object", "READ"),
    "s3:GetObjectAttributes": ("object", "READ"),
    "s3:GetObjectAcl": ("object", "READ_ACP"),
    "s3:PutObjectAcl": ("object", "WRITE_ACP"),
}
# The bucket owner's own management of its policy: never refused by that policy.
POLICY_ACTIONS = frozenset({"s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"})


@dataclass(frozen=True)
class Request:
    """Who asks, and what of the request a policy's conditions may look at."""

    account: str  # ANONYMOUS when unsigned
    query: Mapping[str, str]
    headers: Mapping[str, Sequence[str]]
    client_ip: str
    auth_type: str  # "REST-HEADER", "REST-QUERY-STRING" or "" (anonymous)

    def context(self, existing_tags: Mapping[str, str] | None = None) -> dict[str, list[str]]:
        """Condition keys (lower-case) and their values; keys the request lacks are absent.
        ``existing_tags``: the tags of the object the request is about, if it exists."""
        values: dict[str, list[str]] = {"aws:sourceip": [self.client_ip], "aws:securetransport": ["false"]}
        values["aws:principaltype"] = ["Account" if self.account else "Anonymous"]
        if self.account:
            values["aws:principalaccount"] = [self.account]
            values["s3:signatureversion"] = ["AWS4-HMAC-SHA256"]
            values["s3:authtype"] = [self.auth_type]
        for header, key in (("referer", "aws:referer"), ("user-agent", "aws:useragent")):
            if self.headers.get(header):
                values[key] = list(self.headers[header])
        for name, found in self.headers.items():
            if name.startswith("x-amz-") and f"s3:{name}" in bucket_policy.CONDITION_KEYS:
                values[f"s3:{name}"] = list(found)
        for name in ("prefix", "delimiter", "max-keys"):
            if name in self.query:
                values[f"s3:{name}"] = [self.query[name]]
        if "versionId" in self.query:
            values["s3:versionid"] = [self.query["versionId"]]
        for name, value in (existing_tags or {}).items():
            values[f"s3:existingobjecttag/{name.lower()}"] = [value]
        tagging = self.headers.get("x-amz-tagging")
        if tagging:
            requested = parse_qsl(tagging[0], keep_blank_values=True)
            values["s3:requestobjecttagkeys"] = [name for name, _ in requested]
            for name, value in requested:
                values[f"s3:requestobjecttag/{name.lower()}"] = [value]
        return values


def _grants(the_acl: acl.Acl, account: str, permission: str, ignore_public: bool) -> bool:
    user_id = canonical_user_id(account) if account else None
    for grant in the_acl.grants:
        if grant.permission not in (permission, "FULL_CONTROL"):
            continue
        if grant.group == acl.ALL_USERS and not ignore_public:
            return True
        if grant.group == acl.AUTHENTICATED_USERS and account and not ignore_public:
            return True
        if user_id is not None and grant.user_id == user_id:
            return True
    return False


def bucket_acl(store: Store, info: BucketInfo) -> acl.Acl:
    document = store.settings.get(info.name, "acl")
    return acl.Acl.from_json(document) if document else acl.private(info.owner)


def object_acl(meta: ObjectMeta, info: BucketInfo) -> acl.Acl:
    """An object's ACL; objects from before ACLs are private to the bucket's owner."""
    return acl.Acl.from_json(meta.acl) if meta.acl else acl.private(info.owner)


def policy_of(store: Store, bucket: str) -> bucket_policy.Policy | None:
    document = store.settings.get(bucket, "policy")
    return bucket_policy.parse(document["text"], bucket) if document else None


def allowed(store: Store, request: Request, action: str, bucket: str, key: str | None = None) -> bool:
    """Whether ``request`` may do ``action`` on the bucket (or its object ``key``); NoSuchBucket when
    there is no such bucket."""
    info = store.require_bucket(bucket)
    account = request.account
    is_owner = account == info.owner
    policy = policy_of(store, bucket)
    verdict = None
    if policy is not None:
        restricted = (
            policy.public
            and not is_owner
            and public_access.of_bucket(store.settings, bucket).restrict_public_buckets
        )
        resource = f"arn:aws:s3:::{bucket}" + (f"/{key}" if key is not None else "")
        existing = store.head_object(bucket, key) if key is not None else None
        context = request.context(existing.tags if existing is not None else None)
        verdict = policy.evaluate(account or None, action, resource, context, allows_ignored=restricted)
    if verdict == "deny" and not (is_owner and action in POLICY_ACTIONS):
        return False
    acls_apply = ownership.of_bucket(store.settings, bucket) != ownership.ENFORCED
    level, permission = ACL_PERMISSIONS.get(action, ("bucket", ""))
    meta = store.head_object(bucket, key) if level == "object" and key is not None else None
    if is_owner and (meta is None or not acls_apply or meta.acl.get("owner", account) == account):
        return True
    if verdict == "allow":
        return True
    if level == "object" and key is not None and meta is None:
        # No such object: say so (404) to whoever may list it (its key as the listing's prefix),
        # which tells them nothing they could not learn; 403 to others, as S3.
        return allowed(store, replace(request, query={"prefix": key}), "s3:ListBucket", bucket)
    if not permission or not acls_apply:
        return False
    target = object_acl(meta, info) if meta is not None else bucket_acl(store, info)
    if target.owner == account and permission in ("READ_ACP", "WRITE_ACP"):
        return True  # an owner may always read and change its ACL
    ignore_public = public_access.of_bucket(store.settings, bucket).ignore_public_acls
    return _grants(target, account, permission, ignore_public)


def decide(store: Store, request: Request, method: str, bucket: str | None, key: str | None) -> bool:
    """AccessDenied unless the request may do what it asks.  True: it was allowed on its bucket;
    False: its handler decides (DeleteObjects, key by key) or it concerns no bucket of another's
    (CreateBucket, ListBuckets), which an unsigned request may not do."""
    action = actions.action_of(method, bucket, key, request.query)
    if action is None or bucket is None:
        if not request.account:
            raise access_denied()
        return False
    if not allowed(store, request, action, bucket, key):
        raise access_denied()
    return True


def request_of(
    account: str,
    presigned: bool,
    query: Mapping[str, str],
    headers: Mapping[str, Sequence[str]],
    client: object,
) -> Request:
    """The Request of an authenticated (or anonymous) HTTP request from ``client`` (a Twisted address)."""
    auth_type = "" if not account else "REST-QUERY-STRING" if presigned else "REST-HEADER"
    return Request(account, query, headers, str(getattr(client, "host", "")), auth_type)


def request_of_call(call: Call) -> Request:
    return request_of(
        call.account, call.verified.presigned, call.query, call.headers, call.request.getClientAddress()
    )


def require(call: Call, action: str, bucket: str, key: str | None = None) -> None:
    """AccessDenied unless the call may do ``action`` (NoSuchBucket when the bucket does not exist)."""
    if not allowed(call.store, request_of_call(call), action, bucket, key):
        raise access_denied()
