"""SigV4 verification against requests signed by botocore itself."""

import datetime as dt
import hashlib
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from resilin.aws import sigv4

CREDS = sigv4.Credentials("AKIAEXAMPLEEXAMPLE00", "secret/with+chars0123456789abcdefghijklm", "123456789012")


def lookup(key):
    return CREDS if key == CREDS.access_key else None


def _headers(req):
    return {k.lower(): [v] for k, v in req.headers.items()}


def _verify(req, service, body=b"", **kw):
    url = urlsplit(req.url)
    return sigv4.verify(
        method=req.method,
        raw_path=url.path,
        raw_query=url.query,
        headers=_headers(req) | {"host": [url.netloc]},
        body_sha256=lambda: hashlib.sha256(body).hexdigest(),
        lookup=lookup,
        service=service,
        **kw,
    )


def _emr_request(secret=CREDS.secret_key):
    body = b'{"ClusterId": "j-ABC"}'
    req = AWSRequest(
        method="POST",
        url="http://127.0.0.1:8998/",
        data=body,
        headers={
            "X-Amz-Target": "ElasticMapReduce.DescribeCluster",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    SigV4Auth(BotoCredentials(CREDS.access_key, secret), "elasticmapreduce", "us-east-1").add_auth(req)
    return req, body


def test_json_request_signed_by_botocore_verifies():
    req, body = _emr_request()
    verified = _verify(req, "elasticmapreduce", body)
    assert verified.credentials.account_id == "123456789012"


def test_wrong_secret_is_refused():
    req, body = _emr_request(secret="x" * 40)
    with pytest.raises(sigv4.SignatureError) as err:
        _verify(req, "elasticmapreduce", body)
    assert err.value.failure is sigv4.Failure.BAD_SIGNATURE


def test_tampered_body_is_refused():
    req, _ = _emr_request()
    with pytest.raises(sigv4.SignatureError) as err:
        _verify(req, "elasticmapreduce", b'{"ClusterId": "j-OTHER"}')
    assert err.value.failure is sigv4.Failure.BAD_SIGNATURE


def test_unknown_key_and_missing_auth():
    req, body = _emr_request()
    with pytest.raises(sigv4.SignatureError) as err:
        sigv4.verify(
            method="POST",
            raw_path="/",
            raw_query="",
            headers={"host": ["x"]},
            body_sha256=None,
            lookup=lookup,
            service="elasticmapreduce",
        )
    assert err.value.failure is sigv4.Failure.MISSING
    with pytest.raises(sigv4.SignatureError) as err:
        sigv4.verify(
            method="POST",
            raw_path="/",
            raw_query="",
            headers=_headers(req) | {"host": ["127.0.0.1:8998"]},
            body_sha256=lambda: hashlib.sha256(body).hexdigest(),
            lookup=lambda k: None,
            service="elasticmapreduce",
        )
    assert err.value.failure is sigv4.Failure.UNKNOWN_KEY


def test_clock_skew_is_refused():
    req, body = _emr_request()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)
    with pytest.raises(sigv4.SignatureError) as err:
        _verify(req, "elasticmapreduce", body, now=later)
    assert err.value.failure is sigv4.Failure.SKEWED


def test_s3_header_and_presigned_requests_verify():
    req = AWSRequest(
        method="GET", url="http://127.0.0.1:8999/demo/dir%20x/k%2Bey.txt?list-type=2&prefix=a%2Fb"
    )
    S3SigV4Auth(BotoCredentials(CREDS.access_key, CREDS.secret_key), "s3", "us-east-1").add_auth(req)
    assert _verify(req, "s3").payload_hash == hashlib.sha256(b"").hexdigest()

    pre = AWSRequest(method="GET", url="http://127.0.0.1:8999/demo/key.txt")
    S3SigV4QueryAuth(
        BotoCredentials(CREDS.access_key, CREDS.secret_key), "s3", "us-east-1", expires=60
    ).add_auth(pre)
    assert _verify(pre, "s3").presigned
    with pytest.raises(sigv4.SignatureError) as err:
        _verify(pre, "s3", now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120))
    assert err.value.failure is sigv4.Failure.EXPIRED


def test_payload_hash_header_must_be_the_bodys_outside_s3():
    req, body = _emr_request()
    swapped = b'{"ClusterId": "j-OTHER"}'
    # A captured request, its body swapped and the header claiming the original body's hash.
    req.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    with pytest.raises(sigv4.SignatureError) as err:
        _verify(req, "elasticmapreduce", swapped)
    assert err.value.failure is sigv4.Failure.BAD_SIGNATURE
    assert _verify(req, "elasticmapreduce", body).payload_hash == hashlib.sha256(body).hexdigest()
    unsigned = AWSRequest(method="POST", url="http://127.0.0.1:8998/", data=body)
    unsigned.headers["X-Amz-Content-SHA256"] = sigv4.UNSIGNED_PAYLOAD
    SigV4Auth(BotoCredentials(CREDS.access_key, CREDS.secret_key), "elasticmapreduce", "us-east-1").add_auth(
        unsigned
    )
    with pytest.raises(sigv4.SignatureError, match="unsigned payload"):
        _verify(unsigned, "elasticmapreduce", body)


def test_credential_scope_of_another_region_is_refused_first():
    req, body = _emr_request()
    assert _verify(req, "elasticmapreduce", body, region="us-east-1").signed_headers >= {"host", "x-amz-date"}
    with pytest.raises(sigv4.WrongRegion) as err:
        _verify(req, "elasticmapreduce", body, region="eu-west-1")
    assert (err.value.scoped, err.value.expected) == ("us-east-1", "eu-west-1")
    assert err.value.failure is sigv4.Failure.WRONG_REGION
