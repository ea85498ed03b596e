"""Renders the per-node Hadoop configuration script from the Jinja2 templates.

Resilin's defaults, sized from the instance type as EMR sizes them, are overlaid
with the cluster's EMR configuration classifications and then with those of the
node's instance group.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources

import jinja2

from resilin.applications import config_files
from resilin.applications.hadoop import topology
from resilin.applications.spark import config as spark_config
from resilin.cluster import node_data
from resilin.errors import ValidationError
from resilin.jobflows.store import Doc

# Daemons per EMR role; a one-node cluster runs everything on the master.
DAEMONS = {
    "MASTER": ("namenode", "resourcemanager", "historyserver"),
    "CORE": ("datanode", "nodemanager"),
    "TASK": ("nodemanager",),
}
# The command each daemon is started and stopped with.
DAEMON_TOOLS = {
    "namenode": "hdfs",
    "datanode": "hdfs",
    "resourcemanager": "yarn",
    "nodemanager": "yarn",
    "historyserver": "mapred",
}
SITE_FILES = ("core-site.xml", "hdfs-site.xml", "yarn-site.xml", "mapred-site.xml", "capacity-scheduler.xml")
# Classifications rendered into XML site files, by file.
XML_CLASSIFICATIONS = {f.removesuffix(".xml"): f for f in SITE_FILES}
# Classifications whose nested "export" classification becomes environment variables.
ENV_CLASSIFICATIONS = {
    "hadoop-env": "hadoop-env.sh",
    "yarn-env": "yarn-env.sh",
    "mapred-env": "mapred-env.sh",
}
LOG4J_CLASSIFICATION = "hadoop-log4j"
# Classifications whose variables come in a nested "export" classification.
EXPORT_CLASSIFICATIONS = {*ENV_CLASSIFICATIONS, spark_config.ENV_CLASSIFICATION}
SUPPORTED_CLASSIFICATIONS = {
    *XML_CLASSIFICATIONS,
    *ENV_CLASSIFICATIONS,
    LOG4J_CLASSIFICATION,
    *spark_config.CLASSIFICATIONS,
}
# Where the exclude lists for decommissioning live on the master.
DFS_EXCLUDE = "/etc/hadoop/dfs.exclude"
YARN_EXCLUDE = "/etc/hadoop/yarn.exclude"
# The script HDFS and YARN ask each node's rack (core-site's net.topology.script.file.name), its table.
TOPOLOGY_SCRIPT = f"/etc/hadoop/{topology.SCRIPT_NAME}"
TOPOLOGY_TABLE = f"/etc/hadoop/{topology.TABLE_NAME}"
HOSTS_FILE = "/etc/hosts"
# The lines of /etc/hosts Resilin rewrites as nodes come and go; the rest is left as it is.
HOSTS_BEGIN = "# BEGIN resilin cluster nodes"
HOSTS_END = "# END resilin cluster nodes"


@dataclass(frozen=True)
class NodeImageLayout:
    """Where Hadoop lives in the Resilin node image (see docker/node/)."""

    home: str = "/opt/hadoop"
    classpath: str = "/etc/hadoop,/opt/hadoop/share/hadoop/common/lib/*"
    java_opts: str = ""
    streaming_jar: str = "/usr/lib/hadoop-mapreduce/hadoop-streaming.jar"
    daemon: str = "/opt/hadoop/bin/hadoop-daemon"
    # An empty namespace formatted with the image (docker/node/empty-namespace.sh).
    empty_namespace: str = "/opt/hadoop/share/hadoop/empty-namespace"


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
    "t3.micro": (1024, 2),
    "t3.small": (2048, 2),
    "t3.medium": (4096, 2),
    "t3.large": (8192, 2),
    "m1.small": (1740, 1),
    "m1.medium": (3840, 1),
    "m1.large": (7680, 2),
    "m4.large": (8192, 2),
    "m4.xlarge": (16384, 4),
    "m5.large": (8192, 2),
    "m5.xlarge": (16384, 4),
    "m5.2xlarge": (32768, 8),
    "m5.4xlarge": (65536, 16),
    "c5.large": (4096, 2),
    "c5.xlarge": (8192, 4),
    "c5.2xlarge": (16384, 8),
    "r5.large": (16384, 2),
    "r5.xlarge": (32768, 4),
    "r5.2xlarge": (65536, 8),
}


def sizing_for(instance_type: str) -> Sizing:
    """YARN and MapReduce sizes for an instance type, following EMR's rules of thumb.

    YARN gets the memory left after the OS and the daemons (a quarter, at least 1 GiB);
    a map container is one vCPU's share of it (at most 3 GiB, as EMR's m5.xlarge),
    reduce containers and the ApplicationMaster twice that, within half of what a node offers.
    """
    memory, vcpus = INSTANCE_TYPES.get(instance_type, (8192, 2))
    yarn_memory = max(1024, memory - max(1024, memory // 4))
    half = max(512, yarn_memory // 2)  # an ApplicationMaster must leave room for tasks on one node
    map_mb = max(512, min(3072, half, yarn_memory // vcpus // 256 * 256))
    double = min(2 * map_mb, half)
    return Sizing(
        nodemanager_memory_mb=yarn_memory,
        nodemanager_vcores=vcpus,
        map_memory_mb=map_mb,
        reduce_memory_mb=double,
        am_memory_mb=double,
    )


@dataclass
class NodeSpec:
    name: str  # EC2-style private name (ip-10-0-0-5), resolvable on every node
    ip: str
    role: str
    hostname: str = ""  # the instance's own host name, which Hadoop daemons register under
    instance_type: str = ""
    group_id: str = ""
    configurations: list[Doc] = field(default_factory=list)  # the node's instance group's
    cloud: str = ""  # the cloud its instance is in
    rack: str = topology.DEFAULT_RACK  # its rack in HDFS and YARN (resilin.applications.hadoop.topology)


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
    replication: int | None = None  # fixed when the cluster starts; resizing does not change it
    bootstrap_script: str = ""  # bash run on every node before Hadoop starts (see resilin.cluster.bootstrap)
    session_token: str = (
        ""  # the cluster's temporary storage credentials (resilin.cluster.cluster_credentials)
    )
    spark: bool = False  # Spark on YARN too (resilin.applications.spark)
    path_style: bool = True  # buckets in the path, as Resilin's storage and most S3 services want
    # Storage as each cloud's nodes reach it (cloud → endpoint), where it differs from
    # ``storage_endpoint``: a local cloud's nodes reach the host only by its address on their network.
    cloud_storage_endpoints: dict[str, str] = field(default_factory=dict)

    def storage_endpoint_for(self, node: NodeSpec) -> str:
        return self.cloud_storage_endpoints.get(node.cloud, self.storage_endpoint)

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

    @property
    def dfs_replication(self) -> int:
        return self.replication or min(3, self.datanodes)


# EMR's s3-dist-cp, installed on the master as a command (see hadoop_templates/s3_dist_cp.py).
S3_DIST_CP = resources.files("resilin.hadoop_templates") / "s3_dist_cp.py"
# Log shipping without a JVM, installed on every node (see hadoop_templates/s3_put_tree.py).
S3_PUT_TREE = resources.files("resilin.hadoop_templates") / "s3_put_tree.py"

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("resilin.hadoop_templates", "."),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)
# Values reach node scripts only through these: XML built by lxml, files written as base64.
_env.filters["site_xml"] = config_files.site_xml
_env.globals["write_file"] = node_data.write_file


def check_configurations(
    configurations: list[Doc], applications: Sequence[str] = ("Hadoop", "Spark")
) -> None:
    """EMR's validation of Configurations: known classifications, exports only where EMR has them,
    Spark's only on a cluster with Spark among its ``applications`` (they would act on nothing)."""
    for item in configurations:
        name = item.get("Classification", "")
        if name not in SUPPORTED_CLASSIFICATIONS:
            raise ValidationError(f"The classification '{name}' is not valid.")
        if name in spark_config.CLASSIFICATIONS and "Spark" not in applications:
            raise ValidationError(
                f"The classification '{name}' configures Spark, which is not among the cluster's applications."
            )
        if name == spark_config.SPARK_CLASSIFICATION:
            spark_config.check_spark_classification(item.get("Properties", {}))
        for nested in item.get("Configurations", []):
            if name not in EXPORT_CLASSIFICATIONS or nested.get("Classification") != "export":
                raise ValidationError(
                    f"The classification '{nested.get('Classification')}' is not valid within '{name}'."
                )
            if nested.get("Configurations"):
                raise ValidationError("An export classification cannot have nested configurations.")
        if name in EXPORT_CLASSIFICATIONS and item.get("Properties"):
            raise ValidationError(
                f"Classification '{name}' takes its variables in a nested 'export' classification."
            )
        config_files.check_names(name, item.get("Properties", {}), export=False)
        for nested in item.get("Configurations", []):
            config_files.check_names(f"{name}/export", nested.get("Properties", {}), export=True)


