"""Everything a user asks of a cluster through the EMR API, checked in real Hadoop on the local cloud.

One long-lived cluster (keep-alive) serves most checks in order: configurations read back
from the daemons, bootstrap actions, every kind of step, growing and shrinking groups,
a core node killed mid-job, and at the end the master killed.  A second, one-node
cluster shows a failing bootstrap action.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from resilin import demo
from resilin.applications.hadoop_config import NodeImageLayout
from resilin.provisioners.localcloud.process import remove_cloud
from resilin.service.process import cloud_containers, new_process

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman"),
]

CLOUD = f"hc{os.getpid() % 100000}"
SUBNET = f"10.79.{100 + os.getpid() % 150}.0/24"
BUCKET = "hadoop"
EMPTY_NAMESPACE = NodeImageLayout.empty_namespace
CORE_SITE_KEY = "resilin.test.marker"

BOOTSTRAP = """#!/bin/bash
set -e
# As the hadoop user, with sudo, as on EMR.
echo "user=$(id -un) args=$*" | sudo tee /usr/local/share/bootstrap-marker >/dev/null
sudo chmod 644 /usr/local/share/bootstrap-marker
# A package installed with sudo through the package manager (carried in the script: the
# test's instances need no mirror).
base64 -d >/tmp/probe.deb <<'DEB'
{deb}
DEB
sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/probe.deb
echo "bootstrap ran on $(hostname)"
"""
PROBE_PACKAGE = "resilin-bootstrap-probe"
# A step command that prints what it received: its arguments and the JVM options Hadoop would get.
PRINT_ARGS_AND_OPTS = (
    "import json, os, sys; print(json.dumps([sys.argv[1:], os.environ['HADOOP_CLIENT_OPTS']]))"
)


def probe_deb(directory: Path) -> bytes:
    """A tiny Debian package, built with dpkg-deb, that installs one file."""
    root = directory / PROBE_PACKAGE
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {PROBE_PACKAGE}\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: Resilin tests <tests@resilin.invalid>\nDescription: installed by a bootstrap action\n"
    )
    (root / "usr" / "share" / PROBE_PACKAGE).mkdir(parents=True)
    (root / "usr" / "share" / PROBE_PACKAGE / "installed").write_text("yes\n")
    deb = directory / f"{PROBE_PACKAGE}.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True,
                   capture_output=True)  # fmt: skip
    return deb.read_bytes()


FAILING_BOOTSTRAP = "#!/bin/bash\necho about to fail\necho 'no such package: frobnicate' >&2\nexit 7\n"

TINY_JAVA = {
    "tiny/Hello.java": 'package tiny;\npublic class Hello { public static void main(String[] a) {\n  System.out.println("manifest main"); } }\n',
    "tiny/Greet.java": 'package tiny;\npublic class Greet { public static void main(String[] a) {\n  System.out.println(System.getProperty("tiny.greeting") + " " + String.join(",", a)); } }\n',
}


# -- fixtures ---------------------------------------------------------------
@pytest.fixture(scope="module")
def resilin(tmp_path_factory):
    if subprocess.run(["podman", "image", "exists", "localhost/resilin-node:latest"]).returncode != 0:
        pytest.fail("the node image is missing: run docker/node/build.sh (make test does)")
    proc = new_process(tmp_path_factory.mktemp("resilin-home"), CLOUD, SUBNET, accounts=1)
    proc.start()
    s3 = proc.endpoints().client("s3")
    demo.upload_inputs(s3, BUCKET, demo.corpus(files=6))
    deb = base64.encodebytes(probe_deb(tmp_path_factory.mktemp("deb"))).decode().strip()
    s3.put_object(Bucket=BUCKET, Key="bootstrap.sh", Body=BOOTSTRAP.replace("{deb}", deb).encode())
    s3.put_object(Bucket=BUCKET, Key="failing-bootstrap.sh", Body=FAILING_BOOTSTRAP.encode())
    yield proc
    proc.stop()
    print(proc.log_tail(300))
    leaked = remove_cloud(CLOUD)
    assert leaked == [], f"containers left behind: {leaked}"


@pytest.fixture(scope="module")
def emr(resilin):
    return resilin.endpoints().client("emr")


@pytest.fixture(scope="module")
def s3(resilin):
    return resilin.endpoints().client("s3")


@pytest.fixture(scope="module")
def cluster(resilin, emr):
    """1 master + 2 core m5.large, configurations at cluster and group level, a bootstrap action."""
    cid = emr.run_job_flow(
        Name="hadoop features",
        ReleaseLabel="emr-7.5.0",
        LogUri=f"s3://{BUCKET}/logs/",
        Applications=[{"Name": "Hadoop"}],
        Configurations=[
            {"Classification": "core-site", "Properties": {CORE_SITE_KEY: "from-configurations"}},
            {
                "Classification": "mapred-site",
                "Properties": {
                    "mapreduce.map.memory.mb": "512",
                    "mapreduce.map.java.opts": "-Xmx400m",
                    "mapreduce.reduce.memory.mb": "512",
                    "mapreduce.reduce.java.opts": "-Xmx400m",
                    "yarn.app.mapreduce.am.resource.mb": "512",
                    "yarn.app.mapreduce.am.command-opts": "-Xmx400m",
                },
            },
            {"Classification": "yarn-site", "Properties": {"yarn.scheduler.minimum-allocation-mb": "128"}},
            {
                "Classification": "hadoop-env",
                "Properties": {},
                "Configurations": [
                    {
                        "Classification": "export",
                        "Properties": {
                            "HADOOP_HEAPSIZE_MAX": "700m",
                            "YARN_RESOURCEMANAGER_OPTS": "-XX:TieredStopAtLevel=4",
                        },
                    }
                ],
            },
        ],
        BootstrapActions=[
            {
                "Name": "marker",
                "ScriptBootstrapAction": {"Path": f"s3://{BUCKET}/bootstrap.sh", "Args": ["one", "two"]},
            }
        ],
        Instances={
            "InstanceGroups": [
                {"InstanceRole": "MASTER", "InstanceType": "m5.large", "InstanceCount": 1},
                {
                    "InstanceRole": "CORE",
                    "InstanceType": "m5.large",
                    "InstanceCount": 2,
                    "Configurations": [
                        {
                            "Classification": "yarn-site",
                            "Properties": {"yarn.nodemanager.resource.memory-mb": "2560"},
                        }
                    ],
                },
            ],
            "KeepJobFlowAliveWhenNoSteps": True,
        },
    )["JobFlowId"]
    wait_cluster(emr, cid, ("WAITING",))
    yield cid
    # Whatever test ran last, the cluster ends through the API and leaves no instance behind.
    if emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"] not in (
        "TERMINATED",
        "TERMINATED_WITH_ERRORS",
    ):
        emr.terminate_job_flows(JobFlowIds=[cid])
        deadline = time.monotonic() + 600
        while not emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"].startswith("TERMINATED"):
            assert time.monotonic() < deadline
            time.sleep(2)
    assert cloud_containers(CLOUD) == []


# -- helpers ----------------------------------------------------------------
def wait_cluster(emr, cid, wanted, timeout=900):
    deadline = time.monotonic() + timeout
    while True:
        status = emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]
        if status["State"] in wanted:
            return status
        assert status["State"] not in ("TERMINATED", "TERMINATED_WITH_ERRORS"), status
        assert time.monotonic() < deadline, f"cluster still {status}"
        time.sleep(2)


def add_step(emr, cid, args=None, name="step", jar="command-runner.jar", **extra):
    step = {"Name": name, "ActionOnFailure": "CONTINUE", "HadoopJarStep": {"Jar": jar, **extra}}
    if args is not None:
        step["HadoopJarStep"]["Args"] = args
    return emr.add_job_flow_steps(JobFlowId=cid, Steps=[step])["StepIds"][0]


def wait_step(emr, cid, sid, timeout=900):
    deadline = time.monotonic() + timeout
    while True:
        step = emr.describe_step(ClusterId=cid, StepId=sid)["Step"]
        if step["Status"]["State"] in ("COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED"):
            return step
        assert time.monotonic() < deadline, f"step still {step['Status']}"
        time.sleep(2)


def run_step(emr, cid, *args, **kw):
    step = wait_step(emr, cid, add_step(emr, cid, *args, **kw))
    assert step["Status"]["State"] == "COMPLETED", step["Status"]
    return step


def step_output(resilin, cid, sid, name="stdout"):
    return (resilin.home / "logs" / cid / "steps" / sid / name).read_text()


def instances(emr, cid, **filters):
    return emr.list_instances(ClusterId=cid, **filters)["Instances"]


def group(emr, cid, role):
    return next(
        g for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"] if g["InstanceGroupType"] == role
    )


def wait_group(emr, cid, gid, running, timeout=600):
    deadline = time.monotonic() + timeout
    while True:
        g = next(g for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"] if g["Id"] == gid)
        if g["Status"]["State"] == "RUNNING" and g["RunningInstanceCount"] == running:
            return g
        assert g["Status"]["State"] != "ARRESTED", g
        assert time.monotonic() < deadline, f"group still {g}"
        time.sleep(2)


def wait_reconfigured(emr, cid, gid, timeout=600):
    deadline = time.monotonic() + timeout
    while True:
        g = next(g for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"] if g["Id"] == gid)
        if g["Status"]["State"] != "RECONFIGURING":
            assert g["Status"]["State"] == "RUNNING", g
            return g
        assert time.monotonic() < deadline, f"group still {g}"
        time.sleep(2)


def offered_memory(resilin, emr, cid):
    """What the core NodeManagers offer, as the ResourceManager and then each NodeManager report it.

    Read in a step on the master: the cluster's security group lets only SSH in from outside.
    """
    cores = instances(emr, cid, InstanceGroupTypes=["CORE"], InstanceStates=["RUNNING"])
    urls = [f"http://{master_ip(emr, cid)}:8088/ws/v1/cluster/nodes"]
    urls += [f"http://{core['PrivateIpAddress']}:8042/ws/v1/node/info" for core in cores]
    step = run_step(
        emr, cid, ["bash", "-c", "; ".join(f"curl -sf {url}; echo" for url in urls)], name="memory"
    )
    rm, *nms = [json.loads(line) for line in step_output(resilin, cid, step["Id"]).splitlines() if line]
    nodes = rm["nodes"]["node"]
    by_rm = sorted(n["availMemoryMB"] + n["usedMemoryMB"] for n in nodes if n["state"] == "RUNNING")
    by_nm = sorted(nm["nodeInfo"]["totalPmemAllocatedContainersMB"] for nm in nms)
    return len(nodes), by_rm, by_nm


def master_ip(emr, cid):
    return instances(emr, cid, InstanceGroupTypes=["MASTER"])[0]["PrivateIpAddress"]


def http_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def rm_nodes(emr, cid):
    return http_json(f"http://{master_ip(emr, cid)}:8088/ws/v1/cluster/nodes")["nodes"]["node"]


def streaming_args(bucket, output):
    return [
        "-files", f"s3://{bucket}/mapper.py#m.py,s3://{bucket}/reducer.py#r.py",
        "-mapper", "m.py", "-reducer", "r.py",
        "-input", f"s3://{bucket}/input/", "-output", f"s3://{bucket}/{output}/",
    ]  # fmt: skip


def expected_counts(s3):
    texts = {}
    for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="input/")["Contents"]:
        texts[o["Key"]] = s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read().decode()
    return texts


# -- a bootstrap action that fails -----------------------------------------
def test_failing_bootstrap_action_ends_the_cluster_and_keeps_its_output(resilin, emr, s3):
    cid = emr.run_job_flow(
        Name="failing bootstrap",
        ReleaseLabel="emr-7.5.0",
        LogUri=f"s3://{BUCKET}/logs/",
        BootstrapActions=[
            {
                "Name": "installs frobnicate",
                "ScriptBootstrapAction": {"Path": f"s3://{BUCKET}/failing-bootstrap.sh"},
            }
        ],
        Instances={"MasterInstanceType": "m5.large", "InstanceCount": 1, "KeepJobFlowAliveWhenNoSteps": True},
    )["JobFlowId"]
    deadline = time.monotonic() + 600
    while (status := emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"])["State"] not in (
        "TERMINATED",
        "TERMINATED_WITH_ERRORS",
    ):
        assert time.monotonic() < deadline
        time.sleep(2)
    assert status["State"] == "TERMINATED_WITH_ERRORS"
    assert status["StateChangeReason"]["Code"] == "BOOTSTRAP_FAILURE"
    assert "installs frobnicate" in status["StateChangeReason"]["Message"]
    ec2_id = instances(emr, cid)[0]["Ec2InstanceId"]
    key = f"logs/{cid}/node/{ec2_id}/bootstrap-actions/1/stderr.gz"
    assert b"no such package: frobnicate" in gzip.decompress(
        s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    )
    kept = resilin.home / "logs" / cid / "node" / ec2_id / "bootstrap-actions" / "1" / "stdout"
    assert kept.read_text() == "about to fail\n"
    assert [c for c in cloud_containers(CLOUD) if ec2_id in c] == []


# -- the long-lived cluster ------------------------------------------------
def last_jvm_flag(ip: str, port: int, flag: str) -> str | None:
    """The value a daemon's JVM took for -XX:``flag`` (the last one given wins), from its JMX."""
    runtime = http_json(f"http://{ip}:{port}/jmx?qry=java.lang:type=Runtime")["beans"][0]
    values = [a.split("=", 1)[1] for a in runtime["InputArguments"] if a.startswith(f"-XX:{flag}=")]
    return values[-1] if values else None


