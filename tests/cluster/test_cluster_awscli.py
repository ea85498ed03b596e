"""The AWS CLI (v1) against a real cluster: create-cluster with every kind of option people pass,
the commands that inspect and change it while it runs, and its waiters.

One transient, termination-protected cluster: its steps (streaming, a custom JAR, and one
added with add-steps while it starts) run to completion, termination is refused while it
is protected, and it still ends on its own when its steps are done, as EMR documents.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil

import pytest

from resilin import demo
from tests.clusters import aws_cli, cloud_and_subnet, running_resilin

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman"),
]

CLOUD, SUBNET = cloud_and_subnet("cli", 83)
BUCKET = "cli-cluster"
MARKER = "set-by-configurations-file"


@pytest.fixture(scope="module")
def resilin():
    yield from running_resilin(CLOUD, SUBNET)


@pytest.fixture(scope="module")
def texts(resilin):
    s3 = resilin.endpoints().client("s3")
    texts = demo.corpus(files=2)
    demo.upload_inputs(s3, BUCKET, texts)
    s3.put_object(Bucket=BUCKET, Key="bootstrap/hello.sh", Body=b"#!/bin/bash\necho bootstrapped\n")
    return texts


def emr(resilin, *args: str, check: bool = True, timeout: float = 900):
    endpoint = f"http://127.0.0.1:{resilin.api_port}"
    return aws_cli(
        resilin, "emr", args[0], "--endpoint-url", endpoint, *args[1:], check=check, timeout=timeout
    )


@pytest.fixture(scope="module")
def cluster_id(resilin, texts):
    config = resilin.home / "configurations.json"
    config.write_text(json.dumps([{"Classification": "core-site", "Properties": {"resilin.marker": MARKER}}]))
    streaming = (
        f"Type=STREAMING,Name=streaming word count,ActionOnFailure=CONTINUE,"
        f"Args=[-files,s3://{BUCKET}/mapper.py\\,s3://{BUCKET}/reducer.py,-mapper,mapper.py,-reducer,reducer.py,"
        f"-input,s3://{BUCKET}/input/,-output,s3://{BUCKET}/output-streaming/]"
    )
    custom_jar = (
        "Type=CUSTOM_JAR,Name=jar word count,ActionOnFailure=CONTINUE,"
        "Jar=/usr/lib/hadoop-mapreduce/hadoop-mapreduce-examples.jar,"
        f"Args=[wordcount,s3://{BUCKET}/input/,s3://{BUCKET}/output-jar/]"
    )
    done = emr(
        resilin,
        "create-cluster",
        "--name", "created by the AWS CLI",
        "--release-label", "emr-7.5.0",
        "--applications", "Name=Hadoop",
        "--instance-groups", "InstanceGroupType=MASTER,InstanceCount=1,InstanceType=m5.xlarge",
        "--log-uri", f"s3://{BUCKET}/logs/",
        "--auto-terminate",
        "--termination-protected",
        "--configurations", f"file://{config}",
        "--bootstrap-actions", f"Path=s3://{BUCKET}/bootstrap/hello.sh,Name=say hello,Args=[a,b]",
        "--steps", streaming, custom_jar,
    )  # fmt: skip
    created = json.loads(done.stdout)
    assert created["ClusterArn"].endswith(created["ClusterId"])
    return created["ClusterId"]


def describe(resilin, cid: str) -> dict:
    return json.loads(emr(resilin, "describe-cluster", "--cluster-id", cid).stdout)["Cluster"]


def test_steps_can_be_added_while_the_cluster_starts(resilin, cluster_id):
    step = "Type=CUSTOM_JAR,Name=read configuration,Jar=command-runner.jar,Args=[hdfs,getconf,-confKey,resilin.marker]"
    added = json.loads(emr(resilin, "add-steps", "--cluster-id", cluster_id, "--steps", step).stdout)
    assert len(added["StepIds"]) == 1 and added["StepIds"][0].startswith("s-")
    names = [
        s["Name"] for s in json.loads(emr(resilin, "list-steps", "--cluster-id", cluster_id).stdout)["Steps"]
    ]
    assert names == ["read configuration", "jar word count", "streaming word count"]  # newest first


def test_describe_and_list_show_what_was_asked(resilin, cluster_id):
    cluster = describe(resilin, cluster_id)
    assert cluster["TerminationProtected"] is True
    assert cluster["AutoTerminate"] is True
    assert cluster["Configurations"] == [
        {"Classification": "core-site", "Properties": {"resilin.marker": MARKER}}
    ]
    assert cluster["ReleaseLabel"] == "emr-7.5.0"
    active = json.loads(emr(resilin, "list-clusters", "--active").stdout)["Clusters"]
    assert cluster_id in [c["Id"] for c in active]
    # The CLI has no list-bootstrap-actions; the bootstrap action was accepted and recorded.
    (action,) = (
        resilin.endpoints().client("emr").list_bootstrap_actions(ClusterId=cluster_id)["BootstrapActions"]
    )
    assert action["ScriptPath"] == f"s3://{BUCKET}/bootstrap/hello.sh" and action["Args"] == ["a", "b"]


def test_termination_protection_refuses_terminate_clusters(resilin, cluster_id):
    refused = emr(resilin, "terminate-clusters", "--cluster-ids", cluster_id, check=False)
    assert refused.returncode != 0
    assert "termination protected" in refused.stderr
    assert describe(resilin, cluster_id)["Status"]["State"] not in ("TERMINATING", "TERMINATED")
    emr(resilin, "modify-cluster-attributes", "--cluster-id", cluster_id, "--no-termination-protected")
    assert describe(resilin, cluster_id)["TerminationProtected"] is False
    emr(resilin, "modify-cluster-attributes", "--cluster-id", cluster_id, "--termination-protected")
    assert describe(resilin, cluster_id)["TerminationProtected"] is True


def test_wait_cluster_running(resilin, cluster_id):
    emr(resilin, "wait", "cluster-running", "--cluster-id", cluster_id)
    assert describe(resilin, cluster_id)["Status"]["State"] in ("RUNNING", "WAITING")


def test_protected_transient_cluster_still_ends_when_its_steps_are_done(resilin, cluster_id, texts):
    emr(resilin, "wait", "cluster-terminated", "--cluster-id", cluster_id, timeout=1800)
    cluster = describe(resilin, cluster_id)
    assert cluster["Status"]["State"] == "TERMINATED"
    assert cluster["Status"]["StateChangeReason"] == {
        "Code": "ALL_STEPS_COMPLETED",
        "Message": "Steps completed",
    }
    steps = json.loads(emr(resilin, "list-steps", "--cluster-id", cluster_id).stdout)["Steps"]
    assert {s["Name"]: s["Status"]["State"] for s in steps} == {
        "streaming word count": "COMPLETED",
        "jar word count": "COMPLETED",
        "read configuration": "COMPLETED",
    }
    s3 = resilin.endpoints().client("s3")
    assert demo.read_output(s3, BUCKET, "output-streaming/") == demo.python_count(texts)
    tokens: dict[str, int] = {}
    for text in texts.values():  # WordCount splits on whitespace only
        for token in re.findall(r"[^ \t\n\r\f]+", text):
            tokens[token] = tokens.get(token, 0) + 1
    assert demo.read_output(s3, BUCKET, "output-jar/") == tokens
    # The configurations file reached Hadoop: the step that read it printed the value.
    conf_step = next(s for s in steps if s["Name"] == "read configuration")
    key = f"logs/{cluster_id}/steps/{conf_step['Id']}/stdout.gz"
    assert gzip.decompress(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).decode().strip() == MARKER