def overrides_from(*layers: list[Doc]) -> dict[str, dict[str, str]]:
    """EMR configuration classifications as {classification: {property: value}}, later layers winning.

    Exports nested in ``*-env`` classifications appear as ``<classification>/export``.
    """
    result: dict[str, dict[str, str]] = {}
    for configurations in layers:
        for item in configurations:
            name = item.get("Classification", "")
            result.setdefault(name, {}).update(item.get("Properties", {}))
            for nested in item.get("Configurations", []):
                key = f"{name}/{nested.get('Classification', '')}"
                result.setdefault(key, {}).update(nested.get("Properties", {}))
    return result


def merge_configurations(current: list[Doc], requested: list[Doc], kind: str) -> list[Doc]:
    """An instance group's configurations after a reconfiguration request, as EMR combines them.

    OVERWRITE (EMR's default) replaces them with the request's.  MERGE keeps what the request
    does not mention: its properties (and nested exports) are added to, or replace, those of
    the same classification.
    """
    if kind != "MERGE":
        return copy.deepcopy(requested)
    merged = copy.deepcopy(current)
    by_name = {item.get("Classification"): item for item in merged}
    for item in requested:
        mine = by_name.get(item.get("Classification"))
        if mine is None:
            mine = by_name[item.get("Classification")] = copy.deepcopy(item)
            merged.append(mine)
            continue
        if item.get("Properties"):
            mine["Properties"] = {**mine.get("Properties", {}), **item["Properties"]}
        if item.get("Configurations"):
            mine["Configurations"] = merge_configurations(
                mine.get("Configurations", []), item["Configurations"], kind
            )
    return merged


