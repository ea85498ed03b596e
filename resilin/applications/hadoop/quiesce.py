"""Stopping a cluster's Hadoop for a relocation, and starting it again (resilin.migrate.pipeline).

The master saves HDFS's namespace in safe mode before anything stops, so the NameNode's state on
disk is whole; then every daemon stops, and no JVM of the hadoop user is left to change a file
while the state set is read.  A failed move starts the same daemons again from the same files.
After a move the NameNode leaves safe mode as soon as every block is reported: its extension
only waits for late DataNodes, and every DataNode of a relocated cluster is known.
"""

from __future__ import annotations

from resilin.applications.hadoop_config import DAEMON_TOOLS, NodeImageLayout
from resilin.applications.spark.config import SPARK_HOME

STATE_PATHS = ["/var/lib/hadoop/dfs/name", "/var/lib/hadoop/dfs/data"]  # hdfs-site.xml.j2's dirs
QUIESCE_TIMEOUT = 600
START_TIMEOUT = 900


def stop_script(daemons: list[str], master: bool) -> str:
    """Stops a node's daemons, the master's after HDFS saved its namespace in safe mode."""
    layout = NodeImageLayout()
    lines = ["set -uo pipefail"]
    if master:
        lines += [
            "set -e",
            "hdfs dfsadmin -safemode enter >/dev/null",
            "hdfs dfsadmin -saveNamespace >/dev/null",
            "set +e",
            f"stop_hs={SPARK_HOME}/sbin/stop-history-server.sh",
            '[ ! -x "$stop_hs" ] || "$stop_hs" >/dev/null 2>&1',
        ]
    # Workers before the master's daemons, each in the reverse of its start order.
    for daemon in reversed(daemons):
        lines.append(f"{layout.daemon} {DAEMON_TOOLS[daemon]} stop {daemon} >/dev/null 2>&1")
    # Whatever still runs (a daemon that ignored its stop) is ended before its files are read.
    lines += [
        "for i in $(seq 60); do pgrep -u hadoop java >/dev/null || exit 0; sleep 0.5; done",
        "pkill -KILL -u hadoop java; sleep 1; ! pgrep -u hadoop java >/dev/null",
    ]
    return "\n".join(lines) + "\n"


def start_script(daemons: list[str]) -> str:
    """Starts a node's daemons again from the files it has (the source, after a failed move)."""
    layout = NodeImageLayout()
    lines = ["set -euo pipefail", "export HADOOP_DAEMON_START_WAIT=1"]
    lines += [f"{layout.daemon} {DAEMON_TOOLS[d]} start {d}" for d in daemons]
    return "\n".join(lines) + "\n"


def leave_safemode_when_reported(master_ip: str) -> str:
    """Cuts the NameNode's safe-mode extension short once every block is reported (the extension
    only waits for DataNodes that are late, and every DataNode of a relocated cluster is known).
    Polls the NameNode's own JMX (no JVM per poll); ends once HDFS is out of safe mode."""
    base = f"http://{master_ip}:9870/jmx?qry=Hadoop:service=NameNode,name="
    return f"""
for i in $(seq 1200); do
  info=$(curl -sf '{base}NameNodeInfo' || true)
  case "$info" in
    *'safe mode extension'*) hdfs dfsadmin -safemode leave >/dev/null; exit 0 ;;
  esac
  case "$(curl -sf '{base}FSNamesystemState' || true)" in
    *'"FSState" : "Operational"'*) exit 0 ;;
  esac
  sleep 0.5
done
exit 1
"""