def test_release_and_configurations_are_what_hadoop_runs(resilin, emr, cluster):
    described = emr.describe_cluster(ClusterId=cluster)["Cluster"]
    assert described["ReleaseLabel"] == "emr-7.5.0"
    assert described["Applications"] == [{"Name": "Hadoop", "Version": "3.5.0"}]
    ip = master_ip(emr, cluster)
    # A running cluster's HDFS has the directories EMR users expect: /tmp open to all, sticky,
    # and the hadoop user's home.
    status = f"http://{ip}:9870/webhdfs/v1/%s?op=GETFILESTATUS&user.name=hadoop"
    tmp = http_json(status % "tmp")["FileStatus"]
    assert (tmp["type"], tmp["permission"]) == ("DIRECTORY", "1777")
    home = http_json(status % "user/hadoop")["FileStatus"]
    assert (home["type"], home["owner"]) == ("DIRECTORY", "hadoop")
    # The web UIs answer from the host; the hadoop-env export set the NameNode's heap.
    heap = http_json(f"http://{ip}:9870/jmx?qry=java.lang:type=Memory")["beans"][0]["HeapMemoryUsage"]["max"]
    assert 600 * 2**20 < heap <= 700 * 2**20
    scheduler = http_json(f"http://{ip}:8088/ws/v1/cluster/scheduler")
    assert scheduler["scheduler"]["schedulerInfo"]["type"] == "capacityScheduler"
    # The core group's own yarn-site: each core NodeManager offers 2560 MiB.
    nodes = rm_nodes(emr, cluster)
    assert len(nodes) == 2
    assert {n["availMemoryMB"] + n["usedMemoryMB"] for n in nodes} == {2560}
    # The cluster's core-site and mapred-site, read back with hdfs getconf in a step.
    step = run_step(
        emr,
        cluster,
        [
            "bash",
            "-c",
            f"hdfs getconf -confKey {CORE_SITE_KEY}; hdfs getconf -confKey mapreduce.map.memory.mb; "
            f"cat /usr/local/share/bootstrap-marker; dpkg-query -W -f='${{Status}}\\n' {PROBE_PACKAGE}; "
            # The JIT level a `hadoop` command's JVM ran with, as the JVM itself reports it.
            "HADOOP_CLIENT_OPTS=-XX:+PrintFlagsFinal hadoop version | awk '$2 == \"TieredStopAtLevel\" {print $4}'; "
            "nproc",
        ],  # fmt: skip
        name="getconf",
    )
    *conf, client_jit, cpus = step_output(resilin, cluster, step["Id"]).splitlines()
    assert conf == [
        "from-configurations",
        "512",
        "user=hadoop args=one two",
        "install ok installed",
    ]
    # The daemons' JIT: C1 alone on a node of two CPUs or fewer, the JVM's default on larger ones;
    # a daemon's own options from hadoop-env come later on its command line and win.
    assert last_jvm_flag(ip, 9870, "TieredStopAtLevel") == ("1" if int(cpus) <= 2 else None)
    assert last_jvm_flag(ip, 8088, "TieredStopAtLevel") == "4"
    # Hadoop's commands (a step's job client, `hadoop fs`) too; larger nodes keep C2.
    assert client_jit == ("1" if int(cpus) <= 2 else "4")
    # Arguments and Properties reach the step's command as given: no shell expansion, and a
    # line ending a here-document does not end the step's script.
    hostile = ["$HOME", "it's", 'say "hi" `id`', "one\nEOF\nRESILIN_STEP_COMMAND\nRESILIN_EOF_B64\ntwo"]
    step = run_step(
        emr,
        cluster,
        ["python3", "-c", PRINT_ARGS_AND_OPTS, *hostile],
        Properties=[{"Key": "resilin.test", "Value": 'it\'s"$HOME"$(id)'}],  # Hadoop splits options on spaces
        name="hostile args",
    )
    args, opts = json.loads(step_output(resilin, cluster, step["Id"]))
    assert args == hostile
    assert opts.endswith(' -Dresilin.test=it\'s"$HOME"$(id)')


