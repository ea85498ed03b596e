"""Which rack HDFS and YARN put each node in: its cloud, so that replicas and work spread across clouds.

Every node carries ``/etc/hadoop/topology.sh`` (core-site's ``net.topology.script.file.name``)
and the table it reads, one ``name rack`` line per address, EC2-style name and host name of
every node.  The daemons turn names into addresses first (``NetUtils.normalizeHostNames``, through
/etc/hosts), resolve each once and cache the answer (Hadoop's ``CachedDNSToSwitchMapping``),
but a name they have not seen yet runs the script again, which
reads the table as it is then: a node added later gets its rack as soon as the table on the
master lists it.  (``TableMapping``, the alternative that needs no script, reads its file once
per daemon and never again unless a DataNode's registration fails its topology check, so a
node added later would stay in ``/default-rack`` until the NameNode and ResourceManager restart;
``hdfs dfsadmin -refreshNodes`` does not reload it.)

Because answers are cached, a node's rack never changes while the cluster runs: the nodes of
the master's cloud are in ``/default-rack`` when the cluster starts in one cloud (Hadoop's own
default, as on EMR: nothing changes for a single-cloud cluster) and stay there if it later
grows into another cloud; when it starts over several clouds every cloud is ``/<cloud-name>``.
That choice (the home rack) is fixed when Hadoop starts and kept in the cluster's document.
"""

from __future__ import annotations

from collections.abc import Sequence

from resilin.jobflows.documents import InstanceDoc

DEFAULT_RACK = "/default-rack"  # Hadoop's NetworkTopology.DEFAULT_RACK
SCRIPT_NAME = "topology.sh"
TABLE_NAME = "topology.table"


def home_rack(instances: Sequence[InstanceDoc], home_cloud: str) -> str:
    """The rack of the master's cloud, chosen when Hadoop starts over ``instances``."""
    if {i["cloud"] for i in instances} <= {home_cloud}:
        return DEFAULT_RACK
    return f"/{home_cloud}"


def rack_of(cloud: str, home_cloud: str, home: str) -> str:
    """A node's rack: the home rack in the master's cloud, else its cloud's name."""
    if not cloud or cloud == home_cloud:
        return home
    return f"/{cloud}"


def table(entries: Sequence[tuple[Sequence[str], str]]) -> str:
    """The table topology.sh reads: each of a node's names (address, EC2-style name, host name) and its rack."""
    lines = [f"{name} {rack}" for names, rack in entries for name in dict.fromkeys(n for n in names if n)]
    return "".join(line + "\n" for line in lines)
