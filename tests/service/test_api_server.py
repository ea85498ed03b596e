"""The EMR API served for real on loopback, spoken to by boto3, the AWS CLI and raw HTTP.

The server runs in a subprocess (so its Twisted reactor is its own) over the real job-flow
core and the test session's Redis.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError

from resilin.api.server import MAX_BODY
from resilin.service.children import Child
from tests.bodylimit import answer_to_chunked_body, answer_to_declared_length

ACCOUNT = "111111111111"
OTHER_ACCOUNT = "222222222222"
KEY, SECRET = "AKIARESILINTEST00001", "resilin/test+secret0123456789abcdefghijk"
OTHER_KEY, OTHER_SECRET = "AKIARESILINTEST00002", "another/secret+0123456789abcdefghijklmnop"
REGION = "us-east-1"
JSON_TYPE = "application/x-amz-json-1.1"

SERVER = """
import json, logging, sys, time
import redis
from twisted.internet import reactor
from resilin.api.server import make_site
from resilin.jobflows.service import EmrService
from resilin.jobflows.store import JobFlowStore
from resilin.aws.sigv4 import Credentials

cfg = json.loads(sys.argv[1])
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
client = redis.Redis.from_url(cfg["redis_url"], decode_responses=True)


class BrokenService(EmrService):
    # Stands in for core bugs: a result outside its shape, and a crash.
    def describe_cluster(self, account, params):
        return {"Cluster": {"Id": 42, "Secret": "do-not-leak"}}

    def list_clusters(self, account, params):
        raise RuntimeError("do-not-leak: core crashed")

    def describe_step(self, account, params):
        time.sleep(2)
        return super().describe_step(account, params)


service_class = BrokenService if cfg["broken"] else EmrService
service = service_class(JobFlowStore(client), region=cfg["region"])
accounts = {key: Credentials(key, secret, account) for key, secret, account in cfg["accounts"]}
site = make_site(service, accounts.get, cfg["region"])
port = reactor.listenTCP(0, site, interface="127.0.0.1")
print(f"listening on http://127.0.0.1:{port.getHost().port}", flush=True)
reactor.run()
"""


class Server:
    def __init__(self, redis_url: str, log_path: Path, broken: bool = False) -> None:
        cfg = {
            "redis_url": redis_url,
            "region": REGION,
            "broken": broken,
            "accounts": [[KEY, SECRET, ACCOUNT], [OTHER_KEY, OTHER_SECRET, OTHER_ACCOUNT]],
        }
        self.log_path = log_path
        self.child = Child("API server", [sys.executable, "-c", SERVER, json.dumps(cfg)], log_path)
        self.endpoint = self.child.start(timeout=60)
        self.port = int(self.endpoint.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        self.child.stop()


@pytest.fixture(scope="module")
def server(redis_server, tmp_path_factory):
    srv = Server(redis_server.url, tmp_path_factory.mktemp("api") / "server.log")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def broken_server(redis_server, tmp_path_factory):
    srv = Server(redis_server.url, tmp_path_factory.mktemp("api") / "broken.log", broken=True)
    yield srv
    srv.stop()


def emr_client(srv: Server, key: str = KEY, secret: str = SECRET, validate: bool = True):
    return boto3.client(
        "emr",
        endpoint_url=srv.endpoint,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(parameter_validation=validate, retries={"total_max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture
def emr(server, redis_client):
    # redis_client empties Redis before each test, so every test starts with no clusters.
    return emr_client(server)


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self) -> dict:
        return json.loads(self.body)


def send(
    srv: Server,
    operation: str = "ListClusters",
    body: bytes | dict = b"{}",
    *,
    target: str | None = None,
    method: str = "POST",
    content_type: str = JSON_TYPE,
    key: str = KEY,
    secret: str = SECRET,
    region: str = REGION,
    signed: bool = True,
) -> Reply:
    """One raw HTTP request, signed with botocore's SigV4 signer unless ``signed`` is False."""
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    headers = {"Content-Type": content_type, "X-Amz-Target": target or f"ElasticMapReduce.{operation}"}
    request = AWSRequest(method=method, url=srv.endpoint + "/", data=body, headers=headers)
    if signed:
        SigV4Auth(BotoCredentials(key, secret), "elasticmapreduce", region).add_auth(request)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.request(method, "/", body=body, headers=dict(request.headers))
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def assert_error(reply: Reply, status: int, code: str, message: str | None = None) -> dict:
    assert reply.status == status, reply.body
    assert reply.headers["x-amzn-errortype"] == code
    assert reply.headers["x-amzn-requestid"]
    document = reply.json
    assert document["__type"] == code
    if message is not None:
        assert document["message"] == message
    assert "Traceback" not in document["message"]
    return document