def test_the_namenode_runs_the_clusters_own_namespace_copied_from_the_images_empty_one(resilin, emr, cluster):
    ip = master_ip(emr, cluster)
    # What the running NameNode loaded: this cluster's id, and a block pool of the master's address.
    info = http_json(f"http://{ip}:9870/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo")["beans"][0]
    assert info["ClusterId"] == cluster
    assert re.fullmatch(rf"BP-\d+-{re.escape(ip)}-\d+", info["BlockPoolId"]), info["BlockPoolId"]
    assert len(json.loads(info["LiveNodes"])) == 2
    # Copied rather than formatted, with ids of its own: none of the image's stays.
    step = run_step(
        emr,
        cluster,
        [
            "bash",
            "-c",
            f"cat /var/log/hadoop/namenode-format.log /var/lib/hadoop/dfs/name/current/VERSION "
            f"{EMPTY_NAMESPACE}/VERSION",
        ],  # fmt: skip
        name="namespace",
    )
    made, *versions = step_output(resilin, cluster, step["Id"]).split("#")
    assert made.strip() == f"namespace of cluster {cluster} made from {EMPTY_NAMESPACE}"
    ours, image = (dict(line.split("=", 1) for line in v.splitlines()[1:] if "=" in line) for v in versions)
    assert ours["clusterID"] == cluster and ours["blockpoolID"] == info["BlockPoolId"]
    assert ours["namespaceID"] != image["namespaceID"] and int(ours["namespaceID"]) > 0
    identity = ("namespaceID", "clusterID", "blockpoolID", "cTime")
    assert {k: v for k, v in ours.items() if k not in identity} == {
        k: v for k, v in image.items() if k not in identity
    }


