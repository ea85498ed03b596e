"""The node image runs real Hadoop: one container, pseudo-distributed.

Builds (or reuses) localhost/resilin-node:<tag> with docker/node/build.sh,
starts one container on its own podman network, checks the EC2-like boot
(host keys on the console, sshd with key-only login for `hadoop`), then runs
HDFS + YARN in it and checks a hadoop-streaming word count (python3 mapper and
reducer shipped with -files) and the examples jar's wordcount against Python.

Set RESILIN_KEEP_TEST_CONTAINER=1 to leave the container running for debugging.
"""

from __future__ import annotations

import collections
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from resilin.demo import REDUCER  # the same streaming reducer as the demo's
from resilin.service.ports import free_port

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
]

REPO = Path(__file__).resolve().parents[2]
BUILD_SH = REPO / "docker" / "node" / "build.sh"
HOSTNAME = "nodetest"


def _run(args, *, input=None, timeout=300, check=True):
    proc = subprocess.run(args, input=input, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {args}\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


@pytest.fixture(scope="module")
def node_image():
    proc = _run(["bash", str(BUILD_SH)], timeout=3000)
    ref = proc.stdout.strip().splitlines()[-1]
    assert ref.startswith("localhost/resilin-node:"), ref
    return ref


class Node:
    def __init__(self, name: str):
        self.name = name

    def sh(self, script: str, *, user="hadoop", input=None, timeout=300, check=True):
        return _run(
            ["podman", "exec", "-i", "--user", user, self.name, "bash", "-c", script],
            input=input,
            timeout=timeout,
            check=check,
        )

    def write(self, path: str, content: str, user="hadoop"):
        self.sh(f"cat > {path}", input=content, user=user)

    def ip(self) -> str:
        out = _run(
            [
                "podman",
                "inspect",
                "--format",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                self.name,
            ]
        ).stdout.split()
        assert out, "container has no IP address"
        return out[0]

    def logs(self) -> str:
        proc = _run(["podman", "logs", self.name])
        return proc.stdout + proc.stderr


def _site(props: dict[str, str]) -> str:
    body = "".join(f"  <property><name>{k}</name><value>{v}</value></property>\n" for k, v in props.items())
    return f'<?xml version="1.0"?>\n<configuration>\n{body}</configuration>\n'


def pseudo_distributed_config(host: str) -> dict[str, str]:
    """Site files for one node; the required parts come from
    docker/node/hadoop-required-site.md."""
    core = {
        "fs.defaultFS": f"hdfs://{host}:8020",
        "hadoop.tmp.dir": "/var/lib/hadoop/tmp",
    }
    hdfs = {
        "dfs.replication": "1",
        "dfs.namenode.name.dir": "/var/lib/hadoop/dfs/name",
        "dfs.datanode.data.dir": "/var/lib/hadoop/dfs/data",
    }
    yarn = {
        "yarn.resourcemanager.hostname": host,
        "yarn.nodemanager.aux-services": "mapreduce_shuffle",
        "yarn.nodemanager.aux-services.mapreduce_shuffle.class": "org.apache.hadoop.mapred.ShuffleHandler",
        "yarn.application.classpath": "/etc/hadoop,/opt/hadoop/share/hadoop/common/lib/*",
        "yarn.nodemanager.vmem-check-enabled": "false",
        "yarn.nodemanager.resource.memory-mb": "4096",
        "yarn.nodemanager.resource.cpu-vcores": "4",
        "yarn.scheduler.minimum-allocation-mb": "256",
        "yarn.scheduler.maximum-allocation-mb": "4096",
        "yarn.nodemanager.local-dirs": "/var/lib/hadoop/yarn/local",
        "yarn.nodemanager.log-dirs": "/var/log/hadoop/userlogs",
    }
    mapred = {
        "mapreduce.framework.name": "yarn",
        "mapreduce.jvm.add-opens-as-default": "true",
        "yarn.app.mapreduce.am.env": "HADOOP_MAPRED_HOME=/opt/hadoop",
        "mapreduce.map.env": "HADOOP_MAPRED_HOME=/opt/hadoop",
        "mapreduce.reduce.env": "HADOOP_MAPRED_HOME=/opt/hadoop",
        "mapreduce.application.classpath": "/etc/hadoop,/opt/hadoop/share/hadoop/common/lib/*",
        "yarn.app.mapreduce.am.resource.mb": "512",
        "yarn.app.mapreduce.am.command-opts": "-Xmx384m",
        "mapreduce.map.memory.mb": "512",
        "mapreduce.reduce.memory.mb": "512",
        "mapreduce.map.java.opts": "-Xmx384m",
        "mapreduce.reduce.java.opts": "-Xmx384m",
    }
    return {
        "core-site.xml": _site(core),
        "hdfs-site.xml": _site(hdfs),
        "yarn-site.xml": _site(yarn),
        "mapred-site.xml": _site(mapred),
    }


MAPPER = """#!/usr/bin/env python3
import sys
for line in sys.stdin:
    for word in line.split():
        print(f"{word}\\t1")
"""


def _sample_text() -> str:
    rng = random.Random(42)
    words = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "hadoop",
        "yarn",
        "hdfs",
        "emr",
        "resilin",
        "streaming",
        "Word",
        "word",
        "x",
        "déjà-vu",
        "42",
    ]
    lines = []
    for _ in range(400):
        n = rng.randint(0, 12)
        lines.append(" ".join(rng.choice(words) for _ in range(n)))
    return "\n".join(lines) + "\n"


