"""Reconfiguring a running instance group: the node script it renders, read by a real bash.

The script is run for real on a cluster in tests/cluster/test_hadoop_cluster.py; the rules that
choose what it does are in tests/unit/test_reconfiguration.py.
"""

from __future__ import annotations

from resilin.applications.hadoop_config import render_reconfigure_script
from tests.service.test_hadoop_config import bash_syntax_ok, spec, written_files


def test_the_node_script_rewrites_the_files_and_restarts_what_it_is_told():
    cluster = spec()
    master, core = cluster.nodes
    core.configurations = [
        {"Classification": "yarn-site", "Properties": {"yarn.nodemanager.resource.memory-mb": "3072"}}
    ]
    script = render_reconfigure_script(cluster, core, ["nodemanager"])
    bash_syntax_ok(script)
    assert (
        "<name>yarn.nodemanager.resource.memory-mb</name><value>3072</value>"
        in written_files(script)["yarn-site.xml"]
    )
    assert (
        "hadoop-daemon yarn stop nodemanager\n" in script
        and "hadoop-daemon yarn start nodemanager\n" in script
    )
    assert " datanode" not in script and "-format" not in script
    on_master = render_reconfigure_script(cluster, master, ["namenode", "resourcemanager"])
    bash_syntax_ok(on_master)
    assert (
        on_master.index("start namenode")
        < on_master.index("safemode wait")
        < on_master.index("stop resourcemanager")
    )
    untouched = render_reconfigure_script(cluster, core, [])
    bash_syntax_ok(untouched)
    assert "hadoop-daemon" not in untouched
