"""Spark's configuration on a cluster's nodes: spark-defaults.conf, as EMR sets it for YARN.

EMR's defaults: the YARN master, event logs in HDFS read by the history server on the master,
dynamic allocation with YARN's Spark shuffle service in every NodeManager, executors sized from
the core nodes' instance type.  Output to ``s3://``/``s3a://`` goes through S3A's directory
committer (PathOutputCommitProtocol from spark-hadoop-cloud), which makes a job's files visible
only when the job commits, as EMR's EMRFS committer does.  The ``spark`` classification's
``maximizeResourceAllocation`` sizes executors and the driver from the instance types as EMR
does; the ``spark-defaults`` classification's properties come last and win.  ``spark-env``
(nested ``export``) and ``spark-log4j2`` add lines after the image's files.
"""

from __future__ import annotations

from dataclasses import dataclass

from resilin.applications import config_files
from resilin.errors import ValidationError

SPARK_HOME = "/usr/lib/spark"
SPARK_CONF_DIR = "/etc/spark/conf"
VERSION_FILE = f"{SPARK_HOME}/VERSION"  # written by docker/node/build.sh from spark/pom.xml
EVENT_LOG_DIR = "hdfs:///var/log/spark/apps"
HISTORY_PORT = 18080
SHUFFLE_SERVICE = "spark_shuffle"
SHUFFLE_SERVICE_CLASS = "io.resilin.spark.YarnShuffleService"  # docker/node/spark/src
SHUFFLE_SERVICE_CLASSPATH = f"{SPARK_HOME}/yarn/lib/*"
SHUFFLE_SERVICE_PORT = 7337
DEFAULTS_CLASSIFICATION = "spark-defaults"
SPARK_CLASSIFICATION = "spark"  # EMR's: maximizeResourceAllocation
ENV_CLASSIFICATION = "spark-env"  # exports in a nested "export", as hadoop-env
LOG4J2_CLASSIFICATION = "spark-log4j2"
CLASSIFICATIONS = (SPARK_CLASSIFICATION, DEFAULTS_CLASSIFICATION, ENV_CLASSIFICATION, LOG4J2_CLASSIFICATION)
MAXIMIZE = "maximizeResourceAllocation"
# Files in SPARK_CONF_DIR that the image ships and a classification adds lines to.
ENV_FILE = "spark-env.sh"
LOG4J2_FILE = "log4j2.properties"
S3A_COMMITTER_FACTORY = "org.apache.hadoop.fs.s3a.commit.S3ACommitterFactory"
SCHEMES_ON_S3A = ("s3", "s3a", "s3n")  # core-site maps s3:// and s3n:// to S3A
# The JIT of an application's driver and executors, as for a MapReduce job's tasks (the node
# image's HADOOP_JOB_JIT_OPTS, docker/node/libexec/jvm-jit.sh): C2 compiles only what
# is truly hot, which a long stage's inner loops reach within moments and start-up code never does.
JOB_JIT_OPTIONS = (
    "-XX:Tier4InvocationThreshold=100000 -XX:Tier4MinInvocationThreshold=12000"
    " -XX:Tier4CompileThreshold=300000 -XX:Tier4BackEdgeThreshold=800000"
)
# Class-data sharing: the image's archive of Spark's classes (docker/node/cds-train.sh), which a
# JVM maps rather than reading, verifying and parsing the classes from the jars.  Java uses it
# only while the class path starts with the jars it was built from, and Spark's puts its conf
# dirs (YARN: the container's directory) first: the driver's and executors' extraClassPath, which
# Spark puts before them, is those jars.  No jar carries a file of the conf dirs' names, and in
# Spark's order its jars come before an application's anyway.  Without the archive (an older
# image), or when a job sets its own extraClassPath, Java loads every class from the jars.
CDS_ARCHIVE = f"{SPARK_HOME}/spark.jsa"
CDS_OPTIONS = f"-XX:SharedArchiveFile={CDS_ARCHIVE} -Xshare:auto -Xlog:cds=off -Xlog:cds+dynamic=off"
CDS_CLASS_PATH = f"{SPARK_HOME}/jars/*"
# Spark's legacy switch that puts an application's jars on YARN containers' class path right
# after the extraClassPath: with it, the jars stay off the front.
USER_CLASS_PATH_FIRST = "spark.yarn.user.classpath.first"


