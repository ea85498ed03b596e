"""One cluster across local clouds, joined by the overlay: the master in cloud A, a core fleet spread
over clouds B and A, a task fleet added in cloud C.  Real parts throughout: three local clouds of one
``resilin server``, its WAN network, the gateways' WireGuard, Hadoop.  One cluster is shared by
the tests, in file order; the last one tears it down and checks that nothing is left."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resilin import demo
from resilin.service.process import ResilinProcess
from tests.clusters import (
    MRJOB_WORD_COUNT,
    NODE_IMAGE,
    aws_cli,
    cloud_ec2,
    running_multicloud_resilin,
    terminate_and_check_nothing_left,
    wait_for,
)

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman"),
    pytest.mark.skipif(
        shutil.which("tcpdump") is None, reason="needs tcpdump (scripts/setup.sh installs it)"
    ),
]

PID = os.getpid() % 100000
CLOUDS = {f"ma{PID}": f"10.86.{PID % 250}.0/24", f"mb{PID}": f"10.87.{PID % 250}.0/24"}
CLOUD_A, CLOUD_B = list(CLOUDS)
CLOUD_C, SUBNET_C = f"mc{PID}", f"10.89.{PID % 250}.0/24"
CLOUDS[CLOUD_C] = SUBNET_C
WAN = f"resilin-wan-mc{PID}"
BUCKET = "multicloud"
MARKER = "zebraquokkamarker"  # a word of the step's input, to look for on the wire
# Ports a node's daemons listen on, by its group's role.
PORTS = {"MASTER": (8020, 8032, 8088, 9870), "CORE": (9866, 9864, 8042), "TASK": (8042,)}


@pytest.fixture(scope="module")
def resilin():
    for proc in running_multicloud_resilin(CLOUDS, WAN, f"100.72.{PID % 250}.0/24", accounts=2):
        s3 = proc.endpoints().client("s3")
        texts = demo.corpus(files=3)
        texts["marker.txt"] = f"{MARKER} {MARKER} overlay\n" * 50
        demo.upload_inputs(s3, BUCKET, texts)
        yield proc


@pytest.fixture(scope="module")
def emr(resilin):
    return resilin.endpoints().client("emr")


@pytest.fixture(scope="module")
def s3(resilin):
    return resilin.endpoints().client("s3")


@pytest.fixture(scope="module")
def progress(resilin, emr) -> dict:
    """The shared cluster: master in A, a core fleet of two spread over B and A (one node in each, so
    HDFS keeps a replica of every block in each cloud); what creation printed on the way."""
    cid = emr.run_job_flow(
        Name="across clouds",
        ReleaseLabel="emr-7.5.0",
        LogUri=f"s3://{BUCKET}/logs/",
        Instances={
            "InstanceFleets": [
                {
                    "InstanceFleetType": "MASTER",
                    "TargetOnDemandCapacity": 1,
                    "InstanceTypeConfigs": [{"InstanceType": f"m5.large@{CLOUD_A}"}],
                },
                {
                    "InstanceFleetType": "CORE",
                    "TargetOnDemandCapacity": 2,
                    "InstanceTypeConfigs": [
                        {"InstanceType": f"m5.large@{CLOUD_B}"},
                        {"InstanceType": f"m5.large@{CLOUD_A}"},
                    ],
                },
            ],
            "KeepJobFlowAliveWhenNoSteps": True,
        },
    )["JobFlowId"]
    messages: list[str] = []

    def waiting() -> bool:
        status = emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]
        message = status.get("StateChangeReason", {}).get("Message", "")
        if message and (not messages or messages[-1] != message):
            messages.append(message)
        assert not status["State"].startswith("TERMINATED"), (status, messages)
        return status["State"] == "WAITING"

    wait_for(f"{cid} to wait for steps", waiting, timeout=900, interval=1)
    return {"id": cid, "messages": messages, "log": (resilin.home / "server.log").read_text()}


@pytest.fixture(scope="module")
def cluster(progress) -> str:
    return progress["id"]


# -- helpers ----------------------------------------------------------------
def nodes(resilin: ResilinProcess, emr, cid: str) -> list[dict]:
    """The cluster's running nodes: role, cloud, container, private and public address."""
    roles = {
        g["Id"]: g["InstanceFleetType"] for g in emr.list_instance_fleets(ClusterId=cid)["InstanceFleets"]
    }
    found = []
    for inst in emr.list_instances(ClusterId=cid, InstanceStates=["RUNNING"])["Instances"]:
        cloud = next(
            (c for c in CLOUDS if subprocess.run(
                ["podman", "container", "exists", f"resilin-{c}-{inst['Ec2InstanceId']}"]
            ).returncode == 0),
            None,
        )  # fmt: skip
        if cloud is None:
            # Terminated a moment ago: its container is gone before the cluster's next look at
            # its instances marks it so.
            continue
        found.append(
            {
                "role": roles[inst["InstanceFleetId"]],
                "cloud": cloud,
                "container": f"resilin-{cloud}-{inst['Ec2InstanceId']}",
                "ip": inst["PrivateIpAddress"],
                "instance": inst,
            }
        )
    return found