def _parse_counts(text: str) -> dict[str, int]:
    counts = {}
    for line in text.splitlines():
        if line.strip():
            word, count = line.rsplit("\t", 1)
            counts[word] = int(count)
    return counts


def _wait_for(what: str, check, timeout: float = 180, interval: float = 3):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            ok, last = check()
        except subprocess.TimeoutExpired as e:
            ok, last = False, e.output
        if ok:
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last output:\n{last}")


def _wait_ssh_banner(ip: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((ip, 22), timeout=5) as s:
                return s.recv(256).decode(errors="replace")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _block(text: str, name: str) -> list[str]:
    m = re.search(rf"-----BEGIN {name}-----\n(.*?)-----END {name}-----", text, re.DOTALL)
    assert m, f"no {name} block in console output:\n{text}"
    return [line for line in m.group(1).splitlines() if line.strip()]


@pytest.mark.timeout(2400)
def test_node_image_runs_hadoop(node_image, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    name = f"resilin-nodetest-{suffix}"
    network = f"resilin-nodetest-{suffix}"
    keep = os.environ.get("RESILIN_KEEP_TEST_CONTAINER") == "1"

    key = tmp_path / "id_ed25519"
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(key)])
    pubkey = (tmp_path / "id_ed25519.pub").read_text().strip()

    node = Node(name)
    _run(["podman", "network", "create", network])
    try:
        _run(
            [
                "podman",
                "run",
                "-d",
                "--name",
                name,
                "--hostname",
                HOSTNAME,
                "--network",
                network,
                "-e",
                f"RESILIN_SSH_PUBKEY={pubkey}",
                node_image,
            ]
        )
        try:
            _check_boot(node, key, tmp_path)
            _check_hadoop(node)
            _check_s3a(node, network, tmp_path)
        except BaseException:
            print(node.sh("tail -n 60 /var/log/hadoop/*.log", check=False).stdout)
            raise
    finally:
        if keep:
            print(f"keeping container {name} on network {network}")
        else:
            _run(["podman", "rm", "-f", "-t", "2", name], check=False)
            _run(["podman", "network", "rm", "-f", network], check=False)