def test_reconfiguring_the_core_group_restarts_its_nodemanagers_with_the_new_memory(resilin, emr, cluster):
    core = group(emr, cluster, "CORE")
    created_with = core["Configurations"]
    assert (core["ConfigurationsVersion"], core["LastSuccessfullyAppliedConfigurations"]) == (0, created_with)

    def reconfigure(memory: str, **extra) -> None:
        emr.modify_instance_groups(
            ClusterId=cluster,
            InstanceGroups=[
                {
                    "InstanceGroupId": core["Id"],
                    "Configurations": [
                        {
                            "Classification": "yarn-site",
                            "Properties": {"yarn.nodemanager.resource.memory-mb": memory},
                        }
                    ],
                    **extra,
                }
            ],
        )
        assert group(emr, cluster, "CORE")["Status"]["State"] == "RECONFIGURING"

    # A value the NodeManager cannot start with: the group goes back to what it ran, and says why.
    reconfigure("lots")
    failed = wait_reconfigured(emr, cluster, core["Id"])
    assert "reverted to version 0" in failed["Status"]["StateChangeReason"]["Message"], failed
    assert (failed["ConfigurationsVersion"], failed["LastSuccessfullyAppliedConfigurationsVersion"]) == (1, 0)
    assert failed["Configurations"] == failed["LastSuccessfullyAppliedConfigurations"] == created_with
    wait_group(emr, cluster, core["Id"], 2)
    count, by_rm, by_nm = offered_memory(resilin, emr, cluster)
    assert by_rm == by_nm == [2560, 2560]

    # One it can: every core NodeManager restarts and offers it, registered as the same node as before.
    reconfigure("3072", ReconfigurationType="MERGE")
    done = wait_reconfigured(emr, cluster, core["Id"])
    assert "StateChangeReason" not in done["Status"] or not done["Status"]["StateChangeReason"], done
    assert (done["ConfigurationsVersion"], done["LastSuccessfullyAppliedConfigurationsVersion"]) == (2, 2)
    assert done["LastSuccessfullyAppliedConfigurations"] == done["Configurations"]
    count, by_rm, by_nm = offered_memory(resilin, emr, cluster)
    assert by_rm == by_nm == [3072, 3072]
    assert count == 2


