"""Starts a worker for each cluster that has work, and recovers clusters after a restart.

A worker is a thread that runs one cluster's lifecycle (resilin.cluster.lifecycle) over the
cluster's runtime (resilin.cluster.runtime), with the application it runs; nothing else
refers to the thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from resilin.applications.catalog import application_for
from resilin.aws.sigv4 import Credentials
from resilin.clouds.provisioning import PlacementLookup
from resilin.clouds.ssh import Node
from resilin.cluster import lifecycle
from resilin.cluster.runtime import ClusterRuntime
from resilin.jobflows import states
from resilin.jobflows.documents import InstanceDoc
from resilin.jobflows.store import JobFlowStore

log = logging.getLogger(__name__)


class ClusterWorker(threading.Thread):
    """One active cluster's thread: it runs the cluster's lifecycle, nothing else."""

    def __init__(
        self,
        cid: str,
        store: JobFlowStore,
        clouds: PlacementLookup,
        credentials_for: Callable[[str], Credentials],
        home: Path,
        region: str,
    ) -> None:
        super().__init__(name=f"cluster-{cid}", daemon=True)
        self.cid = cid
        self.runtime = ClusterRuntime(cid, store, clouds, credentials_for, home, region)
        self.lifecycle = lifecycle.Lifecycle(self.runtime, application_for(self.runtime.cluster))

    @property
    def wake(self) -> threading.Event:
        return self.runtime.wake

    resuming = False  # taking back a running cluster after a restart of Resilin

    def run(self) -> None:
        if self.resuming:
            self.lifecycle.resume()
        else:
            self.lifecycle.run()


class Orchestrator:
    def __init__(
        self,
        store: JobFlowStore,
        clouds: PlacementLookup,  # resilin.clouds.registry.CloudRegistry in the service
        credentials_for: Callable[[str], Credentials],
        home: Path,
        region: str,
    ) -> None:
        self.store = store
        self.clouds = clouds
        self.credentials_for = credentials_for
        self.home = home
        self.region = region
        self.workers: dict[str, ClusterWorker] = {}

    def dispatch_next(self, timeout: float = 1) -> None:
        """Wait up to ``timeout`` seconds for a cluster with work, and hand it to its worker.

        ``resilin server`` calls this in a loop (resilin/service/server.py), after :meth:`recover`.
        """
        cid = self.store.next_notification(timeout=timeout)
        if cid:
            self.dispatch(cid)

    def dispatch(self, cid: str) -> None:
        worker = self.workers.get(cid)
        if worker is not None and worker.is_alive():
            worker.wake.set()
            return
        cluster = self.store.get_cluster(cid)
        if cluster is None or cluster["state"] in states.FINAL_CLUSTER_STATES:
            return
        if cluster["state"] != states.STARTING:
            return  # a cluster past STARTING without a worker is handled by recover()
        worker = ClusterWorker(cid, self.store, self.clouds, self.credentials_for, self.home, self.region)
        self.workers[cid] = worker
        worker.start()

    def live_master(self, cid: str) -> tuple[Node, InstanceDoc] | None:
        """The master of a cluster this process runs, with its SSH session; None when it has none."""
        worker = self.workers.get(cid)
        if worker is None or not worker.is_alive():
            return None
        runtime = worker.runtime
        masters = [i for i in runtime.live_instances() if i["role"] == "MASTER"]
        node = runtime.sessions.get(masters[0]["id"]) if masters else None
        return (node, masters[0]) if node is not None else None

    def recover(self) -> None:
        """Clusters left active by a previous run: take them back, or clean up and start or end them.

        A running cluster (WAITING or RUNNING) is taken back as it is (resilin.cluster.adoption).
        A cluster still STARTING is provisioned afresh.  One caught configuring or terminating
        cannot be resumed half-way, so what it launched is released and it ends
        TERMINATED_WITH_ERRORS.
        """
        for cid in self.store.active_cluster_ids():
            cluster = self.store.get_cluster(cid)
            if cluster is None or cid in self.workers:
                continue
            if cluster["state"] in (states.WAITING, states.RUNNING) and not cluster["terminate_requested"]:
                log.info("%s: taking the cluster back after a restart", cid)
                worker = ClusterWorker(
                    cid, self.store, self.clouds, self.credentials_for, self.home, self.region
                )
                worker.resuming = True
                self.workers[cid] = worker
                worker.start()
                continue
            runtime = ClusterRuntime(
                cid, self.store, self.clouds, self.credentials_for, self.home, self.region
            )
            lifecycle.reclaim_instances(runtime)
            if cluster["state"] == states.STARTING and not cluster["terminate_requested"]:
                log.info("%s: provisioning again after a restart", cid)
                self.store.notify(cid)
                continue
            log.warning("%s: ending a cluster left %s by a previous run", cid, cluster["state"])
            lifecycle.fail_after_restart(runtime, application_for(cluster))