def _check_boot(node: Node, key: Path, tmp_path: Path):
    ip = node.ip()
    banner = _wait_ssh_banner(ip)
    assert banner.startswith("SSH-2.0-OpenSSH"), banner

    _wait_for(
        "host keys on the console",
        lambda: ("-----END SSH HOST KEY KEYS-----" in (out := node.logs()), out),
        timeout=30,
        interval=1,
    )
    console = node.logs()
    fingerprints = _block(console, "SSH HOST KEY FINGERPRINTS")
    keys = _block(console, "SSH HOST KEY KEYS")
    assert any("(ED25519)" in f for f in fingerprints), fingerprints
    assert sorted(k.split()[0] for k in keys) == ["ecdsa-sha2-nistp256", "ssh-ed25519"]

    # Log in as hadoop with the injected key, verifying the host key against
    # the one printed on the console (as an EMR client does with EC2 output).
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(f"{ip} {k}\n" for k in keys))
    ssh = _run(
        [
            "ssh",
            "-i",
            str(key),
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=10",
            f"hadoop@{ip}",
            "id -un; sudo -n id -u; hadoop version | head -n1",
        ],
        timeout=120,
    )
    assert ssh.stdout.split("\n")[:3] == ["hadoop", "0", "Hadoop 3.5.0"], ssh.stdout
    # root and passwords are refused.
    root = _run(
        [
            "ssh",
            "-i",
            str(key),
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "ConnectTimeout=10",
            f"root@{ip}",
            "true",
        ],
        check=False,
        timeout=60,
    )
    assert root.returncode != 0


def _check_hadoop(node: Node):
    for fname, content in pseudo_distributed_config(HOSTNAME).items():
        node.write(f"/etc/hadoop/{fname}", content)

    node.sh(
        "hdfs namenode -format -nonInteractive -force > /tmp/format.log 2>&1 "
        "|| { cat /tmp/format.log; exit 1; }"
    )
    node.sh("hadoop-daemon hdfs start namenode && hadoop-daemon hdfs start datanode")
    node.sh("hadoop-daemon yarn start resourcemanager && hadoop-daemon yarn start nodemanager")

    def assert_alive(*daemons):
        for tool, daemon in daemons:
            status = node.sh(f"hadoop-daemon {tool} status {daemon}", check=False)
            assert status.returncode == 0, node.sh(
                f"tail -n 80 /var/log/hadoop/{daemon}.log", check=False
            ).stdout

    def datanode_live():
        assert_alive(("hdfs", "namenode"), ("hdfs", "datanode"))
        out = node.sh("hdfs dfsadmin -report 2>&1", check=False, timeout=60).stdout
        return "Live datanodes (1)" in out, out

    def nodemanager_running():
        assert_alive(("yarn", "resourcemanager"), ("yarn", "nodemanager"))
        out = node.sh("yarn node -list 2>&1", check=False, timeout=60).stdout
        return "Total Nodes:1" in out and "RUNNING" in out, out

    _wait_for("the DataNode to register", datanode_live)
    node.sh("hdfs dfsadmin -safemode wait", timeout=120)
    _wait_for("the NodeManager to register", nodemanager_running)

    # Web UIs (resources come from the hadoop-hdfs test jar / hadoop-yarn-common).
    nn_ui = node.sh("curl -sf http://localhost:9870/dfshealth.html").stdout
    assert "dfshealth" in nn_ui.lower() or "namenode" in nn_ui.lower()
    nn_jmx = node.sh(
        "curl -sf 'http://localhost:9870/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo'"
    ).stdout
    assert "LiveNodes" in nn_jmx
    rm_ui = node.sh(f"curl -sfL http://{HOSTNAME}:8088/cluster").stdout
    assert "Cluster Metrics" in rm_ui
    rm_info = node.sh(f"curl -sf http://{HOSTNAME}:8088/ws/v1/cluster/info").stdout
    assert "3.5.0" in rm_info

    text = _sample_text()
    expected = dict(collections.Counter(text.split()))
    node.sh("mkdir -p /home/hadoop/wc")
    node.write("/home/hadoop/wc/input.txt", text)
    node.write("/home/hadoop/wc/mapper.py", MAPPER)
    node.write("/home/hadoop/wc/reducer.py", REDUCER)
    node.sh(
        "hdfs dfs -mkdir -p /user/hadoop/input && "
        "hdfs dfs -put -f /home/hadoop/wc/input.txt /user/hadoop/input/"
    )

    # hadoop-streaming with python3 scripts shipped through -files.
    node.sh(
        "cd /home/hadoop/wc && hadoop jar /usr/lib/hadoop-mapreduce/hadoop-streaming.jar "
        "-D mapreduce.job.name=resilin-streaming-wordcount -D mapreduce.job.reduces=2 "
        "-files mapper.py,reducer.py "
        "-mapper 'python3 mapper.py' -reducer 'python3 reducer.py' "
        "-input input -output out-streaming",
        timeout=900,
    )
    got = _parse_counts(node.sh("hdfs dfs -cat 'out-streaming/part-*'").stdout)
    assert got == expected

    # The examples jar at its EMR path.
    node.sh(
        "hadoop jar /usr/lib/hadoop-mapreduce/hadoop-mapreduce-examples.jar wordcount input out-wordcount",
        timeout=900,
    )
    got = _parse_counts(node.sh("hdfs dfs -cat 'out-wordcount/part-*'").stdout)
    assert got == expected

    apps = node.sh("yarn application -list -appStates FINISHED 2>/dev/null").stdout
    assert "resilin-streaming-wordcount" in apps

    # S3A: the AWS SDK v2 modules are all there (a connection error, not a
    # missing class); the round trip against a real S3 API is in _check_s3a.
    s3a = node.sh(
        "hadoop fs -D fs.s3a.endpoint=http://127.0.0.1:1 -D fs.s3a.endpoint.region=us-east-1 "
        "-D fs.s3a.access.key=AKIAEXAMPLE -D fs.s3a.secret.key=secret "
        "-D fs.s3a.path.style.access=true -D fs.s3a.attempts.maximum=0 -D fs.s3a.retry.limit=0 "
        "-D fs.s3a.connection.establish.timeout=2s "
        "-ls s3a://resilin-test-bucket/ 2>&1",
        check=False,
        timeout=300,
    )
    out = s3a.stdout
    assert s3a.returncode != 0, out
    assert "ClassNotFoundException" not in out and "NoClassDefFoundError" not in out, out
    assert re.search(r"connect|Connection refused|Unable to execute HTTP request", out, re.I), out