def test_custom_jar_steps(resilin, emr, s3, cluster, tmp_path):
    # hadoop-mapreduce-examples wordcount, a JAR on the master.
    step = run_step(
        emr,
        cluster,
        ["wordcount", f"s3://{BUCKET}/input/", f"s3://{BUCKET}/examples-out/"],
        jar="/usr/lib/hadoop-mapreduce/hadoop-mapreduce-examples.jar",
        name="examples wordcount",
    )
    counts: dict[str, int] = {}
    for text in expected_counts(s3).values():
        for word in text.split():
            counts[word] = counts.get(word, 0) + 1
    got = {}
    for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="examples-out/part-")["Contents"]:
        for line in s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read().decode().splitlines():
            word, _, n = line.rpartition("\t")
            got[word] = int(n)
    assert got == counts
    described = emr.describe_step(ClusterId=cluster, StepId=step["Id"])["Step"]
    assert described["Config"]["Jar"].endswith("hadoop-mapreduce-examples.jar")

    # A tiny JAR built here, fetched from s3://, with MainClass over its manifest and Properties as -D.
    if shutil.which("javac") is None:
        pytest.skip("needs javac to build the tiny JAR")
    for name, source in TINY_JAVA.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
    subprocess.run(
        ["javac", "--release", "11", "-d", str(tmp_path / "classes"), *TINY_JAVA], cwd=tmp_path, check=True
    )
    jar = tmp_path / "tiny.jar"
    with zipfile.ZipFile(jar, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nMain-Class: tiny.Hello\n\n")
        for cls in (tmp_path / "classes" / "tiny").iterdir():
            z.write(cls, f"tiny/{cls.name}")
    s3.put_object(Bucket=BUCKET, Key="jars/tiny.jar", Body=jar.read_bytes())
    step = run_step(
        emr,
        cluster,
        ["a", "b"],
        jar=f"s3://{BUCKET}/jars/tiny.jar",
        MainClass="tiny.Greet",
        Properties=[{"Key": "tiny.greeting", "Value": "hello"}],
        name="tiny jar",
    )
    assert step_output(resilin, cluster, step["Id"]) == "hello a,b\n"
    step = run_step(emr, cluster, [], jar=f"s3://{BUCKET}/jars/tiny.jar", name="tiny jar, manifest main")
    assert step_output(resilin, cluster, step["Id"]) == "manifest main\n"


def test_streaming_with_files_archives_and_the_legacy_jar_path(resilin, emr, s3, cluster):
    # mrjob-style: -files with #names, through the legacy EMR path of the streaming jar.
    step = run_step(
        emr,
        cluster,
        streaming_args(BUCKET, "streaming-out"),
        jar="/home/hadoop/contrib/streaming/hadoop-streaming.jar",
        name="legacy streaming",
    )
    assert demo.read_output(s3, BUCKET, "streaming-out/") == demo.python_count(expected_counts(s3))
    syslog = step_output(resilin, cluster, step["Id"], "syslog") + step_output(
        resilin, cluster, step["Id"], "stderr"
    )
    assert "application_" in syslog
    keys = {
        o["Key"]
        for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"logs/{cluster}/steps/{step['Id']}/")["Contents"]
    }
    assert {
        f"logs/{cluster}/steps/{step['Id']}/{n}.gz" for n in ("controller", "stdout", "stderr", "syslog")
    } <= keys


