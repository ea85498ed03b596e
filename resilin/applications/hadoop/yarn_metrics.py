"""A cluster's metrics as EMR names them in CloudWatch, read from YARN's and HDFS's own endpoints on
the master (the ResourceManager's cluster metrics, the NameNode's FSNamesystemState bean)."""

from __future__ import annotations

import json

from resilin.clouds.ssh import Node, SshError

RM_PORT, NN_PORT = 8088, 9870
_SEPARATOR = "----resilin-metrics----"


class MetricsUnavailable(Exception):
    """The daemons did not answer (starting, restarting, or gone)."""


def sample(master: Node, master_ip: str) -> dict[str, float]:
    script = (
        f"curl -sf -m 5 http://{master_ip}:{RM_PORT}/ws/v1/cluster/metrics; echo {_SEPARATOR}; "
        f"curl -sf -m 5 'http://{master_ip}:{NN_PORT}/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState'"
    )
    try:
        done = master.run(script, timeout=30)
    except (SshError, OSError) as exc:
        raise MetricsUnavailable(str(exc)) from exc
    yarn_text, _, hdfs_text = done.stdout.partition(_SEPARATOR)
    try:
        yarn = json.loads(yarn_text)["clusterMetrics"]
    except (ValueError, KeyError) as exc:
        raise MetricsUnavailable(f"ResourceManager metrics: {exc}") from exc
    try:
        bean = json.loads(hdfs_text)["beans"][0]
        used, total = float(bean["CapacityUsed"]), float(bean["CapacityTotal"])
    except (ValueError, KeyError, IndexError):
        used, total = 0.0, 0.0
    return emr_metrics(yarn, used, total)


def emr_metrics(yarn: dict, hdfs_used: float, hdfs_total: float) -> dict[str, float]:
    """EMR's metric names from the ResourceManager's ``clusterMetrics`` and HDFS's capacity."""
    total_mb = float(yarn.get("totalMB", 0))
    allocated = float(yarn.get("containersAllocated", 0))
    pending = float(yarn.get("containersPending", 0))
    running_apps, pending_apps = float(yarn.get("appsRunning", 0)), float(yarn.get("appsPending", 0))
    return {
        "YARNMemoryAvailablePercentage": 100.0 * float(yarn.get("availableMB", 0)) / total_mb
        if total_mb
        else 0.0,
        # EMR's ratio of pending to allocated containers; with none allocated, the pending count.
        "ContainerPendingRatio": pending / allocated if allocated else pending,
        "ContainerPending": pending,
        "ContainerAllocated": allocated,
        "ContainerReserved": float(yarn.get("containersReserved", 0)),
        "AppsPending": pending_apps,
        "AppsRunning": running_apps,
        "AppsSubmitted": float(yarn.get("appsSubmitted", 0)),
        "AppsCompleted": float(yarn.get("appsCompleted", 0)),
        "AppsFailed": float(yarn.get("appsFailed", 0)),
        "AppsKilled": float(yarn.get("appsKilled", 0)),
        "MemoryAvailableMB": float(yarn.get("availableMB", 0)),
        "MemoryAllocatedMB": float(yarn.get("allocatedMB", 0)),
        "MemoryTotalMB": total_mb,
        "MemoryReservedMB": float(yarn.get("reservedMB", 0)),
        "HDFSUtilization": 100.0 * hdfs_used / hdfs_total if hdfs_total else 0.0,
        "IsIdle": 1.0 if running_apps == 0 and pending_apps == 0 else 0.0,
    }
