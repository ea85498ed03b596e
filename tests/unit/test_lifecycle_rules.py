"""Lifecycle rules: what a configuration may say, and when each rule makes an object or upload due."""

from __future__ import annotations

import calendar
import time

import pytest
from lxml import etree

from resilin.storage import lifecycle
from resilin.storage.errors import S3Error


def _config(*rules: str) -> bytes:
    return ("<LifecycleConfiguration>" + "".join(rules) + "</LifecycleConfiguration>").encode()


def _at(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M")))


LOGS = (
    "<Rule><ID>logs</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status>"
    "<Expiration><Days>30</Days></Expiration>"
    "<AbortIncompleteMultipartUpload><DaysAfterInitiation>7</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>"
)


def test_days_round_up_to_the_next_midnight_utc():
    [rule] = lifecycle.parse(_config(LOGS))
    assert rule.object_due(_at("2026-01-01 10:30")) == _at("2026-02-01 00:00")
    assert rule.upload_due(_at("2026-01-01 00:00")) == _at("2026-01-08 00:00")
    dated = lifecycle.parse(_config(
        "<Rule><Prefix></Prefix><Status>Enabled</Status><Expiration><Date>2026-03-01T00:00:00Z</Date></Expiration></Rule>"
    ))[0]  # fmt: skip
    assert (
        dated.object_due(_at("2020-01-01 00:00")) == _at("2026-03-01 00:00") and dated.upload_due(0) is None
    )


def test_filters_and_round_trip():
    sized = (
        "<Rule><ID>big</ID><Filter><And><Prefix>tmp/</Prefix><ObjectSizeGreaterThan>100</ObjectSizeGreaterThan>"
        "</And></Filter><Status>Disabled</Status><Expiration><Days>1</Days></Expiration></Rule>"
    )
    tagged = (
        "<Rule><ID>tagged</ID><Filter><And><Prefix>t/</Prefix><Tag><Key>a</Key><Value>1</Value></Tag>"
        "<Tag><Key>b</Key><Value></Value></Tag></And></Filter><Status>Enabled</Status>"
        "<Expiration><Days>1</Days></Expiration></Rule>"
    )
    one_tag = (
        "<Rule><ID>one</ID><Filter><Tag><Key>a</Key><Value>1</Value></Tag></Filter><Status>Enabled</Status>"
        "<Expiration><Days>1</Days></Expiration></Rule>"
    )
    rules = lifecycle.parse(_config(LOGS, sized, tagged, one_tag))
    assert rules[0].covers("logs/a") and not rules[0].covers("other/logs/a")
    assert rules[1].covers("tmp/x", 101) and not rules[1].covers("tmp/x", 100) and not rules[1].enabled
    assert rules[2].covers("t/x", 1, {"a": "1", "b": "", "c": "3"})
    assert not rules[2].covers("t/x", 1, {"a": "1"}) and not rules[2].covers("t/x", 1, None)
    assert rules[3].covers("any", 1, {"a": "1"}) and not rules[3].covers("any", 1, {"a": "2"})
    assert lifecycle.parse(etree.tostring(lifecycle.to_xml(rules))) == rules
    assert [lifecycle.Rule.from_json(r.to_json()) for r in rules] == rules


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        ("<Rule><Status>Enabled</Status><Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition>"
         "</Rule>", "NotImplemented"),
        ("<Rule><Filter><Tag><Key>a</Key><Value>b</Value></Tag><Tag><Key>c</Key><Value>d</Value></Tag></Filter>"
         "<Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>", "MalformedXML"),  # not in <And>
        ("<Rule><Filter><Tag><Key>a</Key><Value>b</Value></Tag></Filter><Status>Enabled</Status>"
         "<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation>"
         "</AbortIncompleteMultipartUpload></Rule>", "InvalidRequest"),
        ("<Rule><Status>Enabled</Status><NoncurrentVersionTransition><NoncurrentDays>1</NoncurrentDays>"
         "<StorageClass>GLACIER</StorageClass></NoncurrentVersionTransition></Rule>", "NotImplemented"),
        ("<Rule><Status>Enabled</Status><NoncurrentVersionExpiration><NewerNoncurrentVersions>1"
         "</NewerNoncurrentVersions></NoncurrentVersionExpiration></Rule>", "MalformedXML"),
        ("<Rule><Status>Enabled</Status><Expiration><Days>1</Days><ExpiredObjectDeleteMarker>true"
         "</ExpiredObjectDeleteMarker></Expiration></Rule>", "MalformedXML"),
        ("<Rule><Status>Enabled</Status><Transition><Date>20220927</Date><StorageClass>GLACIER</StorageClass>"
         "</Transition></Rule>", "InvalidArgument"),
        ("<Rule><Status>Enabled</Status><Expiration><Date>2026-03-01T10:00:00Z</Date></Expiration></Rule>",
         "InvalidArgument"),
        ("<Rule><Status>Enabled</Status><Expiration><Days>0</Days></Expiration></Rule>", "InvalidArgument"),
        ("<Rule><Status>Enabled</Status></Rule>", "InvalidArgument"),
        ("<Rule><Status>On</Status><Expiration><Days>1</Days></Expiration></Rule>", "MalformedXML"),
        (LOGS + LOGS, "InvalidArgument"),  # the same ID twice
    ],
)  # fmt: skip
def test_what_cannot_be_acted_on_is_refused(rule, code):
    with pytest.raises(S3Error) as excinfo:
        lifecycle.parse(_config(rule))
    assert excinfo.value.code == code
