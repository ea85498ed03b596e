"""mrjob's EMR runner, unchanged, against Resilin: it creates its own cluster, uploads its files,
adds its steps right after RunJobFlow (before the cluster is ready), and streams the counts back."""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys

import pytest

from resilin import demo
from tests.clusters import MRJOB_WORD_COUNT, cloud_and_subnet, running_resilin

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman"),
]

CLOUD, SUBNET = cloud_and_subnet("mrj", 82)


@pytest.fixture(scope="module")
def resilin():
    yield from running_resilin(CLOUD, SUBNET)


def test_mrjob_word_count_runs_on_resilin(resilin, tmp_path):
    job = tmp_path / "wordcount.py"
    job.write_text(MRJOB_WORD_COUNT)
    texts = demo.corpus(files=2)
    inputs = []
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
        inputs.append(str(tmp_path / name))
    creds = resilin.accounts[0]
    env = os.environ | {
        "AWS_ACCESS_KEY_ID": creds.access_key,
        "AWS_SECRET_ACCESS_KEY": creds.secret_key,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "HOME": str(tmp_path),  # no ~/.mrjob.conf of the machine's user
    }
    done = subprocess.run(
        [
            sys.executable, str(job), "-r", "emr", "--no-conf",
            "--emr-endpoint", f"http://127.0.0.1:{resilin.api_port}",
            "--s3-endpoint", f"http://127.0.0.1:{resilin.storage_port}",
            "--region", "us-east-1",
            "--cloud-tmp-dir", "s3://mrjob-scratch/tmp/",
            # Named roles: mrjob would otherwise look them up (and create them) through IAM.
            "--iam-instance-profile", "EMR_EC2_DefaultRole",
            "--iam-service-role", "EMR_DefaultRole",
            "--release-label", "emr-7.5.0",
            "--instance-type", "m5.xlarge",
            "--num-core-instances", "0",
            "--emr-action-on-failure", "TERMINATE_CLUSTER",
            "--no-pool-clusters",
            "--check-cluster-every", "5",
            *inputs,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )  # fmt: skip
    print(done.stderr[-6000:])
    assert done.returncode == 0, done.stderr[-3000:]
    counts = {}
    for line in done.stdout.splitlines():
        word, _, count = line.partition("\t")
        counts[word.strip('"')] = int(count)
    expected = collections.Counter(w for t in texts.values() for w in re.findall(r"[a-z']+", t.lower()))
    assert counts == dict(expected)
    # mrjob saw the cluster through to its end, as on EMR.
    assert re.search(r"Created new cluster (j-[A-Z0-9]+)", done.stderr)
    emr = resilin.endpoints().client("emr")
    (cluster,) = emr.list_clusters()["Clusters"]
    final = emr.describe_cluster(ClusterId=cluster["Id"])["Cluster"]["Status"]
    assert final["State"] in ("TERMINATING", "TERMINATED"), final