# What `hdfs namenode -format` writes depends on these besides the formatting user: where the
# namespace goes, the root directory's group and the erasure coding policies it enables.  A
# cluster that sets any of them formats its own rather than copying the image's empty one.
FORMAT_INPUTS = frozenset(
    {
        "dfs.namenode.name.dir",
        "dfs.namenode.edits.dir",
        "dfs.namenode.shared.edits.dir",
        "dfs.permissions.superusergroup",
        "dfs.nameservices",
        "hadoop.tmp.dir",
    }
)
FORMAT_INPUT_PREFIXES = ("dfs.namenode.ec.", "dfs.ha.")


def image_namespace_fits(overrides: dict[str, dict[str, str]]) -> bool:
    """Whether the image's empty namespace is what formatting with ``overrides`` would write."""
    return not any(
        key in FORMAT_INPUTS or key.startswith(FORMAT_INPUT_PREFIXES)
        for classification in ("core-site", "hdfs-site")
        for key in overrides.get(classification, {})
    )


def daemons_for(spec: ClusterSpec, node: NodeSpec) -> tuple[str, ...]:
    daemons = DAEMONS[node.role]
    if node.role == "MASTER" and not spec.workers:
        daemons = daemons + DAEMONS["CORE"]
    return daemons


def env_files(overrides: dict[str, dict[str, str]]) -> dict[str, str]:
    """The ``*-env.sh`` files with the exports the configurations ask for."""
    files = {}
    for classification, filename in ENV_CLASSIFICATIONS.items():
        exports = overrides.get(f"{classification}/export", {})
        if exports:
            files[filename] = config_files.env_exports(exports)
    return files


def _node_context(spec: ClusterSpec, node: NodeSpec) -> dict:
    """What the node's configuration files are rendered from, and the files themselves."""
    overrides = overrides_from(spec.configurations, node.configurations)
    node_sizing = sizing_for(node.instance_type or spec.worker_type)
    job_sizing = sizing_for(spec.worker_type)
    context = {
        "cluster_id": spec.cluster_id,
        "role": node.role,
        "group_id": node.group_id,
        "master_ip": spec.master.ip,
        "node_ip": node.ip,
        "nodes": spec.nodes,
        "storage_endpoint": spec.storage_endpoint_for(node),
        "storage_endpoint_per_cloud": len(set(spec.cloud_storage_endpoints.values())) > 1,
        "region": spec.region,
        "path_style": spec.path_style,
        "access_key": spec.access_key,
        "secret_key": spec.secret_key,
        "session_token": spec.session_token,
        "replication": spec.dfs_replication,
        "sizing": job_sizing,
        "node_sizing": node_sizing,
        "hadoop": spec.layout,
        "overrides": overrides,
        "dfs_exclude": DFS_EXCLUDE,
        "yarn_exclude": YARN_EXCLUDE,
        "topology": topology_context(spec),
        "hosts": hosts_context(spec.nodes),
        "spark_yarn_site": spark_config.yarn_site() if spec.spark else {},
        "image_namespace": image_namespace_fits(overrides),
    }
    files = {name: _env.get_template(f"{name}.j2").render(context).strip() + "\n" for name in SITE_FILES}
    files["workers"] = ("\n".join(n.ip for n in spec.workers) or spec.master.ip) + "\n"
    files[topology.SCRIPT_NAME] = _env.get_template("topology.sh.j2").render(
        table_path=TOPOLOGY_TABLE, default_rack=topology.DEFAULT_RACK
    )
    spark_files, spark_appends = {}, {}
    if spec.spark:
        spark_files["spark-defaults.conf"] = spark_config.defaults_file(spark_defaults(spec, overrides))
        spark_appends = {
            spark_config.ENV_FILE: spark_config.env_file(
                overrides.get(f"{spark_config.ENV_CLASSIFICATION}/export", {})
            ),
            spark_config.LOG4J2_FILE: spark_config.log4j2_lines(
                overrides.get(spark_config.LOG4J2_CLASSIFICATION, {})
            ),
        }
    return context | {
        "files": files,
        "spark_files": spark_files,
        "spark_appends": spark_appends,
        "env_files": env_files(overrides),
        "log4j": config_files.log4j_properties(overrides.get(LOG4J_CLASSIFICATION, {})),
        "daemons": daemons_for(spec, node),
    }


