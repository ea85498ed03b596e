"""Captured requests: a signed change is carried out once (reads and fixed-up retries still work), and
a signature holds for the body it was made over only."""

from __future__ import annotations

import hashlib
import http.client
import json
import time
from urllib.parse import urlencode

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials

from tests.emr_api import REGION, USERS, cluster_request, state_digest, step


def signed(
    emr_api, operation: str, body: dict, user: str = "alice", headers: dict[str, str] | None = None
) -> tuple[bytes, dict]:
    data = json.dumps(body).encode()
    request = AWSRequest(
        method="POST",
        url=emr_api.endpoint + "/",
        data=data,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"ElasticMapReduce.{operation}",
        }
        | (headers or {}),
    )
    creds = USERS[user]
    SigV4Auth(BotoCredentials(creds.access_key, creds.secret_key), "elasticmapreduce", REGION).add_auth(
        request
    )
    return data, dict(request.headers)


def post(emr_api, data: bytes, headers: dict) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", emr_api.port, timeout=30)
    try:
        conn.request("POST", "/", body=data, headers=headers)
        response = conn.getresponse()
        answer = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, json.loads(answer) if answer.startswith(b"{") else {"xml": answer}
    finally:
        conn.close()


def signed_query(emr_api, params: dict[str, str], user: str = "alice") -> tuple[bytes, dict]:
    """A Query-protocol request (the action in the form body), signed with SigV4."""
    data = urlencode({"Version": "2009-03-31"} | params).encode()
    request = AWSRequest(
        method="POST",
        url=emr_api.endpoint + "/",
        data=data,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    creds = USERS[user]
    SigV4Auth(BotoCredentials(creds.access_key, creds.secret_key), "elasticmapreduce", REGION).add_auth(
        request
    )
    return data, dict(request.headers)


def claiming_hash_of(headers: dict, body: bytes) -> dict:
    """A captured request's headers with x-amz-content-sha256 stating ``body``'s hash."""
    return headers | {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}


def test_a_captured_query_request_cannot_carry_another_action(emr_api, redis_client):
    cid = emr_api.client().run_job_flow(**cluster_request())["JobFlowId"]
    listing, headers = signed_query(emr_api, {"Action": "ListClusters"})
    terminate = urlencode(
        {"Action": "TerminateJobFlows", "Version": "2009-03-31", "JobFlowIds.member.1": cid}
    ).encode()
    before = state_digest(redis_client)
    status, _, answer = post(emr_api, terminate, claiming_hash_of(headers, listing))
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in answer["xml"]
    assert state_digest(redis_client) == before
    # As signed, with or without the header stating its hash, the request goes through.
    assert post(emr_api, listing, headers)[0] == 200
    assert post(emr_api, listing, claiming_hash_of(headers, listing))[0] == 200
    assert emr_api.client().describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"] != "TERMINATING"


def test_a_captured_json_request_cannot_carry_another_body(emr_api, redis_client):
    mine = emr_api.client().run_job_flow(**cluster_request())["JobFlowId"]
    other = emr_api.client().run_job_flow(**cluster_request("other"))["JobFlowId"]
    data, headers = signed(emr_api, "TerminateJobFlows", {"JobFlowIds": [mine]})
    swapped = json.dumps({"JobFlowIds": [other]}).encode()
    status, _, error = post(emr_api, swapped, claiming_hash_of(headers, data))
    assert (status, error["__type"]) == (403, "InvalidSignatureException")
    assert "does not match the SHA-256 of the body" in error["message"]
    assert emr_api.client().describe_cluster(ClusterId=other)["Cluster"]["Status"]["State"] != "TERMINATING"


def test_an_unsigned_payload_is_refused(emr_api, redis_client):
    # botocore signs UNSIGNED-PAYLOAD when told to in the header: S3 accepts that, EMR must not.
    data, headers = signed(
        emr_api, "RunJobFlow", cluster_request(), headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
    )
    before = state_digest(redis_client)
    status, _, error = post(emr_api, json.dumps(cluster_request("swapped")).encode(), headers)
    assert (status, error["__type"]) == (403, "InvalidSignatureException")
    assert "unsigned payload" in error["message"]
    assert post(emr_api, data, headers)[0] == 403
    assert state_digest(redis_client) == before


def test_a_replayed_change_is_refused_every_time(emr_api, redis_client):
    data, headers = signed(emr_api, "RunJobFlow", cluster_request())
    status, _, first = post(emr_api, data, headers)
    assert status == 200
    before = state_digest(redis_client)
    for _ in range(3):
        status, answer_headers, error = post(emr_api, data, headers)
        assert (status, error["__type"]) == (400, "ThrottlingException")
        assert "already made its change" in error["message"]
        assert answer_headers["x-amzn-requestid"]
    assert state_digest(redis_client) == before
    assert [c["Id"] for c in emr_api.client().list_clusters()["Clusters"]] == [first["JobFlowId"]]


def test_reads_may_repeat_and_failed_changes_may_be_sent_again(emr_api, redis_client):
    cid = emr_api.client().run_job_flow(**cluster_request())["JobFlowId"]
    data, headers = signed(emr_api, "DescribeCluster", {"ClusterId": cid})
    assert [post(emr_api, data, headers)[0] for _ in range(3)] == [200, 200, 200]
    emr_api.client().set_termination_protection(JobFlowIds=[cid], TerminationProtected=True)
    data, headers = signed(emr_api, "TerminateJobFlows", {"JobFlowIds": [cid]})
    status, _, error = post(emr_api, data, headers)
    assert (status, error["__type"]) == (400, "ValidationException")
    emr_api.client("bob").set_termination_protection(JobFlowIds=[cid], TerminationProtected=False)
    # The refused request changed nothing, so the very same one may be sent once the cause is gone.
    assert post(emr_api, data, headers)[0] == 200
    assert emr_api.client().describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"] == "TERMINATING"


def test_the_same_change_twice_in_a_second_goes_through_on_the_sdk_retry(emr_api, redis_client):
    creds = USERS["alice"]
    emr = boto3.client(
        "emr",
        endpoint_url=emr_api.endpoint,
        region_name=REGION,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        config=Config(retries={"mode": "legacy", "max_attempts": 6}),
    )
    cid = emr.run_job_flow(**cluster_request(Steps=[]))["JobFlowId"]
    began = time.monotonic()
    for _ in range(3):
        emr.add_job_flow_steps(JobFlowId=cid, Steps=[step("again")])
    assert [s["Name"] for s in emr.list_steps(ClusterId=cid)["Steps"]] == ["again"] * 3
    assert time.monotonic() - began < 60
