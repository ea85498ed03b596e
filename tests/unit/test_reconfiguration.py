"""Reconfiguring a running instance group: how configurations combine, what restarts, why a node failed.

The node script it renders is checked by bash in tests/service/test_reconfiguration.py and run
for real on a cluster in tests/cluster/test_hadoop_cluster.py.
"""

from __future__ import annotations

from resilin.applications.hadoop.reconfigure import (
    changed_classifications,
    daemons_to_restart,
    failure_summary,
)
from resilin.applications.hadoop_config import merge_configurations

YARN = {"Classification": "yarn-site", "Properties": {"a": "1", "b": "2"}}


ENV = {
    "Classification": "hadoop-env",
    "Properties": {},
    "Configurations": [{"Classification": "export", "Properties": {"X": "1"}}],
}


def test_overwrite_replaces_the_group_configurations():
    requested = [{"Classification": "hdfs-site", "Properties": {"c": "3"}}]
    assert merge_configurations([YARN, ENV], requested, "OVERWRITE") == requested
    assert merge_configurations([YARN], [], "OVERWRITE") == []


def test_merge_keeps_what_the_request_does_not_mention():
    requested = [
        {"Classification": "yarn-site", "Properties": {"b": "20", "c": "30"}},
        {
            "Classification": "hadoop-env",
            "Configurations": [{"Classification": "export", "Properties": {"Y": "2"}}],
        },
        {"Classification": "hdfs-site", "Properties": {"d": "4"}},
    ]
    merged = merge_configurations([YARN, ENV], requested, "MERGE")
    assert merged == [
        {"Classification": "yarn-site", "Properties": {"a": "1", "b": "20", "c": "30"}},
        {
            "Classification": "hadoop-env",
            "Properties": {},
            "Configurations": [{"Classification": "export", "Properties": {"X": "1", "Y": "2"}}],
        },
        {"Classification": "hdfs-site", "Properties": {"d": "4"}},
    ]
    assert YARN["Properties"] == {"a": "1", "b": "2"}  # the stored configurations are left alone


def test_only_changed_classifications_count_once_laid_over_the_cluster():
    cluster = [{"Classification": "yarn-site", "Properties": {"a": "1"}}]
    # The group restating the cluster's value changes nothing; removing its own export does.
    assert changed_classifications(cluster, [ENV], [YARN | {"Properties": {"a": "1"}}]) == {
        "hadoop-env/export"
    }
    assert changed_classifications(cluster, [YARN], [YARN]) == set()
    assert changed_classifications([], [], [{"Classification": "core-site", "Properties": {"k": "v"}}]) == {
        "core-site"
    }


def test_the_daemons_reading_a_changed_classification_restart_in_start_order():
    master = ("namenode", "resourcemanager", "historyserver")
    core = ("datanode", "nodemanager")
    assert daemons_to_restart({"yarn-site"}, core) == ["nodemanager"]
    assert daemons_to_restart({"hdfs-site"}, core) == ["datanode"]
    assert daemons_to_restart({"yarn-site", "hdfs-site"}, master) == ["namenode", "resourcemanager"]
    assert daemons_to_restart({"hadoop-log4j"}, master) == list(master)
    assert daemons_to_restart({"mapred-site"}, core) == []


def test_a_failed_node_is_summed_up_by_its_daemon_and_root_cause():
    stderr = """stopping nodemanager (pid 812)
ERROR: nodemanager exited right after start; last lines of /var/log/hadoop/nodemanager.log:
2026-01-01 10:00:00,000 ERROR nodemanager.NodeManager: Error starting NodeManager
org.apache.hadoop.yarn.exceptions.YarnRuntimeException: java.lang.NumberFormatException: For input string: "lots"
\tat org.apache.hadoop.yarn.server.nodemanager.NodeManager.initAndStartNodeManager(NodeManager.java:972)
Caused by: java.lang.NumberFormatException: For input string: "lots"
\tat java.base/java.lang.Integer.parseInt(Integer.java:668)
"""
    assert failure_summary(stderr) == (
        "ERROR: nodemanager exited right after start; last lines of /var/log/hadoop/nodemanager.log: "
        'Caused by: java.lang.NumberFormatException: For input string: "lots"'
    )
    assert (
        failure_summary("bash: line 3: hdfs: command not found\n") == "bash: line 3: hdfs: command not found"
    )
