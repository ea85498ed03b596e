"""The rack script as Hadoop itself calls it, in the node image: ScriptBasedMapping (what core-site
names) answers each node's cloud and learns a node that joins after the first answers, where
TableMapping (which needs no script) would keep it in /default-rack."""

from __future__ import annotations

import base64
import os
import re
import subprocess

import pytest

from resilin.applications import hadoop_config
from resilin.applications.hadoop_config import ClusterSpec, NodeSpec

MASTER = NodeSpec("ip-10-0-0-2", "10.0.0.2", "MASTER", "i-0master", "m5.xlarge", "ig-M", cloud="a", rack="/a")
CORE_B = NodeSpec("ip-10-1-0-3", "10.1.0.3", "CORE", "i-0coreb", "m5.xlarge", "ig-C", cloud="b", rack="/b")
TASK_C = NodeSpec("ip-10-2-0-4", "10.2.0.4", "TASK", "i-0taskc", "m5.xlarge", "ig-T", cloud="c", rack="/c")

PROBE = """
import java.nio.file.*;
import java.util.*;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.net.*;

public class Racks {
  public static void main(String[] args) throws Exception {
    Configuration conf = new Configuration(false);
    conf.set("net.topology.script.file.name", "/t/topology.sh");
    conf.set("net.topology.table.file.name", "/t/topology.table");
    ScriptBasedMapping script = new ScriptBasedMapping(conf);
    TableMapping table = new TableMapping();
    table.setConf(conf);
    System.out.println("script " + script.resolve(Arrays.asList("10.0.0.2", "10.1.0.3", "ip-10-1-0-3")));
    System.out.println("table " + table.resolve(Arrays.asList("10.0.0.2", "10.1.0.3")));
    Files.move(Paths.get("/t/joined.table"), Paths.get("/t/topology.table"), StandardCopyOption.REPLACE_EXISTING);
    System.out.println("script " + script.resolve(Arrays.asList("10.2.0.4", "10.0.0.2")));
    System.out.println("table " + table.resolve(Arrays.asList("10.2.0.4", "10.0.0.2")));
  }
}
"""


def _spec(*nodes: NodeSpec) -> ClusterSpec:
    return ClusterSpec("j-1", list(nodes), "http://10.0.0.1:9", "us-east-1", "AK", "SK", "m5.xlarge")


def test_hadoop_resolves_racks_through_the_script_and_learns_nodes_that_join(tmp_path):
    image = os.environ.get("RESILIN_TEST_NODE_IMAGE")
    if not image:
        pytest.skip("needs the node image with Hadoop ($RESILIN_TEST_NODE_IMAGE)")
    script = hadoop_config.render_node_script(_spec(MASTER, CORE_B), CORE_B)
    [encoded] = re.findall(
        r"base64 -d >\"\$conf/topology.sh\" <<'RESILIN_EOF_B64'\n(.*?)\nRESILIN_EOF_B64", script, re.S
    )
    rack_script = tmp_path / "topology.sh"
    rack_script.write_text(
        base64.b64decode(encoded).decode().replace("/etc/hadoop/topology.table", "/t/topology.table")
    )
    rack_script.chmod(0o755)
    (tmp_path / "topology.table").write_text(hadoop_config.topology_context(_spec(MASTER, CORE_B))["table"])
    (tmp_path / "joined.table").write_text(
        hadoop_config.topology_context(_spec(MASTER, CORE_B, TASK_C))["table"]
    )
    (tmp_path / "Racks.java").write_text(PROBE)
    done = subprocess.run(
        [
            "podman", "run", "--rm", "--network", "none", "-v", f"{tmp_path}:/t:Z", "--entrypoint", "/bin/bash", image,
            "-c", 'java -cp "/etc/hadoop:/opt/hadoop/share/hadoop/common/lib/*" /t/Racks.java',
        ],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    answers = [line for line in done.stdout.splitlines() if line.startswith(("script ", "table "))]
    assert answers == [
        "script [/a, /b, /b]",
        "table [/a, /b]",
        "script [/c, /a]",  # the node that joined: asked of the script, which reads the table now
        "table [/default-rack, /a]",  # TableMapping read its file once
    ]
