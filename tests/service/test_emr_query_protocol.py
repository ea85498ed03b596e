"""The legacy Query protocol (XML answers) spoken by boto 2 and by raw requests signed as old tools sign.

boto 2's EmrConnection is used as it is, with SigV4 (its default for EMR) and with SigV2;
raw requests are signed by botocore's SigV2 and SigV4 signers, GET and POST.
"""

from __future__ import annotations

import datetime as dt
import http.client
import warnings
from urllib.parse import urlencode

import pytest
from botocore.auth import SigV2Auth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from lxml import etree

from tests.emr_api import REGION, USERS, state_digest, worker_runs

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import boto.emr.connection
    from boto.emr.instance_group import InstanceGroup
    from boto.emr.step import JarStep, StreamingStep
    from boto.exception import EmrResponseError
    from boto.regioninfo import RegionInfo

NS = {"emr": "http://elasticmapreduce.amazonaws.com/doc/2009-03-31"}


def boto2(emr_api, signature: str, user: str = "alice"):
    class Connection(boto.emr.connection.EmrConnection):
        def _required_auth_capability(self):
            return ["hmac-v4"] if signature == "v4" else ["sign-v2"]

    creds = USERS[user]
    return Connection(
        creds.access_key,
        creds.secret_key,
        region=RegionInfo(name=REGION, endpoint="127.0.0.1"),
        port=emr_api.port,
        is_secure=False,
    )


@pytest.mark.parametrize("signature", ["v4", "v2"])
def test_boto2_job_flow_life(emr_api, store, signature):
    emr = boto2(emr_api, signature)
    streaming = StreamingStep(
        name="wc", mapper="mapper.py", reducer="reducer.py", input="s3://b/in", output="s3://b/out"
    )
    jid = emr.run_jobflow(
        name="boto2 word count",
        log_uri="s3://b/logs/",
        steps=[streaming],
        master_instance_type="m5.xlarge",
        slave_instance_type="m5.xlarge",
        num_instances=3,
        keep_alive=True,
        api_params={"ReleaseLabel": "emr-6.15.0"},
        visible_to_all_users=True,
        job_flow_role="EMR_EC2_DefaultRole",
    )
    assert jid.startswith("j-")
    flow = emr.describe_jobflow(jid)
    assert (flow.name, flow.state, flow.loguri) == ("boto2 word count", "STARTING", "s3://b/logs/")
    assert (flow.masterinstancetype, flow.slaveinstancetype, flow.instancecount) == (
        "m5.xlarge",
        "m5.xlarge",
        "3",
    )
    assert [s.name for s in flow.steps] == ["wc"]
    assert [a.value for a in flow.steps[0].args][:2] == ["-mapper", "mapper.py"]

    cluster = emr.describe_cluster(jid)
    assert (cluster.id, cluster.name, cluster.status.state) == (jid, "boto2 word count", "STARTING")
    assert jid in [c.id for c in emr.list_clusters().clusters]
    assert [c.id for c in emr.list_clusters(cluster_states=["TERMINATED"]).clusters] == []

    added = emr.add_jobflow_steps(jid, [JarStep("jar", "s3://b/job.jar", step_args=["a", "b"])])
    assert len(added.stepids) == 1
    steps = emr.list_steps(jid).steps
    assert [s.name for s in steps] == ["jar", "wc"]
    assert emr.describe_step(jid, added.stepids[0].value).config.jar == "s3://b/job.jar"

    worker_runs(store, jid)
    groups = emr.list_instance_groups(jid).instancegroups
    assert sorted((g.instancegrouptype, g.requestedinstancecount) for g in groups) == [
        ("CORE", "2"),
        ("MASTER", "1"),
    ]
    assert len(emr.list_instances(jid).instances) == 3
    new = emr.add_instance_groups(jid, [InstanceGroup(2, "TASK", "c5.xlarge", "ON_DEMAND", "tasks")])
    assert new.jobflowid == jid  # boto 2 does not read the InstanceGroupIds list (<member>s), as on EMR
    task_id = next(
        g.id for g in emr.list_instance_groups(jid).instancegroups if g.instancegrouptype == "TASK"
    )
    emr.modify_instance_groups([task_id], [4])
    task = next(g for g in emr.list_instance_groups(jid).instancegroups if g.id == task_id)
    assert (task.requestedinstancecount, task.status.state) == ("4", "RESIZING")

    emr.add_tags(jid, {"team": "data", "env": "test"})
    emr.remove_tags(jid, ["env"])
    assert [(t.key, t.value) for t in emr.describe_cluster(jid).tags] == [("team", "data")]
    emr.set_visible_to_all_users(jid, False)
    emr.set_termination_protection(jid, True)
    with pytest.raises(EmrResponseError) as info:
        emr.terminate_jobflow(jid)
    assert (info.value.status, info.value.error_code) == (400, "ValidationError")
    assert "termination protected" in info.value.error_message
    emr.set_termination_protection(jid, False)
    emr.terminate_jobflows([jid])
    assert emr.describe_cluster(jid).status.state == "TERMINATING"


