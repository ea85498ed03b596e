"""The files a node keeps about the cluster's members, written by the real rendered scripts run
in bash (with /etc/hosts and /etc/hadoop moved into a temporary directory, and a stand-in sudo):
/etc/hosts keeps its own lines and lists every node of every cloud, rewritten as nodes come and
go; the rack script answers each name's cloud, and /default-rack for a name it does not know."""

from __future__ import annotations

import base64
import os
import re
import subprocess
from pathlib import Path

from resilin.applications import hadoop_config
from resilin.applications.hadoop_config import ClusterSpec, NodeSpec

PODMAN_HOSTS = "127.0.0.1 localhost\n10.0.0.2 i-0master\n"


def _spec(*nodes: NodeSpec) -> ClusterSpec:
    return ClusterSpec("j-1", list(nodes), "http://10.0.0.1:9", "us-east-1", "AK", "SK", "m5.xlarge")


MASTER = NodeSpec("ip-10-0-0-2", "10.0.0.2", "MASTER", "i-0master", "m5.xlarge", "ig-M", cloud="a", rack="/a")
CORE_B = NodeSpec("ip-10-1-0-3", "10.1.0.3", "CORE", "i-0coreb", "m5.xlarge", "ig-C", cloud="b", rack="/b")
TASK_C = NodeSpec("ip-10-2-0-4", "10.2.0.4", "TASK", "i-0taskc", "m5.xlarge", "ig-T", cloud="c", rack="/c")


def _run(script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    sudo = bin_dir / "sudo"
    sudo.write_text('#!/bin/bash\nexec "$@"\n')
    sudo.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "LANG": "C.UTF-8", "TMPDIR": str(tmp_path)}
    return subprocess.run(["bash", "-s", *args], input=script, env=env, capture_output=True, text=True)


def _moved(script: str, tmp_path: Path) -> str:
    """The script with its /etc/hosts and /etc/hadoop in tmp_path."""
    assert script.count("hosts_file=/etc/hosts\n") == 1 and script.count("\nconf=/etc/hadoop\n") == 1
    return script.replace("hosts_file=/etc/hosts\n", f"hosts_file={tmp_path}/hosts\n").replace(
        "\nconf=/etc/hadoop\n", f"\nconf={tmp_path}/conf\n"
    )


def test_hosts_and_rack_table_follow_the_nodes_as_they_join_and_leave(tmp_path):
    (tmp_path / "hosts").write_text(PODMAN_HOSTS)
    (tmp_path / "conf").mkdir()
    # Started over clouds a and b; then a task node joins in cloud c; then the core node leaves.
    for nodes in [(MASTER, CORE_B), (MASTER, CORE_B, TASK_C), (MASTER, TASK_C)]:
        done = _run(_moved(hadoop_config.render_membership_update(_spec(*nodes)), tmp_path), tmp_path)
        assert done.returncode == 0, done.stderr
        hosts = (tmp_path / "hosts").read_text()
        assert hosts.startswith(PODMAN_HOSTS)  # the cloud's own lines stay first, as they were
        ours = hosts[len(PODMAN_HOSTS) :].splitlines()
        assert ours[0] == hadoop_config.HOSTS_BEGIN and ours[-1] == hadoop_config.HOSTS_END
        assert [line.split()[:3] for line in ours[1:-1]] == [[n.ip, n.name, n.hostname] for n in nodes]
        table = (tmp_path / "conf" / "topology.table").read_text().split("\n")
        assert {line for line in table if line} == {
            f"{name} {n.rack}" for n in nodes for name in (n.ip, n.name, n.hostname)
        }
    assert "10.1.0.3" not in (tmp_path / "hosts").read_text()  # the core node left
    assert list((tmp_path / "conf").iterdir()) == [tmp_path / "conf" / "topology.table"]  # no .new left


def test_the_rack_script_answers_each_names_cloud(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    spec = _spec(MASTER, CORE_B, TASK_C)
    script = hadoop_config.render_node_script(spec, CORE_B)
    # The rack script as the node script writes it, pointed at a table here.
    [encoded] = re.findall(
        r"base64 -d >\"\$conf/topology.sh\" <<'RESILIN_EOF_B64'\n(.*?)\nRESILIN_EOF_B64", script, re.S
    )
    rack_script = base64.b64decode(encoded).decode()
    assert rack_script.count("/etc/hadoop/topology.table") == 3
    rack_script = rack_script.replace("/etc/hadoop/topology.table", f"{conf}/topology.table")
    (conf / "topology.table").write_text(hadoop_config.topology_context(spec)["table"])
    names = ["10.0.0.2", "ip-10-1-0-3", "i-0taskc", "10.9.9.9", "i-0coreb"]
    done = _run(rack_script, tmp_path, *names)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:-1] == ["/a", "/b", "/c", "/default-rack", "/b"]
    # Without its table (never written, or unreadable) every name is in Hadoop's default rack.
    (conf / "topology.table").unlink()
    done = _run(rack_script, tmp_path, "10.0.0.2", "x")
    assert done.returncode == 0 and done.stdout == "/default-rack\n/default-rack\n"