def public_ips(resilin: ResilinProcess) -> dict[str, str]:
    """Instance id → public address of the running instances in every cloud (the gateways')."""
    found = {}
    for cloud in CLOUDS:
        for r in cloud_ec2(resilin, cloud).describe_instances()["Reservations"]:
            for inst in r["Instances"]:
                if inst["State"]["Name"] == "running" and inst.get("PublicIpAddress"):
                    found[inst["InstanceId"]] = inst["PublicIpAddress"]
    return found


def on_node(container: str, command: str, user: str = "root", timeout: float = 120) -> str:
    done = subprocess.run(
        ["podman", "exec", "-u", user, container, "bash", "-lc", command],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{container}: {command}: {done.stdout}{done.stderr}"
    return done.stdout


REACH = """
import socket, sys, json
bad = []
for host, port in json.loads(sys.argv[1]):
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        bad.append(f"{host}:{port} {exc}")
print(json.dumps(bad))
"""


def unreachable(container: str, targets: list[tuple[str, int]]) -> list[str]:
    out = on_node(container, f"python3 -c {shlex.quote(REACH)} {shlex.quote(json.dumps(targets))}")
    return json.loads(out)


def bridge_of(network: str) -> str:
    inspected = json.loads(subprocess.run(["podman", "network", "inspect", network], capture_output=True,
                                          text=True, check=True).stdout)[0]  # fmt: skip
    return inspected["network_interface"]


class Capture:
    """tcpdump on a bridge of the host, written to a file, read back as raw bytes."""

    def __init__(self, interface: str, path: Path) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            ["tcpdump", "-i", interface, "-U", "-s", "0", "-w", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1)

    def stop(self) -> tuple[bytes, str]:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        summary = subprocess.run(
            ["tcpdump", "-n", "-r", str(self.path)], capture_output=True, text=True, check=True
        ).stdout
        return self.path.read_bytes(), summary


def word_count_step(name: str, output: str) -> dict:
    return {
        "Name": name,
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": [
                "hadoop-streaming",
                "-files", f"s3://{BUCKET}/mapper.py,s3://{BUCKET}/reducer.py",
                "-mapper", "mapper.py", "-reducer", "reducer.py",
                "-input", f"s3://{BUCKET}/input/", "-output", f"s3://{BUCKET}/{output}/",
            ],
        },
    }  # fmt: skip


def wait_step(emr, cid: str, sid: str, timeout: float = 900) -> dict:
    def ended():
        step = emr.describe_step(ClusterId=cid, StepId=sid)["Step"]
        return step if step["Status"]["State"] in ("COMPLETED", "FAILED", "CANCELLED") else None

    return wait_for(f"step {sid}", ended, timeout=timeout)


def step_log(resilin: ResilinProcess, cid: str, sid: str) -> str:
    """The end of a step's stderr, as Resilin keeps it, to show why a step failed."""
    logs = resilin.home / "logs" / cid / "steps" / sid
    return "\n".join(
        f"--- {name}\n" + ((logs / name).read_text()[-3000:] if (logs / name).exists() else "(none)")
        for name in ("syslog", "stderr")
    )


