"""Which operation a request is: bucket and key from the URL, then method and sub-resource."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote

from resilin.storage import (
    access_setting_ops,
    acl_ops,
    bucket_ops,
    cors_ops,
    lifecycle_ops,
    listing_ops,
    multipart_complete,
    multipart_lists,
    multipart_ops,
    object_attributes,
    object_lock_ops,
    object_ops,
    object_tagging_ops,
    tagging_ops,
    torrent,
)
from resilin.storage.context import Call, Response
from resilin.storage.errors import S3Error, method_not_allowed, not_implemented

Handler = Callable[[Call], Awaitable[Response]]

# Sub-resources S3 has that this server does not implement: answered 501, never
# mistaken for a plain GET/PUT of the bucket or object.
_UNSUPPORTED_BUCKET = {
    "accelerate", "analytics", "encryption", "intelligent-tiering", "inventory", "logging",
    "metrics", "notification", "replication", "requestPayment", "website",
}  # fmt: skip
_UNSUPPORTED_OBJECT = {"restore", "select"}


@dataclass(frozen=True)
class Target:
    bucket: str | None
    key: str | None


def _decode(raw: str) -> str:
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI", "Couldn't parse the specified URI.", 400) from None


def parse_target(raw_path: str, host: str, virtual_host_base: str | None) -> Target:
    """Path-style ``/bucket/key``, or ``bucket.<base>/key`` when a virtual-host base is configured."""
    if not raw_path.startswith("/"):
        raise S3Error("InvalidURI", "Couldn't parse the specified URI.", 400)
    hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    hostname = hostname.lower()
    if virtual_host_base and hostname.endswith("." + virtual_host_base):
        bucket = hostname[: -len(virtual_host_base) - 1]
        key = _decode(raw_path[1:])
        return Target(bucket, key or None)
    bucket_raw, slash, key_raw = raw_path[1:].partition("/")
    if not bucket_raw:
        return Target(None, None)
    return Target(_decode(bucket_raw), _decode(key_raw) or None)


def route(method: str, target: Target, query: dict[str, str], headers: dict[str, list[str]]) -> Handler:
    if target.bucket is None:
        if method == "GET":
            return bucket_ops.list_buckets
        raise method_not_allowed(method, "SERVICE")
    if target.key is None:
        return _bucket_route(method, query)
    return _object_route(method, query, "x-amz-copy-source" in headers)


# Who may do what: ACLs, the bucket policy, Block Public Access, object ownership.
_ACCESS_GET: dict[str, Handler] = {
    "acl": acl_ops.get_bucket_acl,
    "policy": access_setting_ops.get_bucket_policy,
    "policyStatus": access_setting_ops.get_bucket_policy_status,
    "publicAccessBlock": access_setting_ops.get_public_access_block,
    "ownershipControls": access_setting_ops.get_ownership_controls,
}
_ACCESS_PUT: dict[str, Handler] = {
    "acl": acl_ops.put_bucket_acl,
    "policy": access_setting_ops.put_bucket_policy,
    "publicAccessBlock": access_setting_ops.put_public_access_block,
    "ownershipControls": access_setting_ops.put_ownership_controls,
}
_ACCESS_DELETE: dict[str, Handler] = {
    "policy": access_setting_ops.delete_bucket_policy,
    "publicAccessBlock": access_setting_ops.delete_public_access_block,
    "ownershipControls": access_setting_ops.delete_ownership_controls,
}

# A bucket's sub-resources, by method: the first of these the query names picks the operation.
_BUCKET_SUB_RESOURCES: dict[str, dict[str, Handler]] = {
    "GET": {
        "location": bucket_ops.get_location,
        "versioning": bucket_ops.get_versioning,
        "uploads": multipart_lists.list_uploads,
        "versions": listing_ops.list_object_versions,
        "cors": cors_ops.get_bucket_cors,
        "tagging": tagging_ops.get_bucket_tagging,
        "lifecycle": lifecycle_ops.get_bucket_lifecycle,
        "object-lock": object_lock_ops.get_configuration,
        **_ACCESS_GET,
    },
    "PUT": {
        "versioning": bucket_ops.put_versioning,
        "cors": cors_ops.put_bucket_cors,
        "tagging": tagging_ops.put_bucket_tagging,
        "lifecycle": lifecycle_ops.put_bucket_lifecycle,
        "object-lock": object_lock_ops.put_configuration,
        **_ACCESS_PUT,
    },
    "DELETE": {
        "cors": cors_ops.delete_bucket_cors,
        "tagging": tagging_ops.delete_bucket_tagging,
        "lifecycle": lifecycle_ops.delete_bucket_lifecycle,
        **_ACCESS_DELETE,
    },
    "POST": {"delete": bucket_ops.delete_objects},
}
# ... and the operation on the bucket itself when the query names none.
_BUCKET_ITSELF: dict[str, Handler] = {
    "GET": listing_ops.list_objects,
    "HEAD": bucket_ops.head_bucket,
    "PUT": bucket_ops.create_bucket,
    "DELETE": bucket_ops.delete_bucket,
}


def _bucket_route(method: str, query: dict[str, str]) -> Handler:
    unsupported = _UNSUPPORTED_BUCKET.intersection(query)
    if unsupported:
        raise not_implemented(f"The bucket sub-resource ?{sorted(unsupported)[0]}")
    for name, handler in _BUCKET_SUB_RESOURCES.get(method, {}).items():
        if name in query:
            return handler
    itself = _BUCKET_ITSELF.get(method)
    if itself is None:
        raise method_not_allowed(method, "BUCKET")
    return itself


_OBJECT_TAGGING: dict[str, Handler] = {
    "GET": object_tagging_ops.get_object_tagging,
    "PUT": object_tagging_ops.put_object_tagging,
    "DELETE": object_tagging_ops.delete_object_tagging,
}


def _object_route(method: str, query: dict[str, str], copy: bool) -> Handler:
    unsupported = _UNSUPPORTED_OBJECT.intersection(query)
    if unsupported:
        raise not_implemented(f"The object sub-resource ?{sorted(unsupported)[0]}")
    if "torrent" in query:
        if method != "GET":
            raise method_not_allowed(method, "OBJECT")
        return torrent.get_object_torrent
    if "acl" in query and method in ("GET", "PUT"):
        return acl_ops.get_object_acl if method == "GET" else acl_ops.put_object_acl
    if "tagging" in query and method in _OBJECT_TAGGING:
        return _OBJECT_TAGGING[method]
    if "retention" in query and method in ("GET", "PUT"):
        return object_lock_ops.get_retention if method == "GET" else object_lock_ops.put_retention
    if "legal-hold" in query and method in ("GET", "PUT"):
        return object_lock_ops.get_legal_hold if method == "GET" else object_lock_ops.put_legal_hold
    if method == "GET":
        if "attributes" in query:
            return object_attributes.get_object_attributes
        return multipart_lists.list_parts if "uploadId" in query else object_ops.get_object
    if method == "HEAD":
        return _head_object
    if method == "PUT":
        if "uploadId" in query or "partNumber" in query:
            return multipart_ops.upload_part_copy if copy else multipart_ops.upload_part
        return object_ops.copy_object if copy else object_ops.put_object
    if method == "DELETE":
        return multipart_ops.abort_upload if "uploadId" in query else object_ops.delete_object
    if method == "POST":
        if "uploads" in query:
            return multipart_ops.create_upload
        if "uploadId" in query:
            return multipart_complete.complete_upload
    raise method_not_allowed(method, "OBJECT")


async def _head_object(call: Call) -> Response:
    return await object_ops.get_object(call, head=True)
