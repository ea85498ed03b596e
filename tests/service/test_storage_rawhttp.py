"""The storage service at the HTTP level: bad input of every kind gets S3's 4xx, never a 500.

Requests are signed here with an independent, minimal SigV4 implementation,
so that aws-chunked bodies (which botocore no longer sends) can be built by
hand, signature by signature.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import random
import socket
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from lxml import etree

from resilin.aws.sigv4 import Credentials
from resilin.storage import names
from resilin.storage.testing import ALICE, BOB, StorageProcess, boto3_client

EMPTY = hashlib.sha256(b"").hexdigest()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def code(self) -> str:
        return etree.fromstring(self.body).findtext("Code") if self.body else ""


@dataclass
class Signed:
    headers: dict[str, str]
    key: bytes
    signature: str
    amz_date: str
    scope: str


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(
    method: str,
    path: str,
    host: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    payload: str = EMPTY,
    creds: Credentials = ALICE,
    when: dt.datetime | None = None,
    region: str = "us-east-1",
) -> Signed:
    amz_date = (when or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    all_headers = {k.lower(): v for k, v in (headers or {}).items()}
    all_headers.update({"host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload})
    names = sorted(all_headers)
    pairs = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in parse_qsl(query, keep_blank_values=True)
    )
    canonical = "\n".join(
        [
            method,
            path,
            "&".join(f"{k}={v}" for k, v in pairs),
            "".join(f"{n}:{all_headers[n].strip()}\n" for n in names),
            ";".join(names),
            payload,
        ]
    )
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + creds.secret_key).encode()
    for part in (amz_date[:8], region, "s3", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    all_headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, SignedHeaders={';'.join(names)}, "
        f"Signature={signature}"
    )
    return Signed(all_headers, key, signature, amz_date, scope)


def chunk_signature(signed: Signed, previous: str, chunk: bytes) -> str:
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256-PAYLOAD",
            signed.amz_date,
            signed.scope,
            previous,
            EMPTY,
            hashlib.sha256(chunk).hexdigest(),
        ]
    )
    return hmac.new(signed.key, to_sign.encode(), hashlib.sha256).hexdigest()


def signed_chunks(signed: Signed, chunks: list[bytes], trailer: dict[str, str] | None = None) -> bytes:
    body, previous = b"", signed.signature
    for chunk in [*chunks, b""]:
        previous = chunk_signature(signed, previous, chunk)
        body += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk
        if chunk or trailer is None:
            body += b"\r\n"
    if trailer is not None:
        canonical = "".join(f"{k}:{v}\n" for k, v in trailer.items())
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-TRAILER",
                signed.amz_date,
                signed.scope,
                previous,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        trailer_sig = hmac.new(signed.key, to_sign.encode(), hashlib.sha256).hexdigest()
        body += "".join(f"{k}:{v}\r\n" for k, v in trailer.items()).encode()
        body += f"x-amz-trailer-signature:{trailer_sig}\r\n\r\n".encode()
    return body


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


class Client:
    def __init__(self, endpoint: str) -> None:
        parts = urlsplit(endpoint)
        self.host = parts.netloc
        self.address = (parts.hostname, parts.port)

    def send(
        self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Reply:
        connection = http.client.HTTPConnection(*self.address, timeout=30)
        try:
            connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            sent = {k.lower(): v for k, v in (headers or {}).items()}
            sent.setdefault("host", self.host)
            if body or method in ("PUT", "POST"):
                sent.setdefault("content-length", str(len(body)))
            for name, value in sent.items():
                connection.putheader(name, value)
            connection.endheaders(body or None)
            response = connection.getresponse()
            reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            connection.close()
        assert reply.headers.get("x-amz-request-id"), "every response carries x-amz-request-id"
        assert b"Traceback" not in reply.body
        return reply

    def signed(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        payload: str | None = None,
        creds: Credentials = ALICE,
        when: dt.datetime | None = None,
    ) -> Reply:
        payload = payload if payload is not None else hashlib.sha256(body).hexdigest()
        signed = sign(
            method, path, self.host, query=query, headers=headers, payload=payload, creds=creds, when=when
        )
        return self.send(method, path + (f"?{query}" if query else ""), body, signed.headers)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with StorageProcess(tmp_path_factory.mktemp("s3raw"), [ALICE, BOB]) as running:
        yield running


@pytest.fixture(scope="module")
def client(service):
    client = Client(service.endpoint)
    assert client.signed("PUT", "/raw-bucket").status == 200
    return client


def put(client: Client, key: str, body: bytes, **kwargs) -> Reply:
    return client.signed("PUT", f"/raw-bucket/{key}", body=body, **kwargs)


def get(client: Client, key: str, **kwargs) -> Reply:
    return client.signed("GET", f"/raw-bucket/{key}", **kwargs)


# -- authentication --------------------------------------------------------------------


def test_anonymous_requests_are_refused(client):
    for target in ("/", "/raw-bucket", "/raw-bucket/some-key"):
        reply = client.send("GET", target)
        assert (reply.status, reply.code) == (403, "AccessDenied")
        doc = etree.fromstring(reply.body)
        assert doc.tag == "Error"
        assert doc.findtext("Resource") == target
        assert doc.findtext("RequestId") == reply.headers["x-amz-request-id"]
        assert reply.headers["content-type"] == "application/xml"


def test_signature_failures(client):
    wrong_secret = Credentials(ALICE.access_key, "not-the-secret", ALICE.account_id)
    reply = client.signed("GET", "/raw-bucket", creds=wrong_secret)
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch")
    reply = client.signed("GET", "/raw-bucket", creds=Credentials("AKIAUNKNOWN000000000", "x", "1"))
    assert (reply.status, reply.code) == (403, "InvalidAccessKeyId")
    reply = client.signed("GET", "/raw-bucket", when=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    assert (reply.status, reply.code) == (403, "RequestTimeTooSkewed")
    reply = client.send("GET", "/raw-bucket", headers={"authorization": "AWS4-HMAC-SHA256 Credential=x"})
    assert (reply.status, reply.code) == (400, "AuthorizationHeaderMalformed")
    reply = client.send("GET", "/raw-bucket", headers={"authorization": "AWS AKIA:c2lnbmF0dXJl"})
    assert (reply.status, reply.code) == (400, "InvalidRequest")
    signed = sign("GET", "/raw-bucket", client.host)
    del signed.headers["x-amz-content-sha256"]
    reply = client.send("GET", "/raw-bucket", headers=signed.headers)
    assert (reply.status, reply.code) == (400, "InvalidRequest")
    # The signature covers the path: replaying it for another key fails.
    signed = sign("GET", "/raw-bucket/a", client.host)
    assert client.send("GET", "/raw-bucket/b", headers=signed.headers).code == "SignatureDoesNotMatch"


def test_presigned_urls_expire_and_sigv2_is_refused(service, client):
    s3 = boto3_client(service.endpoint, ALICE)
    url = s3.generate_presigned_url("list_objects_v2", Params={"Bucket": "raw-bucket"}, ExpiresIn=1)
    time.sleep(2.1)
    parts = urlsplit(url)
    reply = client.send("GET", f"{parts.path}?{parts.query}")
    assert (reply.status, reply.code) == (403, "AccessDenied")
    assert b"expired" in reply.body
    reply = client.send("GET", "/raw-bucket/k?AWSAccessKeyId=AKIA&Signature=abc&Expires=99999999999")
    assert (reply.status, reply.code) == (400, "InvalidRequest")


def _presigned_target(service, operation: str, **params) -> str:
    url = boto3_client(service.endpoint, ALICE).generate_presigned_url(
        operation, Params=params, ExpiresIn=300
    )
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_unsigned_amz_headers_are_refused_on_presigned_urls(service, client):
    assert put(client, "secret", b"only alice may read this").status == 200
    # A presigned PUT of one key, turned into a copy of another object by an added header.
    target = _presigned_target(service, "put_object", Bucket="raw-bucket", Key="drop-box")
    reply = client.send("PUT", target, headers={"x-amz-copy-source": "/raw-bucket/secret"})
    assert (reply.status, reply.code) == (403, "AccessDenied")
    assert etree.fromstring(reply.body).findtext("HeadersNotSigned") == "x-amz-copy-source"
    assert get(client, "drop-box").status == 404
    # The URL does what was signed, and headers the signer put in it are accepted.
    assert client.send("PUT", target, b"uploaded").status == 200
    target = _presigned_target(service, "put_object", Bucket="raw-bucket", Key="tagged", Metadata={"a": "1"})
    assert client.send("PUT", target, b"x", headers={"x-amz-meta-a": "1"}).status == 200
    reply = client.send("PUT", target, b"x", headers={"x-amz-meta-a": "1", "x-amz-meta-b": "2"})
    assert (reply.status, reply.code) == (403, "AccessDenied")


def test_unsigned_amz_headers_are_refused_on_header_signed_requests(client):
    signed = sign("PUT", "/raw-bucket/copied", client.host)
    reply = client.send(
        "PUT", "/raw-bucket/copied", headers=signed.headers | {"x-amz-copy-source": "/raw-bucket/secret"}
    )
    assert (reply.status, reply.code) == (403, "AccessDenied")
    assert get(client, "copied").status == 404
    signed = sign("GET", "/raw-bucket", client.host)
    reply = client.send(
        "GET", "/raw-bucket", headers=signed.headers | {"x-amz-meta-one": "1", "x-amz-acl": "public-read"}
    )
    assert etree.fromstring(reply.body).findtext("HeadersNotSigned") == "x-amz-acl, x-amz-meta-one"
    # Signed, the same headers are obeyed; x-amz-content-sha256/-date/-security-token need no signature.
    assert put(client, "copied", b"", headers={"x-amz-copy-source": "/raw-bucket/secret"}).status == 200
    signed = sign("GET", "/raw-bucket/copied", client.host)
    assert (
        client.send("GET", "/raw-bucket/copied", headers=signed.headers | {"x-amz-security-token": ""}).status
        == 200
    )


def test_credential_scope_for_another_region_is_refused(service, client):
    reply = client.send(
        "GET", "/raw-bucket", headers=sign("GET", "/raw-bucket", client.host, region="eu-west-1").headers
    )
    assert (reply.status, reply.code) == (400, "AuthorizationHeaderMalformed")
    document = etree.fromstring(reply.body)
    assert document.findtext("Message") == (
        "The authorization header is malformed; the region 'eu-west-1' is wrong; expecting 'us-east-1'"
    )
    assert document.findtext("Region") == "us-east-1"
    url = boto3_client(service.endpoint, ALICE, region="eu-west-1").generate_presigned_url(
        "get_object", Params={"Bucket": "raw-bucket", "Key": "secret"}
    )
    parts = urlsplit(url)
    reply = client.send("GET", f"{parts.path}?{parts.query}")
    assert (reply.status, reply.code) == (400, "AuthorizationQueryParametersError")
    assert "the region 'eu-west-1' is wrong; expecting 'us-east-1'" in reply.body.decode()


def test_other_accounts_bucket_is_access_denied(client):
    assert put(client, "alice-only", b"private").status == 200
    for method, path in [("GET", "/raw-bucket/alice-only"), ("HEAD", "/raw-bucket"), ("GET", "/raw-bucket"),
                         ("DELETE", "/raw-bucket/alice-only"), ("PUT", "/raw-bucket/bob-was-here")]:  # fmt: skip
        reply = client.signed(method, path, creds=BOB)
        assert reply.status == 403, (method, path)
    assert get(client, "alice-only").body == b"private"
    assert get(client, "bob-was-here").status == 404


# -- bad requests ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, status, code",
    [
        ("/raw-bucket/a/../b", 400, "InvalidArgument"),
        ("/raw-bucket/..", 400, "InvalidArgument"),
        ("/raw-bucket/a%00b", 400, "InvalidArgument"),
        ("/raw-bucket/" + "k" * 1025, 400, "KeyTooLongError"),
        ("/raw-bucket/%ff%fe", 400, "InvalidURI"),
        ("/Not_A_Bucket/key", 404, "NoSuchBucket"),
    ],
)
def test_bad_keys_are_refused(client, path, status, code):
    for method in ("PUT", "GET"):
        reply = client.signed(method, path, body=b"x" if method == "PUT" else b"")
        assert (reply.status, reply.code) == (status, code), method


def test_nothing_escapes_the_data_directory(service, client):
    assert put(client, "..%5C..%5Cescape", b"x").status == 200  # one segment, just odd characters
    assert get(client, "..%5C..%5Cescape").body == b"x"
    for key in ("..%2F..%2Fescape", "%2E%2E/escape", "a/%2e%2e/%2e%2e/%2e%2e/escape"):
        assert put(client, key, b"x").status == 400
    data_dir = service.data_dir
    assert not (data_dir.parent / "escape").exists()
    stored = [p for p in data_dir.rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to(data_dir.resolve()) for p in stored)


def test_bad_range_and_part_number(client):
    assert put(client, "ranged", b"0123456789").status == 200
    reply = get(client, "ranged", headers={"range": "bytes=10-"})
    assert (reply.status, reply.code) == (416, "InvalidRange")
    assert reply.headers["content-range"] == "bytes */10"
    reply = get(client, "ranged", headers={"range": "bytes=-0"})
    assert reply.status == 416
    reply = get(client, "ranged", headers={"range": "bytes=3-5"})
    assert (reply.status, reply.body, reply.headers["content-range"]) == (206, b"345", "bytes 3-5/10")
    reply = get(client, "ranged", headers={"range": "bytes=1-2,4-5"})  # multiple ranges: ignored
    assert (reply.status, reply.body) == (200, b"0123456789")
    reply = get(client, "ranged", query="partNumber=2")
    assert (reply.status, reply.code) == (416, "InvalidPartNumber")
    reply = get(client, "ranged", query="partNumber=abc")
    assert (reply.status, reply.code) == (400, "InvalidArgument")


def test_content_md5_and_payload_hash_are_checked(client):
    assert put(client, "digest", b"original").status == 200
    wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    reply = put(client, "digest", b"replacement", headers={"content-md5": wrong_md5})
    assert (reply.status, reply.code) == (400, "BadDigest")
    reply = put(client, "digest", b"replacement", headers={"content-md5": "not base64!"})
    assert (reply.status, reply.code) == (400, "InvalidDigest")
    reply = put(client, "digest", b"replacement", payload=hashlib.sha256(b"something else").hexdigest())
    assert (reply.status, reply.code) == (400, "XAmzContentSHA256Mismatch")
    reply = put(client, "digest", b"replacement", payload="not-a-hash")
    assert (reply.status, reply.code) == (400, "InvalidArgument")
    assert get(client, "digest").body == b"original"
    good_md5 = base64.b64encode(hashlib.md5(b"replacement").digest()).decode()
    reply = put(
        client, "digest", b"replacement", headers={"content-md5": good_md5}, payload="UNSIGNED-PAYLOAD"
    )
    assert reply.status == 200
    assert get(client, "digest").body == b"replacement"


def test_wrong_methods_and_sub_resources(client):
    assert client.signed("POST", "/raw-bucket/key").code == "MethodNotAllowed"
    assert client.signed("PATCH", "/raw-bucket/key").status == 405
    assert client.signed("DELETE", "/").status == 405
    reply = client.signed("GET", "/raw-bucket", query="website=")
    assert (reply.status, reply.code) == (501, "NotImplemented")


@pytest.mark.parametrize(
    "query",
    ["list-type=2&max-keys=abc", "list-type=2&max-keys=-1", "list-type=3", "list-type=2&encoding-type=base64",
     "list-type=2&continuation-token=garbage"],
)  # fmt: skip
def test_bad_list_parameters(client, query):
    reply = client.signed("GET", "/raw-bucket", query=query)
    assert (reply.status, reply.code) == (400, "InvalidArgument")


def test_malformed_xml_bodies(client):
    for body in (b"<Delete><Object><Key>a", b"not xml", b"<Other/>", b""):
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        reply = client.signed("POST", "/raw-bucket", query="delete=", body=body, headers={"content-md5": md5})
        assert (reply.status, reply.code) == (400, "MalformedXML"), body
    body = b"<Delete><Object><Key>a</Key></Object></Delete>"
    reply = client.signed("POST", "/raw-bucket", query="delete=", body=body)
    assert (reply.status, reply.code) == (400, "InvalidRequest")  # neither Content-MD5 nor a checksum
    entity = b'<!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&e;</Key></Object></Delete>'
    md5 = base64.b64encode(hashlib.md5(entity).digest()).decode()
    reply = client.signed("POST", "/raw-bucket", query="delete=", body=entity, headers={"content-md5": md5})
    assert b"root:" not in reply.body


def test_head_errors_have_no_body(client):
    reply = client.signed("HEAD", "/raw-bucket/missing")
    assert (reply.status, reply.body) == (404, b"")


def test_missing_content_length(client):
    signed = sign("PUT", "/raw-bucket/no-length", client.host)
    connection = http.client.HTTPConnection(*client.address, timeout=10)
    connection.putrequest("PUT", "/raw-bucket/no-length", skip_host=True)
    for name, value in signed.headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 411
    connection.close()


# -- aws-chunked -----------------------------------------------------------------------


def chunked_put(
    client: Client, key: str, mode: str, body_for, decoded: int, extra: dict[str, str] | None = None
):
    headers = {
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(decoded),
        **(extra or {}),
    }
    path = f"/raw-bucket/{key}"
    # The body's length is signed, so sign with a placeholder length first to learn the seed signature.
    signed = sign("PUT", path, client.host, headers=headers, payload=mode)
    body = body_for(signed)
    headers["content-length"] = str(len(body))
    signed = sign("PUT", path, client.host, headers=headers, payload=mode)
    return client.send("PUT", path, body_for(signed), signed.headers)


def test_signed_aws_chunked_upload(client):
    chunks = [b"a" * 65536, b"b" * 65536, b"tail"]
    data = b"".join(chunks)
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    reply = chunked_put(client, "chunked", mode, lambda s: signed_chunks(s, chunks), len(data))
    assert reply.status == 200, reply.body
    assert reply.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = get(client, "chunked")
    assert got.body == data
    assert "content-encoding" not in got.headers  # aws-chunked was only the upload's framing

    def tampered(signed: Signed) -> bytes:
        return signed_chunks(signed, chunks).replace(b"b" * 100, b"c" * 100, 1)

    reply = chunked_put(client, "chunked", mode, tampered, len(data))
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch")

    reordered = [chunks[1], chunks[0], chunks[2]]
    reply = chunked_put(client, "chunked", mode, lambda s: signed_chunks(s, reordered), len(data))
    assert reply.status == 200  # a different body, correctly signed, is fine...

    def forged(signed: Signed) -> bytes:
        good = signed_chunks(signed, chunks)
        first_sig = good.split(b"chunk-signature=")[1][:64]
        return good.replace(first_sig, b"0" * 64)

    reply = chunked_put(client, "chunked", mode, forged, len(data))
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch")
    reply = chunked_put(client, "chunked", mode, lambda s: signed_chunks(s, chunks), len(data) + 1)
    assert (reply.status, reply.code) == (400, "IncompleteBody")
    reply = chunked_put(client, "chunked", mode, lambda s: signed_chunks(s, chunks)[:-40], len(data))
    assert reply.status in (400, 403)
    assert get(client, "chunked").body == chunks[1] + chunks[0] + chunks[2]  # ...and failures left it alone


def test_signed_aws_chunked_with_trailer(client):
    chunks = [b"x" * 70000, b"y" * 10]
    data = b"".join(chunks)
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    extra = {"x-amz-trailer": "x-amz-checksum-crc32"}
    good = {"x-amz-checksum-crc32": crc32_b64(data)}
    reply = chunked_put(client, "trailed", mode, lambda s: signed_chunks(s, chunks, good), len(data), extra)
    assert reply.status == 200, reply.body
    got = get(client, "trailed", headers={"x-amz-checksum-mode": "ENABLED"})
    assert got.body == data and got.headers["x-amz-checksum-crc32"] == good["x-amz-checksum-crc32"]

    bad = {"x-amz-checksum-crc32": crc32_b64(b"other")}
    reply = chunked_put(client, "trailed", mode, lambda s: signed_chunks(s, chunks, bad), len(data), extra)
    assert (reply.status, reply.code) == (400, "BadDigest")

    def forged_trailer(signed: Signed) -> bytes:
        body = signed_chunks(signed, chunks, good)
        return body.replace(good["x-amz-checksum-crc32"].encode(), bad["x-amz-checksum-crc32"].encode())

    reply = chunked_put(client, "trailed", mode, forged_trailer, len(data), extra)
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch")


def unsigned_chunks(chunks: list[bytes], trailer: dict[str, str]) -> bytes:
    body = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks)
    return body + b"0\r\n" + "".join(f"{k}:{v}\r\n" for k, v in trailer.items()).encode() + b"\r\n"


def test_unsigned_aws_chunked_with_trailer(client):
    chunks = [b"hello " * 1000, b"world"]
    data = b"".join(chunks)
    mode = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    extra = {"x-amz-trailer": "x-amz-checksum-crc32", "content-type": "text/plain"}
    good = {"x-amz-checksum-crc32": crc32_b64(data)}
    reply = chunked_put(client, "unsigned", mode, lambda s: unsigned_chunks(chunks, good), len(data), extra)
    assert reply.status == 200 and reply.headers["x-amz-checksum-crc32"] == good["x-amz-checksum-crc32"]
    got = get(client, "unsigned")
    assert (got.body, got.headers["content-type"]) == (data, "text/plain")
    bad = {"x-amz-checksum-crc32": crc32_b64(b"nope")}
    reply = chunked_put(client, "unsigned", mode, lambda s: unsigned_chunks(chunks, bad), len(data), extra)
    assert (reply.status, reply.code) == (400, "BadDigest")
    reply = chunked_put(client, "unsigned", mode, lambda s: unsigned_chunks(chunks, {}), len(data), extra)
    assert (reply.status, reply.code) == (400, "InvalidRequest")
    reply = chunked_put(client, "unsigned", mode, lambda s: b"zz\r\nnot chunked", len(data), extra)
    assert (reply.status, reply.code) == (400, "IncompleteBody")
    assert get(client, "unsigned").body == data


def test_dropped_upload_leaves_previous_object(service, client):
    assert put(client, "survivor", b"previous version").status == 200
    body = b"z" * (4 * 1024 * 1024)
    signed = sign("PUT", "/raw-bucket/survivor", client.host, payload="UNSIGNED-PAYLOAD")
    raw = socket.create_connection(client.address)
    head = "".join(f"{k}: {v}\r\n" for k, v in {**signed.headers, "content-length": str(len(body))}.items())
    raw.sendall(f"PUT /raw-bucket/survivor HTTP/1.1\r\n{head}\r\n".encode() + body[: len(body) // 2])
    raw.close()
    time.sleep(0.3)
    assert get(client, "survivor").body == b"previous version"
    assert not [p for p in (service.data_dir / "tmp").iterdir() if not p.name.startswith("trash-")]


def test_virtual_host_style(tmp_path):
    with StorageProcess(tmp_path, [ALICE], extra_args=["--virtual-host-base", "s3.resilin.test"]) as running:
        client = Client(running.endpoint)
        assert client.signed("PUT", "/vhost-bucket").status == 200
        host = f"vhost-bucket.s3.resilin.test:{running.port}"
        signed = sign("PUT", "/some/key", host, payload=hashlib.sha256(b"virtual").hexdigest())
        assert client.send("PUT", "/some/key", b"virtual", signed.headers).status == 200
        assert client.signed("GET", "/vhost-bucket/some/key").body == b"virtual"
        signed = sign("GET", "/", host)
        listing = client.send(
            "GET", "/?list-type=2", headers=sign("GET", "/", host, query="list-type=2").headers
        )
        assert b"<Key>some/key</Key>" in listing.body and signed


def test_unexpected_failures_are_a_bare_internal_error(service, client):
    assert put(client, "damaged", b"will be damaged").status == 200
    path = service.data_dir / "buckets" / "raw-bucket" / "objects" / Path(*names.key_to_parts("damaged"))
    path.write_bytes(b"not an object file")
    reply = get(client, "damaged")
    assert (reply.status, reply.code) == (500, "InternalError")
    assert b"Traceback" not in reply.body and b"File " not in reply.body
    listed = client.signed("GET", "/raw-bucket", query="list-type=2&prefix=damaged")
    assert listed.status == 200 and b"<KeyCount>0</KeyCount>" in listed.body  # left out, not fatal
    assert put(client, "damaged", b"repaired").status == 200
    assert get(client, "damaged").body == b"repaired"


def test_object_size_limit(tmp_path):
    limit = 1024 * 1024
    with StorageProcess(tmp_path, [ALICE], extra_args=["--max-object-size", str(limit)]) as running:
        client = Client(running.endpoint)
        assert client.signed("PUT", "/small-bucket").status == 200
        assert client.signed("PUT", "/small-bucket/fits", body=b"x" * limit).status == 200
        reply = client.signed("PUT", "/small-bucket/over", body=b"x" * (limit + 1))
        assert (reply.status, reply.code) == (400, "EntityTooLarge")
        # Far over: the body is not even spooled to disk.
        reply = client.signed(
            "PUT", "/small-bucket/far-over", body=b"x" * (3 * limit), payload="UNSIGNED-PAYLOAD"
        )
        assert (reply.status, reply.code) == (400, "EntityTooLarge")
        chunks = [b"y" * 65536] * 17
        mode = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        good = {"x-amz-checksum-crc32": crc32_b64(b"".join(chunks))}
        client_host = Client(running.endpoint)
        headers = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(17 * 65536),
                   "x-amz-trailer": "x-amz-checksum-crc32"}  # fmt: skip
        body = unsigned_chunks(chunks, good)
        headers["content-length"] = str(len(body))
        signed = sign("PUT", "/small-bucket/chunked", client_host.host, headers=headers, payload=mode)
        reply = client_host.send("PUT", "/small-bucket/chunked", body, signed.headers)
        assert (reply.status, reply.code) == (400, "EntityTooLarge")
        assert client.signed("GET", "/small-bucket", query="list-type=2").body.count(b"<Key>") == 1


def test_random_bad_requests_never_cause_a_server_error(client):
    """A seeded fuzz over methods, paths, sub-resources, headers and bodies: 4xx (or 501), never 500."""
    import random

    rng = random.Random(20240601)
    odd_values = ["", "*", '"x"', "bytes=", "bytes=--1", "bytes=1-0", "bytes=99999999999999999999-", "a" * 3000,
                  "%", "%zz", "0", "-1", "Mon, 99 Foo 2020", 'W/"abc"', "/raw/../x", "raw-bucket/", "/",
                  "raw-bucket/k?versionId=1", "AAAA", "====", "REPLACE", "STANDARD", "crc32", "x-amz-checksum-crc32"]  # fmt: skip
    header_names = ["range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since",
                    "x-amz-copy-source", "x-amz-copy-source-range", "content-md5", "x-amz-checksum-crc32",
                    "x-amz-checksum-sha256", "x-amz-trailer", "x-amz-sdk-checksum-algorithm", "x-amz-checksum-algorithm",
                    "x-amz-metadata-directive", "x-amz-storage-class", "x-amz-decoded-content-length",
                    "content-encoding", "x-amz-checksum-type", "x-amz-checksum-mode", "x-amz-copy-source-if-match"]  # fmt: skip
    queries = ["", "list-type=2", "list-type=2&max-keys=", "uploads", "uploadId=", "uploadId=" + "0" * 32,
               "partNumber=1&uploadId=zz", "delete", "location", "versioning", "continuation-token=", "marker=%ff",
               "prefix=%00", "delimiter=", "encoding-type=url", "partNumber=0", "partNumber=99999",
               "max-uploads=x", "max-parts=-5&uploadId=" + "a" * 32, "list-type=1&start-after=zz"]  # fmt: skip
    paths = ["/", "/raw-bucket", "/raw-bucket/", "/raw-bucket/fuzz", "/raw-bucket/dir/", "/raw-bucket/%e9",
             "/raw-bucket/a%2Fb", "/no-such-bucket/k", "//", "/raw-bucket//x"]  # fmt: skip
    bodies = [b"", b"x", b"<Delete><Object><Key>k</Key></Object></Delete>", b"\xff\xfe", b"0\r\n\r\n",
              b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>",
              b"<CreateBucketConfiguration><LocationConstraint>zz</LocationConstraint></CreateBucketConfiguration>"]  # fmt: skip
    payloads = [None, "UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", "zz"]  # fmt: skip
    assert put(client, "fuzz", b"fuzz target").status == 200
    for _ in range(400):
        method = rng.choice(["GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS"])
        headers = {name: rng.choice(odd_values) for name in rng.sample(header_names, rng.randint(0, 4))}
        reply = client.signed(
            method,
            rng.choice(paths),
            query=rng.choice(queries),
            body=rng.choice(bodies),
            headers=headers,
            payload=rng.choice(payloads),
        )
        assert reply.status < 500 or reply.status == 501, (method, headers, reply.body)


def test_large_bodies_are_checked_in_place_and_leave_nothing_behind(service, client):
    """Bodies Twisted spools to disk are hashed where they lie; a bad one is removed, a good one renamed."""
    big = bytes(range(256)) * 4096 * 3  # 3 MiB: spooled to a file
    assert put(client, "spooled", big).status == 200
    wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    reply = put(client, "spooled", big[::-1], headers={"content-md5": wrong_md5})
    assert (reply.status, reply.code) == (400, "BadDigest")
    reply = put(client, "spooled", big[::-1], payload=hashlib.sha256(b"else").hexdigest())
    assert (reply.status, reply.code) == (400, "XAmzContentSHA256Mismatch")
    reply = put(client, "spooled", big[::-1], headers={"x-amz-checksum-crc32": "AAAAAA=="})
    assert (reply.status, reply.code) == (400, "BadDigest")
    got = get(client, "spooled")
    assert got.body == big and got.headers["etag"] == f'"{hashlib.md5(big).hexdigest()}"'
    ranged = get(client, "spooled", headers={"range": "bytes=1000000-2999999"})
    assert (ranged.status, ranged.body) == (206, big[1000000:3000000])
    time.sleep(0.2)
    assert not [p for p in (service.data_dir / "tmp").iterdir() if not p.name.startswith("trash-")]


def test_response_heads_on_one_kept_alive_connection(client):
    """HEAD, 304, errors and bodies of every size share one connection without losing framing."""
    small, large = b"s" * 1000, bytes(range(256)) * 2048  # 512 KiB: sent by the producer
    assert put(client, "alive/small", small).status == 200
    assert put(client, "alive/large", large, headers={"x-amz-meta-Mixed-Case": "v"}).status == 200
    connection = http.client.HTTPConnection(*client.address, timeout=30)
    request_ids = set()
    try:
        for _ in range(2):
            for method, path, headers, status, body in [
                ("HEAD", "/raw-bucket/alive/small", {}, 200, b""),
                ("GET", "/raw-bucket/alive/small", {}, 200, small),
                ("GET", "/raw-bucket/alive/large", {}, 200, large),
                ("GET", "/raw-bucket/alive/large", {"range": "bytes=10-19"}, 206, large[10:20]),
                ("HEAD", "/raw-bucket/alive/missing", {}, 404, b""),
                ("GET", "/raw-bucket/alive/small", {"if-none-match": "*"}, 304, b""),
                ("DELETE", "/raw-bucket/alive/missing", {}, 204, b""),
            ]:
                signed = sign(method, path, client.host, headers=headers)
                connection.request(method, path, headers=signed.headers)
                response = connection.getresponse()
                got = response.read()
                assert (response.status, got) == (status, body), (method, path)
                assert response.getheader("date")
                request_id = response.getheader("x-amz-request-id") or ""
                assert len(request_id) == 16 and int(request_id, 16) >= 0 and request_id not in request_ids
                request_ids.add(request_id)
                if method == "HEAD" and status == 200:
                    assert response.getheader("content-length") == str(len(small))
        signed = sign("HEAD", "/raw-bucket/alive/large", client.host)
        connection.request("HEAD", "/raw-bucket/alive/large", headers=signed.headers)
        response = connection.getresponse()
        response.read()
        # User metadata names go out in lower case, as S3 sends them.
        assert ("x-amz-meta-mixed-case", "v") in response.getheaders()
    finally:
        connection.close()


def test_response_header_overrides_cannot_inject_headers(client):
    assert put(client, "inject/k", b"x").status == 200
    reply = client.signed(
        "GET", "/raw-bucket/inject/k", query="response-content-type=text/plain%0D%0AX-Injected%3A%20yes"
    )
    assert reply.status == 200 and reply.body == b"x"
    assert "x-injected" not in reply.headers
    assert reply.headers["content-type"] == "text/plain  X-Injected: yes"


def test_slow_reader_of_a_large_object_gets_every_byte(client):
    """A reader that does not keep up fills the socket: sending waits for it and resumes intact."""
    data = bytes(range(256)) * (24 * 1024)  # 6 MiB
    assert put(client, "slow/big", data).status == 200
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.connect(client.address)
    try:
        for _ in range(2):  # twice on one connection: the first response must end where it says
            signed = sign("GET", "/raw-bucket/slow/big", client.host)
            head = "".join(f"{k}: {v}\r\n" for k, v in signed.headers.items())
            sock.sendall(f"GET /raw-bucket/slow/big HTTP/1.1\r\n{head}\r\n".encode())
            time.sleep(0.3)  # let the server find the socket full
            received = b""
            while b"\r\n\r\n" not in received:
                received += sock.recv(65536)
            head_bytes, _, body = received.partition(b"\r\n\r\n")
            assert head_bytes.startswith(b"HTTP/1.1 200 ")
            assert f"content-length: {len(data)}".encode() in head_bytes.lower()
            while len(body) < len(data):
                piece = sock.recv(256 * 1024)
                assert piece
                body += piece
                time.sleep(0.001)
            assert body == data
    finally:
        sock.close()


def test_large_aws_chunked_uploads_are_decoded_in_place(service, client):
    """A spooled aws-chunked body becomes the object file itself: decoded over its own framing."""
    data = random.Random(4).randbytes(3_000_000)  # in chunks of uneven sizes
    chunks = []
    position = 0
    while position < len(data):
        size = 65536 + (len(chunks) % 5) * 1000
        chunks.append(data[position : position + size])
        position += size
    trailer = {"x-amz-checksum-crc32": crc32_b64(data)}
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    extra = {"x-amz-trailer": "x-amz-checksum-crc32"}
    reply = chunked_put(
        client, "decoded/big", mode, lambda s: signed_chunks(s, chunks, trailer), len(data), extra
    )
    assert reply.status == 200, reply.body
    assert reply.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = get(client, "decoded/big", headers={"x-amz-checksum-mode": "ENABLED"})
    assert got.body == data and got.headers["x-amz-checksum-crc32"] == trailer["x-amz-checksum-crc32"]

    # A bad chunk signature half way through leaves the object as it was, and no file behind.
    def forged(signed: Signed) -> bytes:
        body = signed_chunks(signed, chunks, trailer)
        return body.replace(data[40 * 65536 : 40 * 65536 + 64], bytes(64), 1)

    reply = chunked_put(client, "decoded/big", mode, forged, len(data), extra)
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch")
    assert get(client, "decoded/big").body == data
    time.sleep(0.2)
    assert not [p for p in (service.data_dir / "tmp").iterdir() if not p.name.startswith("trash-")]


def test_bodies_hashed_while_they_arrive_are_checked_alike(service, client):
    """Bodies of 4 MiB and more are hashed as they are spooled: every digest is still checked."""
    big = random.Random(6).randbytes(9 * 1024 * 1024 + 17)
    crc = crc32_b64(big)
    reply = put(client, "streamed", big, headers={"x-amz-checksum-crc32": crc})
    assert reply.status == 200 and reply.headers["etag"] == f'"{hashlib.md5(big).hexdigest()}"'
    other = big[::-1]
    wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    for headers, payload, code in [
        ({"content-md5": wrong_md5}, None, "BadDigest"),
        ({}, hashlib.sha256(b"else").hexdigest(), "XAmzContentSHA256Mismatch"),
        ({"x-amz-checksum-crc32": "AAAAAA=="}, None, "BadDigest"),
        (
            {"x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(b"x").digest()).decode()},
            "UNSIGNED-PAYLOAD",
            "BadDigest",
        ),
    ]:
        reply = put(client, "streamed", other, headers=headers, payload=payload)
        assert (reply.status, reply.code) == (400, code), headers
    reply = put(
        client,
        "streamed",
        other,
        payload="UNSIGNED-PAYLOAD",
        headers={"x-amz-sdk-checksum-algorithm": "SHA1"},
    )
    assert reply.status == 200 and reply.headers["etag"] == f'"{hashlib.md5(other).hexdigest()}"'
    assert get(client, "streamed").body == other
    time.sleep(0.2)
    assert not [p for p in (service.data_dir / "tmp").iterdir() if not p.name.startswith("trash-")]


def test_readers_that_hang_up_mid_body_harm_nobody(service, client):
    """Dropped downloads (some after a few bytes, some with the socket full) leave the service healthy."""
    data = random.Random(8).randbytes(8 * 1024 * 1024)
    assert put(client, "dropped/big", data).status == 200
    for linger in (0.0, 0.2):
        sockets = []
        for _ in range(4):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
            sock.connect(client.address)
            signed = sign("GET", "/raw-bucket/dropped/big", client.host)
            head = "".join(f"{k}: {v}\r\n" for k, v in signed.headers.items())
            sock.sendall(f"GET /raw-bucket/dropped/big HTTP/1.1\r\n{head}\r\n".encode())
            assert sock.recv(1000).startswith(b"HTTP/1.1 200 ")
            sockets.append(sock)
        time.sleep(linger)
        for sock in sockets:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()  # a reset, as a killed client's
    time.sleep(0.2)
    got = get(client, "dropped/big", headers={"range": "bytes=5000000-5999999"})
    assert (got.status, got.body) == (206, data[5000000:6000000])
    assert get(client, "dropped/big").body == data


def test_expect_100_continue_is_answered_before_the_body(client):
    body = b"continued" * 100
    path = "/raw-bucket/continue/k"
    signed = sign(
        "PUT", path, client.host, headers={"expect": "100-continue"}, payload=hashlib.sha256(body).hexdigest()
    )
    head = "".join(f"{k}: {v}\r\n" for k, v in signed.headers.items())
    with socket.create_connection(client.address, timeout=10) as sock:
        sock.sendall(f"PUT {path} HTTP/1.1\r\n{head}content-length: {len(body)}\r\n\r\n".encode())
        assert sock.recv(1000) == b"HTTP/1.1 100 Continue\r\n\r\n"  # before any of the body
        sock.sendall(body)
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200 ")
    assert get(client, "continue/k").body == body