def test_boto2_instance_groups_and_bootstrap_actions(emr_api):
    from boto.emr.bootstrap_action import BootstrapAction

    emr = boto2(emr_api, "v2")
    jid = emr.run_jobflow(
        name="groups",
        instance_groups=[
            InstanceGroup(1, "MASTER", "m5.xlarge", "ON_DEMAND", "master"),
            InstanceGroup(2, "CORE", "m5.xlarge", "SPOT", "core", bidprice="0.2"),
        ],
        bootstrap_actions=[BootstrapAction("setup", "s3://b/setup.sh", ["--fast"])],
        api_params={"ReleaseLabel": "emr-7.5.0"},
    )
    groups = {g.instancegrouptype: g for g in emr.list_instance_groups(jid).instancegroups}
    assert (groups["CORE"].market, groups["CORE"].bidprice) == ("SPOT", "0.2")
    (action,) = emr.list_bootstrap_actions(jid).actions
    assert (action.name, action.scriptpath, [a.value for a in action.args]) == (
        "setup",
        "s3://b/setup.sh",
        ["--fast"],
    )


# -- raw requests -------------------------------------------------------------------------------------


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body
        self.xml = etree.fromstring(body)

    def text(self, path: str) -> str:
        return self.xml.findtext(path, namespaces=NS)

    def error(self) -> tuple[str, str, str]:
        assert self.xml.tag == f"{{{NS['emr']}}}ErrorResponse", self.body
        return (
            self.text("emr:Error/emr:Type"),
            self.text("emr:Error/emr:Code"),
            self.text("emr:Error/emr:Message"),
        )


def send(emr_api, params: dict, *, method: str = "POST", signer: str = "v2", user: str = "alice",
         tamper=None) -> Reply:  # fmt: skip
    creds = USERS[user]
    credentials = BotoCredentials(creds.access_key, creds.secret_key)
    url = emr_api.endpoint + "/"
    params = {"Version": "2009-03-31"} | params
    if method == "POST":
        request = AWSRequest(method="POST", url=url, data=dict(params),
                             headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})  # fmt: skip
    else:
        request = AWSRequest(method="GET", url=url, params=dict(params))
    if signer == "v2":
        SigV2Auth(credentials).add_auth(request)
    elif signer == "v4":
        SigV4Auth(credentials, "elasticmapreduce", REGION).add_auth(request)
    elif signer == "v4-query":
        SigV4QueryAuth(credentials, "elasticmapreduce", REGION, expires=300).add_auth(request)
    prepared = request.prepare()
    if tamper is not None:
        prepared = tamper(prepared)
    return raw(emr_api, prepared.method, prepared.url, prepared.body, dict(prepared.headers))


def raw(emr_api, method: str, url: str, body, headers: dict) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", emr_api.port, timeout=30)
    try:
        path = url.split(str(emr_api.port), 1)[1] or "/"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


RUN = {
    "Action": "RunJobFlow",
    "Name": "raw query",
    "ReleaseLabel": "emr-7.5.0",
    "Instances.InstanceGroups.member.1.InstanceRole": "MASTER",
    "Instances.InstanceGroups.member.1.InstanceType": "m5.xlarge",
    "Instances.InstanceGroups.member.1.InstanceCount": "1",
    "Instances.InstanceGroups.member.2.InstanceRole": "CORE",
    "Instances.InstanceGroups.member.2.InstanceType": "m5.large",
    "Instances.InstanceGroups.member.2.InstanceCount": "2",
    "Instances.KeepJobFlowAliveWhenNoSteps": "true",
    "Steps.member.1.Name": "streaming",
    "Steps.member.1.ActionOnFailure": "CONTINUE",
    "Steps.member.1.HadoopJarStep.Jar": "command-runner.jar",
    "Steps.member.1.HadoopJarStep.Args.member.1": "hadoop-streaming",
    "Steps.member.1.HadoopJarStep.Args.member.2": "-input",
    "Steps.member.1.HadoopJarStep.Args.member.3": "s3://b/in",
    "Configurations.member.1.Classification": "core-site",
    "Configurations.member.1.Properties.entry.1.key": "io.file.buffer.size",
    "Configurations.member.1.Properties.entry.1.value": "65536",
    "Tags.member.1.Key": "team",
    "Tags.member.1.Value": "data & <science>",
    "VisibleToAllUsers": "true",
    "StepConcurrencyLevel": "2",
}


