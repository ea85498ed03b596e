"""Signature Version 2 verification against what botocore's (independent) SigV2 signer produces."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from botocore.auth import SigV2Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from resilin.aws import sigv2
from resilin.aws.sigv4 import Credentials, Failure, SignatureError

CREDS = Credentials("AKIAEXAMPLE000000001", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "111111111111")


def lookup(key: str) -> Credentials | None:
    return CREDS if key == CREDS.access_key else None


def signed(
    params: dict[str, str], method: str = "POST", url: str = "http://127.0.0.1:8998/"
) -> list[tuple[str, str]]:
    request = AWSRequest(method=method, url=url, data=dict(params) if method == "POST" else None,
                         params=dict(params) if method == "GET" else None)  # fmt: skip
    SigV2Auth(BotoCredentials(CREDS.access_key, CREDS.secret_key)).add_auth(request)
    prepared = request.prepare()
    text = prepared.body if method == "POST" else urlsplit(prepared.url).query
    if isinstance(text, bytes):
        text = text.decode()
    return parse_qsl(text, keep_blank_values=True)


def verify(pairs, method="POST", host="127.0.0.1:8998", path="/", now=None):
    return sigv2.verify(method=method, host=host, path=path, params=pairs, lookup=lookup, now=now)


PARAMS = {
    "Action": "RunJobFlow",
    "Name": "wörd count ~ 100% (ünïcode) & more",
    "Steps.member.1.HadoopJarStep.Args.member.1": "-D a=b c",
    "Empty": "",
}


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_accepts_what_botocore_signs(method):
    pairs = signed(PARAMS, method)
    verified = verify(pairs, method)
    assert verified.credentials == CREDS
    assert verified.signature == dict(pairs)["Signature"]
    assert (
        dt.timedelta(minutes=14) < verified.valid_until - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=15)
    )


def _failure(pairs, **kwargs) -> Failure:
    with pytest.raises(SignatureError) as info:
        verify(pairs, **kwargs)
    return info.value.failure


def test_refuses_changes_to_anything_signed():
    pairs = signed(PARAMS)
    changed_value = [(k, v + "!" if k == "Name" else v) for k, v in pairs]
    assert _failure(changed_value) is Failure.BAD_SIGNATURE
    assert _failure(pairs + [("Extra", "1")]) is Failure.BAD_SIGNATURE
    assert _failure(pairs, host="127.0.0.1:8999") is Failure.BAD_SIGNATURE
    assert _failure(pairs, method="GET") is Failure.BAD_SIGNATURE
    assert _failure(pairs, path="/other") is Failure.BAD_SIGNATURE


def test_refuses_malformed_and_unknown():
    pairs = signed(PARAMS)
    assert _failure([(k, v) for k, v in pairs if k != "Signature"]) is Failure.MALFORMED
    assert _failure([(k, "1" if k == "SignatureVersion" else v) for k, v in pairs]) is Failure.MALFORMED
    assert _failure([(k, "HmacMD5" if k == "SignatureMethod" else v) for k, v in pairs]) is Failure.MALFORMED
    assert _failure([(k, v) for k, v in pairs if k != "Timestamp"]) is Failure.MALFORMED
    assert _failure([(k, "yesterday" if k == "Timestamp" else v) for k, v in pairs]) is Failure.MALFORMED
    assert _failure(pairs + [("Signature", "again")]) is Failure.MALFORMED
    unknown = [(k, "AKIANOBODY0000000000" if k == "AWSAccessKeyId" else v) for k, v in pairs]
    assert _failure(unknown) is Failure.UNKNOWN_KEY


def test_clock_skew_and_expiry():
    pairs = signed(PARAMS)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=16)
    assert _failure(pairs, now=later) is Failure.SKEWED
    assert verify(pairs, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=14))
    # Expires instead of Timestamp, signed by hand (botocore always sends a Timestamp).
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    manual = [("Action", "ListClusters"), ("AWSAccessKeyId", CREDS.access_key), ("SignatureVersion", "2"),
              ("SignatureMethod", "HmacSHA1"), ("Expires", expires)]  # fmt: skip
    manual.append(("Signature", _sign_sha1(manual)))
    assert verify(manual).valid_until.strftime("%Y-%m-%dT%H:%M:%SZ") == expires
    assert _failure(manual, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)) is Failure.EXPIRED


def _sign_sha1(pairs) -> str:
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(pairs))
    to_sign = f"POST\n127.0.0.1:8998\n/\n{query}"
    return base64.b64encode(
        hmac.new(CREDS.secret_key.encode(), to_sign.encode(), hashlib.sha1).digest()
    ).decode()