# A streaming mapper that reports its task JVM (its parent): the start of the JVM's class path and
# the class-data sharing archive it was given; then the JIT level of its job's ApplicationMaster,
# read from the AM's own JMX through the ResourceManager's proxy, and the node's CPUs.
JVM_PROBE = """#!/usr/bin/env python3
import json, os, sys, urllib.request
for _ in sys.stdin:
    pass
args = [a.decode() for a in open(f"/proc/{os.getppid()}/cmdline", "rb").read().split(b"\\0")]
cp = args[args.index("-cp") + 1] if "-cp" in args else os.environ["CLASSPATH"]
def last(flag, args=args):
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"-XX:{flag}=")]
    return values[-1] if values else "none"
app = "application_" + "_".join(os.environ["CONTAINER_ID"].split("_")[-4:-2])
url = f"http://{os.environ['yarn_resourcemanager_hostname']}:8088/proxy/{app}/jmx?qry=java.lang:type=Runtime"
am = json.load(urllib.request.urlopen(url, timeout=30))["beans"][0]["InputArguments"]
fields = [cp.split(':')[0], last('SharedArchiveFile'), os.getcwd(), last('Tier4InvocationThreshold'),
          last('TieredStopAtLevel', am), str(len(os.sched_getaffinity(0)))]
print("\\t".join(fields))
"""


def _jvm_probe(emr, s3, cluster, output: str, *options: str) -> list[list[str]]:
    """Runs the probe as a map-only job (one map per input file); a line per task JVM."""
    run_step(
        emr,
        cluster,
        ["hadoop-streaming", *options, "-files", f"s3://{BUCKET}/jvm_probe.py",
         "-mapper", "jvm_probe.py", "-numReduceTasks", "0",
         "-input", f"s3://{BUCKET}/input/", "-output", f"s3://{BUCKET}/{output}/"],
        name=output,
    )  # fmt: skip
    lines = []
    for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{output}/part-")["Contents"]:
        body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read().decode()
        lines += [line.split("\t") for line in body.splitlines() if line]
    return lines