def expected(s3) -> dict:
    texts = {}
    for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="input/")["Contents"]:
        texts[o["Key"]] = s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read().decode()
    return demo.python_count(texts)


def all_reach_all(found: list[dict]) -> dict[str, list[str]]:
    failures = {}
    for node in found:
        targets = [
            (other["ip"], port) for other in found if other is not node for port in PORTS[other["role"]]
        ]
        bad = unreachable(node["container"], targets)
        if bad:
            failures[f"{node['role']} in {node['cloud']}"] = bad
    return failures


# -- the tests, in order ----------------------------------------------------
def test_creation_reports_each_nodes_cloud_and_the_overlay(resilin, emr, progress):
    text = "\n".join(progress["messages"]) + progress["log"]
    assert CLOUD_A in text and CLOUD_B in text
    assert re.search(r"overlay.*up", text), progress["messages"]
    found = nodes(resilin, emr, progress["id"])
    assert sorted((n["role"], n["cloud"]) for n in found) == [
        ("CORE", CLOUD_A), ("CORE", CLOUD_B), ("MASTER", CLOUD_A),
    ]  # fmt: skip


def test_every_node_reaches_every_other_on_the_hadoop_ports(resilin, emr, cluster):
    assert all_reach_all(nodes(resilin, emr, cluster)) == {}


def test_hdfs_sees_each_datanode_with_its_own_address_and_cloud(resilin, emr, cluster):
    found = nodes(resilin, emr, cluster)
    master = next(n for n in found if n["role"] == "MASTER")
    report = on_node(master["container"], "hdfs dfsadmin -report", user="hadoop")
    for core in (n for n in found if n["role"] == "CORE"):
        assert f"Name: {core['ip']}:9866" in report, report
    assert "Live datanodes (2)" in report
    topology = on_node(master["container"], "hdfs dfsadmin -printTopology", user="hadoop")
    assert f"Rack: /{CLOUD_A}" in topology and f"Rack: /{CLOUD_B}" in topology, topology


def test_a_file_at_full_replication_has_a_replica_in_each_cloud(resilin, emr, cluster):
    master = next(n for n in nodes(resilin, emr, cluster) if n["role"] == "MASTER")
    on_node(
        master["container"],
        "head -c 3000000 /dev/urandom > /tmp/spread.bin && hdfs dfs -D dfs.blocksize=1048576 "
        "-put -f /tmp/spread.bin /tmp/spread.bin && hdfs dfs -setrep -w 2 /tmp/spread.bin",
        user="hadoop",
    )
    fsck = on_node(master["container"], "hdfs fsck /tmp/spread.bin -files -blocks -racks", user="hadoop")
    blocks = [line for line in fsck.splitlines() if re.match(r"^\d+\. BP-", line)]
    assert len(blocks) == 3, fsck  # 3 MB in 1 MB blocks
    for line in blocks:
        assert "len=" in line and "Live_repl=2" in line, line
        assert f"/{CLOUD_A}/" in line and f"/{CLOUD_B}/" in line, line


def test_word_count_across_clouds_is_encrypted_on_the_wan(resilin, emr, s3, cluster, tmp_path):
    wan = Capture(bridge_of(WAN), tmp_path / "wan.pcap")
    # Whichever core node maps the marker's file reads it from storage over its own cloud's bridge.
    insides = [Capture(bridge_of(f"resilin-{c}"), tmp_path / f"{c}.pcap") for c in (CLOUD_A, CLOUD_B)]
    try:
        sid = emr.add_job_flow_steps(JobFlowId=cluster, Steps=[word_count_step("boto3", "out-boto3")])[
            "StepIds"
        ][0]
        step = wait_step(emr, cluster, sid)
    finally:
        wan_bytes, wan_summary = wan.stop()
        inside_bytes = b"".join(capture.stop()[0] for capture in insides)
    assert step["Status"]["State"] == "COMPLETED", step_log(resilin, cluster, sid)
    assert demo.read_output(s3, BUCKET, "out-boto3/") == expected(s3)
    # Inside the clouds the step's data travels in clear; between them only WireGuard's UDP.
    assert MARKER.encode() in inside_bytes
    assert MARKER.encode() not in wan_bytes
    lines = [line for line in wan_summary.splitlines() if " IP " in line]
    assert lines, "no traffic crossed the WAN during the step"
    gateways = set(public_ips(resilin).values())
    assert len(gateways) == 2, gateways
    for line in lines:
        assert "UDP" in line and ".51820" in line, line
        assert {a.rsplit(".", 1)[0] for a in re.findall(r"(\d+\.\d+\.\d+\.\d+\.\d+)", line)} <= gateways, line