def spark_defaults(spec: ClusterSpec, overrides: dict[str, dict[str, str]]) -> dict[str, str]:
    """spark-defaults.conf's properties for ``spec``, whose node's classifications are ``overrides``."""
    sizing = sizing_for(spec.worker_type)
    requested = overrides.get(spark_config.DEFAULTS_CLASSIFICATION, {})
    maximized = None
    if spark_config.maximizes(overrides.get(spark_config.SPARK_CLASSIFICATION, {})):
        yarn = overrides.get("yarn-site", {})
        worker_memory = _int_or(yarn.get("yarn.nodemanager.resource.memory-mb"), sizing.nodemanager_memory_mb)
        master_room = sizing_for(spec.master.instance_type or spec.worker_type).am_memory_mb
        maximized = spark_config.maximized(
            spark_config.Hardware(
                worker_memory_mb=worker_memory,
                worker_vcores=_int_or(
                    yarn.get("yarn.nodemanager.resource.cpu-vcores"), sizing.nodemanager_vcores
                ),
                workers=len(spec.workers),
                driver_room_mb=min(master_room, sizing.am_memory_mb),
            ),
            requested,
        )
    executor = spark_config.executor_sizing(sizing.map_memory_mb, sizing.nodemanager_vcores)
    return spark_config.defaults(spec.master.ip, executor, requested, maximized)


def _int_or(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def render_node_script(spec: ClusterSpec, node: NodeSpec) -> str:
    return _env.get_template("configure-node.sh.j2").render(
        _node_context(spec, node)
        | {
            "bootstrap_script": spec.bootstrap_script,
            "s3_dist_cp": S3_DIST_CP.read_text() if node.role == "MASTER" else "",
            "s3_put_tree": S3_PUT_TREE.read_text(),
        }
    )


def render_reconfigure_script(
    spec: ClusterSpec,
    node: NodeSpec,
    restart: Sequence[str],
    start_wait: int = 10,
    safemode_timeout: int = 300,
) -> str:
    """A script that rewrites a running node's configuration files and restarts ``restart`` (in that order).

    ``start_wait`` is how long a restarted daemon must stay up to count as started.
    """
    return _env.get_template("reconfigure-node.sh.j2").render(
        _node_context(spec, node)
        | {
            "restarts": [(DAEMON_TOOLS[d], d) for d in restart],
            "start_wait": start_wait,
            "safemode_timeout": safemode_timeout,
        }
    )


def render_wait_ready(spec: ClusterSpec, timeout: int) -> str:
    return _env.get_template("wait-ready.sh.j2").render(
        cluster_id=spec.cluster_id,
        master_ip=spec.master.ip,
        datanodes=spec.datanodes,
        nodemanagers=spec.nodemanagers,
        timeout=timeout,
    )


def topology_context(spec: ClusterSpec) -> dict[str, str]:
    """The rack script, where it and its table go, and the table (every node's names → its rack)."""
    return {
        "script_name": topology.SCRIPT_NAME,
        "script_path": TOPOLOGY_SCRIPT,
        "table_name": topology.TABLE_NAME,
        "table": topology.table([((n.ip, n.name, n.hostname), n.rack) for n in spec.nodes]),
    }


def hosts_block(nodes: Sequence[NodeSpec]) -> str:
    """Resilin's lines of /etc/hosts: every node of the cluster, in whichever cloud, by address,
    EC2-style name and own host name."""
    lines = [HOSTS_BEGIN]
    for n in nodes:
        names = " ".join(dict.fromkeys(name for name in (n.name, n.hostname) if name))
        lines.append(f"{n.ip} {names}" + (f"  # {n.cloud}" if n.cloud else ""))
    lines.append(HOSTS_END)
    return "\n".join(lines) + "\n"


def hosts_context(nodes: Sequence[NodeSpec]) -> dict[str, str]:
    return {"file": HOSTS_FILE, "begin": HOSTS_BEGIN, "end": HOSTS_END, "block": hosts_block(nodes)}


def render_membership_update(spec: ClusterSpec) -> str:
    """A script that brings a running node's /etc/hosts and rack table to the cluster's nodes now
    (every node, after nodes joined or left)."""
    return _env.get_template("hosts.sh.j2").render(
        hosts=hosts_context(spec.nodes), topology=topology_context(spec)
    )