def assert_no_clusters(srv: Server) -> None:
    assert emr_client(srv).list_clusters()["Clusters"] == []


RUN_JOB_FLOW = {
    "Name": "wordcount",
    "ReleaseLabel": "emr-6.15.0",
    "Instances": {
        "MasterInstanceType": "m5.xlarge",
        "SlaveInstanceType": "m5.xlarge",
        "InstanceCount": 3,
        "KeepJobFlowAliveWhenNoSteps": True,
    },
    "Steps": [
        {
            "Name": "wc",
            "ActionOnFailure": "CONTINUE",
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["hadoop-streaming", "-input", "in"]},
        }
    ],
}

# -- protocol errors: none of these reach the core -------------------------------------------


def test_unknown_operation(server, redis_client):
    assert_error(send(server, "Frobnicate"), 400, "UnknownOperationException")
    assert_error(send(server, target="DynamoDB_20120810.ListTables"), 400, "UnknownOperationException")


def test_operation_the_core_does_not_implement(emr):
    with pytest.raises(ClientError) as info:
        emr.list_studios()
    assert info.value.response["Error"]["Code"] == "UnknownOperationException"
    assert "not supported" in info.value.response["Error"]["Message"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_malformed_json(server, redis_client):
    assert_error(send(server, "RunJobFlow", b'{"Name": "x",'), 400, "SerializationException")
    assert_error(send(server, "RunJobFlow", b"[1, 2]"), 400, "SerializationException")
    assert_error(send(server, "RunJobFlow", b"\xff\xfe"), 400, "SerializationException")
    assert_no_clusters(server)


@pytest.mark.parametrize("depth", [100, 1000, 2000])
def test_deeply_nested_json_is_a_client_error(server, redis_client, depth):
    nested_value = b'{"Name": ' + b"[" * depth + b"]" * depth + b"}"
    assert_error(send(server, "RunJobFlow", nested_value), 400, "SerializationException")
    configuration = b'{"Classification": "c"}'
    for _ in range(depth // 2):  # the model's own recursion: configurations within configurations
        configuration = b'{"Classification": "c", "Configurations": [' + configuration + b"]}"
    body = b'{"Name": "n", "Instances": {}, "Configurations": [' + configuration + b"]}"
    assert_error(send(server, "RunJobFlow", body), 400, "SerializationException")
    assert_no_clusters(server)
    assert "RecursionError" not in server.log()


def test_json_nested_as_deep_as_configurations_need_is_validated(server, redis_client):
    configuration = b'{"Classification": "c", "Properties": {"k": "v"}}'
    for _ in range(5):
        configuration = b'{"Classification": "c", "Configurations": [' + configuration + b"]}"
    body = b'{"Name": "n", "Instances": {}, "Configurations": [' + configuration + b'], "Bogus": [[[1]]]}'
    document = assert_error(send(server, "RunJobFlow", body), 400, "ValidationException")
    assert "bogus" in document["message"]


def test_wrong_content_type_and_method(server, redis_client):
    reply = send(server, "ListClusters", content_type="application/x-www-form-urlencoded")
    assert_error(reply, 415, "UnsupportedMediaTypeException")
    assert_error(send(server, "ListClusters", b"", method="GET"), 405, "MethodNotAllowedException")


def _too_large(answer: bytes) -> tuple[bytes, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"x-amzn-requestid: " in head.lower() and b"connection: close" in head.lower()
    return head, body


def test_oversized_body_is_refused_before_it_is_read(server, redis_client):
    address, json_target = (
        ("127.0.0.1", server.port),
        {"Content-Type": JSON_TYPE, "X-Amz-Target": "X.RunJobFlow"},
    )
    # Declared: refused on the headers alone (no 100 Continue), and the connection closed.
    _, body = _too_large(answer_to_declared_length(address, "/", 10 * 1024**3, json_target))
    assert json.loads(body)["__type"] == "RequestEntityTooLargeException"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    _, body = _too_large(answer_to_declared_length(address, "/", MAX_BODY + 1, form))
    assert b"<Code>RequestEntityTooLarge</Code>" in body
    # Chunked: refused once past the limit, without waiting for the end of the body.
    _, body = _too_large(answer_to_chunked_body(address, "/", MAX_BODY, json_target))
    assert json.loads(body)["__type"] == "RequestEntityTooLargeException"
    assert "Traceback" not in server.log()


def test_chunked_body_within_the_limit_is_served(server, redis_client):
    data = b"{}"
    request = AWSRequest(
        method="POST",
        url=server.endpoint + "/",
        data=data,
        headers={"Content-Type": JSON_TYPE, "X-Amz-Target": "ElasticMapReduce.ListClusters"},
    )
    SigV4Auth(BotoCredentials(KEY, SECRET), "elasticmapreduce", REGION).add_auth(request)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(
            "POST", "/", body=iter([data[:1], data[1:]]), headers=dict(request.headers), encode_chunked=True
        )
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())) == (200, {"Clusters": []})
    finally:
        conn.close()


def test_missing_name(server, redis_client):
    body = {k: v for k, v in RUN_JOB_FLOW.items() if k != "Name"}
    assert_error(
        send(server, "RunJobFlow", body),
        400,
        "ValidationException",
        "1 validation error detected: Value null at 'name' failed to satisfy constraint: "
        "Member must not be null",
    )
    assert_no_clusters(server)


def test_missing_name_and_instances_through_boto3(server, redis_client):
    emr = emr_client(server, validate=False)
    with pytest.raises(ClientError) as info:
        emr.run_job_flow(ReleaseLabel="emr-6.15.0")
    error = info.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"].startswith("2 validation errors detected: ")
    assert "Value null at 'name'" in error["Message"]
    assert "Value null at 'instances'" in error["Message"]
    assert_no_clusters(server)


def test_wrong_type(server, redis_client):
    body = json.loads(json.dumps(RUN_JOB_FLOW))
    body["Instances"]["InstanceCount"] = "three"
    assert_error(
        send(server, "RunJobFlow", body),
        400,
        "ValidationException",
        "1 validation error detected: Value 'three' at 'instances.instanceCount' failed to satisfy "
        "constraint: Member must be an integer",
    )
    assert_no_clusters(server)


def test_enum_out_of_range_in_a_list(server, redis_client):
    body = json.loads(json.dumps(RUN_JOB_FLOW))
    body["Steps"][0]["ActionOnFailure"] = "EXPLODE"
    document = assert_error(send(server, "RunJobFlow", body), 400, "ValidationException")
    assert "Value 'EXPLODE' at 'steps.1.member.actionOnFailure'" in document["message"]
    assert "Member must satisfy enum value set: [" in document["message"]
    assert_no_clusters(server)


def test_unknown_member_and_too_long_name(server, redis_client):
    body = RUN_JOB_FLOW | {"Name": "n" * 257, "Colour": "blue"}
    document = assert_error(send(server, "RunJobFlow", body), 400, "ValidationException")
    assert "Member must have length less than or equal to 256" in document["message"]
    assert "at 'colour' failed to satisfy constraint: Member is not a known member of" in document["message"]
    assert_no_clusters(server)


def test_unsigned_request(server, redis_client):
    assert_error(
        send(server, "RunJobFlow", RUN_JOB_FLOW, signed=False), 403, "MissingAuthenticationTokenException"
    )
    assert_no_clusters(server)


def test_bad_signature(server, redis_client):
    reply = send(server, "RunJobFlow", RUN_JOB_FLOW, secret="not-the-secret")
    assert_error(reply, 403, "InvalidSignatureException")
    assert_no_clusters(server)


def test_unknown_access_key(server, redis_client):
    emr = emr_client(server, key="AKIANOBODYKNOWSTHIS0", secret="whatever")
    with pytest.raises(ClientError) as info:
        emr.run_job_flow(**RUN_JOB_FLOW)
    assert info.value.response["Error"] == {
        "Code": "UnrecognizedClientException",
        "Message": "The security token included in the request is invalid.",
    }
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert_no_clusters(server)


def test_clock_skew(server, redis_client, monkeypatch):
    an_hour_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: an_hour_ago)
    document = assert_error(send(server, "RunJobFlow", RUN_JOB_FLOW), 403, "InvalidSignatureException")
    assert document["message"].startswith("Signature expired")
    monkeypatch.undo()
    assert_no_clusters(server)


