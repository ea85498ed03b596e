"""Bucket operations: create, head, list, delete, location, versioning, and DeleteObjects."""

from __future__ import annotations

from resilin.aws.timestamps import iso8601
from resilin.storage import acl_ops, authorize, object_lock, object_ops, ownership, s3xml, versioning
from resilin.storage.bodies import require_integrity_header, small_body
from resilin.storage.context import Call, Response
from resilin.storage.errors import S3Error, access_denied, invalid_argument, malformed_xml, not_implemented
from resilin.storage.listing_ops import continuation_token, token_position
from resilin.storage.names import check_bucket_name, check_key
from resilin.storage.owners import add_owner

MAX_DELETE_KEYS = 1000
MAX_BUCKETS_PAGE = 10000  # ListBuckets' largest max-buckets


async def list_buckets(call: Call) -> Response:
    """ListBuckets, in name order: all of the account's buckets, or pages of ``max-buckets`` with a
    ``ContinuationToken`` while more remain; ``prefix`` and ``bucket-region`` filter them."""
    max_buckets = _max_buckets(call)
    prefix, region = call.query.get("prefix", ""), call.query.get("bucket-region")
    token = call.query.get("continuation-token")
    after = token_position(token) if token is not None else None
    chosen = [
        b
        for b in call.store.buckets_of(call.account)
        if b.name.startswith(prefix) and (region is None or b.region == region)
        and (after is None or b.name > after)
    ]  # fmt: skip
    page = chosen[:max_buckets] if max_buckets else chosen
    doc = s3xml.root("ListAllMyBucketsResult")
    add_owner(doc, call.account)
    buckets = s3xml.sub(doc, "Buckets")
    for info in page:
        entry = s3xml.sub(buckets, "Bucket")
        s3xml.subs(
            entry,
            [
                ("Name", info.name),
                ("CreationDate", iso8601(info.created)),
                ("BucketRegion", info.region),
            ],
        )
    if len(page) < len(chosen):
        s3xml.sub(doc, "ContinuationToken", continuation_token(page[-1].name))
    if "prefix" in call.query:
        s3xml.sub(doc, "Prefix", prefix)
    return s3xml.response(doc)


def _max_buckets(call: Call) -> int | None:
    """``max-buckets`` (1 to 10000), or None when the request sets no page size."""
    text = call.query.get("max-buckets")
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_BUCKETS_PAGE:
        raise invalid_argument(
            f"Argument max-buckets must be an integer between 1 and {MAX_BUCKETS_PAGE}.", "max-buckets", text
        )
    return int(text)


def _location_constraint(call: Call) -> str | None:
    body = small_body(call)
    if not body.strip():
        return None
    doc = s3xml.parse(body)
    if s3xml.local(doc) != "CreateBucketConfiguration":
        raise malformed_xml()
    return s3xml.child_text(doc, "LocationConstraint")


async def create_bucket(call: Call) -> Response:
    name = call.bucket or ""
    check_bucket_name(name)
    locked = (call.header("x-amz-bucket-object-lock-enabled") or "").lower() == "true"
    owned_by = call.header("x-amz-object-ownership")
    if owned_by is not None:
        ownership.check_choice(owned_by)
    bucket_acl = acl_ops.new_bucket_acl(call, owned_by)
    constraint = _location_constraint(call)
    if constraint is not None:
        if call.region == "us-east-1" and constraint == "us-east-1":
            raise S3Error("InvalidLocationConstraint", "The specified location-constraint is not valid", 400)
        if constraint and constraint != call.region:
            raise S3Error(
                "IllegalLocationConstraintException",
                f"The {constraint} location constraint is incompatible for the region specific endpoint "
                "this request was sent to.",
                400,
            )
    existing = call.store.bucket(name)
    if existing is not None:
        if existing.owner != call.account:
            raise S3Error(
                "BucketAlreadyExists",
                "The requested bucket name is not available. The bucket namespace is shared by all users "
                "of the system. Please select a different name and try again.",
                409,
                extra={"BucketName": name},
            )
        # S3 answers 200 to the owner re-creating a bucket in us-east-1 (a legacy of that
        # region) and 409 BucketAlreadyOwnedByYou everywhere else; we do the same.
        if call.region != "us-east-1":
            raise S3Error(
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own it.",
                409,
                extra={"BucketName": name},
            )
    else:
        call.store.create_bucket(name, call.account)
        if owned_by is not None:
            call.store.settings.put(name, ownership.SETTING, {"ObjectOwnership": owned_by})
        if bucket_acl is not None:
            call.store.settings.put(name, "acl", bucket_acl.to_json())
        if locked:  # Object Lock needs versioning, for good
            call.store.settings.put(name, versioning.SETTING, {"Status": versioning.ENABLED})
            call.store.settings.put(name, object_lock.SETTING, {"enabled": True, "rule": None})
    return Response(headers={"Location": f"/{name}"})


