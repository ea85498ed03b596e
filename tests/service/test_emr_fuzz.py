"""Seeded fuzzing of both protocols with requests generated from botocore's EMR model.

For every operation Resilin implements, a request is generated from the operation's input
shape (ids of a real cluster where ids are asked for) and then broken in exactly one way:
a required member left out, a value of the wrong type, a value out of its range or enum, a
string longer than allowed, a member the shape does not have.  Around them: unknown targets
and actions, broken JSON and form bodies, bad and replayed signatures.  Every request must get
a 4xx answer shaped as AWS shapes errors (with a request id) and leave Redis as it was; none
may get a 5xx.  ``RESILIN_FUZZ_SEED`` picks another seed; ``RESILIN_FUZZ_ROUNDS`` more cases.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore import xform_name
from botocore.auth import SigV2Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from botocore.model import Shape
from lxml import etree

from resilin.api import model
from resilin.jobflows.service import EmrService
from resilin.jobflows.store import JobFlowStore
from tests.emr_api import REGION, USERS, cluster_request, state_digest, worker_runs

SEED = int(os.environ.get("RESILIN_FUZZ_SEED", "20240601"))
ROUNDS = int(os.environ.get("RESILIN_FUZZ_ROUNDS", "8"))
OPERATIONS = [
    op for op in model.emr_model().operation_names if callable(getattr(EmrService, xform_name(op), None))
]
NS = {"emr": "http://elasticmapreduce.amazonaws.com/doc/2009-03-31"}


@dataclass
class Ids:
    cluster: str
    step: str
    group: str


def _letters(rng: random.Random, low: int, high: int) -> str:
    return "".join(rng.choice(string.ascii_letters) for _ in range(rng.randint(low, high)))


def generate(shape: Shape, rng: random.Random, ids: Ids, name: str = "", depth: int = 0) -> Any:
    """A value that fits ``shape`` (the core may still refuse what it means)."""
    kind = shape.type_name
    if kind == "structure":
        out = {}
        for member, member_shape in shape.members.items():
            if member in shape.required_members or (depth < 3 and rng.random() < 0.3):
                out[member] = generate(member_shape, rng, ids, member, depth + 1)
        return out
    if kind == "list":
        low = shape.metadata.get("min", 0)
        return [generate(shape.member, rng, ids, name, depth + 1) for _ in range(max(low, rng.randint(1, 2)))]
    if kind == "map":
        return {_letters(rng, 1, 8): generate(shape.value, rng, ids, name, depth + 1)}
    if kind == "string":
        if shape.enum:
            return rng.choice(shape.enum)
        if name in ("ClusterId", "JobFlowId", "ResourceId", "JobFlowIds"):
            return ids.cluster
        if name in ("StepId", "StepIds"):
            return ids.step
        if name == "InstanceGroupId":
            return ids.group
        low = shape.metadata.get("min", 1) or 1
        return _letters(rng, low, max(low, min(shape.metadata.get("max", 12), 12)))
    if kind in ("integer", "long"):
        low, high = shape.metadata.get("min", 0), shape.metadata.get("max", 10)
        return rng.randint(int(low), int(max(low, min(high, low + 10))))
    if kind in ("float", "double"):
        return float(shape.metadata.get("min", 0)) + 1.5
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "timestamp":
        return 1_700_000_000 + rng.randint(0, 10**7)
    if kind == "blob":
        return "AAAA"
    return {}


@dataclass
class Site:
    """One place in a generated request: its container, its key, and the shape there."""

    container: Any
    key: Any
    shape: Shape


def sites(shape: Shape, value: Any) -> Iterator[Site]:
    if shape.type_name == "structure" and isinstance(value, dict):
        for member, item in value.items():
            member_shape = shape.members[member]
            yield Site(value, member, member_shape)
            yield from sites(member_shape, item)
    elif shape.type_name == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            yield Site(value, i, shape.member)
            yield from sites(shape.member, item)
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            yield Site(value, key, shape.value)
            yield from sites(shape.value, item)


def structures(shape: Shape, value: Any) -> Iterator[tuple[dict, Shape]]:
    if shape.type_name == "structure" and isinstance(value, dict):
        yield value, shape
    for site in sites(shape, value):
        if site.shape.type_name == "structure" and isinstance(site.container[site.key], dict):
            yield site.container[site.key], site.shape


# Values of the wrong type that stay wrong once written in the protocol's format (a number
# sent to a string member is wrong in JSON but reads as the text "5" in the Query protocol).
WRONG_JSON = {
    "string": [12345, {"x": 1}, ["a"]],
    "integer": ["twelve", 1.5, True],
    "long": ["twelve", 1.5],
    "float": ["abc", True],
    "double": ["abc", [1]],
    "boolean": ["yes", 1],
    "list": ["not-a-list", {"a": 1}],
    "structure": [["x"], "flat", 7],
    "map": [["x"], "flat"],
    "timestamp": ["yesterday", True],
    "blob": ["!!!not base64!!!", 5],
}
WRONG_QUERY = {
    "string": [{"Nested": "x"}],
    "integer": ["twelve", "1.5"],
    "long": ["twelve"],
    "float": ["abc", "inf"],
    "double": ["abc", "nan"],
    "boolean": ["yes", "1"],
    "list": ["not-a-list", {"NotMember": "x"}],
    "structure": ["flat"],
    "map": ["flat", {"NotEntry": "x"}],
    "timestamp": ["yesterday"],
    "blob": ["!!!not base64!!!"],
}


def break_once(shape: Shape, request: dict, rng: random.Random, protocol: str) -> str:
    """Break ``request`` in one way the validator must refuse; say how."""
    candidates = list(sites(shape, request))
    ways = ["unknown member", "wrong type"]
    if (
        any(s.shape.type_name == "structure" and s.shape.required_members for s in candidates)
        or shape.required_members
    ):
        ways.append("missing required")
    bounded = [
        s
        for s in candidates
        if getattr(s.shape, "enum", None)
        or (s.shape.type_name == "string" and "max" in s.shape.metadata)
        or (
            s.shape.type_name in ("integer", "long")
            and ("min" in s.shape.metadata or "max" in s.shape.metadata)
        )
    ]
    if bounded:
        ways.append("out of range")
    way = rng.choice(ways)
    if way == "unknown member" or not candidates and way == "wrong type":
        container, _ = rng.choice(list(structures(shape, request)))
        container["ResilinFuzz" + _letters(rng, 3, 6)] = "surprise"
        return "unknown member"
    if way == "wrong type":
        site = rng.choice(candidates)
        table = WRONG_JSON if protocol == "json" else WRONG_QUERY
        site.container[site.key] = rng.choice(table[site.shape.type_name])
        return f"wrong type at {site.key!r}"
    if way == "missing required":
        holders = [(c, s) for c, s in structures(shape, request) if s.required_members]
        container, holder = rng.choice(holders)
        del container[rng.choice(holder.required_members)]
        return "missing required"
    site = rng.choice(bounded)
    meta = site.shape.metadata
    if getattr(site.shape, "enum", None):
        site.container[site.key] = "NOT_" + site.shape.enum[0]
    elif site.shape.type_name == "string":
        site.container[site.key] = "x" * (meta["max"] + 1 + rng.randint(0, 1000))
    elif "max" in meta and (rng.random() < 0.5 or "min" not in meta):
        site.container[site.key] = int(meta["max"]) + 1
    else:
        site.container[site.key] = int(meta["min"]) - 1
    return f"out of range at {site.key!r}"


def flatten(shape: Shape | None, value: Any, prefix: str, out: dict[str, str]) -> None:
    """``value`` written as Query-protocol parameters (shape-guided where the value fits it)."""
    kind = shape.type_name if shape is not None else None
    if isinstance(value, dict):
        if kind == "map":
            for i, (k, v) in enumerate(value.items(), 1):
                out[f"{prefix}.entry.{i}.key"] = str(k)
                flatten(shape.value, v, f"{prefix}.entry.{i}.value", out)
            return
        members = shape.members if kind == "structure" else {}
        for k, v in value.items():
            flatten(members.get(k), v, f"{prefix}.{k}" if prefix else k, out)
    elif isinstance(value, list):
        if not value:
            out[prefix] = ""
        member = shape.member if kind == "list" else None
        for i, item in enumerate(value, 1):
            flatten(member, item, f"{prefix}.member.{i}", out)
    elif isinstance(value, bool):
        out[prefix] = "true" if value else "false"
    else:
        out[prefix] = str(value)


# -- sending ---------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def send_raw(port: int, method: str, path: str, body: bytes, headers: dict) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    # The length is the body's as sent (cases change bodies after signing).
    headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
    try:
        try:
            conn.request(method, path, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a body too large is answered, and the connection closed, before it is all sent
        response = conn.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def json_request(
    emr_api, target: str, body: bytes, user: str = "alice", sign: bool = True
) -> tuple[bytes, dict]:
    request = AWSRequest(method="POST", url=emr_api.endpoint + "/", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target})  # fmt: skip
    if sign:
        creds = USERS[user]
        SigV4Auth(BotoCredentials(creds.access_key, creds.secret_key), "elasticmapreduce", REGION).add_auth(
            request
        )
    return body, dict(request.headers)


def query_request(emr_api, params: dict[str, str], signer: str) -> tuple[bytes, dict]:
    creds = BotoCredentials(USERS["alice"].access_key, USERS["alice"].secret_key)
    request = AWSRequest(method="POST", url=emr_api.endpoint + "/", data=dict(params),
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})  # fmt: skip
    if signer == "v2":
        SigV2Auth(creds).add_auth(request)
    else:
        SigV4Auth(creds, "elasticmapreduce", REGION).add_auth(request)
    prepared = request.prepare()
    body = prepared.body if isinstance(prepared.body, bytes) else prepared.body.encode()
    return body, dict(prepared.headers)


def check_refused(answer: Answer, protocol: str, case: str) -> str:
    where = f"[seed {SEED}] {case}: {answer.status} {answer.body[:600]!r}"
    assert 400 <= answer.status < 500, where
    assert answer.headers.get("x-amzn-requestid"), where
    if protocol == "json":
        document = json.loads(answer.body)
        assert set(document) == {"__type", "message"} and document["__type"] and document["message"], where
        assert answer.headers["x-amzn-errortype"] == document["__type"], where
        code = document["__type"]
    else:
        root = etree.fromstring(answer.body)
        assert root.tag == f"{{{NS['emr']}}}ErrorResponse", where
        assert root.findtext("emr:Error/emr:Type", namespaces=NS) == "Sender", where
        assert root.findtext("emr:RequestId", namespaces=NS) == answer.headers["x-amzn-requestid"], where
        code = root.findtext("emr:Error/emr:Code", namespaces=NS)
    assert "Traceback" not in answer.body.decode("utf-8", "replace"), where
    return code


# -- the fuzzing -------------------------------------------------------------------------------------


@pytest.fixture
def target(emr_api, redis_client):
    """A real cluster, running (as far as the store says), to aim the generated requests at."""
    emr = emr_api.client()
    cid = emr.run_job_flow(**cluster_request())["JobFlowId"]
    worker_runs(JobFlowStore(redis_client), cid)
    step = emr.list_steps(ClusterId=cid)["Steps"][0]["Id"]
    group = emr.list_instance_groups(ClusterId=cid)["InstanceGroups"][0]["Id"]
    return Ids(cid, step, group)


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_broken_requests_from_the_model(emr_api, redis_client, target, protocol):
    rng = random.Random(f"{SEED}-{protocol}")
    before = state_digest(redis_client)
    codes: dict[str, int] = {}
    for round_number in range(ROUNDS):
        for operation in OPERATIONS:
            shape = model.operation(operation).input_shape
            if shape is None or not shape.members:
                # Nothing to break but the request itself: any member is unknown.
                request: dict = {"ResilinFuzzMember": "x"}
                how = "member of an operation without input"
            else:
                request = generate(shape, rng, target)
                how = break_once(shape, request, rng, protocol)
            case = f"{protocol} {operation} round {round_number}: {how}: {json.dumps(request, default=str)[:300]}"
            if protocol == "json":
                body, headers = json_request(
                    emr_api, f"ElasticMapReduce.{operation}", json.dumps(request).encode()
                )
            else:
                params = {"Action": operation, "Version": "2009-03-31"}
                flatten(shape, request, "", params)
                body, headers = query_request(emr_api, params, rng.choice(["v2", "v4"]))
            code = check_refused(send_raw(emr_api.port, "POST", "/", body, headers), protocol, case)
            codes[code] = codes.get(code, 0) + 1
            assert state_digest(redis_client) == before, f"[seed {SEED}] {case} changed the stored state"
    # Broken shapes are refused by the validator, before the core.
    assert set(codes) <= {"ValidationException", "ValidationError"}, codes


def _broken_json_bodies() -> list[bytes]:
    return [
        b'{"Name": "x",',
        b"[1, 2, 3]",
        b'"just a string"',
        b"\xff\xfe\x00garbage",
        b'{"Name": NaN}',
        b'{"Name": Infinity}',
        b'{"Instances": {"InstanceCount": 1e999}}',
        b"{" * 10000,
        b'{"a":' * 600 + b"1" + b"}" * 600,
        b"\x00" * 64,
    ]


def test_broken_envelopes_and_signatures(emr_api, redis_client, target):
    before = state_digest(redis_client)
    cases: list[tuple[str, str, bytes, dict]] = []

    for body in _broken_json_bodies():
        cases.append(("json", "broken JSON", *json_request(emr_api, "ElasticMapReduce.RunJobFlow", body)))
    for target_header in ("ElasticMapReduce.Frobnicate", "DynamoDB_20120810.ListTables", "ElasticMapReduce.",
                          "", "ElasticMapReduce.runJobFlow", "ElasticMapReduce.ListStudios"):  # fmt: skip
        cases.append(("json", f"target {target_header!r}", *json_request(emr_api, target_header, b"{}")))
    run = json.dumps(cluster_request()).encode()
    body, headers = json_request(emr_api, "ElasticMapReduce.RunJobFlow", run)
    cases.append(("json", "body changed after signing", run.replace(b"wordcount", b"forged!!!"), headers))
    cases.append(("json", "unsigned", *json_request(emr_api, "ElasticMapReduce.RunJobFlow", run, sign=False)))
    forged = dict(headers) | {
        "Authorization": headers["Authorization"].replace(USERS["alice"].access_key, "AKIANOBODY0000000000")
    }
    cases.append(("json", "unknown key", run, forged))
    cases.append(
        (
            "json",
            "garbled authorization",
            run,
            dict(headers) | {"Authorization": "AWS4-HMAC-SHA256 Credential=x"},
        )
    )
    cases.append(("json", "old date", run, dict(headers) | {"X-Amz-Date": "20200101T000000Z"}))
    cases.append(("json", "no date", run, {k: v for k, v in headers.items() if k.lower() != "x-amz-date"}))

    for form, what in (
        (b"Action=ListClusters&%ff%fe=1", "bad UTF-8 in a name"),
        (b"Action=ListClusters&Marker=%C3%28", "bad UTF-8 in a value"),
        (b"\xff\xfe", "not text"),
        (b"Action=RunJobFlow&Name=x&Steps.member.1.Name=a&Steps.member.1.Name=b", "repeated parameter"),
        (b"Action=RunJobFlow&Name=x&Steps..Name=a", "empty name part"),
        (b"Action=RunJobFlow&" + b"A." * 40 + b"B=1", "deep name"),
    ):
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        cases.append(("query", what + " (unsigned)", form, headers))
    for action in ("Frobnicate", "", "runjobflow", "ListStudios"):
        cases.append(("query", f"action {action!r}", *query_request(emr_api, {"Action": action}, "v2")))
    body, headers = query_request(
        emr_api, {"Action": "TerminateJobFlows", "JobFlowIds.member.1": target.cluster}, "v2"
    )
    cases.append(
        (
            "query",
            "SigV2 body changed after signing",
            body.replace(target.cluster.encode(), b"j-OTHERCLUSTER"),
            headers,
        )
    )

    for protocol, what, body, headers in cases:
        try:
            answer = send_raw(emr_api.port, "POST", "/", body, headers)
        except OSError as exc:
            raise AssertionError(f"{what}: {exc}") from exc
        check_refused(answer, protocol, what)
        assert state_digest(redis_client) == before, f"{what} changed the stored state"

    # Methods and media types the protocols do not take.
    for method, headers in (
        (
            "PUT",
            {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "ElasticMapReduce.ListClusters"},
        ),
        ("DELETE", {}),
        ("POST", {"Content-Type": "text/plain"}),
    ):
        answer = send_raw(emr_api.port, method, "/", b"Action=ListClusters", headers)
        check_refused(answer, "json" if "X-Amz-Target" in headers else "query", f"{method} {headers}")

    # A replayed change: the first one counts, its replays change nothing.
    emr_before_replay = state_digest(redis_client)
    body, headers = json_request(emr_api, "ElasticMapReduce.AddTags",
                                 json.dumps({"ResourceId": target.cluster, "Tags": [{"Key": "k", "Value": "v"}]}).encode())  # fmt: skip
    assert send_raw(emr_api.port, "POST", "/", body, headers).status == 200
    after_first = state_digest(redis_client)
    assert after_first != emr_before_replay
    for _ in range(3):
        check_refused(send_raw(emr_api.port, "POST", "/", body, headers), "json", "replayed AddTags")
        assert state_digest(redis_client) == after_first
    form = {"Action": "RemoveTags", "ResourceId": target.cluster, "TagKeys.member.1": "k"}
    body, headers = query_request(emr_api, form, "v2")
    assert send_raw(emr_api.port, "POST", "/", body, headers).status == 200
    after_second = state_digest(redis_client)
    check_refused(send_raw(emr_api.port, "POST", "/", body, headers), "query", "replayed RemoveTags")
    assert state_digest(redis_client) == after_second


def test_oversized_bodies(emr_api, redis_client):
    before = state_digest(redis_client)
    huge = b'{"Name": "' + b"x" * (17 * 1024 * 1024) + b'"}'
    answer = send_raw(emr_api.port, "POST", "/", huge,
                      {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "ElasticMapReduce.RunJobFlow"})  # fmt: skip
    check_refused(answer, "json", "17 MiB JSON body")
    form = urlencode({"Action": "RunJobFlow", "Name": "x" * (17 * 1024 * 1024)}).encode()
    answer = send_raw(emr_api.port, "POST", "/", form, {"Content-Type": "application/x-www-form-urlencoded"})
    check_refused(answer, "query", "17 MiB form body")
    assert state_digest(redis_client) == before