def test_malformed_authorization(server, redis_client):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(
        "POST",
        "/",
        body=b"{}",
        headers={
            "Content-Type": JSON_TYPE,
            "X-Amz-Target": "ElasticMapReduce.ListClusters",
            "Authorization": "AWS4-HMAC-SHA256 Credential=garbage",
        },
    )
    response = conn.getresponse()
    reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    conn.close()
    assert_error(reply, 403, "IncompleteSignatureException")


def test_signature_for_another_region(server, redis_client):
    document = assert_error(send(server, region="eu-west-1"), 403, "InvalidSignatureException")
    assert "eu-west-1" in document["message"]


# -- operations through boto3 over the real core ---------------------------------------------


def test_run_job_flow_and_list_clusters(emr):
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    run = emr.run_job_flow(**RUN_JOB_FLOW)
    cid = run["JobFlowId"]
    assert cid.startswith("j-")
    assert run["ClusterArn"].endswith(cid)
    assert run["ResponseMetadata"]["RequestId"]

    listed = emr.list_clusters()["Clusters"]
    assert [(c["Id"], c["Name"], c["Status"]["State"]) for c in listed] == [(cid, "wordcount", "STARTING")]
    created = listed[0]["Status"]["Timeline"]["CreationDateTime"]
    assert isinstance(created, dt.datetime)
    assert before <= created <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    # Timestamps in requests reach the core as datetimes that filter correctly.
    assert [c["Id"] for c in emr.list_clusters(CreatedAfter=before)["Clusters"]] == [cid]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert emr.list_clusters(CreatedAfter=later)["Clusters"] == []
    assert emr.list_clusters(ClusterStates=["TERMINATED"])["Clusters"] == []
    assert len(emr.list_clusters(ClusterStates=["STARTING", "RUNNING"])["Clusters"]) == 1