async def head_bucket(call: Call) -> Response:
    info = call.owned_bucket()
    return Response(headers={"x-amz-bucket-region": info.region, "x-amz-access-point-alias": "false"})


async def delete_bucket(call: Call) -> Response:
    info = call.owned_bucket()
    if versioning.has_versions(call.store, info.name):
        raise S3Error(
            "BucketNotEmpty",
            "The bucket you tried to delete is not empty",
            409,
            extra={"BucketName": info.name},
        )
    call.store.delete_bucket(info.name)
    return Response(204)


async def get_location(call: Call) -> Response:
    info = call.owned_bucket()
    doc = s3xml.root("LocationConstraint")
    if info.region != "us-east-1":
        doc.text = info.region
    return s3xml.response(doc)


async def get_versioning(call: Call) -> Response:
    info = call.owned_bucket()
    doc = s3xml.root("VersioningConfiguration")
    state = versioning.status(call.store, info.name)
    if state:
        s3xml.subs(doc, [("Status", state), ("MfaDelete", "Disabled")])
    return s3xml.response(doc)


async def put_versioning(call: Call) -> Response:
    """Enabled or Suspended.  MFA delete is refused: this service has no MFA devices to check."""
    info = call.owned_bucket()
    doc = s3xml.parse(small_body(call))
    if s3xml.local(doc) != "VersioningConfiguration":
        raise malformed_xml()
    state = (s3xml.child_text(doc, "Status") or "").strip()
    mfa = (s3xml.child_text(doc, "MfaDelete") or "Disabled").strip()
    if state not in (versioning.ENABLED, versioning.SUSPENDED) or mfa not in ("Enabled", "Disabled"):
        raise malformed_xml()
    if mfa == "Enabled":
        raise not_implemented("MFA delete")
    if state == versioning.SUSPENDED and object_lock.enabled(call.store.settings, info.name):
        raise object_lock.invalid_bucket_state(
            "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed."
        )
    call.store.settings.put(info.name, versioning.SETTING, {"Status": state})
    return Response()


# -- listings ---------------------------------------------------------------------


# -- DeleteObjects ------------------------------------------------------------------


async def delete_objects(call: Call) -> Response:
    """DeleteObjects: each key is allowed or refused (AccessDenied in its Error entry) on its own."""
    info = call.store.require_bucket(call.bucket or "")
    expected = call.header("x-amz-expected-bucket-owner")
    if expected is not None and expected != info.owner:
        raise access_denied()
    request = authorize.request_of_call(call)
    require_integrity_header(call)
    doc = s3xml.parse(small_body(call))
    if s3xml.local(doc) != "Delete":
        raise malformed_xml()
    quiet = (s3xml.child_text(doc, "Quiet") or "").strip().lower() == "true"
    objects = s3xml.children(doc, "Object")
    if not objects or len(objects) > MAX_DELETE_KEYS:
        raise malformed_xml()

    result = s3xml.root("DeleteResult")
    asks_bypass = (call.header(object_lock.BYPASS_HEADER) or "").lower() == "true"
    for obj in objects:
        key = s3xml.child_text(obj, "Key")
        version_id = s3xml.child_text(obj, "VersionId")
        if key is None:
            raise malformed_xml()
        named = [("Key", key)] + ([("VersionId", version_id)] if version_id is not None else [])
        try:
            check_key(key)
            action = "s3:DeleteObject" if version_id is None else "s3:DeleteObjectVersion"
            if not authorize.allowed(call.store, request, action, info.name, key):
                raise access_denied()
            bypass = asks_bypass and authorize.allowed(
                call.store, request, "s3:BypassGovernanceRetention", info.name, key
            )
            deleted = object_ops.delete_one(call, info.name, key, version_id, bypass)
        except S3Error as exc:
            error = s3xml.sub(result, "Error")
            s3xml.subs(error, [*named, ("Code", exc.code), ("Message", exc.message)])
            continue
        if not quiet:
            entry = s3xml.sub(result, "Deleted")
            s3xml.subs(entry, named)
            if deleted.marker:
                s3xml.sub(entry, "DeleteMarker", "true")
                if version_id is None:
                    s3xml.sub(entry, "DeleteMarkerVersionId", deleted.version_id or "")
    return s3xml.response(result)
