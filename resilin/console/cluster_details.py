"""What the console shows of a cluster beyond the EMR API's answers, read from the same document:
the clouds it runs in (the API names them only for a cluster spread over several), the states it
went through with their times (drawn as the phase timeline), and where its web UIs are reached.
"""

from __future__ import annotations

from collections.abc import Sequence

from resilin.jobflows import placement_checks, states
from resilin.jobflows.documents import ClusterDoc, InstanceDoc
from resilin.jobflows.group_clouds import clouds_of_group
from resilin.jobflows.releases import CloudOffer

# The clusters' web UIs behind the console: path name → (title, port on the master).
HADOOP_UIS = {
    "namenode": ("HDFS NameNode", 9870),
    "resourcemanager": ("YARN ResourceManager", 8088),
    "jobhistory": ("MapReduce JobHistory Server", 19888),
}
SPARK_UIS = {"sparkhistory": ("Spark History Server", 18080)}


def web_uis(cluster: ClusterDoc) -> dict[str, tuple[str, int]]:
    """The web UIs the cluster's applications run on its master."""
    names = {a.get("Name", "").lower() for a in cluster.get("applications", [])}
    return HADOOP_UIS | (SPARK_UIS if "spark" in names else {})


def state_history(cluster: ClusterDoc) -> list[dict]:
    """Each state the cluster was in, from when; a cluster made before states were recorded shows
    what its timeline tells (created, ready, ended)."""
    recorded = cluster.get("state_history") or []
    if recorded:
        return [{"State": state, "Start": start} for state, start in recorded]
    timeline = cluster["timeline"]
    history = [{"State": states.STARTING, "Start": timeline["created"]}]
    if timeline.get("ready"):
        history.append({"State": states.WAITING, "Start": timeline["ready"]})
    if timeline.get("end"):
        history.append({"State": cluster["state"], "Start": timeline["end"]})
    return history


def details(
    cluster: ClusterDoc,
    instances: Sequence[InstanceDoc],
    offers: Sequence[CloudOffer],
    ui_base: str | None,
    ui_reason: str | None,
) -> dict:
    """The console's /details answer; ``ui_base``: the web UIs' origin, None when unreachable (``ui_reason``)."""
    home = placement_checks.home_cloud(offers, cluster["groups"], instances) or ""
    uis = web_uis(cluster) if ui_base else {}
    return {
        "Clouds": placement_checks.cluster_clouds(offers, cluster["groups"], instances),
        "GroupClouds": {g["id"]: clouds_of_group(g, home) for g in cluster["groups"]},
        "InstanceClouds": {i["id"]: i["cloud"] for i in instances},
        "StateHistory": state_history(cluster),
        "WebUis": [
            {"Name": title, "Url": f"{ui_base}/{cluster['id']}/{name}/"} for name, (title, _) in uis.items()
        ],
        "WebUisReason": None if ui_base else ui_reason,
    }