def test_describe_cluster(emr):
    cid = emr.run_job_flow(**RUN_JOB_FLOW)["JobFlowId"]
    cluster = emr.describe_cluster(ClusterId=cid)["Cluster"]
    assert cluster["Id"] == cid
    assert cluster["Name"] == "wordcount"
    assert cluster["Status"]["State"] == "STARTING"
    assert isinstance(cluster["Status"]["Timeline"]["CreationDateTime"], dt.datetime)
    assert cluster["AutoTerminate"] is False
    assert cluster["ReleaseLabel"] == "emr-6.15.0"


def test_steps_round_trip(emr):
    cid = emr.run_job_flow(**RUN_JOB_FLOW)["JobFlowId"]
    assert [s["Name"] for s in emr.list_steps(ClusterId=cid)["Steps"]] == ["wc"]

    added = emr.add_job_flow_steps(
        JobFlowId=cid,
        Steps=[
            {
                "Name": "second",
                "ActionOnFailure": "CONTINUE",
                "HadoopJarStep": {"Jar": "s3://bucket/job.jar", "MainClass": "Main", "Args": ["a"]},
            }
        ],
    )["StepIds"]
    assert len(added) == 1 and added[0].startswith("s-")
    steps = emr.list_steps(ClusterId=cid)["Steps"]
    assert [s["Name"] for s in steps] == ["second", "wc"]
    assert [s["Id"] for s in emr.list_steps(ClusterId=cid, StepIds=added)["Steps"]] == added

    step = emr.describe_step(ClusterId=cid, StepId=added[0])["Step"]
    assert step["Config"]["Jar"] == "s3://bucket/job.jar"
    assert step["Config"]["MainClass"] == "Main"
    assert step["Config"]["Args"] == ["a"]
    assert step["Status"]["State"] == "PENDING"
    assert isinstance(step["Status"]["Timeline"]["CreationDateTime"], dt.datetime)


