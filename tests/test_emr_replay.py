"""Replayed signatures: a signed change is carried out once; reads and fixed-up retries still work."""

from __future__ import annotations

import http.client
import json
import time

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials

from tests.emr_api import REGION, USERS, cluster_request, state_digest, step


def signed(emr_api, operation: str, body: dict, user: str = "alice") -> tuple[bytes, dict]:
    data = json.dumps(body).encode()
    request = AWSRequest(
        method="POST",
        url=emr_api.endpoint + "/",
        data=data,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"ElasticMapReduce.{operation}",
        },
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
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(response.read())
    finally:
        conn.close()


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