def test_task_jvms_map_hadoops_classes_from_the_archive_and_take_the_jobs_jit_options(emr, s3, cluster):
    s3.put_object(Bucket=BUCKET, Key="jvm_probe.py", Body=JVM_PROBE.encode())
    archive = "/opt/hadoop/share/hadoop/hadoop.jsa"
    # -Xshare:on (last, so it wins) makes a JVM that cannot map the archive refuse to start, so the
    # job completing shows every task and the ApplicationMaster mapped it; the cluster's own
    # java.opts (Configurations: -Xmx400m) are replaced here, the admin options stay.
    # A job's java.opts come after the admin options: its own JIT threshold wins.
    on = "-Xmx400m -Xshare:on"
    tasks = _jvm_probe(
        emr, s3, cluster, "cds-default",
        "-D", f"mapreduce.map.java.opts={on} -XX:Tier4InvocationThreshold=5000",
        "-D", f"yarn.app.mapreduce.am.command-opts={on}",
    )  # fmt: skip
    assert len(tasks) == 6, tasks  # one map per input file
    for first, used, _cwd, tier4, am_jit, cpus in tasks:
        assert first == "/opt/hadoop/share/hadoop/common/lib/*", tasks
        assert used == archive, tasks
        assert tier4 == "5000", tasks
        # The ApplicationMaster drives the job: on a small node it has the daemons' C1 alone.
        assert am_jit == ("1" if int(cpus) <= 2 else "none"), tasks
    # A job asking for its own classes first keeps YARN's class path (its working directory, then
    # its jar), without the archive; Hadoop's classes still load, from the jars.  Its JVMs have
    # the image's JIT options for a job's JVMs: C2 for what is truly hot only.
    tasks = _jvm_probe(emr, s3, cluster, "cds-user-first", "-D", "mapreduce.job.user.classpath.first=true")
    assert len(tasks) == 6, tasks
    for first, used, cwd, tier4, _am_jit, _cpus in tasks:
        assert (first, used, tier4) == (cwd, "none", "100000"), tasks


def test_s3_dist_cp(emr, s3, cluster):
    inputs = expected_counts(s3)
    run_step(
        emr,
        cluster,
        [
            "s3-dist-cp",
            "--src",
            f"s3://{BUCKET}/input/",
            "--dest",
            f"s3://{BUCKET}/copied/",
            "--srcPattern",
            r".*part-0[01]\.txt",
        ],  # fmt: skip
        name="s3-dist-cp pattern",
    )
    copied = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="copied/")["Contents"]}
    assert copied == {"copied/part-00.txt", "copied/part-01.txt"}
    assert (
        s3.get_object(Bucket=BUCKET, Key="copied/part-01.txt")["Body"].read().decode()
        == inputs["input/part-01.txt"]
    )
    run_step(
        emr,
        cluster,
        [
            "s3-dist-cp",
            "--src",
            f"s3://{BUCKET}/input/",
            "--dest",
            f"s3://{BUCKET}/grouped/",
            "--groupBy",
            r".*/(part)-0[0-2]\.txt",
        ],  # fmt: skip
        name="s3-dist-cp groupBy",
    )
    grouped = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="grouped/")["Contents"]}
    assert grouped == {"grouped/part"}
    body = s3.get_object(Bucket=BUCKET, Key="grouped/part")["Body"].read().decode()
    assert body == "".join(inputs[f"input/part-0{i}.txt"] for i in range(3))


def test_core_group_cannot_shrink_below_replication(emr, cluster):
    core = group(emr, cluster, "CORE")
    with pytest.raises(emr.exceptions.ClientError) as refused:
        emr.modify_instance_groups(
            ClusterId=cluster, InstanceGroups=[{"InstanceGroupId": core["Id"], "InstanceCount": 1}]
        )
    assert "replica" in str(refused.value)
    assert group(emr, cluster, "CORE")["RequestedInstanceCount"] == 2


def test_task_group_joins_while_a_job_runs_and_the_job_uses_it(emr, s3, cluster):
    sid = add_step(emr, cluster, ["hadoop-streaming", *streaming_args(BUCKET, "grown-out"),
                                   "-D", "mapreduce.job.maps=24"], name="job while growing")  # fmt: skip
    added = emr.add_instance_groups(
        JobFlowId=cluster,
        InstanceGroups=[{"InstanceRole": "TASK", "InstanceType": "m5.large", "InstanceCount": 1}],
    )
    gid = added["InstanceGroupIds"][0]
    assert group(emr, cluster, "TASK")["Status"]["State"] in ("PROVISIONING", "RESIZING", "BOOTSTRAPPING")
    wait_group(emr, cluster, gid, 1)
    task = instances(emr, cluster, InstanceGroupTypes=["TASK"])[0]
    assert task["Status"]["State"] == "RUNNING"
    step = wait_step(emr, cluster, sid)
    assert step["Status"]["State"] == "COMPLETED", step["Status"]
    assert demo.read_output(s3, BUCKET, "grown-out/") == demo.python_count(expected_counts(s3))
    assert len(rm_nodes(emr, cluster)) == 3
    # The task node's NodeManager ran containers of a job submitted after it joined.
    sid = add_step(emr, cluster, ["hadoop-streaming", *streaming_args(BUCKET, "grown-out-2"),
                                   "-D", "mapreduce.job.maps=12"], name="job on the grown cluster")  # fmt: skip
    assert wait_step(emr, cluster, sid)["Status"]["State"] == "COMPLETED"
    apps = http_json(f"http://{task['PrivateIpAddress']}:8042/ws/v1/node/apps").get("apps") or {}
    assert apps.get("app"), "the task node ran no container"


