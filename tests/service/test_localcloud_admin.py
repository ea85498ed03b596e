"""The local cloud's admin resource on the AWS request skeleton, driven with Twisted's in-memory request.

A real LocalCloud over Redis (faults live in it; no container is started): the operator's
signed requests change and read the faults, anybody else is refused, and every answer is
JSON with its length.
"""

from __future__ import annotations

import io
import json

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from twisted.web.test.requesthelper import DummyRequest

from resilin.aws.sigv4 import Credentials
from resilin.provisioners.localcloud.admin import AdminResource
from resilin.provisioners.localcloud.cloud import LocalCloud
from resilin.settings.config import CloudConfig
from tests.localcloud_helpers import ALICE, BOB

ACCOUNTS = {c.access_key: c for c in (ALICE, BOB)}


def _admin(redis_client) -> AdminResource:
    cloud = LocalCloud(CloudConfig(name="admin-test", endpoint="http://localhost/"), redis_client, [])
    return AdminResource(cloud, ACCOUNTS.get, operators=[ALICE.account_id])


def _signed(creds: Credentials, method: str, path: str, body: bytes = b"") -> DummyRequest:
    signing = AWSRequest(method=method, url=f"http://localhost{path}", data=body)
    SigV4Auth(BotoCredentials(creds.access_key, creds.secret_key), "ec2", "us-east-1").add_auth(signing)
    request = DummyRequest([p.encode() for p in path.split("/")[2:]])  # the path under /admin/
    request.method, request.uri, request.content = method.encode(), path.encode(), io.BytesIO(body)
    for name, value in {"Host": "localhost", **dict(signing.headers)}.items():
        request.requestHeaders.setRawHeaders(name, [value])
    return request


def _answer(admin: AdminResource, request: DummyRequest) -> tuple[int, dict]:
    admin.render(request)
    assert request.finished
    assert request.responseHeaders.getRawHeaders(b"content-type") == [b"application/json"]
    body = b"".join(request.written)
    assert request.responseHeaders.getRawHeaders(b"content-length") == [str(len(body)).encode()]
    return request.responseCode, json.loads(body)


def test_the_operator_changes_and_reads_the_faults(redis_client):
    admin = _admin(redis_client)
    status, faults = _answer(admin, _signed(ALICE, "PUT", "/admin/faults", b'{"throttle": 2}'))
    assert status == 200 and faults["throttle"] == 2
    status, faults = _answer(admin, _signed(ALICE, "GET", "/admin/faults"))
    assert status == 200 and faults["throttle"] == 2 and admin.cloud.faults.to_json() == faults


def test_others_and_bad_requests_get_json_errors(redis_client):
    admin = _admin(redis_client)
    status, error = _answer(admin, _signed(BOB, "GET", "/admin/faults"))
    assert status == 403 and error["Error"]["Code"] == "AccessDenied"
    status, error = _answer(admin, _signed(ALICE, "POST", "/admin/faults"))
    assert status == 405 and error["Error"]["Code"] == "MethodNotAllowed"
    status, error = _answer(admin, _signed(ALICE, "GET", "/admin/nothing-here"))
    assert status == 404 and error["Error"]["Code"] == "NotFound"
