"""Which application a cluster runs: Hadoop, or Hadoop with Spark when the cluster asked for it."""

from __future__ import annotations

from resilin.applications.base import Application
from resilin.applications.hadoop.application import HadoopApplication
from resilin.applications.spark.application import SparkApplication, runs_spark
from resilin.jobflows.documents import ClusterDoc


def application_for(cluster: ClusterDoc) -> Application:
    """Every release runs Hadoop; a cluster whose Applications name Spark runs it on YARN too."""
    return SparkApplication() if runs_spark(cluster) else HadoopApplication()
