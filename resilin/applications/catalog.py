"""Which application a cluster runs: where Spark and later applications are chosen beside Hadoop."""

from __future__ import annotations

from resilin.applications.base import Application
from resilin.applications.hadoop.application import HadoopApplication
from resilin.jobflows.documents import ClusterDoc


def application_for(cluster: ClusterDoc) -> Application:
    """Hadoop, for every release Resilin offers (the applications of a release run on it)."""
    return HadoopApplication()
