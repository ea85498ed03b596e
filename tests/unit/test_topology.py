"""Racks and hosts of a cluster over several clouds, as rendered: each cloud a rack (the
master's cloud in Hadoop's /default-rack when the cluster started in one cloud), every node of
every cloud in /etc/hosts, and the topology script named in core-site."""

from __future__ import annotations

import base64
import re

from lxml import etree

from resilin.applications import hadoop_config
from resilin.applications.hadoop import topology
from resilin.applications.hadoop_config import ClusterSpec, NodeSpec


def _instance(cloud: str, role: str = "CORE") -> dict:
    return {"cloud": cloud, "role": role}


def test_one_cloud_keeps_hadoops_default_rack_and_several_clouds_name_theirs():
    single = [_instance("a", "MASTER"), _instance("a")]
    assert topology.home_rack(single, "a") == "/default-rack"
    spread = [_instance("a", "MASTER"), _instance("b")]
    assert topology.home_rack(spread, "a") == "/a"
    # Started in one cloud, grown into another: the first cloud's nodes stay where the daemons put them.
    assert topology.rack_of("a", "a", "/default-rack") == "/default-rack"
    assert topology.rack_of("b", "a", "/default-rack") == "/b"
    assert topology.rack_of("b", "a", "/a") == "/b" and topology.rack_of("a", "a", "/a") == "/a"


def test_the_table_lists_every_name_of_every_node_once():
    text = topology.table(
        [(("10.0.0.2", "ip-10-0-0-2", "ip-10-0-0-2"), "/a"), (("10.1.0.3", "ip-10-1-0-3", ""), "/b")]
    )
    assert text == "10.0.0.2 /a\nip-10-0-0-2 /a\n10.1.0.3 /b\nip-10-1-0-3 /b\n"


def spread_spec() -> ClusterSpec:
    nodes = [
        NodeSpec("ip-10-0-0-2", "10.0.0.2", "MASTER", "m-host", "m5.xlarge", "ig-M", cloud="a", rack="/a"),
        NodeSpec("ip-10-1-0-3", "10.1.0.3", "CORE", "c-host", "m5.xlarge", "ig-C", cloud="b", rack="/b"),
        NodeSpec("ip-10-1-0-4", "10.1.0.4", "CORE", "d-host", "m5.xlarge", "ig-C", cloud="b", rack="/b"),
    ]
    return ClusterSpec("j-1", nodes, "http://10.0.0.1:9", "us-east-1", "AK", "SK", "m5.xlarge")


def _decoded_writes(script: str) -> list[str]:
    return [
        base64.b64decode(b).decode()
        for b in re.findall(r"<<'RESILIN_EOF_B64'\n(.*?)\nRESILIN_EOF_B64", script, re.S)
    ]


def test_node_script_writes_hosts_of_every_cloud_the_rack_table_and_names_the_script_in_core_site():
    spec = spread_spec()
    script = hadoop_config.render_node_script(spec, spec.nodes[1])
    written = _decoded_writes(script)
    block = next(w for w in written if w.startswith(hadoop_config.HOSTS_BEGIN))
    assert block.splitlines()[1:] == [
        "10.0.0.2 ip-10-0-0-2 m-host  # a",
        "10.1.0.3 ip-10-1-0-3 c-host  # b",
        "10.1.0.4 ip-10-1-0-4 d-host  # b",
        hadoop_config.HOSTS_END,
    ]
    table = next(w for w in written if w.startswith("10.0.0.2 /a\n"))
    assert "m-host /a\n" in table and "10.1.0.4 /b\n" in table and "d-host /b\n" in table
    core_site = next(w for w in written if "<configuration>" in w and "fs.defaultFS" in w)
    props = {
        p.findtext("name"): p.findtext("value")
        for p in etree.fromstring(core_site.split("\n", 1)[1].encode()).iter("property")
    }
    assert props["net.topology.script.file.name"] == "/etc/hadoop/topology.sh"


def test_membership_update_rewrites_hosts_and_table_only():
    spec = spread_spec()
    script = hadoop_config.render_membership_update(spec)
    written = _decoded_writes(script)
    assert len(written) == 2 and written[0].count("\n") == 5 and written[1].count(" /b\n") == 6
    assert "hadoop-daemon" not in script and "core-site" not in script


def test_each_clouds_nodes_reach_storage_by_their_own_clouds_endpoint():
    spec = spread_spec()
    spec.cloud_storage_endpoints = {"a": "http://10.0.0.1:9", "b": "http://10.1.0.1:9"}

    def endpoint(node) -> str | None:
        written = _decoded_writes(hadoop_config.render_node_script(spec, node))
        core_site = next(w for w in written if "<configuration>" in w and "fs.defaultFS" in w)
        [prop] = [
            p
            for p in etree.fromstring(core_site.split("\n", 1)[1].encode()).iter("property")
            if p.findtext("name") == "fs.s3a.endpoint"
        ]
        # Final: the job.xml the master writes must not carry its endpoint to other clouds' tasks.
        assert prop.findtext("final") == "true"
        return prop.findtext("value")

    assert [endpoint(n) for n in spec.nodes] == [
        "http://10.0.0.1:9",
        "http://10.1.0.1:9",
        "http://10.1.0.1:9",
    ]


def test_an_external_s3_service_is_reached_as_its_settings_say():
    spec = spread_spec()
    spec.storage_endpoint, spec.region, spec.path_style = "https://s3.example.org", "eu-west-3", False
    written = _decoded_writes(hadoop_config.render_node_script(spec, spec.nodes[0]))
    core_site = next(w for w in written if "<configuration>" in w and "fs.defaultFS" in w)
    props = {
        p.findtext("name"): p.findtext("value")
        for p in etree.fromstring(core_site.split("\n", 1)[1].encode()).iter("property")
    }
    assert props["fs.s3a.endpoint"] == "https://s3.example.org"
    assert props["fs.s3a.endpoint.region"] == "eu-west-3"
    assert props["fs.s3a.path.style.access"] == "false"
    assert props["fs.s3a.connection.ssl.enabled"] == "true"
    # The classic stream: Hadoop 3.5's default holds object data in the reader's heap.
    assert props["fs.s3a.input.stream.type"] == "classic"
