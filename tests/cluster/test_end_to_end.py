"""The whole path with real parts: EMR API → local cloud containers → Hadoop over SSH → storage via S3A."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import redis

from resilin import demo
from resilin.provisioners.localcloud.process import remove_cloud
from resilin.service.process import cloud_containers, new_process
from tests.clusters import end_clusters

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman"),
]

# A cloud (network) of this run's own, so runs from several checkouts can share the machine.
CLOUD = f"e2e{os.getpid() % 100000}"
SUBNET = f"10.78.{100 + os.getpid() % 150}.0/24"


@pytest.fixture(scope="module")
def resilin(tmp_path_factory):
    image = subprocess.run(["podman", "image", "exists", "localhost/resilin-node:latest"])
    if image.returncode != 0:
        pytest.fail("the node image is missing: run docker/node/build.sh (make test does)")
    proc = new_process(tmp_path_factory.mktemp("resilin-home"), CLOUD, SUBNET)
    proc.start()
    try:
        yield proc
    finally:
        try:
            end_clusters(proc)  # a failed test may leave one running
        finally:
            proc.stop()
    print(proc.log_tail(200))
    leaked = remove_cloud(CLOUD)  # also removes the cloud's network
    assert leaked == [], f"containers left behind: {leaked}"


def _logged(resilin, say_lines):
    return lambda line: (say_lines.append(line), print(line))


def _core_site_of_a_node() -> str:
    container = cloud_containers(CLOUD)[0]
    done = subprocess.run(
        ["podman", "exec", container, "cat", "/etc/hadoop/core-site.xml"], capture_output=True
    )
    return done.stdout.decode()


def test_word_count_end_to_end(resilin):
    lines: list[str] = []
    core_sites: list[str] = []
    logged = _logged(resilin, lines)

    def say(line: str) -> None:
        logged(line)
        if " RUNNING " in line and not core_sites:
            core_sites.append(_core_site_of_a_node())

    result = demo.wordcount(resilin.endpoints(), bucket="demo", core=2, say=say)
    cluster, step = result["cluster"], result["step"]
    # The nodes held the cluster's own temporary storage key, never the user's; it ended with the cluster.
    user = resilin.accounts[0]
    assert core_sites and "fs.s3a.session.token" in core_sites[0], core_sites
    assert user.secret_key not in core_sites[0] and user.access_key not in core_sites[0]
    assert "<value>ASIA" in core_sites[0]
    state = redis.Redis(unix_socket_path=str(resilin.home / "redis" / "redis.sock"))
    assert state.get(f"resilin:cluster-credentials-of:{cluster['Id']}") is None

    assert step["Status"]["State"] == "COMPLETED", step["Status"]
    assert result["counts"] == result["expected"]
    assert cluster["Status"]["State"] == "TERMINATED"
    assert cluster["Status"]["StateChangeReason"]["Code"] == "ALL_STEPS_COMPLETED"
    # Every state EMR goes through was seen, in order, with real timestamps.
    seen = [s for s in result["timeline"].seen if not s.startswith("step ")]
    assert seen == ["STARTING", "BOOTSTRAPPING", "RUNNING", "TERMINATING", "TERMINATED"]
    steps_seen = [s for s in result["timeline"].seen if s.startswith("step ")]
    assert steps_seen == ["step PENDING", "step RUNNING", "step COMPLETED"]
    timeline = cluster["Status"]["Timeline"]
    assert timeline["CreationDateTime"] < timeline["ReadyDateTime"] < timeline["EndDateTime"]
    st = step["Status"]["Timeline"]
    assert timeline["ReadyDateTime"] <= st["StartDateTime"] < st["EndDateTime"] <= timeline["EndDateTime"]
    # The step's logs were shipped to LogUri, and kept locally.
    s3 = resilin.endpoints().client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="demo", Prefix="logs/")["Contents"]}
    assert f"logs/{cluster['Id']}/steps/{step['Id']}/controller.gz" in keys
    assert (resilin.home / "logs" / cluster["Id"] / "steps" / step["Id"] / "syslog").stat().st_size > 0
    assert cloud_containers(CLOUD) == []


def test_failing_mapper_fails_step_and_terminates_with_errors(resilin):
    endpoints = resilin.endpoints()
    s3, emr = endpoints.client("s3"), endpoints.client("emr")
    demo.upload_inputs(s3, "failing", {"a.txt": "one two\n"}, mapper=demo.FAILING_MAPPER)
    cid = demo.run_job_flow(emr, "failing", core=0, name="failing mapper")
    cluster, step, _ = demo.watch(emr, cid, print)
    assert step["Status"]["State"] == "FAILED"
    assert step["Status"]["FailureDetails"]["Message"]
    assert cluster["Status"]["State"] == "TERMINATED_WITH_ERRORS"
    assert cluster["Status"]["StateChangeReason"]["Code"] == "STEP_FAILURE"
    assert cloud_containers(CLOUD) == []


def test_instances_that_cannot_launch_end_the_cluster_cleanly(resilin):
    emr = resilin.endpoints().client("emr")
    cid = emr.run_job_flow(
        Name="no such instance type",
        ReleaseLabel="emr-7.5.0",
        Instances={"MasterInstanceType": "x9.nonexistent", "InstanceCount": 1},
        Steps=[demo.streaming_step("demo")],
    )["JobFlowId"]
    cluster, _, _ = demo.watch(emr, cid, print, timeout=300)
    assert cluster["Status"]["State"] == "TERMINATED_WITH_ERRORS"
    reason = cluster["Status"]["StateChangeReason"]
    assert reason["Code"] in ("INSTANCE_FAILURE", "VALIDATION_ERROR")
    assert "x9.nonexistent" in reason["Message"]
    assert cloud_containers(CLOUD) == []


def test_demo_reports_a_cluster_that_fails_before_its_step_starts(resilin):
    # The real `resilin demo` against this running Resilin, with an instance type no cloud offers.
    done = subprocess.run(
        [sys.executable, "-m", "resilin", "--home", str(resilin.home), "demo",
         "--instance-type", "x9.nonexistent", "--core-instances", "0", "--no-cli", "--bucket", "demofail"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "Traceback" not in out + done.stderr
    assert re.search(
        r"cluster ended TERMINATED_WITH_ERRORS \((INSTANCE_FAILURE|VALIDATION_ERROR): .*x9\.nonexistent", out
    )
    # Whether a one-second poll catches the short TERMINATING depends on timing; the cluster never
    # reaches BOOTSTRAPPING or RUNNING.
    assert re.search(
        r"phases the cluster reached: STARTING( -> TERMINATING)? -> TERMINATED_WITH_ERRORS\n", out
    )
    assert re.search(r"  word-count step +not reached", out)
    assert re.search(r"FAILED: the step ended (CANCELLED|FAILED|PENDING)", out)
    assert "no cluster container is left" in out