def test_growing_and_shrinking_core_keeps_every_block(resilin, emr, s3, cluster):
    core = group(emr, cluster, "CORE")
    emr.modify_instance_groups(
        ClusterId=cluster, InstanceGroups=[{"InstanceGroupId": core["Id"], "InstanceCount": 3}]
    )
    assert group(emr, cluster, "CORE")["Status"]["State"] == "RESIZING"
    wait_group(emr, cluster, core["Id"], 3)
    run_step(
        emr,
        cluster,
        ["s3-dist-cp", "--src", f"s3://{BUCKET}/input/", "--dest", "hdfs:///data/"],
        name="to hdfs",
    )
    newest = max(instances(emr, cluster, InstanceGroupTypes=["CORE"], InstanceStates=["RUNNING"]),
                 key=lambda i: i["Status"]["Timeline"]["CreationDateTime"])  # fmt: skip
    emr.modify_instance_groups(
        ClusterId=cluster,
        InstanceGroups=[
            {"InstanceGroupId": core["Id"], "EC2InstanceIdsToTerminate": [newest["Ec2InstanceId"]]}
        ],
    )
    wait_group(emr, cluster, core["Id"], 2)
    gone = next(i for i in instances(emr, cluster) if i["Id"] == newest["Id"])
    assert gone["Status"]["State"] == "TERMINATED"
    step = run_step(emr, cluster, ["bash", "-c", "hdfs fsck /data 2>/dev/null | grep -E 'Status|Missing blocks|Under-replicated'"
                                   " ; hadoop fs -cat 'hdfs:///data/*' | md5sum"], name="fsck")  # fmt: skip
    out = step_output(resilin, cluster, step["Id"])
    assert "Status: HEALTHY" in out
    inputs = expected_counts(s3)
    expected = hashlib.md5("".join(inputs[k] for k in sorted(inputs)).encode()).hexdigest()
    assert expected in out


def test_a_core_node_killed_mid_job_is_replaced_and_the_job_survives(emr, s3, cluster):
    core = group(emr, cluster, "CORE")
    sid = add_step(emr, cluster, ["hadoop-streaming", *streaming_args(BUCKET, "survived-out"),
                                   "-D", "mapreduce.job.maps=24"], name="job through a failure")  # fmt: skip
    deadline = time.monotonic() + 300
    while emr.describe_step(ClusterId=cluster, StepId=sid)["Step"]["Status"]["State"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(1)
    time.sleep(15)  # the job's tasks are spread over the nodes
    victim = instances(emr, cluster, InstanceGroupTypes=["CORE"], InstanceStates=["RUNNING"])[0]
    subprocess.run(
        ["podman", "kill", f"resilin-{CLOUD}-{victim['Ec2InstanceId']}"], check=True, capture_output=True
    )
    killed = time.monotonic()
    while True:
        state = next(i for i in instances(emr, cluster) if i["Id"] == victim["Id"])["Status"]
        if state["State"] == "TERMINATED":
            break
        assert time.monotonic() - killed < 60, f"failure not noticed within a minute: {state}"
        time.sleep(2)
    assert state["StateChangeReason"]["Code"] == "INSTANCE_FAILURE"
    # Dropped from the count at once; the replacement counts once it runs.
    assert group(emr, cluster, "CORE")["RunningInstanceCount"] == 1
    wait_group(emr, cluster, core["Id"], 2)
    step = wait_step(emr, cluster, sid)
    assert step["Status"]["State"] == "COMPLETED", step["Status"]
    assert demo.read_output(s3, BUCKET, "survived-out/") == demo.python_count(expected_counts(s3))


def test_losing_the_master_ends_the_cluster_with_instance_failure(emr, cluster):
    master = instances(emr, cluster, InstanceGroupTypes=["MASTER"])[0]
    subprocess.run(
        ["podman", "kill", f"resilin-{CLOUD}-{master['Ec2InstanceId']}"], check=True, capture_output=True
    )
    deadline = time.monotonic() + 300
    while (status := emr.describe_cluster(ClusterId=cluster)["Cluster"]["Status"])[
        "State"
    ] != "TERMINATED_WITH_ERRORS":
        assert status["State"] != "TERMINATED", status
        assert time.monotonic() < deadline, status
        time.sleep(2)
    assert status["StateChangeReason"]["Code"] == "INSTANCE_FAILURE"
    assert all(i["Status"]["State"] == "TERMINATED" for i in instances(emr, cluster))
    assert cloud_containers(CLOUD) == []