@pytest.mark.parametrize(
    ("method", "signer"), [("POST", "v2"), ("GET", "v2"), ("POST", "v4"), ("GET", "v4-query")]
)
def test_flattened_parameters_reach_the_core(emr_api, redis_client, method, signer):
    reply = send(emr_api, RUN, method=method, signer=signer)
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"] == "text/xml"
    assert reply.xml.tag == f"{{{NS['emr']}}}RunJobFlowResponse"
    cid = reply.text("emr:RunJobFlowResult/emr:JobFlowId")
    assert reply.text("emr:RunJobFlowResult/emr:ClusterArn").endswith(cid)
    assert reply.text("emr:ResponseMetadata/emr:RequestId") == reply.headers["x-amzn-requestid"]

    cluster = emr_api.client("alice").describe_cluster(ClusterId=cid)["Cluster"]
    assert cluster["Configurations"] == [
        {"Classification": "core-site", "Properties": {"io.file.buffer.size": "65536"}}
    ]
    assert cluster["Tags"] == [{"Key": "team", "Value": "data & <science>"}]
    assert cluster["StepConcurrencyLevel"] == 2 and cluster["AutoTerminate"] is False
    step = emr_api.client("alice").list_steps(ClusterId=cid)["Steps"][0]
    assert step["Config"]["Args"] == ["hadoop-streaming", "-input", "s3://b/in"]

    described = send(emr_api, {"Action": "DescribeCluster", "ClusterId": cid}, method=method, signer=signer)
    found = described.xml.find("emr:DescribeClusterResult/emr:Cluster", NS)
    assert found.findtext("emr:Id", namespaces=NS) == cid
    assert found.findtext("emr:Tags/emr:member/emr:Value", namespaces=NS) == "data & <science>"
    entry = found.find("emr:Configurations/emr:member/emr:Properties/emr:entry", NS)
    assert (entry.findtext("emr:key", namespaces=NS), entry.findtext("emr:value", namespaces=NS)) == (
        "io.file.buffer.size",
        "65536",
    )
    created = found.findtext("emr:Status/emr:Timeline/emr:CreationDateTime", namespaces=NS)
    assert abs(
        dt.datetime.fromisoformat(created.replace("Z", "+00:00")) - dt.datetime.now(dt.UTC)
    ) < dt.timedelta(minutes=5)
    assert found.findtext("emr:VisibleToAllUsers", namespaces=NS) == "true"


def test_lists_and_operations_without_output(emr_api, redis_client):
    cid = send(emr_api, RUN).text("emr:RunJobFlowResult/emr:JobFlowId")
    steps = send(emr_api, {"Action": "ListSteps", "ClusterId": cid, "StepStates.member.1": "PENDING"})
    assert [
        m.findtext("emr:Name", namespaces=NS)
        for m in steps.xml.iterfind("emr:ListStepsResult/emr:Steps/emr:member", NS)
    ] == ["streaming"]
    done = send(
        emr_api,
        {"Action": "SetTerminationProtection", "JobFlowIds.member.1": cid, "TerminationProtected": "true"},
    )
    assert done.status == 200
    assert done.xml.find("emr:SetTerminationProtectionResult", NS) is None
    assert done.text("emr:ResponseMetadata/emr:RequestId") == done.headers["x-amzn-requestid"]
    # An empty value is an empty list.
    empty = send(emr_api, {"Action": "ListClusters", "ClusterStates": ""})
    assert len(empty.xml.findall("emr:ListClustersResult/emr:Clusters/emr:member", NS)) == 1


