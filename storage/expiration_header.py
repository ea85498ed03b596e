"""``x-amz-expiration``: when a bucket's lifecycle rules will expire an object, told on its PUT, GET
and HEAD as S3 tells it (``expiry-date="Fri, 23 Dec 2012 00:00:00 GMT", rule-id="rule-1"``)."""

from __future__ import annotations

from resilin.storage import conditions
from resilin.storage.lifecycle_sweep import rules_of
from resilin.storage.objfile import ObjectMeta
from resilin.storage.store import Store


def expiration_headers(store: Store, bucket: str, key: str, meta: ObjectMeta) -> dict[str, str]:
    """The header, when an enabled rule expires this object (the earliest such rule); else none."""
    rules = rules_of(store, bucket)
    if not rules:
        return {}
    due: list[tuple[float, str]] = []
    for rule in rules:
        if rule.enabled and rule.covers(key, meta.size, meta.tags):
            when = rule.object_due(meta.last_modified)
            if when is not None:
                due.append((when, rule.rule_id))
    if not due:
        return {}
    when, rule_id = min(due)
    rule_id = rule_id.replace("\\", "\\\\").replace('"', '\\"')
    return {"x-amz-expiration": f'expiry-date="{conditions.http_date(when)}", rule-id="{rule_id}"'}
