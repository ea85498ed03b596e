"""Renders the per-node Hadoop configuration script from the Jinja2 templates."""

from __future__ import annotations

from dataclasses import dataclass, field

import jinja2

from resilin.jobflows.store import Doc

# Daemons per EMR role; a one-node cluster runs everything on the master.
DAEMONS = {
    "MASTER": ("namenode", "resourcemanager", "historyserver"),
    "CORE": ("datanode", "nodemanager"),
    "TASK": ("nodemanager",),
}
SITE_FILES = ("core-site.xml", "hdfs-site.xml", "yarn-site.xml", "mapred-site.xml")


@dataclass(frozen=True)
class NodeImageLayout:
    """Where Hadoop lives in the Resilin node image (see docker/node/)."""

    home: str = "/opt/hadoop"
    classpath: str = "/etc/hadoop,/opt/hadoop/share/hadoop/common/lib/*"
    java_opts: str = ""
    streaming_jar: str = "/usr/lib/hadoop-mapreduce/hadoop-streaming.jar"
    daemon: str = "/opt/hadoop/bin/hadoop-daemon"


@dataclass(frozen=True)
class Sizing:
    """YARN and MapReduce memory for a node type, in MiB."""

    nodemanager_memory_mb: int
    nodemanager_vcores: int
    map_memory_mb: int = 768
    reduce_memory_mb: int = 768
    am_memory_mb: int = 768
    default_reduces: int = 1


# Memory (MiB) and vCPUs of the instance types Resilin knows, as EC2 lists them.
INSTANCE_TYPES: dict[str, tuple[int, int]] = {
    "m1.small": (1740, 1),
    "m1.large": (7680, 2),
    "m4.large": (8192, 2),
    "m5.large": (8192, 2),
    "m5.xlarge": (16384, 4),
    "m5.2xlarge": (32768, 8),
    "c5.xlarge": (8192, 4),
    "r5.xlarge": (32768, 4),
    "t3.medium": (4096, 2),
}


def sizing_for(instance_type: str) -> Sizing:
    memory, vcpus = INSTANCE_TYPES.get(instance_type, (8192, 2))
    # Leave a quarter of the memory (at least 1 GiB) to the OS and the Hadoop daemons, as EMR does.
    return Sizing(nodemanager_memory_mb=max(1024, memory - max(1024, memory // 4)), nodemanager_vcores=vcpus)


@dataclass
class NodeSpec:
    name: str  # EC2-style private name (ip-10-0-0-5), resolvable on every node
    ip: str
    role: str
    hostname: str = ""  # the instance's own host name, which Hadoop daemons register under


@dataclass
class ClusterSpec:
    cluster_id: str
    nodes: list[NodeSpec]
    storage_endpoint: str
    region: str
    access_key: str
    secret_key: str
    worker_type: str
    configurations: list[Doc] = field(default_factory=list)
    layout: NodeImageLayout = field(default_factory=NodeImageLayout)

    @property
    def master(self) -> NodeSpec:
        return next(n for n in self.nodes if n.role == "MASTER")

    @property
    def workers(self) -> list[NodeSpec]:
        return [n for n in self.nodes if n.role != "MASTER"]

    @property
    def datanodes(self) -> int:
        return sum(1 for n in self.nodes if n.role == "CORE") or 1

    @property
    def nodemanagers(self) -> int:
        return len(self.workers) or 1


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("resilin.hadoop_templates", "."),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


def overrides_from(configurations: list[Doc]) -> dict[str, dict[str, str]]:
    """EMR configuration classifications as {classification: {property: value}}."""
    result: dict[str, dict[str, str]] = {}
    for item in configurations:
        result.setdefault(item.get("Classification", ""), {}).update(item.get("Properties", {}))
    return result


def daemons_for(spec: ClusterSpec, node: NodeSpec) -> tuple[str, ...]:
    daemons = DAEMONS[node.role]
    if node.role == "MASTER" and not spec.workers:
        daemons = daemons + DAEMONS["CORE"]
    return daemons


def render_node_script(spec: ClusterSpec, node: NodeSpec) -> str:
    context = {
        "cluster_id": spec.cluster_id,
        "role": node.role,
        "master_ip": spec.master.ip,
        "node_ip": node.ip,
        "nodes": spec.nodes,
        "storage_endpoint": spec.storage_endpoint,
        "region": spec.region,
        "access_key": spec.access_key,
        "secret_key": spec.secret_key,
        "replication": min(3, spec.datanodes),
        "sizing": sizing_for(spec.worker_type),
        "hadoop": spec.layout,
        "overrides": overrides_from(spec.configurations),
    }
    files = {name: _env.get_template(f"{name}.j2").render(context).strip() for name in SITE_FILES}
    files["workers"] = "\n".join(n.ip for n in spec.workers) or spec.master.ip
    return _env.get_template("configure-node.sh.j2").render(
        context | {"files": files, "daemons": daemons_for(spec, node)}
    )


def render_wait_ready(spec: ClusterSpec, timeout: int) -> str:
    return _env.get_template("wait-ready.sh.j2").render(
        cluster_id=spec.cluster_id,
        master_ip=spec.master.ip,
        datanodes=spec.datanodes,
        nodemanagers=spec.nodemanagers,
        timeout=timeout,
    )
