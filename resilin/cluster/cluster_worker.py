"""The thread one active cluster lives in: it runs the cluster's lifecycle (resilin.cluster.lifecycle)
over the cluster's runtime (resilin.cluster.runtime), with its application, and nothing else."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from resilin.applications.base import Application
from resilin.applications.hadoop.application import HadoopApplication
from resilin.aws.sigv4 import Credentials
from resilin.clouds.provisioning import PlacementLookup
from resilin.cluster import lifecycle
from resilin.cluster.runtime import ClusterRuntime
from resilin.jobflows.store import JobFlowStore


def application_for(cluster_id: str) -> Application:
    """What a cluster runs: Hadoop (with the applications of its release that run on it)."""
    return HadoopApplication()


class ClusterWorker(threading.Thread):
    def __init__(
        self,
        cid: str,
        store: JobFlowStore,
        placement_for: PlacementLookup,
        credentials_for: Callable[[str], Credentials],
        home: Path,
        region: str,
    ) -> None:
        super().__init__(name=f"cluster-{cid}", daemon=True)
        self.cid = cid
        self.runtime = ClusterRuntime(cid, store, placement_for, credentials_for, home, region)
        self.lifecycle = lifecycle.Lifecycle(self.runtime, application_for(cid))

    @property
    def wake(self) -> threading.Event:
        return self.runtime.wake

    def run(self) -> None:
        self.lifecycle.run()

    def reclaim_instances(self) -> None:
        lifecycle.reclaim_instances(self.runtime)

    def fail_after_restart(self) -> None:
        lifecycle.fail_after_restart(self.runtime, self.lifecycle.application)
