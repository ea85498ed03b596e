"""The AWS CLI's EMR commands that need no running cluster, against the EMR API over real Redis.

create-cluster (instance groups, steps of both kinds, bootstrap actions, configurations from a
file, auto-terminate) and terminate-clusters at once, describe-cluster, list-clusters,
add-steps, list-steps and modify-cluster-attributes.  No orchestrator runs, so the cluster
created here is recorded and never provisioned.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.emr_api import REGION, USERS

AWS = str(Path(sys.executable).with_name("aws"))


@pytest.fixture
def aws(emr_api, redis_client, tmp_path):
    creds = USERS["alice"]
    env = os.environ | {
        "AWS_ACCESS_KEY_ID": creds.access_key,
        "AWS_SECRET_ACCESS_KEY": creds.secret_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
    }

    def run(*args: str, expect_ok: bool = True) -> dict | subprocess.CompletedProcess:
        done = subprocess.run(
            [AWS, "emr", *args, "--endpoint-url", emr_api.endpoint, "--output", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if not expect_ok:
            return done
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    return run


def test_cluster_life_through_the_cli(aws, tmp_path):
    configurations = tmp_path / "configurations.json"
    configurations.write_text(
        json.dumps([{"Classification": "mapred-site", "Properties": {"mapreduce.job.reduces": "3"}}])
    )
    created = aws(
        "create-cluster",
        "--name", "cli cluster",
        "--release-label", "emr-7.5.0",
        "--applications", "Name=Hadoop",
        "--instance-groups",
        "InstanceGroupType=MASTER,InstanceCount=1,InstanceType=m5.xlarge",
        "InstanceGroupType=CORE,InstanceCount=2,InstanceType=m5.xlarge",
        "--steps",
        "Type=STREAMING,Name=wc,ActionOnFailure=CONTINUE,Args=[-files,s3://b/m.py\\,s3://b/r.py,-mapper,m.py,"
        "-reducer,r.py,-input,s3://b/in/,-output,s3://b/out/]",
        "Type=CUSTOM_JAR,Name=jar,Jar=s3://b/job.jar,MainClass=org.example.Main,Args=[in,out]",
        "--bootstrap-actions", "Path=s3://b/setup.sh,Name=setup,Args=[--fast]",
        "--configurations", f"file://{configurations}",
        "--auto-terminate",
        "--log-uri", "s3://b/logs/",
        "--tags", "team=data",
    )  # fmt: skip
    cid = created["ClusterId"]
    assert cid.startswith("j-") and created["ClusterArn"].endswith(cid)

    cluster = aws("describe-cluster", "--cluster-id", cid)["Cluster"]
    assert (cluster["Name"], cluster["Status"]["State"], cluster["AutoTerminate"]) == (
        "cli cluster",
        "STARTING",
        True,
    )
    assert cluster["Configurations"] == [
        {"Classification": "mapred-site", "Properties": {"mapreduce.job.reduces": "3"}}
    ]
    assert cluster["Tags"] == [{"Key": "team", "Value": "data"}]
    # The CLI adds the instance groups and bootstrap actions it reads with their own calls.
    assert sorted(g["InstanceGroupType"] for g in cluster["InstanceGroups"]) == ["CORE", "MASTER"]
    assert cluster["BootstrapActions"] == [
        {"Name": "setup", "ScriptPath": "s3://b/setup.sh", "Args": ["--fast"]}
    ]

    steps = aws("list-steps", "--cluster-id", cid)["Steps"]
    assert [s["Name"] for s in steps] == ["jar", "wc"]
    streaming = steps[1]["Config"]
    assert streaming["Jar"] == "command-runner.jar"
    assert streaming["Args"][:3] == ["hadoop-streaming", "-files", "s3://b/m.py,s3://b/r.py"]
    assert steps[0]["Config"]["MainClass"] == "org.example.Main"

    added = aws("add-steps", "--cluster-id", cid, "--steps",
                "Type=CUSTOM_JAR,Name=more,Jar=command-runner.jar,Args=[hadoop-mapreduce-examples,pi,2,10]")  # fmt: skip
    (sid,) = added["StepIds"]
    assert [s["Id"] for s in aws("list-steps", "--cluster-id", cid, "--step-states", "PENDING")["Steps"]][
        0
    ] == sid

    aws("modify-cluster-attributes", "--cluster-id", cid, "--termination-protected")
    aws("modify-cluster-attributes", "--cluster-id", cid, "--no-visible-to-all-users")
    aws("modify-cluster-attributes", "--cluster-id", cid, "--no-auto-terminate")
    cluster = aws("describe-cluster", "--cluster-id", cid)["Cluster"]
    assert (cluster["TerminationProtected"], cluster["VisibleToAllUsers"], cluster["AutoTerminate"]) == (
        True,
        False,
        False,
    )

    refused = aws("terminate-clusters", "--cluster-ids", cid, expect_ok=False)
    assert refused.returncode != 0 and "termination protected" in refused.stderr
    aws("modify-cluster-attributes", "--cluster-id", cid, "--no-termination-protected")
    aws("terminate-clusters", "--cluster-ids", cid)
    listed = aws("list-clusters", "--cluster-states", "TERMINATING")["Clusters"]
    assert [(c["Id"], c["Status"]["StateChangeReason"]["Code"]) for c in listed] == [(cid, "USER_REQUEST")]
    assert aws("list-clusters", "--active")["Clusters"][0]["Id"] == cid


def test_cli_errors_are_reported(aws):
    missing = aws("describe-cluster", "--cluster-id", "j-NOSUCHCLUSTER1", expect_ok=False)
    assert missing.returncode != 0
    assert "InvalidRequestException" in missing.stderr and "j-NOSUCHCLUSTER1" in missing.stderr
