"""A cluster on an S3 service that is not Resilin's storage: MinIO on the host's loopback, named by
the local cloud's ``[clouds.storage]``.  The word count's input, its streaming scripts, a bootstrap
action and LogUri are all on MinIO; the nodes reach it through their network's gateway (the host
shield opens its port).  Nothing lands in Resilin's storage, and an account with no keys on MinIO
cannot place a cluster in that cloud.  The nodes hold session keys from MinIO's STS, made for the
cluster, never the account's; renewed, they reach every node and the next step uses them."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest
import redis

from resilin import demo
from resilin.provisioners.localcloud import host_shield
from resilin.provisioners.localcloud.server import bridge_interface
from resilin.service.ports import free_port
from resilin.service.process import ResilinProcess, cloud_containers
from resilin.settings.config import new_credentials
from tests.clusters import NODE_IMAGE, cloud_and_subnet, serving, wait_for
from tests.minio_server import running_minio, s3_client

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman"),
]

ROOT = Path(__file__).resolve().parents[2]
CLOUD, SUBNET = cloud_and_subnet("xs", 95)
MINIO_USER, MINIO_SECRET = "resilin-test-minio", "minio-secret-" + os.urandom(6).hex()
BUCKET = "external-wc"
SESSION_SECONDS = 900  # STS's shortest
BOOTSTRAP_MARKER = "bootstrap action fetched from MinIO ran"


@pytest.fixture(scope="module")
def minio():
    with running_minio(MINIO_USER, MINIO_SECRET) as endpoint:
        yield endpoint


def minio_s3(endpoint: str):
    return s3_client(endpoint, MINIO_USER, MINIO_SECRET)


@pytest.fixture(scope="module")
def resilin(minio):
    if subprocess.run(["podman", "image", "exists", NODE_IMAGE]).returncode != 0:
        pytest.fail("the node image is missing: run docker/node/build.sh (make test does)")
    home = Path(tempfile.mkdtemp(prefix=f"resilin-{CLOUD}-"))
    proc = ResilinProcess(
        home, free_port(), free_port(), [new_credentials("000000000031"), new_credentials("000000000032")],
        CLOUD, NODE_IMAGE,
    )  # fmt: skip
    accounts = "".join(
        f'[[accounts]]\naccount_id = "{c.account_id}"\naccess_key = "{c.access_key}"\n'
        f'secret_key = "{c.secret_key}"\n\n'
        for c in proc.accounts
    )
    (home / "resilin.toml").write_text(
        f"api_port = {proc.api_port}\nstorage_port = {proc.storage_port}\nlocalcloud_port = {free_port()}\n"
        f'default_cloud = "{CLOUD}"\n\n{accounts}'
        f'[[clouds]]\nname = "{CLOUD}"\nkind = "local"\nsubnet = "{SUBNET}"\n\n'
        f'[clouds.storage]\nendpoint = "{minio}"\nregion = "us-east-1"\npath_style = true\n'
        f"session_seconds = {SESSION_SECONDS}\n"
        f'[clouds.storage.accounts.{proc.accounts[0].account_id}]\n'
        f'access_key = "{MINIO_USER}"\nsecret_key = "{MINIO_SECRET}"\n'
        f'role_arn = "arn:aws:iam::{proc.accounts[0].account_id}:role/emr-nodes"\n'
    )  # fmt: skip
    yield from serving(proc, [CLOUD])


def _step_ended(resilin, emr, cid: str, step_id: str) -> bool:
    state = emr.describe_step(ClusterId=cid, StepId=step_id)["Step"]["Status"]["State"]
    if state in ("FAILED", "CANCELLED", "INTERRUPTED"):
        logs = resilin.home / "logs" / cid / "steps" / step_id
        tails = {f.name: f.read_text(errors="replace")[-1500:] for f in logs.glob("std*") if f.is_file()}
        pytest.fail(f"step {step_id} {state}: {tails}")
    return state == "COMPLETED"


def _keys_on_nodes() -> dict[str, tuple[str, str]]:
    """Each node's S3A access key and session token, from its core-site.xml."""
    keys = {}
    for container in cloud_containers(CLOUD):
        text = subprocess.run(
            ["podman", "exec", container, "cat", "/etc/hadoop/core-site.xml"], capture_output=True, text=True
        ).stdout
        props = {
            p.findtext("name"): p.findtext("value") or ""
            for p in ElementTree.fromstring(text).iter("property")
        }
        keys[container] = (props["fs.s3a.access.key"], props.get("fs.s3a.session.token", ""))
    return keys


def test_an_account_without_keys_on_the_external_service_cannot_place_a_cluster_there(resilin):
    emr = resilin.endpoints(1).client("emr")
    with pytest.raises(emr.exceptions.ClientError) as refused:
        demo.run_job_flow(emr, BUCKET, core=1)
    error = refused.value.response["Error"]
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Code"] == "ValidationException"
    assert f"Cloud {CLOUD} keeps cluster data on an external S3 service" in error["Message"]
    assert emr.list_clusters()["Clusters"] == []


