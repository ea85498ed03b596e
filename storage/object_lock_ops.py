"""Object Lock's operations: Get/PutObjectLockConfiguration on a bucket, Get/PutObjectRetention and
Get/PutObjectLegalHold on an object version (see ``object_lock`` for the rules)."""

from __future__ import annotations

import time

from resilin.aws.timestamps import iso8601
from resilin.storage import authorize, object_lock, s3xml, versioning
from resilin.storage.bodies import small_body
from resilin.storage.context import Call, Response
from resilin.storage.errors import S3Error, malformed_xml
from resilin.storage.names import check_key
from resilin.storage.objfile import ObjectMeta
from resilin.storage.writes import rewrite_metadata


async def get_configuration(call: Call) -> Response:
    info = call.owned_bucket()
    document = call.store.settings.get(info.name, object_lock.SETTING)
    if not (document and document.get("enabled")):
        raise S3Error(
            "ObjectLockConfigurationNotFoundError",
            "Object Lock configuration does not exist for this bucket",
            404,
        )
    doc = s3xml.root("ObjectLockConfiguration")
    s3xml.sub(doc, "ObjectLockEnabled", "Enabled")
    rule = document.get("rule")
    if rule:
        retention = s3xml.sub(s3xml.sub(doc, "Rule"), "DefaultRetention")
        s3xml.subs(retention, [(name, rule[name]) for name in ("Mode", "Days", "Years") if name in rule])
    return s3xml.response(doc)


async def put_configuration(call: Call) -> Response:
    info = call.owned_bucket()
    doc = s3xml.parse(small_body(call))
    if s3xml.local(doc) != "ObjectLockConfiguration":
        raise malformed_xml()
    if (s3xml.child_text(doc, "ObjectLockEnabled") or "").strip() != "Enabled":
        raise malformed_xml()
    rule = None
    rules = s3xml.children(doc, "Rule")
    if len(rules) > 1:
        raise malformed_xml()
    if rules:
        defaults = s3xml.children(rules[0], "DefaultRetention")
        if len(defaults) != 1:
            raise malformed_xml()
        default = defaults[0]
        rule = object_lock.parse_rule(
            s3xml.child_text(default, "Mode"),
            s3xml.child_text(default, "Days"),
            s3xml.child_text(default, "Years"),
        )
    if versioning.status(call.store, info.name) != versioning.ENABLED:
        raise object_lock.invalid_bucket_state("Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration")  # fmt: skip
    call.store.settings.put(info.name, object_lock.SETTING, {"enabled": True, "rule": rule})
    return Response()


def _version(call: Call) -> versioning.Version:
    """The object version a retention or legal hold request names, on a bucket with Object Lock."""
    info = call.owned_bucket()
    key = call.key or ""
    check_key(key)
    if not object_lock.enabled(call.store.settings, info.name):
        raise object_lock.missing_configuration()
    return versioning.object_version(call.store, info.name, key, call.query.get("versionId"), call.method)


async def _change_lock(call: Call, version: versioning.Version, **changes: object) -> None:
    def change(meta: ObjectMeta) -> ObjectMeta:
        lock = dict(meta.lock)
        for name, value in changes.items():
            if value is None:
                lock.pop(name, None)
            else:
                lock[name] = value
        meta.lock = lock
        return meta

    info = call.owned_bucket()
    await rewrite_metadata(
        call.store, info.name, version.key, change, None if version.current else version.path
    )


async def get_retention(call: Call) -> Response:
    version = _version(call)
    lock = version.meta.lock if version.meta else {}
    if not lock.get("mode"):
        raise S3Error(
            "NoSuchObjectLockConfiguration",
            "The specified object does not have a ObjectLock configuration",
            404,
        )
    doc = s3xml.root("Retention")
    s3xml.subs(doc, [("Mode", lock["mode"]), ("RetainUntilDate", iso8601(float(lock["until"])))])
    return s3xml.response(doc)


async def put_retention(call: Call) -> Response:
    version = _version(call)
    doc = s3xml.parse(small_body(call))
    if s3xml.local(doc) != "Retention":
        raise malformed_xml()
    mode = s3xml.child_text(doc, "Mode")
    until_text = s3xml.child_text(doc, "RetainUntilDate")
    if (mode is None) != (until_text is None) or (mode is not None and mode not in object_lock.MODES):
        raise malformed_xml()
    until = object_lock.parse_date(until_text, "RetainUntilDate") if until_text is not None else None
    if until is not None and until <= time.time():
        raise S3Error("InvalidArgument", "The retain until date must be in the future!", 400)
    assert version.meta is not None
    object_lock.check_retention_change(version.meta.lock, mode, until, bypassing(call, version.key))
    await _change_lock(call, version, mode=mode, until=until)
    return Response()


def bypassing(call: Call, key: str) -> bool:
    """Asked to bypass GOVERNANCE retention, and allowed to."""
    if (call.header(object_lock.BYPASS_HEADER) or "").lower() != "true":
        return False
    return authorize.allowed(
        call.store, authorize.request_of_call(call), "s3:BypassGovernanceRetention", call.bucket or "", key
    )


async def get_legal_hold(call: Call) -> Response:
    version = _version(call)
    hold = version.meta.lock.get("legal_hold") if version.meta else None
    if not hold:
        raise S3Error(
            "NoSuchObjectLockConfiguration",
            "The specified object does not have a ObjectLock configuration",
            404,
        )
    doc = s3xml.root("LegalHold")
    s3xml.sub(doc, "Status", hold)
    return s3xml.response(doc)


async def put_legal_hold(call: Call) -> Response:
    version = _version(call)
    doc = s3xml.parse(small_body(call))
    status = (s3xml.child_text(doc, "Status") or "").strip()
    if s3xml.local(doc) != "LegalHold" or status not in object_lock.HOLDS:
        raise malformed_xml()
    await _change_lock(call, version, legal_hold=status)
    return Response()
