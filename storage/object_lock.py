"""Object Lock: write-once retention and legal holds on object versions, as S3 has them.

A bucket has Object Lock when created with ``x-amz-bucket-object-lock-enabled: true`` or, once
its versioning is Enabled, given an Object Lock configuration; it stays versioned (suspending is
refused).  Each object version may carry a retention (``GOVERNANCE`` or ``COMPLIANCE`` until a
date) and a legal hold, kept in its metadata (``ObjectMeta.lock``).  While either holds, the
version cannot be deleted: a COMPLIANCE retention by no one, a GOVERNANCE one only with
``x-amz-bypass-governance-retention: true`` by a caller allowed ``s3:BypassGovernanceRetention``,
and a legal hold by no one until it is lifted.  A retention can be lengthened, never shortened
or changed to another mode (GOVERNANCE: unless bypassing).  A DELETE without a version id only
adds a delete marker, which locks do not prevent.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping

from resilin.aws.timestamps import iso8601
from resilin.storage import versioning
from resilin.storage.bucket_settings import BucketSettings
from resilin.storage.errors import S3Error, access_denied, invalid_argument, invalid_request, malformed_xml
from resilin.storage.objfile import ObjectMeta

SETTING = "object-lock"  # {"enabled": true, "rule": {"Mode": ..., "Days" | "Years": n} | null}
MODES = ("GOVERNANCE", "COMPLIANCE")
HOLDS = ("ON", "OFF")
BYPASS_HEADER = "x-amz-bypass-governance-retention"
_DAY = 86400.0


def enabled(settings: BucketSettings, bucket: str) -> bool:
    document = settings.get(bucket, SETTING)
    return bool(document and document.get("enabled"))


def missing_configuration() -> S3Error:
    return invalid_request("Bucket is missing Object Lock Configuration")


def invalid_bucket_state(message: str) -> S3Error:
    return S3Error("InvalidBucketState", message, 409)


def parse_rule(mode: str | None, days: str | None, years: str | None) -> dict | None:
    """A default retention rule from its XML fields (None: no rule)."""
    if mode is None and days is None and years is None:
        return None
    if mode not in MODES or (days is None) == (years is None):
        raise malformed_xml()
    name, text = ("Days", days) if days is not None else ("Years", years)
    try:
        value = int(text or "")
    except ValueError:
        raise malformed_xml() from None
    if value <= 0:
        raise S3Error(
            "InvalidRetentionPeriod", "Default retention period must be a positive integer value.", 400
        )
    return {"Mode": mode, name: value}


def default_until(rule: Mapping, now: float) -> float:
    days = rule.get("Days") or rule.get("Years", 0) * 365
    return now + days * _DAY


def parse_date(text: str, name: str) -> float:
    """An ISO 8601 date-time (as the SDKs send retain-until dates) in epoch seconds."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise invalid_argument("The retain until date is not a valid ISO 8601 date", name, text) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def lock_of_new_object(settings: BucketSettings, bucket: str, headers: Mapping[str, str | None]) -> dict:
    """The lock a new object version gets: from its request's ``x-amz-object-lock-*`` headers, else
    the bucket's default retention.  Refused on a bucket without Object Lock."""
    mode = headers.get("x-amz-object-lock-mode")
    until_text = headers.get("x-amz-object-lock-retain-until-date")
    hold = headers.get("x-amz-object-lock-legal-hold")
    document = settings.get(bucket, SETTING)
    if not (document and document.get("enabled")):
        if mode is not None or until_text is not None or hold is not None:
            raise missing_configuration()
        return {}
    lock: dict = {}
    if (mode is None) != (until_text is None):
        raise invalid_argument(
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
        )
    now = time.time()
    if mode is not None and until_text is not None:
        if mode not in MODES:
            raise invalid_argument("Unknown wormMode directive.", "x-amz-object-lock-mode", mode)
        until = parse_date(until_text, "x-amz-object-lock-retain-until-date")
        if until <= now:
            raise invalid_argument("The retain until date must be in the future!")
        lock.update(mode=mode, until=until)
    elif document.get("rule"):
        rule = document["rule"]
        lock.update(mode=rule["Mode"], until=default_until(rule, now))
    if hold is not None:
        if hold not in HOLDS:
            raise invalid_argument(
                "Legal Hold must be either of 'ON' or 'OFF'", "x-amz-object-lock-legal-hold", hold
            )
        lock["legal_hold"] = hold
    return lock


def retained(lock: Mapping, now: float) -> bool:
    return bool(lock.get("mode")) and float(lock.get("until", 0)) > now


def check_retention_change(current: Mapping, mode: str | None, until: float | None, bypass: bool) -> None:
    """May a version's retention become (mode, until) (None: removed)?  AccessDenied if not."""
    now = time.time()
    if not retained(current, now):
        return
    same_or_longer = mode == current["mode"] and until is not None and until >= float(current["until"])
    if same_or_longer:
        return
    if current["mode"] == "GOVERNANCE" and bypass:
        return
    raise access_denied("Access Denied because object protected by object lock.")


def check_deletable(version: versioning.Version, bypass_allowed: bool) -> None:
    """AccessDenied when a lock protects the version from being deleted for good."""
    meta = version.meta
    if version.marker or meta is None or not meta.lock:
        return
    lock = meta.lock
    if lock.get("legal_hold") == "ON":
        raise access_denied("Access Denied because object protected by object lock.")
    if retained(lock, time.time()) and not (lock["mode"] == "GOVERNANCE" and bypass_allowed):
        raise access_denied("Access Denied because object protected by object lock.")


def headers_of(meta: ObjectMeta) -> dict[str, str]:
    """x-amz-object-lock-* on GET and HEAD."""
    headers = {}
    lock = meta.lock
    if lock.get("mode"):
        headers["x-amz-object-lock-mode"] = lock["mode"]
        headers["x-amz-object-lock-retain-until-date"] = iso8601(float(lock["until"]))
    if lock.get("legal_hold"):
        headers["x-amz-object-lock-legal-hold"] = lock["legal_hold"]
    return headers
