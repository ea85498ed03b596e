"""The node script and bootstrap actions rendered, then read and run by a real bash.

What these render is run for real on clusters in tests/cluster/test_hadoop_cluster.py; here the
shell it produces is checked with ``bash -n`` (and the bootstrap actions run) on this machine.
The rules that need no shell are in tests/unit/test_hadoop_config.py.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess

import pytest
from lxml import etree

from resilin.applications.hadoop_config import ClusterSpec, NodeImageLayout, NodeSpec, render_node_script
from resilin.cluster import bootstrap
from tests.node_image_shell import LIBEXEC, sourced

CONFIGS = [
    {"Classification": "yarn-site", "Properties": {"yarn.nodemanager.resource.memory-mb": "3000"}},
    {
        "Classification": "hadoop-env",
        "Properties": {},
        "Configurations": [{"Classification": "export", "Properties": {"HADOOP_HEAPSIZE_MAX": "700m"}}],
    },
    {"Classification": "hadoop-log4j", "Properties": {"log4j.logger.org.apache.hadoop.fs": "DEBUG"}},
    {
        "Classification": "capacity-scheduler",
        "Properties": {"yarn.scheduler.capacity.root.queues": "default,x"},
    },
]


def spec(**extra) -> ClusterSpec:
    nodes = [
        NodeSpec("ip-10-0-0-2", "10.0.0.2", "MASTER", "m", "m5.xlarge", "ig-M"),
        NodeSpec(
            "ip-10-0-0-3",
            "10.0.0.3",
            "CORE",
            "c",
            "m5.large",
            "ig-C",
            [{"Classification": "yarn-site", "Properties": {"yarn.nodemanager.resource.memory-mb": "2048"}}],
        ),
    ]
    return ClusterSpec(
        "j-1", nodes, "http://10.0.0.1:9", "us-east-1", "AK", "SK", "m5.xlarge", CONFIGS, **extra
    )


def written_files(script: str) -> dict[str, str]:
    """What the script writes under $conf (its files travel base64-encoded), appends joined."""
    files: dict[str, str] = {}
    pattern = r"base64 -d >>?\"\$conf/([^\"]+)\" <<'RESILIN_EOF_B64'\n(.*?)\nRESILIN_EOF_B64"
    for name, encoded in re.findall(pattern, script, re.S):
        files[name] = files.get(name, "") + base64.b64decode(encoded).decode()
    return files


def bash_syntax_ok(script: str) -> None:
    done = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert done.returncode == 0, done.stderr


def test_group_configurations_win_over_the_cluster_ones():
    s = spec()
    master, core = (render_node_script(s, n) for n in s.nodes)
    on_master, on_core = written_files(master), written_files(core)
    assert "<name>yarn.nodemanager.resource.memory-mb</name><value>3000</value>" in on_master["yarn-site.xml"]
    assert "<name>yarn.nodemanager.resource.memory-mb</name><value>2048</value>" in on_core["yarn-site.xml"]
    assert "default,x" in on_master["capacity-scheduler.xml"]
    assert "log4j.logger.org.apache.hadoop.fs=DEBUG\n" in on_master["log4j.properties"]
    assert 'export HADOOP_HEAPSIZE_MAX="700m"\n' in on_master["hadoop-env.sh"]
    assert "/usr/local/bin/s3-dist-cp" in master and "/usr/local/bin/s3-dist-cp" not in core
    bash_syntax_ok(master)
    bash_syntax_ok(core)


def test_bootstrap_actions_render_in_order_and_fail_on_unreadable_scripts():
    actions = [
        {"Name": "one", "ScriptBootstrapAction": {"Path": "s3://b/one.sh", "Args": ["a b"]}},
        {"Name": "two", "ScriptBootstrapAction": {"Path": "file:/usr/bin/true"}},
    ]
    text = bootstrap.render(actions, lambda bucket, key: b"#!/bin/bash\necho hi\n")
    assert text.index("bootstrap action 1") < text.index("bootstrap action 2")
    assert "'a b'" in text and "/usr/bin/true" in text
    bash_syntax_ok(render_node_script(spec(bootstrap_script=text), spec().nodes[0]))

    def missing(bucket, key):
        raise KeyError(key)

    with pytest.raises(bootstrap.BootstrapError, match="one"):
        bootstrap.render(actions, missing)


def test_bootstrap_script_runs_and_stops_at_the_first_failure(tmp_path, monkeypatch):
    # The rendered actions run for real in a local bash, with their log root moved into tmp_path.
    monkeypatch.setattr(bootstrap, "LOG_ROOT", str(tmp_path / "logs"))
    monkeypatch.setattr(bootstrap, "WORK_ROOT", str(tmp_path / "work"))
    scripts = {"ok.sh": b"#!/bin/bash\necho ran-$1\n", "bad.sh": b"#!/bin/bash\necho oops >&2\nexit 3\n"}
    actions = [
        {"Name": n, "ScriptBootstrapAction": {"Path": f"s3://b/{n}", "Args": ["x"]}}
        for n in ("ok.sh", "bad.sh", "ok.sh")
    ]
    text = bootstrap.render(actions, lambda bucket, key: scripts[key]).replace("sudo ", "")
    done = subprocess.run(["bash", "-c", text], capture_output=True, text=True)
    assert done.returncode == 3
    assert "bootstrap action 2 (bad.sh) failed with exit status 3: oops" in done.stderr
    assert (tmp_path / "logs/1/stdout").read_text() == "ran-x\n"
    assert not (tmp_path / "logs/3").exists()


@pytest.mark.parametrize(
    "configurations, copies",
    [
        (CONFIGS, True),
        ([{"Classification": "hdfs-site", "Properties": {"dfs.replication": "2"}}], True),
        (
            [{"Classification": "hdfs-site", "Properties": {"dfs.permissions.superusergroup": "admins"}}],
            False,
        ),
        (
            [{"Classification": "hdfs-site", "Properties": {"dfs.namenode.name.dir": "file:///data/nn"}}],
            False,
        ),
        (
            [
                {
                    "Classification": "hdfs-site",
                    "Properties": {"dfs.namenode.ec.system.default.policy": "XOR-2-1-1024k"},
                }
            ],
            False,
        ),
        ([{"Classification": "core-site", "Properties": {"hadoop.tmp.dir": "/data/tmp"}}], False),
    ],
)
def test_the_master_copies_the_images_empty_namespace_unless_its_format_would_differ(configurations, copies):
    # The cluster runs the copy for real (tests/cluster/test_hadoop_cluster.py); here, which
    # configurations keep to `hdfs namenode -format`, and that both ways are valid shell.
    s = ClusterSpec(
        "j-1", spec().nodes, "http://10.0.0.1:9", "us-east-1", "AK", "SK", "m5.xlarge", configurations
    )
    master, core = (render_node_script(s, n) for n in s.nodes)
    assert (f"empty={NodeImageLayout.empty_namespace}" in master) is copies
    assert "hdfs namenode -format -nonInteractive -force -clusterid 'j-1'" in master  # an older image's way
    assert "namenode -format" not in core and "empty-namespace" not in core
    bash_syntax_ok(master)


def test_the_application_master_takes_a_clients_jit_and_tasks_a_jobs(tmp_path):
    """The admin options in mapred-site, with their $(…) evaluated by bash as a container's launch
    script does, running the image's own yarn-container-opts: the ApplicationMaster gets the JIT of
    the JVMs that drive a job (C1 alone on a node of two CPUs or fewer), map and reduce tasks that
    of a job's tasks (C2 for what is truly hot)."""
    libexec = tmp_path / "libexec"  # installed as the image's build does: the script executable
    shutil.copytree(LIBEXEC, libexec)
    (libexec / "yarn-container-opts").chmod(0o755)
    cluster = spec()
    site = written_files(render_node_script(cluster, cluster.nodes[1]))["mapred-site.xml"]
    props = {
        p.findtext("name"): p.findtext("value") for p in etree.fromstring(site.encode()).iter("property")
    }

    def evaluated(name: str) -> list[str]:
        value = props[name].replace("/opt/hadoop/libexec", str(libexec))
        done = subprocess.run(
            ["bash", "-c", f"echo {value}"], env={"PATH": "/usr/bin:/bin", "HADOOP_HOME": "/nonexistent"},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout.split()

    client = sourced("jvm-jit.sh", 'echo "$HADOOP_CLIENT_JIT_OPTS"').split()
    job = sourced("jvm-jit.sh", 'echo "$HADOOP_JOB_JIT_OPTS"').split()
    cpus = len(os.sched_getaffinity(0))
    assert client == (["-XX:TieredStopAtLevel=1"] if cpus <= 2 else job)
    assert "-XX:Tier4InvocationThreshold=100000" in job
    assert evaluated("yarn.app.mapreduce.am.admin-command-opts") == client
    for task in ("map", "reduce"):
        assert evaluated(f"mapreduce.admin.{task}.child.java.opts")[-len(job) :] == job