@pytest.mark.parametrize(
    ("params", "status", "code", "fragment"),
    [
        ({"Action": "Frobnicate"}, 400, "InvalidAction", "Frobnicate is not valid"),
        ({"Action": "ListStudios"}, 400, "InvalidAction", "not supported"),
        ({}, 400, "MissingAction", "Action"),
        ({"Action": "ListClusters", "Version": "2011-01-01"}, 400, "NoSuchVersion", "2011-01-01"),
        ({"Action": "RunJobFlow", "Name": "x"}, 400, "ValidationError", "Value null at 'instances'"),
        (
            RUN | {"Instances.InstanceGroups.member.1.InstanceCount": "one"},
            400,
            "ValidationError",
            "must be an integer",
        ),
        (RUN | {"Instances.KeepJobFlowAliveWhenNoSteps": "yes"}, 400, "ValidationError", "must be a boolean"),
        (RUN | {"Steps.member.x.Name": "odd"}, 400, "ValidationError", "must be a list"),
        (RUN | {"Colour": "blue"}, 400, "ValidationError", "not a known member"),
        (RUN | {"Name": "n" * 300}, 400, "ValidationError", "length less than or equal to 256"),
        (RUN | {"Instances": "flat"}, 400, "ValidationError", "both as a value and as a structure"),
        (
            {"Action": "DescribeCluster", "ClusterId": "j-NOSUCHCLUSTER"},
            400,
            "InvalidRequestException",
            "not valid",
        ),
        ({"Action": "ListClusters", "CreatedAfter": "yesterday"}, 400, "ValidationError", "timestamp"),
    ],
)
def test_errors(emr_api, redis_client, params, status, code, fragment):
    before = state_digest(redis_client)
    reply = send(emr_api, params)
    assert reply.status == status, reply.body
    kind, got_code, message = reply.error()
    assert (kind, got_code) == ("Sender", code)
    assert fragment in message
    assert reply.text("emr:RequestId") == reply.headers["x-amzn-requestid"]
    # The modeled ErrorCode member, for the errors that have one.
    expected = "NoSuchCluster" if params.get("Action") == "DescribeCluster" else None
    assert reply.text("emr:Error/emr:ErrorCode") == expected
    assert state_digest(redis_client) == before


def _resign_with_other_secret(prepared):
    body = prepared.body.decode() if isinstance(prepared.body, bytes) else prepared.body
    prepared.body = body.replace("Name=raw", "Name=forged")
    return prepared


def test_signature_failures(emr_api, redis_client):
    before = state_digest(redis_client)
    forged = send(emr_api, RUN, tamper=_resign_with_other_secret)
    assert (forged.status, forged.error()[1]) == (403, "SignatureDoesNotMatch")
    unknown = send(
        emr_api,
        RUN,
        user="alice",
        tamper=lambda p: _replace(p, USERS["alice"].access_key, "AKIANOBODY0000000000"),
    )
    assert (unknown.status, unknown.error()[1]) == (403, "InvalidClientTokenId")
    unsigned = raw(emr_api, "POST", emr_api.endpoint + "/", urlencode({"Action": "RunJobFlow", "Name": "x"}),
                   {"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert (unsigned.status, unsigned.error()[1]) == (403, "MissingAuthenticationToken")
    version_one = send(
        emr_api, {"Action": "ListClusters", "SignatureVersion": "1", "Signature": "abc"}, signer="none"
    )
    assert (version_one.status, version_one.error()[1]) == (400, "IncompleteSignature")
    assert state_digest(redis_client) == before


def _replace(prepared, old: str, new: str):
    body = prepared.body.decode() if isinstance(prepared.body, bytes) else prepared.body
    prepared.body = body.replace(old, new)
    return prepared


def test_sigv2_clock_skew(emr_api, redis_client, monkeypatch):
    import time

    # botocore's SigV2 signer stamps the request with time.gmtime(): an hour ago, here.
    real = time.gmtime
    monkeypatch.setattr(time, "gmtime", lambda *args: real(*args) if args else real(time.time() - 3600))
    reply = send(emr_api, {"Action": "ListClusters"})
    monkeypatch.undo()
    assert (reply.status, reply.error()[1]) == (400, "RequestExpired")
    assert "more than 15 minutes" in reply.error()[2]


def test_replayed_changes_are_refused(emr_api, redis_client):
    creds = USERS["alice"]
    request = AWSRequest(method="POST", url=emr_api.endpoint + "/", data=dict(RUN | {"Version": "2009-03-31"}),
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})  # fmt: skip
    SigV2Auth(BotoCredentials(creds.access_key, creds.secret_key)).add_auth(request)
    prepared = request.prepare()
    first = raw(emr_api, "POST", prepared.url, prepared.body, dict(prepared.headers))
    assert first.status == 200
    before = state_digest(redis_client)
    again = raw(emr_api, "POST", prepared.url, prepared.body, dict(prepared.headers))
    assert (again.status, again.error()[1]) == (400, "Throttling")
    assert "already made its change" in again.error()[2]
    assert state_digest(redis_client) == before
    assert len(emr_api.client("alice").list_clusters()["Clusters"]) == 1
