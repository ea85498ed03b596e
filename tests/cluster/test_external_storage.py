"""A cluster on an S3 service that is not Resilin's storage: MinIO on the host's loopback, named by
the local cloud's ``[clouds.storage]``.  The word count's input, its streaming scripts, a bootstrap
action and LogUri are all on MinIO; the nodes reach it through their network's gateway (the host
shield opens its port).  Nothing lands in Resilin's storage, and an account with no keys on MinIO
cannot place a cluster in that cloud."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from resilin import demo
from resilin.provisioners.localcloud import host_shield
from resilin.provisioners.localcloud.server import bridge_interface
from resilin.service.ports import free_port
from resilin.service.process import ResilinProcess
from resilin.settings.config import new_credentials
from tests.clusters import NODE_IMAGE, cloud_and_subnet, serving, wait_for

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman"),
]

ROOT = Path(__file__).resolve().parents[2]
CLOUD, SUBNET = cloud_and_subnet("xs", 95)
MINIO_USER, MINIO_SECRET = "resilin-test-minio", "minio-secret-" + os.urandom(6).hex()
BUCKET = "external-wc"
BOOTSTRAP_MARKER = "bootstrap action fetched from MinIO ran"


@pytest.fixture(scope="module")
def minio():
    """MinIO's server on every address of the host (its loopback for Resilin, the gateway for nodes)."""
    built = subprocess.run([ROOT / "scripts" / "setup-minio.sh"], capture_output=True, text=True)
    if built.returncode != 0:
        pytest.fail(f"MinIO is missing and could not be built: {built.stderr[-500:]}")
    binary = built.stdout.strip().splitlines()[-1]
    data = Path(tempfile.mkdtemp(prefix="resilin-minio-"))
    port = free_port()
    env = os.environ | {"MINIO_ROOT_USER": MINIO_USER, "MINIO_ROOT_PASSWORD": MINIO_SECRET}
    log = open(data.with_suffix(".log"), "wb")
    proc = subprocess.Popen(
        [binary, "server", str(data / "export"), "--address", f":{port}",
         "--console-address", f"127.0.0.1:{free_port()}"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for("MinIO to serve", lambda: _live(endpoint), timeout=60, interval=0.5)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(data, ignore_errors=True)
        data.with_suffix(".log").unlink(missing_ok=True)


def _live(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/minio/health/live", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def minio_s3(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=MINIO_USER,
        aws_secret_access_key=MINIO_SECRET,
        config=Config(s3={"addressing_style": "path"}),
    )


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
        f'[clouds.storage.accounts.{proc.accounts[0].account_id}]\n'
        f'access_key = "{MINIO_USER}"\nsecret_key = "{MINIO_SECRET}"\n'
    )  # fmt: skip
    yield from serving(proc, [CLOUD])


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
                   "KeepJobFlowAliveWhenNoSteps": False},
        BootstrapActions=[{"Name": "say", "ScriptBootstrapAction": {"Path": f"s3://{BUCKET}/bootstrap.sh"}}],
        Steps=[demo.streaming_step(BUCKET)],
        Applications=[{"Name": "Hadoop"}],
    )["JobFlowId"]  # fmt: skip
    started = time.monotonic()
    cluster, step, _ = demo.watch(emr, cid, print, timeout=1500)
    print(f"cluster ended after {time.monotonic() - started:.0f} s")
    assert step["Status"]["State"] == "COMPLETED", (step["Status"], cluster["Status"])
    assert cluster["Status"]["State"] == "TERMINATED"

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