def test_terminate_job_flows(emr):
    cid = emr.run_job_flow(**RUN_JOB_FLOW)["JobFlowId"]
    emr.terminate_job_flows(JobFlowIds=[cid])
    (cluster,) = emr.list_clusters()["Clusters"]
    assert cluster["Status"]["State"] in ("TERMINATING", "TERMINATED")
    with pytest.raises(ClientError) as info:
        emr.add_job_flow_steps(JobFlowId=cid, Steps=RUN_JOB_FLOW["Steps"])
    assert info.value.response["Error"]["Code"] == "ValidationException"


def test_core_errors_reach_the_client(emr):
    with pytest.raises(ClientError) as info:
        emr.describe_cluster(ClusterId="j-NOSUCHCLUSTER")
    assert info.value.response["Error"]["Code"] == "InvalidRequestException"
    assert "j-NOSUCHCLUSTER" in info.value.response["Error"]["Message"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_accounts_are_isolated(server, emr):
    cid = emr.run_job_flow(**RUN_JOB_FLOW)["JobFlowId"]
    other = emr_client(server, OTHER_KEY, OTHER_SECRET)
    assert other.list_clusters()["Clusters"] == []
    with pytest.raises(ClientError):
        other.describe_cluster(ClusterId=cid)


def test_request_id_on_success_and_error(server, redis_client):
    ok = send(server, "ListClusters")
    assert ok.status == 200 and ok.json == {"Clusters": []}
    assert ok.headers["content-type"] == JSON_TYPE
    failed = send(server, "Frobnicate", signed=False)
    assert ok.headers["x-amzn-requestid"] != failed.headers["x-amzn-requestid"]


def test_aws_cli_parses_answers(server, emr):
    cid = emr.run_job_flow(**RUN_JOB_FLOW)["JobFlowId"]
    env = os.environ | {
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    aws = Path(sys.executable).with_name("aws")
    done = subprocess.run(
        [str(aws), "emr", "list-clusters", "--endpoint-url", server.endpoint, "--region", REGION],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    clusters = json.loads(done.stdout)["Clusters"]
    assert [c["Id"] for c in clusters] == [cid]
    assert clusters[0]["Status"]["State"] == "STARTING"


# -- core bugs -----------------------------------------------------------------------------


def test_core_result_outside_its_shape_is_an_internal_error(broken_server, redis_client):
    reply = send(broken_server, "DescribeCluster", {"ClusterId": "j-ANYTHING"})
    document = assert_error(reply, 500, "InternalServerError")
    assert "do-not-leak" not in reply.body.decode()
    assert "42" not in document["message"]
    _wait_for_log(broken_server, "outside its shape")


def test_core_crash_is_an_internal_error(broken_server, redis_client):
    reply = send(broken_server, "ListClusters")
    assert_error(reply, 500, "InternalServerError")
    assert "do-not-leak" not in reply.body.decode()
    assert "Traceback" not in reply.body.decode()
    _wait_for_log(broken_server, "RuntimeError: do-not-leak: core crashed")


def test_slow_core_call_does_not_block_other_requests(broken_server, redis_client):
    slow: list[Reply] = []
    thread = threading.Thread(
        target=lambda: slow.append(send(broken_server, "DescribeStep", {"ClusterId": "j-1", "StepId": "s-1"}))
    )
    thread.start()
    time.sleep(0.3)  # let the slow call reach the core
    started = time.monotonic()
    quick = send(broken_server, "DescribeCluster", {"ClusterId": "j-1"})
    assert time.monotonic() - started < 1.0
    assert quick.status == 500
    assert not slow  # still in the core
    thread.join(timeout=10)
    assert_error(slow[0], 400, "InvalidRequestException")


def _wait_for_log(srv: Server, text: str) -> None:
    deadline = time.monotonic() + 5
    while text not in srv.log():
        assert time.monotonic() < deadline, srv.log()
        time.sleep(0.05)
