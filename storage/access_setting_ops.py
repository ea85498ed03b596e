"""A bucket's access settings besides its ACL: Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus,
Put/Get/DeletePublicAccessBlock and Put/Get/DeleteBucketOwnershipControls."""

from __future__ import annotations

from resilin.storage import authorize, bucket_policy, ownership, public_access, s3xml
from resilin.storage.bodies import small_body
from resilin.storage.bucket_setting_ops import deleting, get_setting
from resilin.storage.context import Call, Response
from resilin.storage.errors import S3Error, access_denied


def _no_policy(bucket: str) -> S3Error:
    return S3Error(
        "NoSuchBucketPolicy", "The bucket policy does not exist", 404, extra={"BucketName": bucket}
    )


async def put_bucket_policy(call: Call) -> Response:
    info = call.owned_bucket()
    try:
        text = small_body(call).decode()
    except UnicodeDecodeError:
        raise bucket_policy.malformed("This policy contains invalid Json") from None
    policy = bucket_policy.parse(text, info.name)
    if policy.public and public_access.of_bucket(call.store.settings, info.name).block_public_policy:
        raise access_denied()
    call.store.settings.put(info.name, "policy", {"text": text})
    return Response(204)


async def get_bucket_policy(call: Call) -> Response:
    document = get_setting(call, "policy", _no_policy)
    return Response(body=document["text"].encode(), headers={"Content-Type": "application/json"})


delete_bucket_policy = deleting("policy")


async def get_bucket_policy_status(call: Call) -> Response:
    info = call.owned_bucket()
    policy = authorize.policy_of(call.store, info.name)
    doc = s3xml.root("PolicyStatus")
    s3xml.sub(doc, "IsPublic", "true" if policy is not None and policy.public else "false")
    return s3xml.response(doc)


async def put_public_access_block(call: Call) -> Response:
    info = call.owned_bucket()
    blocks = public_access.from_xml(small_body(call))
    call.store.settings.put(info.name, public_access.SETTING, blocks.to_json())
    return Response()


async def get_public_access_block(call: Call) -> Response:
    get_setting(call, public_access.SETTING, public_access.no_configuration)
    return s3xml.response(
        public_access.to_xml(public_access.of_bucket(call.store.settings, call.bucket or ""))
    )


delete_public_access_block = deleting(public_access.SETTING)


async def put_ownership_controls(call: Call) -> Response:
    info = call.owned_bucket()
    value = ownership.from_xml(small_body(call))
    if value == ownership.ENFORCED and len(authorize.bucket_acl(call.store, info).grants) > 1:
        # Disabling ACLs would silently take away what the bucket's ACL grants.
        raise S3Error(
            "InvalidBucketAclWithObjectOwnership",
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
            400,
        )
    call.store.settings.put(info.name, ownership.SETTING, {"ObjectOwnership": value})
    return Response()


async def get_ownership_controls(call: Call) -> Response:
    document = get_setting(call, ownership.SETTING, ownership.not_found)
    return s3xml.response(ownership.to_xml(document["ObjectOwnership"]))


delete_ownership_controls = deleting(ownership.SETTING)
