"""ACLs in requests: the ACL a new bucket or object gets, and Get/Put of bucket and object ACLs.

Whether the caller may do the operation at all was decided before the handler runs (see
:mod:`authorize`); here the ACL asked for is checked against the bucket's Block Public Access
(BlockPublicAcls: 403) and object ownership (BucketOwnerEnforced: ACLs refused).
"""

from __future__ import annotations

from resilin.storage import acl, authorize, ownership, public_access, s3xml, versioning
from resilin.storage.bodies import small_body
from resilin.storage.context import Call, Response
from resilin.storage.errors import S3Error, access_denied
from resilin.storage.names import check_key
from resilin.storage.objfile import ObjectMeta
from resilin.storage.store import BucketInfo
from resilin.storage.writes import rewrite_metadata

# ACLs a bucket with ACLs disabled (BucketOwnerEnforced) still accepts, as S3 does: on a new
# bucket the ones that give nothing away; afterwards only bucket-owner-full-control on new objects.
_OWNER_ONLY_CANNED = ("private", "bucket-owner-full-control")
_ENFORCED_CANNED = ("bucket-owner-full-control",)


def _check_allowed(call: Call, bucket: str, the_acl: acl.Acl, canned: str | None) -> None:
    if (
        ownership.of_bucket(call.store.settings, bucket) == ownership.ENFORCED
        and canned not in _ENFORCED_CANNED
    ):
        raise ownership.acls_not_supported()
    if the_acl.is_public() and public_access.of_bucket(call.store.settings, bucket).block_public_acls:
        raise access_denied()


def new_object_acl(call: Call, info: BucketInfo) -> dict:
    """The ACL (as stored in the object's metadata) of an object this request writes to the bucket.

    Its owner is the writer, or the bucket's owner as its object ownership says; an unsigned
    writer's objects belong to the bucket's owner."""
    setting = ownership.of_bucket(call.store.settings, info.name)
    canned_name = call.header("x-amz-acl")
    bucket_owns = (
        setting == ownership.ENFORCED
        or not call.account
        or (setting == ownership.PREFERRED and (canned_name or "").strip() == "bucket-owner-full-control")
    )
    owner = info.owner if bucket_owns else call.account
    asked, canned = acl.from_headers(call.header, owner, info.owner)
    if asked is None:
        return acl.private(owner).to_json()
    _check_allowed(call, info.name, asked, canned)
    if setting == ownership.ENFORCED:
        return acl.private(owner).to_json()
    return asked.to_json()


def new_bucket_acl(call: Call, setting: str | None) -> acl.Acl | None:
    """The ACL a CreateBucket asks for (None: the default, private), checked against its ownership."""
    asked, canned = acl.from_headers(call.header, call.account, call.account)
    if asked is not None and setting == ownership.ENFORCED and canned not in _OWNER_ONLY_CANNED:
        raise S3Error(
            "InvalidBucketAclWithObjectOwnership",
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
            400,
        )
    return asked


def _acl_of_request(call: Call, owner: str, bucket_owner: str) -> tuple[acl.Acl, str | None]:
    """The ACL a PutBucketAcl or PutObjectAcl sets: from its headers or its body, not both."""
    from_headers, canned = acl.from_headers(call.header, owner, bucket_owner)
    body = small_body(call)
    if from_headers is not None:
        if body.strip():
            raise S3Error("UnexpectedContent", "This request does not support content", 400)
        return from_headers, canned
    if not body.strip():
        raise S3Error("MissingSecurityHeader", "Your request was missing a required header", 400,
                      extra={"MissingHeaderName": "x-amz-acl"})  # fmt: skip
    return acl.from_xml(body, owner), None


def _acl_response(the_acl: acl.Acl) -> Response:
    return s3xml.response(acl.to_xml(the_acl))


async def get_bucket_acl(call: Call) -> Response:
    info = call.owned_bucket()
    if ownership.of_bucket(call.store.settings, info.name) == ownership.ENFORCED:
        return _acl_response(acl.private(info.owner))
    return _acl_response(authorize.bucket_acl(call.store, info))


async def put_bucket_acl(call: Call) -> Response:
    info = call.owned_bucket()
    new, canned = _acl_of_request(call, info.owner, info.owner)
    _check_allowed(call, info.name, new, canned)
    call.store.settings.put(info.name, "acl", new.to_json())
    return Response()


def _object_version(call: Call, info: BucketInfo) -> versioning.Version:
    """The object (the version ``versionId`` names, else the latest) whose ACL is asked for."""
    key = call.key or ""
    check_key(key)
    return versioning.object_version(call.store, info.name, key, call.query.get("versionId"), call.method)


def _object_meta(call: Call, info: BucketInfo) -> ObjectMeta:
    meta = _object_version(call, info).meta
    assert meta is not None  # an object, not a delete marker
    return meta


async def get_object_acl(call: Call) -> Response:
    info = call.owned_bucket()
    meta = _object_meta(call, info)
    the_acl = authorize.object_acl(meta, info)
    if ownership.of_bucket(call.store.settings, info.name) == ownership.ENFORCED:
        the_acl = acl.private(info.owner)
    return _acl_response(the_acl)


async def put_object_acl(call: Call) -> Response:
    info = call.owned_bucket()
    version = _object_version(call, info)
    meta = version.meta
    assert meta is not None
    owner = authorize.object_acl(meta, info).owner
    new, canned = _acl_of_request(call, owner, info.owner)
    _check_allowed(call, info.name, new, canned)

    def change(current: ObjectMeta) -> ObjectMeta:
        current.acl = new.to_json()
        return current

    await rewrite_metadata(
        call.store, info.name, call.key or "", change, None if version.current else version.path
    )
    return Response()