def test_word_count_reads_and_writes_the_external_service(resilin, minio):
    s3 = minio_s3(minio)
    texts = demo.corpus()
    demo.upload_inputs(s3, BUCKET, texts)
    s3.put_object(
        Bucket=BUCKET, Key="bootstrap.sh", Body=f"#!/bin/bash\necho '{BOOTSTRAP_MARKER}'\n".encode()
    )
    # The nodes may reach the host's gateway address on MinIO's port, and only there.
    low, high = sorted([resilin.storage_port, int(minio.rsplit(":", 1)[1])])
    assert f"tcp dport {{ {low}, {high} }} accept" in host_shield.listing(bridge_interface(CLOUD))

    emr = resilin.endpoints(0).client("emr")
    cid = emr.run_job_flow(
        Name="word count on MinIO",
        ReleaseLabel="emr-7.5.0",
        LogUri=f"s3://{BUCKET}/logs/",
        Instances={"MasterInstanceType": "m5.xlarge", "SlaveInstanceType": "m5.xlarge", "InstanceCount": 2,
                   "KeepJobFlowAliveWhenNoSteps": True},
        BootstrapActions=[{"Name": "say", "ScriptBootstrapAction": {"Path": f"s3://{BUCKET}/bootstrap.sh"}}],
        Steps=[demo.streaming_step(BUCKET)],
        Applications=[{"Name": "Hadoop"}],
    )["JobFlowId"]  # fmt: skip
    started = time.monotonic()
    [step_id] = [s["Id"] for s in emr.list_steps(ClusterId=cid)["Steps"]]
    wait_for("the word count", lambda: _step_ended(resilin, emr, cid, step_id), timeout=1200, interval=2)
    print(f"word count ended after {time.monotonic() - started:.0f} s")

    # The nodes hold the cluster's own session keys from MinIO's STS, never the account's keys.
    first = _keys_on_nodes()
    assert MINIO_USER not in first and MINIO_SECRET not in first
    [(key, token)] = set(first.values())
    assert token, first
    state = redis.Redis(unix_socket_path=str(resilin.home / "redis" / "redis.sock"))
    session = {k.decode(): v.decode() for k, v in state.hgetall(f"resilin:storage-session:{cid}").items()}
    assert session["access"] == key and session["token"] == token
    assert float(session["expires"]) - float(session["issued"]) <= SESSION_SECONDS

    # Renewal comes at half a session's life; bring it forward.  Every node gets the new keys.
    state.hset(f"resilin:storage-session:{cid}", "renew_at", "0")
    renewed = wait_for(
        "renewed keys on every node",
        lambda: (keys := _keys_on_nodes()) and key not in {k for k, _ in keys.values()} and keys,
        timeout=120, interval=1,
    )  # fmt: skip
    [(new_key, new_token)] = set(renewed.values())
    assert new_key != key and new_token and new_token != token
    # A step after the renewal reaches MinIO with the new keys.
    copy = emr.add_job_flow_steps(JobFlowId=cid, Steps=[{
        "Name": "copy with renewed keys", "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar",
                          "Args": ["hadoop", "fs", "-cp", f"s3://{BUCKET}/bootstrap.sh", f"s3://{BUCKET}/renewed-copy"]},
    }])["StepIds"][0]  # fmt: skip
    wait_for("the copy", lambda: _step_ended(resilin, emr, cid, copy), timeout=600, interval=2)
    assert (
        s3.get_object(Bucket=BUCKET, Key="renewed-copy")["Body"]
        .read()
        .decode()
        .endswith(f"{BOOTSTRAP_MARKER}'\n")
    )

    emr.terminate_job_flows(JobFlowIds=[cid])
    cluster, _, _ = demo.watch(emr, cid, print, timeout=600)
    step = emr.describe_step(ClusterId=cid, StepId=step_id)["Step"]
    assert step["Status"]["State"] == "COMPLETED", (step["Status"], cluster["Status"])
    assert cluster["Status"]["State"] == "TERMINATED"
    assert not state.exists(f"resilin:storage-session:{cid}")

    # The output, the step's logs and the bootstrap action's logs are on MinIO.
    assert demo.read_output(s3, BUCKET) == demo.python_count(texts)
    logs = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"logs/{cid}/")["Contents"]]
    assert any(k.startswith(f"logs/{cid}/steps/{step['Id']}/") for k in logs), logs
    [master] = emr.list_instances(ClusterId=cid, InstanceGroupTypes=["MASTER"])["Instances"]
    stdout = f"logs/{cid}/node/{master['Ec2InstanceId']}/bootstrap-actions/1/stdout.gz"
    assert stdout in logs, logs
    assert (
        BOOTSTRAP_MARKER in gzip.decompress(s3.get_object(Bucket=BUCKET, Key=stdout)["Body"].read()).decode()
    )

    # Nothing of it went to Resilin's storage.
    own = resilin.endpoints(0).client("s3")
    assert BUCKET not in [b["Name"] for b in own.list_buckets().get("Buckets", [])]
