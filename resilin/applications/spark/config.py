"""Spark's configuration on a cluster's nodes: spark-defaults.conf, as EMR sets it for YARN.

EMR's defaults: the YARN master, event logs in HDFS read by the history server on the master,
dynamic allocation with YARN's Spark shuffle service in every NodeManager, executors sized from
the core nodes' instance type.  Output to ``s3://``/``s3a://`` goes through S3A's directory
committer (PathOutputCommitProtocol from spark-hadoop-cloud), which makes a job's files visible
only when the job commits, as EMR's EMRFS committer does.  The ``spark-defaults``
classification's properties come last and win.
"""

from __future__ import annotations

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
S3A_COMMITTER_FACTORY = "org.apache.hadoop.fs.s3a.commit.S3ACommitterFactory"
SCHEMES_ON_S3A = ("s3", "s3a", "s3n")  # core-site maps s3:// and s3n:// to S3A


def executor_sizing(container_mb: int, vcores: int) -> tuple[int, int, int]:
    """(executor memory MiB, its overhead MiB, cores) for a worker whose MapReduce map container is
    ``container_mb`` and NodeManager has ``vcores``: one executor takes a map container's memory,
    overhead included (at least 384 MiB, as Spark reserves)."""
    overhead = max(384, container_mb // 10)
    cores = max(1, min(2, vcores // 2))
    return max(512, container_mb - overhead), overhead, cores


def defaults(master_ip: str, executor: tuple[int, int, int], overrides: dict[str, str]) -> dict[str, str]:
    """Every property of spark-defaults.conf, Resilin's first, the classification's over them;
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
    return props | overrides


def defaults_file(props: dict[str, str]) -> str:
    """spark-defaults.conf: one ``name value`` a line (Java properties, so a value keeps its spaces)."""
    lines = ["# Written by Resilin at the cluster's start: EMR's defaults, then spark-defaults."]
    for name, value in props.items():
        lines.append(f"{_escape(name, key=True)} {_escape(value, key=False)}")
    return "\n".join(lines) + "\n"


def _escape(text: str, key: bool) -> str:
    """Java properties escaping: a value arrives as given, newlines included."""
    out = []
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch in "=: " and key:
            out.append("\\" + ch)
        elif ch == " " and i == 0:
            out.append("\\ ")
        elif ch in "#!" and i == 0 and key:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


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
