"""The permission a request needs is the one of the operation the router picks for it, whatever
combination of sub-resources its query names."""

from __future__ import annotations

import itertools

import pytest

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
    router,
    tagging_ops,
)
from resilin.storage.actions import action_of
from resilin.storage.errors import S3Error

BUCKET_HANDLERS = {
    bucket_ops.get_location: "s3:GetBucketLocation",
    bucket_ops.get_versioning: "s3:GetBucketVersioning",
    bucket_ops.put_versioning: "s3:PutBucketVersioning",
    multipart_lists.list_uploads: "s3:ListBucketMultipartUploads",
    listing_ops.list_object_versions: "s3:ListBucketVersions",
    listing_ops.list_objects: "s3:ListBucket",
    bucket_ops.head_bucket: "s3:ListBucket",
    bucket_ops.delete_bucket: "s3:DeleteBucket",
    bucket_ops.create_bucket: None,
    bucket_ops.delete_objects: None,
    cors_ops.get_bucket_cors: "s3:GetBucketCORS",
    cors_ops.put_bucket_cors: "s3:PutBucketCORS",
    cors_ops.delete_bucket_cors: "s3:PutBucketCORS",
    tagging_ops.get_bucket_tagging: "s3:GetBucketTagging",
    tagging_ops.put_bucket_tagging: "s3:PutBucketTagging",
    tagging_ops.delete_bucket_tagging: "s3:PutBucketTagging",
    lifecycle_ops.get_bucket_lifecycle: "s3:GetLifecycleConfiguration",
    lifecycle_ops.put_bucket_lifecycle: "s3:PutLifecycleConfiguration",
    lifecycle_ops.delete_bucket_lifecycle: "s3:PutLifecycleConfiguration",
    acl_ops.get_bucket_acl: "s3:GetBucketAcl",
    acl_ops.put_bucket_acl: "s3:PutBucketAcl",
    access_setting_ops.get_bucket_policy: "s3:GetBucketPolicy",
    access_setting_ops.put_bucket_policy: "s3:PutBucketPolicy",
    access_setting_ops.delete_bucket_policy: "s3:DeleteBucketPolicy",
    access_setting_ops.get_bucket_policy_status: "s3:GetBucketPolicyStatus",
    access_setting_ops.get_public_access_block: "s3:GetBucketPublicAccessBlock",
    access_setting_ops.put_public_access_block: "s3:PutBucketPublicAccessBlock",
    access_setting_ops.delete_public_access_block: "s3:PutBucketPublicAccessBlock",
    access_setting_ops.get_ownership_controls: "s3:GetBucketOwnershipControls",
    access_setting_ops.put_ownership_controls: "s3:PutBucketOwnershipControls",
    access_setting_ops.delete_ownership_controls: "s3:PutBucketOwnershipControls",
    object_lock_ops.get_configuration: "s3:GetBucketObjectLockConfiguration",
    object_lock_ops.put_configuration: "s3:PutBucketObjectLockConfiguration",
}
OBJECT_HANDLERS = {
    object_ops.get_object: "s3:GetObject",
    router._head_object: "s3:GetObject",
    object_ops.put_object: "s3:PutObject",
    object_ops.copy_object: "s3:PutObject",
    object_ops.delete_object: "s3:DeleteObject",
    object_attributes.get_object_attributes: "s3:GetObjectAttributes",
    multipart_lists.list_parts: "s3:ListMultipartUploadParts",
    multipart_ops.create_upload: "s3:PutObject",
    multipart_ops.upload_part: "s3:PutObject",
    multipart_ops.upload_part_copy: "s3:PutObject",
    multipart_ops.abort_upload: "s3:AbortMultipartUpload",
    multipart_complete.complete_upload: "s3:PutObject",
    acl_ops.get_object_acl: "s3:GetObjectAcl",
    acl_ops.put_object_acl: "s3:PutObjectAcl",
    object_lock_ops.get_retention: "s3:GetObjectRetention",
    object_lock_ops.put_retention: "s3:PutObjectRetention",
    object_lock_ops.get_legal_hold: "s3:GetObjectLegalHold",
    object_lock_ops.put_legal_hold: "s3:PutObjectLegalHold",
}
VERSION_ACTIONS = {
    "s3:GetObject": "s3:GetObjectVersion", "s3:DeleteObject": "s3:DeleteObjectVersion",
    "s3:GetObjectAcl": "s3:GetObjectVersionAcl", "s3:PutObjectAcl": "s3:PutObjectVersionAcl",
    "s3:GetObjectAttributes": "s3:GetObjectVersionAttributes",
}  # fmt: skip
BUCKET_NAMES = ["location", "versioning", "uploads", "versions", "cors", "tagging", "lifecycle", "acl", "policy",
                "policyStatus", "publicAccessBlock", "ownershipControls", "object-lock", "delete", "list-type"]  # fmt: skip
OBJECT_NAMES = [
    "acl",
    "attributes",
    "uploadId",
    "uploads",
    "partNumber",
    "versionId",
    "retention",
    "legal-hold",
]


def _queries(names: list[str]):
    yield {}
    for size in (1, 2):
        for chosen in itertools.combinations(names, size):
            yield {
                name: ("1" if name == "partNumber" else "null" if name == "versionId" else "")
                for name in chosen
            }


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "POST"])
def test_each_routed_operation_needs_its_own_permission(method):
    checked = 0
    for key, names, handlers in ((None, BUCKET_NAMES, BUCKET_HANDLERS), ("k", OBJECT_NAMES, OBJECT_HANDLERS)):
        for query in _queries(names):
            for copy in (False, True) if key else (False,):
                headers = {"x-amz-copy-source": ["b/src"]} if copy else {}
                try:
                    handler = router.route(method, router.Target("b", key), query, headers)
                except S3Error:
                    continue  # refused before any permission matters
                wanted = handlers[handler]
                if "versionId" in query:  # a version's own permission
                    wanted = VERSION_ACTIONS.get(wanted, wanted)
                assert action_of(method, "b", key, query) == wanted, (method, key, query)
                checked += 1
    assert checked