def _check_s3a(node: Node, network: str, tmp_path: Path):
    """Copy HDFS data to S3 with distcp (S3A inside MapReduce tasks) and read
    it back, against a moto S3 server on this host's side of the podman
    network."""
    moto = Path(sys.executable).parent / "moto_server"
    if not moto.exists():
        print("moto_server not installed: S3A round trip skipped")
        return
    gateway = _run(
        [
            "podman",
            "network",
            "inspect",
            "--format",
            "{{range .Subnets}}{{.Gateway}}{{end}}",
            network,
        ]
    ).stdout.strip()
    port = free_port(gateway)
    log = open(tmp_path / "moto.log", "w")
    server = subprocess.Popen(
        [str(moto), "-H", gateway, "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        endpoint = f"http://{gateway}:{port}"
        _wait_for(
            "the moto S3 server",
            lambda: (
                node.sh(f"curl -s -o /dev/null {endpoint}/", check=False).returncode == 0,
                (tmp_path / "moto.log").read_text(),
            ),
            timeout=60,
            interval=1,
        )
        bucket = "resilin-node-test"
        node.sh(f"curl -sf -X PUT {endpoint}/{bucket}")
        s3a_opts = (
            f"-D fs.s3a.endpoint={endpoint} -D fs.s3a.endpoint.region=us-east-1 "
            "-D fs.s3a.path.style.access=true -D fs.s3a.connection.ssl.enabled=false "
            "-D fs.s3a.access.key=AKIAEXAMPLE -D fs.s3a.secret.key=secret "
            "-D fs.s3a.change.detection.mode=none "
        )
        node.sh(f"hadoop distcp {s3a_opts} input s3a://{bucket}/input", timeout=900)
        listing = node.sh(f"hadoop fs {s3a_opts} -ls s3a://{bucket}/input/").stdout
        assert "input.txt" in listing, listing
        back = node.sh(f"hadoop fs {s3a_opts} -cat s3a://{bucket}/input/input.txt").stdout
        assert back == _sample_text()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