def test_word_count_through_the_aws_cli_and_mrjob_on_the_same_cluster(resilin, s3, cluster, tmp_path):
    endpoint = f"http://127.0.0.1:{resilin.api_port}"
    step = word_count_step("cli", "out-cli")
    # The AWS CLI's own shape of a step: the jar and its arguments at the top.
    steps = json.dumps(
        [{"Type": "CUSTOM_JAR", "Name": "cli", "ActionOnFailure": "CONTINUE", **step["HadoopJarStep"]}]
    )
    added = aws_cli(resilin, "emr", "add-steps", "--endpoint-url", endpoint, "--cluster-id", cluster,
                    "--steps", steps)  # fmt: skip
    (sid,) = json.loads(added.stdout)["StepIds"]
    waited = aws_cli(resilin, "emr", "wait", "step-complete", "--endpoint-url", endpoint,
                     "--cluster-id", cluster, "--step-id", sid, check=False)  # fmt: skip
    assert waited.returncode == 0, waited.stderr
    assert demo.read_output(s3, BUCKET, "out-cli/") == expected(s3)

    job = tmp_path / "wordcount.py"
    job.write_text(MRJOB_WORD_COUNT)
    creds = resilin.accounts[0]
    env = os.environ | {
        "AWS_ACCESS_KEY_ID": creds.access_key,
        "AWS_SECRET_ACCESS_KEY": creds.secret_key,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        [
            sys.executable, str(job), "-r", "emr", "--no-conf", "--cluster-id", cluster,
            "--emr-endpoint", endpoint, "--s3-endpoint", f"http://127.0.0.1:{resilin.storage_port}",
            "--region", "us-east-1", "--cloud-tmp-dir", f"s3://{BUCKET}/mrjob-tmp/",
            # A cluster that goes on running: mrjob would wait for its logs to reach S3 (EMR's 5-minute sync).
            "--check-cluster-every", "5", "--no-read-logs", f"s3://{BUCKET}/input/",
        ],
        env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    counts = {}
    for line in done.stdout.splitlines():
        word, _, count = line.partition("\t")
        counts[word.strip('"')] = int(count)
    assert counts == expected(s3)


def test_no_node_has_more_capabilities_than_podmans_default(resilin, emr, cluster):
    plain = subprocess.run(
        ["podman", "run", "--rm", "--network", "none", NODE_IMAGE, "grep", "CapEff", "/proc/self/status"],
        capture_output=True, text=True, check=True,
    ).stdout.split()[-1]  # fmt: skip
    for node in nodes(resilin, emr, cluster):
        caps = on_node(node["container"], "grep CapEff /proc/1/status").split()[-1]
        assert caps == plain, node["container"]


def test_another_account_cannot_reach_the_cluster(resilin, emr, cluster):
    found = nodes(resilin, emr, cluster)
    intruders = []
    try:
        for cloud in (CLOUD_A, CLOUD_B):
            ec2 = cloud_ec2(resilin, cloud, account=1)
            image = ec2.describe_images()["Images"][0]["ImageId"]
            [inst] = ec2.run_instances(
                ImageId=image, MinCount=1, MaxCount=1,
                NetworkInterfaces=[{"DeviceIndex": 0, "AssociatePublicIpAddress": True}],
            )["Instances"]  # fmt: skip
            intruders.append((ec2, inst["InstanceId"], cloud))
        for _ec2, iid, cloud in intruders:
            container = f"resilin-{cloud}-{iid}"
            wait_for(f"{iid} running", lambda c=container: subprocess.run(
                ["podman", "exec", c, "true"], capture_output=True).returncode == 0, timeout=120)  # fmt: skip
            targets = [(n["ip"], p) for n in found for p in (22, *PORTS[n["role"]])]
            targets += [(ip, p) for ip in public_ips(resilin).values() for p in (22, 8020, 9866)]
            assert len(unreachable(container, targets)) == len(targets), cloud
    finally:
        for ec2, iid, _ in intruders:
            ec2.terminate_instances(InstanceIds=[iid])


def test_a_task_fleet_in_a_third_cloud_joins_the_overlay(resilin, emr, cluster):
    fid = emr.add_instance_fleet(
        ClusterId=cluster,
        InstanceFleet={
            "InstanceFleetType": "TASK",
            "TargetOnDemandCapacity": 1,
            "InstanceTypeConfigs": [{"InstanceType": f"m5.large@{CLOUD_C}"}],
        },
    )["InstanceFleetId"]

    def running() -> bool:
        f = next(f for f in emr.list_instance_fleets(ClusterId=cluster)["InstanceFleets"] if f["Id"] == fid)
        assert f["Status"]["State"] not in ("SUSPENDED", "TERMINATED"), f
        return f["Status"]["State"] == "RUNNING" and f["ProvisionedOnDemandCapacity"] == 1

    wait_for("the task fleet in cloud C", running, timeout=600)
    found = nodes(resilin, emr, cluster)
    assert {n["cloud"] for n in found} == {CLOUD_A, CLOUD_B, CLOUD_C}
    assert all_reach_all(found) == {}
    master = next(n for n in found if n["role"] == "MASTER")
    task = next(n for n in found if n["role"] == "TASK")
    yarn = on_node(master["container"], "yarn node -list", user="hadoop")
    assert "TotalNodes:3" in yarn.replace(" ", ""), yarn
    assert task["ip"] in on_node(master["container"], "getent hosts " + task["instance"]["PrivateDnsName"])


def test_a_killed_gateway_is_replaced_and_the_overlay_reformed(resilin, emr, s3, cluster):
    before = nodes(resilin, emr, cluster)
    gateway = next(
        n for n in before if n["cloud"] == CLOUD_B and n["instance"]["Ec2InstanceId"] in public_ips(resilin)
    )
    subprocess.run(["podman", "kill", gateway["container"]], check=True, capture_output=True)

    def reformed() -> bool:
        now = nodes(resilin, emr, cluster)
        return len([n for n in now if n["role"] == "CORE"]) == 2 and gateway["ip"] not in {
            n["ip"] for n in now
        }

    wait_for("the core fleet back to two nodes", reformed, timeout=600)
    assert sorted(n["cloud"] for n in nodes(resilin, emr, cluster) if n["role"] == "CORE") == sorted(
        [CLOUD_A, CLOUD_B]
    )  # the replacement went back to the cloud that lost a node
    wait_for("the overlay re-formed", lambda: all_reach_all(nodes(resilin, emr, cluster)) == {}, timeout=300)
    sid = emr.add_job_flow_steps(JobFlowId=cluster, Steps=[word_count_step("after", "out-after")])["StepIds"][
        0
    ]
    assert wait_step(emr, cluster, sid)["Status"]["State"] == "COMPLETED", step_log(resilin, cluster, sid)
    assert demo.read_output(s3, BUCKET, "out-after/") == expected(s3)


def test_teardown_leaves_no_instance_route_address_or_attachment(resilin, emr, cluster):
    terminate_and_check_nothing_left(resilin, emr, cluster, CLOUDS)
    wan = WAN
    attached = subprocess.run(["podman", "ps", "-a", "--filter", f"network={wan}", "--format", "{{.Names}}"],
                              capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert attached == []