def is_true(properties: dict[str, str], name: str) -> bool:
    """Whether the property ``name`` is set to true, as Spark reads a boolean (any case, spaces around)."""
    return properties.get(name, "").strip().lower() == "true"


def executor_sizing(container_mb: int, vcores: int) -> tuple[int, int, int]:
    """(executor memory MiB, its overhead MiB, cores) for a worker whose MapReduce map container is
    ``container_mb`` and NodeManager has ``vcores``: one executor takes a map container's memory,
    overhead included (at least 384 MiB, as Spark reserves)."""
    overhead = max(384, container_mb // 10)
    cores = max(1, min(2, vcores // 2))
    return max(512, container_mb - overhead), overhead, cores


def defaults(
    master_ip: str,
    executor: tuple[int, int, int],
    overrides: dict[str, str],
    maximized: dict[str, str] | None = None,
) -> dict[str, str]:
    """Every property of spark-defaults.conf: Resilin's first, then :func:`maximized`'s when the
    ``spark`` classification asks for it, the ``spark-defaults`` classification's over them;
    ``executor`` is :func:`executor_sizing`'s."""
    memory, overhead, cores = executor
    props = {
        "spark.master": "yarn",
        "spark.submit.deployMode": "client",
        # Every node has Spark's jars: containers read them in place rather than from an upload.
        "spark.yarn.jars": f"local:{SPARK_HOME}/jars/*",
        # Spark brings its own (shaded) Hadoop client; the NodeManagers' Hadoop jars stay out.
        "spark.yarn.populateHadoopClasspath": "false",
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": EVENT_LOG_DIR,
        "spark.history.fs.logDirectory": EVENT_LOG_DIR,
        "spark.history.ui.port": str(HISTORY_PORT),
        "spark.yarn.historyServer.address": f"{master_ip}:{HISTORY_PORT}",
        "spark.dynamicAllocation.enabled": "true",
        "spark.shuffle.service.enabled": "true",
        "spark.shuffle.service.port": str(SHUFFLE_SERVICE_PORT),
        "spark.executor.memory": f"{memory}m",
        "spark.executor.memoryOverhead": f"{overhead}m",
        "spark.executor.cores": str(cores),
        "spark.driver.memory": "1024m",
        "spark.pyspark.python": "python3",
        # Spark puts these before a job's extraJavaOptions, which can override them.
        "spark.driver.defaultJavaOptions": f"{JOB_JIT_OPTIONS} {CDS_OPTIONS}",
        "spark.executor.defaultJavaOptions": f"{JOB_JIT_OPTIONS} {CDS_OPTIONS}",
        # The ApplicationMaster of a client-mode application (a cluster-mode one is the driver).
        "spark.yarn.am.extraJavaOptions": CDS_OPTIONS,
        # Object-store-safe output: S3A's committers for Dataset writes and Hadoop output formats.
        "spark.hadoop.fs.s3a.committer.name": "directory",
        "spark.sql.sources.commitProtocolClass": (
            "org.apache.spark.internal.io.cloud.PathOutputCommitProtocol"
        ),
        "spark.sql.parquet.output.committer.class": (
            "org.apache.spark.internal.io.cloud.BindingParquetOutputCommitter"
        ),
    }
    for scheme in SCHEMES_ON_S3A:
        props[f"spark.hadoop.mapreduce.outputcommitter.factory.scheme.{scheme}"] = S3A_COMMITTER_FACTORY
    if not is_true(overrides, USER_CLASS_PATH_FIRST):
        props["spark.driver.extraClassPath"] = CDS_CLASS_PATH
        props["spark.executor.extraClassPath"] = CDS_CLASS_PATH
    return props | (maximized or {}) | overrides


def defaults_file(props: dict[str, str]) -> str:
    """spark-defaults.conf: Java properties (Spark loads the file with java.util.Properties)."""
    lines = ["# Written by Resilin at the cluster's start: EMR's defaults, then spark-defaults."]
    for name, value in props.items():
        lines.append(f"{config_files.java_escape(name, True)} {config_files.java_escape(value, False)}")
    return "\n".join(lines) + "\n"


def check_spark_classification(properties: dict[str, str]) -> None:
    """The ``spark`` classification has one property, EMR's ``maximizeResourceAllocation``."""
    for name, value in properties.items():
        if name != MAXIMIZE:
            raise ValidationError(
                f"The property '{name}' is not valid in classification '{SPARK_CLASSIFICATION}'; "
                f"it takes only {MAXIMIZE} (Spark's own properties go in '{DEFAULTS_CLASSIFICATION}')."
            )
        if value.strip().lower() not in ("true", "false"):
            raise ValidationError(f"{MAXIMIZE} must be true or false, not '{value}'.")


def maximizes(spark_properties: dict[str, str]) -> bool:
    return is_true(spark_properties, MAXIMIZE)


@dataclass(frozen=True)
class Hardware:
    """What YARN offers on a cluster's workers, and the smaller driver host's container room."""

    worker_memory_mb: int  # one worker NodeManager's memory for containers
    worker_vcores: int
    workers: int  # core and task nodes
    driver_room_mb: int  # the smaller of the master's and a worker's largest single container


def maximized(hardware: Hardware, requested: dict[str, str]) -> dict[str, str]:
    """EMR's maximizeResourceAllocation: one executor per worker taking its whole NodeManager,
    2 partitions per vCPU YARN has, the driver sized for the smaller of its possible hosts, and
    a fixed executor count unless spark-defaults asks for dynamic allocation explicitly."""
    executor_overhead = max(384, hardware.worker_memory_mb // 11 + 1)  # Spark's max(384 MiB, 10 %)
    driver_overhead = max(384, hardware.driver_room_mb // 11 + 1)
    props = {
        "spark.executor.memory": f"{max(512, hardware.worker_memory_mb - executor_overhead)}m",
        "spark.executor.memoryOverhead": f"{executor_overhead}m",
        "spark.executor.cores": str(hardware.worker_vcores),
        "spark.driver.memory": f"{max(512, hardware.driver_room_mb - driver_overhead)}m",
        "spark.default.parallelism": str(2 * hardware.worker_vcores * max(1, hardware.workers)),
    }
    if not is_true(requested, "spark.dynamicAllocation.enabled"):
        props["spark.executor.instances"] = str(max(1, hardware.workers))
    return props


def env_file(exports: dict[str, str]) -> str:
    """The ``spark-env`` classification's exports, added after the image's spark-env.sh."""
    return "# spark-env classification\n" + config_files.env_exports(exports) if exports else ""


def log4j2_lines(properties: dict[str, str]) -> str:
    """The ``spark-log4j2`` classification's properties, added after the image's log4j2.properties."""
    return "# spark-log4j2 classification\n" + config_files.log4j_properties(properties) if properties else ""


def yarn_site() -> dict[str, str]:
    """yarn-site's properties for Spark's shuffle service beside MapReduce's, in its own classloader
    (the yarn-site classification may still change them)."""
    prefix = f"yarn.nodemanager.aux-services.{SHUFFLE_SERVICE}"
    return {
        "yarn.nodemanager.aux-services": f"mapreduce_shuffle,{SHUFFLE_SERVICE}",
        f"{prefix}.class": SHUFFLE_SERVICE_CLASS,
        f"{prefix}.classpath": SHUFFLE_SERVICE_CLASSPATH,
        "spark.shuffle.service.port": str(SHUFFLE_SERVICE_PORT),
    }
