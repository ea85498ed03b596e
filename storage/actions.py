"""Which S3 action (the name bucket policies use) a request is, for deciding whether it is allowed.

This names the permission a request needs; :mod:`router` picks the code that serves it.  Requests
checked in parts by their handler (DeleteObjects, per key) or needing no bucket permission
(ListBuckets, CreateBucket) have none here.
"""

from __future__ import annotations

from collections.abc import Mapping

# In the router's order: when a query names several sub-resources, the first one here is the
# operation the router picks, so it is also the one whose permission is needed.
_BUCKET_GET = {
    "location": "s3:GetBucketLocation", "versioning": "s3:GetBucketVersioning",
    "uploads": "s3:ListBucketMultipartUploads", "versions": "s3:ListBucketVersions", "cors": "s3:GetBucketCORS",
    "tagging": "s3:GetBucketTagging", "lifecycle": "s3:GetLifecycleConfiguration",
    "object-lock": "s3:GetBucketObjectLockConfiguration", "acl": "s3:GetBucketAcl",
    "policy": "s3:GetBucketPolicy", "policyStatus": "s3:GetBucketPolicyStatus",
    "publicAccessBlock": "s3:GetBucketPublicAccessBlock", "ownershipControls": "s3:GetBucketOwnershipControls",
}  # fmt: skip
_BUCKET_PUT = {
    "versioning": "s3:PutBucketVersioning", "cors": "s3:PutBucketCORS", "tagging": "s3:PutBucketTagging", "lifecycle": "s3:PutLifecycleConfiguration",
    "object-lock": "s3:PutBucketObjectLockConfiguration", "acl": "s3:PutBucketAcl", "policy": "s3:PutBucketPolicy", "publicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "ownershipControls": "s3:PutBucketOwnershipControls",
}  # fmt: skip
# S3 has no separate permission for most deletions: the PUT's covers them.
_BUCKET_DELETE = {
    "cors": "s3:PutBucketCORS", "tagging": "s3:PutBucketTagging", "lifecycle": "s3:PutLifecycleConfiguration",
    "policy": "s3:DeleteBucketPolicy", "publicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "ownershipControls": "s3:PutBucketOwnershipControls",
}  # fmt: skip


def _bucket_action(method: str, query: Mapping[str, str]) -> str | None:
    table = {"GET": _BUCKET_GET, "PUT": _BUCKET_PUT, "DELETE": _BUCKET_DELETE}.get(method, {})
    for name, action in table.items():
        if name in query:
            return action
    return {"GET": "s3:ListBucket", "HEAD": "s3:ListBucket", "DELETE": "s3:DeleteBucket"}.get(method)


_OBJECT_TAGGING = {
    "GET": "s3:GetObjectTagging",
    "PUT": "s3:PutObjectTagging",
    "DELETE": "s3:DeleteObjectTagging",
}


def _object_action(method: str, query: Mapping[str, str]) -> str | None:
    if method == "HEAD":
        return "s3:GetObject"
    if "acl" in query and method in ("GET", "PUT"):  # the router's order: acl, tagging, retention, ...
        return "s3:GetObjectAcl" if method == "GET" else "s3:PutObjectAcl"
    if "tagging" in query and method in _OBJECT_TAGGING:
        return _OBJECT_TAGGING[method]
    if "retention" in query and method in ("GET", "PUT"):
        return "s3:GetObjectRetention" if method == "GET" else "s3:PutObjectRetention"
    if "legal-hold" in query and method in ("GET", "PUT"):
        return "s3:GetObjectLegalHold" if method == "GET" else "s3:PutObjectLegalHold"
    if method == "GET":
        if "acl" in query:
            return "s3:GetObjectAcl"
        if "attributes" in query:
            return "s3:GetObjectAttributes"
        if "torrent" in query:
            return "s3:GetObjectTorrent"
        if "uploadId" in query:
            return "s3:ListMultipartUploadParts"
        return "s3:GetObject"
    if method == "PUT":
        return "s3:PutObjectAcl" if "acl" in query else "s3:PutObject"
    if method == "DELETE":
        return "s3:AbortMultipartUpload" if "uploadId" in query else "s3:DeleteObject"
    if method == "POST" and ("uploads" in query or "uploadId" in query):
        return "s3:PutObject"
    return None


# A request naming an object version (?versionId=) needs the version's own permission.
_OF_A_VERSION = {
    "s3:GetObject": "s3:GetObjectVersion", "s3:DeleteObject": "s3:DeleteObjectVersion",
    "s3:GetObjectAcl": "s3:GetObjectVersionAcl", "s3:PutObjectAcl": "s3:PutObjectVersionAcl",
    "s3:GetObjectTagging": "s3:GetObjectVersionTagging", "s3:PutObjectTagging": "s3:PutObjectVersionTagging",
    "s3:DeleteObjectTagging": "s3:DeleteObjectVersionTagging",
    "s3:GetObjectAttributes": "s3:GetObjectVersionAttributes",
    "s3:GetObjectTorrent": "s3:GetObjectVersionTorrent",
}  # fmt: skip


def action_of(method: str, bucket: str | None, key: str | None, query: Mapping[str, str]) -> str | None:
    """The action a request on ``bucket``/``key`` needs allowed, or None (see the module's docstring)."""
    if bucket is None:
        return None
    if key is None:
        return None if method in ("PUT", "POST") and not query else _bucket_action(method, query)
    action = _object_action(method, query)
    if action is not None and "versionId" in query:
        return _OF_A_VERSION.get(action, action)
    return action
