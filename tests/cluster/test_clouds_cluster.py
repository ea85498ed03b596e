"""Clusters across two local clouds, with real parts: a ``resilin server`` serving two local clouds
(A, the default, falling back to B), faults injected through A's and B's admin resources, Hadoop word
count through the EMR API on B, and reconciliation of an orphan instance.  Nothing may leak."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import boto3
import pytest
from botocore.config import Config

from resilin import demo
from resilin.clouds.ssh import KeyPair
from resilin.provisioners.localcloud.admin_client import AdminClient
from resilin.provisioners.localcloud.process import remove_cloud
from resilin.service import local_runtime
from resilin.service.ports import free_port
from resilin.service.process import ResilinProcess, cloud_containers
from resilin.settings.config import new_credentials

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman"),
]

# Clouds (networks) of this run's own, so that runs from several checkouts can share the machine;
# subnets that do not overlap, as an overlay joining them will need.
PID = os.getpid() % 100000
CLOUD_A, CLOUD_B = f"la{PID}", f"lb{PID}"
SUBNET_A, SUBNET_B = f"10.80.{100 + PID % 150}.0/24", f"10.81.{100 + PID % 150}.0/24"


@pytest.fixture(scope="module")
def resilin(tmp_path_factory):
    if subprocess.run(["podman", "image", "exists", "localhost/resilin-node:latest"]).returncode != 0:
        pytest.fail("the node image is missing: run docker/node/build.sh (make test does)")
    home = tmp_path_factory.mktemp("resilin-home")
    proc = ResilinProcess(home, free_port(), free_port(), [new_credentials("000000000001")], CLOUD_A)
    creds = proc.accounts[0]
    (home / "resilin.toml").write_text(
        f"api_port = {proc.api_port}\nstorage_port = {proc.storage_port}\nlocalcloud_port = {free_port()}\n"
        f'default_cloud = "{CLOUD_A}"\nreconcile_interval = 5\n\n'
        f'[[accounts]]\naccount_id = "{creds.account_id}"\naccess_key = "{creds.access_key}"\n'
        f'secret_key = "{creds.secret_key}"\n\n'
        f'[[clouds]]\nname = "{CLOUD_A}"\nkind = "local"\nsubnet = "{SUBNET_A}"\nfallback = ["{CLOUD_B}"]\n\n'
        f'[[clouds]]\nname = "{CLOUD_B}"\nkind = "local"\nsubnet = "{SUBNET_B}"\nport = {free_port()}\n'
        "quota = { instances = 4 }\n"
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        print(proc.log_tail(200))
        leaked = remove_cloud(CLOUD_A) + remove_cloud(CLOUD_B)
        assert leaked == [], f"containers left behind: {leaked}"


def _local(resilin, cloud: str) -> local_runtime.LocalCloudAccess:
    return local_runtime.read(resilin.home)[cloud]


def _cloud_ec2(resilin, cloud: str):
    access = _local(resilin, cloud)
    return boto3.client(
        "ec2",
        endpoint_url=access.endpoint,
        region_name=access.region,
        aws_access_key_id=access.access_key,
        aws_secret_access_key=access.secret_key,
        config=Config(retries={"total_max_attempts": 3}),
    )


@pytest.fixture
def admins(resilin):
    """The admin clients of both clouds; their faults are cleared after each test."""
    clients = {}
    for cloud in (CLOUD_A, CLOUD_B):
        access = _local(resilin, cloud)
        clients[cloud] = AdminClient(access.endpoint, access.access_key, access.secret_key, access.region)
    yield clients
    for client in clients.values():
        client.clear_faults()


def _leftovers(resilin, cloud: str, cid: str) -> dict[str, list[str]]:
    ec2 = _cloud_ec2(resilin, cloud)
    groups = [
        g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"] if cid in g["GroupName"]
    ]
    keys = [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"] if cid in k["KeyName"]]
    return {"containers": cloud_containers(cloud), "groups": groups, "keys": keys}


def _resilin_cli(resilin, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "resilin", "--home", str(resilin.home), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_clouds_list_and_check_show_both_running_local_clouds(resilin):
    listed = _resilin_cli(resilin, "clouds", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"{CLOUD_A} (default)" in listed.stdout and f"fallback         {CLOUD_B}" in listed.stdout
    assert SUBNET_B in listed.stdout and "4 instances" in listed.stdout
    checked = _resilin_cli(resilin, "clouds", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("credentials accepted") == 2 and "2 of 2 cloud(s) ready" in checked.stdout
    assert "localhost/resilin-node:latest" in checked.stdout and "FAIL" not in checked.stdout


def test_groups_in_two_clouds_are_accepted_and_leave_nothing_when_terminated(resilin):
    # The clouds' subnets do not overlap (resilin.toml refuses local clouds that do), so the
    # cluster is accepted; terminated at once, nothing of it stays in either cloud.
    emr = resilin.endpoints().client("emr")
    cid = emr.run_job_flow(
        Name="two clouds",
        ReleaseLabel="emr-7.5.0",
        Instances={
            "InstanceGroups": [
                {"InstanceRole": "MASTER", "InstanceType": f"m5.xlarge@{CLOUD_A}", "InstanceCount": 1},
                {"InstanceRole": "CORE", "InstanceType": f"m5.xlarge@{CLOUD_B}", "InstanceCount": 1},
            ]
        },
    )["JobFlowId"]
    assert emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"] == "STARTING"
    emr.terminate_job_flows(JobFlowIds=[cid])
    status = _wait_ended(emr, cid, 300)["Status"]
    assert status["State"] == "TERMINATED", status
    assert cloud_containers(CLOUD_A) == cloud_containers(CLOUD_B) == []


def test_unknown_ec2_key_name_fails_the_cluster_before_any_instance_is_launched(resilin):
    # The account has a key pair, but not the one the request names, in neither cloud.
    ec2 = boto3.client(
        "ec2",
        endpoint_url=_local(resilin, CLOUD_A).endpoint,
        region_name="us-east-1",
        aws_access_key_id=resilin.accounts[0].access_key,
        aws_secret_access_key=resilin.accounts[0].secret_key,
    )
    ec2.import_key_pair(KeyName="laptop", PublicKeyMaterial=KeyPair.generate("laptop").public_line.encode())
    emr = resilin.endpoints().client("emr")
    cid = emr.run_job_flow(
        Name="unknown key",
        ReleaseLabel="emr-7.5.0",
        Instances={"MasterInstanceType": "m5.xlarge", "InstanceCount": 1, "Ec2KeyName": "no-such-key"},
    )["JobFlowId"]
    status = _wait_ended(emr, cid, 120)["Status"]
    assert status["State"] == "TERMINATED_WITH_ERRORS"
    assert status["StateChangeReason"]["Code"] == "VALIDATION_ERROR"
    assert "The key pair 'no-such-key' does not exist" in status["StateChangeReason"]["Message"]
    for cloud in (CLOUD_A, CLOUD_B):
        # Terminated instances stay listed for an hour: none was ever launched for the cluster.
        launched = _cloud_ec2(resilin, cloud).describe_instances(
            Filters=[{"Name": "tag:resilin:cluster-id", "Values": [cid]}]
        )["Reservations"]
        assert launched == [], cloud
        assert _leftovers(resilin, cloud, cid) == {"containers": [], "groups": [], "keys": []}
    ec2.delete_key_pair(KeyName="laptop")


def _wait_ended(emr, cid: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster = emr.describe_cluster(ClusterId=cid)["Cluster"]
        if cluster["Status"]["State"] in ("TERMINATED", "TERMINATED_WITH_ERRORS"):
            return cluster
        time.sleep(1)
    raise TimeoutError(f"{cid} did not end within {timeout}s")


def test_cluster_placed_where_capacity_runs_out_ends_with_errors_and_leaks_nothing(resilin, admins):
    # Room for one instance in B: the master launches, the core group never does.
    admins[CLOUD_B].set_faults(capacity=1)
    emr = resilin.endpoints().client("emr")
    cid = emr.run_job_flow(
        Name="no capacity",
        ReleaseLabel="emr-7.5.0",
        Instances={
            "MasterInstanceType": f"m5.xlarge@{CLOUD_B}",
            "SlaveInstanceType": f"m5.xlarge@{CLOUD_B}",
            "InstanceCount": 2,
        },
        Steps=[demo.streaming_step("nowhere")],
    )["JobFlowId"]
    messages: list[str] = []
    cluster, step, _ = demo.watch(emr, cid, messages.append, timeout=600)
    status = cluster["Status"]
    assert status["State"] == "TERMINATED_WITH_ERRORS", messages
    assert status["StateChangeReason"]["Code"] == "INSTANCE_FAILURE"
    assert "InsufficientInstanceCapacity" in status["StateChangeReason"]["Message"]
    assert CLOUD_B in status["StateChangeReason"]["Message"]
    assert any("no capacity" in m for m in messages)  # the retries were shown as they happened
    assert step["Status"]["State"] == "CANCELLED"
    # Pinned to B (type@cloud), so never tried in A; and nothing is left in B.
    assert _leftovers(resilin, CLOUD_B, cid) == {"containers": [], "groups": [], "keys": []}
    assert _leftovers(resilin, CLOUD_A, cid) == {"containers": [], "groups": [], "keys": []}


def test_word_count_falls_back_to_the_second_cloud(resilin, admins):
    admins[CLOUD_A].set_faults(insufficient_capacity=1000)  # A refuses every launch
    admins[CLOUD_B].set_faults(launch_failures=1)  # and in B, one instance dies while starting
    ec2_b = _cloud_ec2(resilin, CLOUD_B)
    seen_groups: dict[str, list[str]] = {}

    def say(line: str) -> None:
        print(line)
        if "BOOTSTRAPPING" in line and not seen_groups:
            # While the cluster runs: its instances in B sit in the cluster's own security group.
            for r in ec2_b.describe_instances()["Reservations"]:
                for i in r["Instances"]:
                    if i["State"]["Name"] == "running":
                        seen_groups[i["InstanceId"]] = [g["GroupName"] for g in i["SecurityGroups"]]

    lines: list[str] = []
    result = demo.wordcount(
        resilin.endpoints(), bucket="fallback", core=1, say=lambda line: (lines.append(line), say(line))
    )
    cluster, step = result["cluster"], result["step"]
    cid = cluster["Id"]
    assert step["Status"]["State"] == "COMPLETED", (step["Status"], lines)
    assert result["counts"] == result["expected"]
    assert cluster["Status"]["State"] == "TERMINATED"
    assert len(seen_groups) == 2 and all(groups == [f"resilin-{cid}"] for groups in seen_groups.values())
    # The fallback's message is in the server's log (a client polling the status may miss it).
    log = (resilin.home / "server.log").read_text()
    assert f"in cloud {CLOUD_B} (fallback: Cloud {CLOUD_A} has no capacity" in log, lines
    assert f"{cid}: 1 instance(s) failed while starting" in log and "launching replacements" in log
    for cloud in (CLOUD_A, CLOUD_B):
        assert _leftovers(resilin, cloud, cid) == {"containers": [], "groups": [], "keys": []}


def test_reconciliation_terminates_instances_of_no_live_cluster(resilin):
    ec2 = _cloud_ec2(resilin, CLOUD_A)
    installation = (resilin.home / "installation-id").read_text().strip()
    image = ec2.describe_images()["Images"][0]["ImageId"]

    def launch(tags: dict[str, str]) -> str:
        spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
        [inst] = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=spec)["Instances"]
        return inst["InstanceId"]

    orphan = launch({"resilin:cluster-id": "j-ORPHAN00000001", "resilin:installation": installation})
    stranger = launch({"resilin:cluster-id": "j-ORPHAN00000001", "resilin:installation": "rsl-someoneelse"})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = {
                i["InstanceId"]: i["State"]["Name"]
                for r in ec2.describe_instances(InstanceIds=[orphan, stranger])["Reservations"]
                for i in r["Instances"]
            }
            if states[orphan] == "terminated":
                break
            time.sleep(2)
        assert states[orphan] == "terminated"
        assert states[stranger] in ("pending", "running")  # another Resilin's: not ours to touch
        assert "belong to no live cluster" in (resilin.home / "server.log").read_text()
    finally:
        ec2.terminate_instances(InstanceIds=[stranger])
