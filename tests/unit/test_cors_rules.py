"""A bucket's CORS rules: what PutBucketCors accepts, and which rule a browser's request matches."""

from __future__ import annotations

import pytest
from lxml import etree

from resilin.storage import cors
from resilin.storage.errors import S3Error

CONFIG = b"""<CORSConfiguration>
  <CORSRule><ID>uploads</ID><AllowedOrigin>https://*.example.com</AllowedOrigin>
    <AllowedMethod>PUT</AllowedMethod><AllowedMethod>POST</AllowedMethod>
    <AllowedHeader>x-amz-*</AllowedHeader><AllowedHeader>Content-Type</AllowedHeader>
    <ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>600</MaxAgeSeconds></CORSRule>
  <CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>
</CORSConfiguration>"""


def test_rules_round_trip():
    rules = cors.parse(CONFIG)
    assert rules[0].origins == ("https://*.example.com",) and rules[0].max_age == 600
    assert cors.parse(etree.tostring(cors.to_xml(rules))) == rules
    assert [cors.CorsRule.from_json(r.to_json()) for r in rules] == rules


def test_the_first_matching_rule_decides():
    rules = cors.parse(CONFIG)
    upload = cors.decide(rules, "https://app.example.com", "PUT", ["Content-Type", "x-amz-date"])
    assert upload is not None and upload.rule.rule_id == "uploads"
    headers = upload.headers(preflight=True)
    assert headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert headers["Access-Control-Allow-Headers"] == "content-type, x-amz-date"
    assert (headers["Access-Control-Max-Age"], headers["Access-Control-Expose-Headers"]) == ("600", "ETag")
    assert headers["Access-Control-Allow-Credentials"] == "true"
    anyone = cors.decide(rules, "http://elsewhere.org", "GET", [])
    assert anyone is not None and anyone.headers(preflight=False)["Access-Control-Allow-Origin"] == "*"
    assert cors.decide(rules, "http://elsewhere.org", "PUT", []) is None  # no rule lets it write
    assert cors.decide(rules, "https://app.example.com", "PUT", ["authorization-extra"]) is None
    assert cors.decide(rules, "https://example.com", "PUT", []) is None  # the wildcard needs its dot


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"<CORSConfiguration/>", "MalformedXML"),
        (
            b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>",
            "MalformedXML",
        ),
        (
            b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod>"
            b"</CORSRule></CORSConfiguration>",
            "InvalidRequest",
        ),
        (
            b"<CORSConfiguration><CORSRule><AllowedOrigin>*.*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"
            b"</CORSRule></CORSConfiguration>",
            "InvalidRequest",
        ),
        (
            b"<CORSConfiguration>"
            + b"<CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>" * 101
            + b"</CORSConfiguration>",
            "MalformedXML",
        ),
    ],
)
def test_bad_configurations_are_refused(body, code):
    with pytest.raises(S3Error) as excinfo:
        cors.parse(body)
    assert excinfo.value.code == code
