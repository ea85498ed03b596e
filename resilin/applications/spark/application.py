"""Spark on a cluster: Hadoop's application with Spark configured on every node for YARN, its
history server started on the master once HDFS is up, and the Spark version the image really
carries recorded for DescribeCluster.
"""

from __future__ import annotations

import shlex

from resilin.applications.hadoop.application import HadoopApplication
from resilin.applications.hadoop_config import ClusterSpec
from resilin.applications.spark import config
from resilin.cluster.runtime import ClusterFailure, ClusterRuntime
from resilin.jobflows import states
from resilin.jobflows.documents import ClusterDoc, InstanceDoc

HISTORY_TIMEOUT = 180
SPARK = "Spark"


def history_server_script(master_ip: str) -> str:
    """Creates the event log directory in HDFS, starts the history server and waits until it
    answers; prints the installed Spark version last. (/tmp and /user/hadoop are made by
    Hadoop's readiness check.)"""
    event_dir = config.EVENT_LOG_DIR.removeprefix("hdfs://")
    # Through WebHDFS: `hdfs dfs` would start a JVM.
    mkdir = shlex.quote(
        f"http://{master_ip}:9870/webhdfs/v1{event_dir}?op=MKDIRS&user.name=hadoop&permission=1777"
    )
    return f"""set -euo pipefail
deadline=$((SECONDS + {HISTORY_TIMEOUT}))
# HDFS out of safe mode first (the NameNode's JMX; the readiness check runs beside this).
nn='http://{master_ip}:9870/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState'
until curl -s -m 5 "$nn" | grep -Eq '"FSState" *: *"Operational"'; do
  [ $SECONDS -lt $deadline ] || {{ echo "HDFS did not leave safe mode" >&2; exit 1; }}
  sleep 0.25
done
curl -sSf -m 30 -X PUT {mkdir} | grep -q '"boolean":true' || {{ echo "could not create {event_dir} in HDFS" >&2; exit 1; }}
{config.SPARK_HOME}/sbin/start-history-server.sh >/dev/null
until curl -s -o /dev/null -m 5 http://{master_ip}:{config.HISTORY_PORT}/api/v1/applications; do
  [ $SECONDS -lt $deadline ] || {{ echo "Spark's history server did not answer on port {config.HISTORY_PORT}" >&2;
    tail -n 20 /var/log/spark/*HistoryServer*.out >&2 || true; exit 1; }}
  sleep 0.25
done
cat {config.VERSION_FILE}
"""


def runs_spark(cluster: ClusterDoc) -> bool:
    return any(app.get("Name") == SPARK for app in cluster.get("applications") or [])


class SparkApplication(HadoopApplication):
    """Hadoop with Spark beside it (the phase marks stay Hadoop's: YARN and HDFS are what get ready)."""

    def spec(self, runtime: ClusterRuntime, instances: list[InstanceDoc]) -> ClusterSpec:
        spec = super().spec(runtime, instances)
        spec.spark = True
        return spec

    alongside_progress = "Starting Spark's history server"

    def start_alongside(self, runtime: ClusterRuntime, master: InstanceDoc) -> None:
        """Spark's history server, started as soon as HDFS answers, while YARN's nodes register."""
        done = runtime.sessions[master["id"]].run_script(
            history_server_script(master["private_ip"]), timeout=HISTORY_TIMEOUT + 60
        )
        if done.exit_status != 0:
            raise ClusterFailure(
                states.BOOTSTRAP_FAILURE, f"Spark did not start: {done.stderr.strip()[-500:]}"
            )
        version = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""

        def record_version(c: ClusterDoc) -> None:
            for app in c["applications"]:
                if app.get("Name") == SPARK:
                    app["Version"] = version

        runtime.store.update_cluster(runtime.cid, record_version)
