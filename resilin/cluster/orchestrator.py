"""Starts a worker for each cluster that has work, and recovers clusters after a restart."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from resilin.aws.sigv4 import Credentials
from resilin.cluster.cluster_worker import ClusterWorker, Placement
from resilin.jobflows import states
from resilin.jobflows.store import JobFlowStore

log = logging.getLogger(__name__)


class Orchestrator:
    def __init__(
        self,
        store: JobFlowStore,
        placement_for: Callable[[str | None], Placement],
        credentials_for: Callable[[str], Credentials],
        home: Path,
        region: str,
    ) -> None:
        self.store = store
        self.placement_for = placement_for
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
        worker = ClusterWorker(
            cid, self.store, self.placement_for, self.credentials_for, self.home, self.region
        )
        self.workers[cid] = worker
        worker.start()

    def recover(self) -> None:
        """Clusters left active by a previous run: clean up what they launched, then resume or end them.

        A cluster still STARTING is provisioned afresh; one further along cannot be resumed
        (its SSH sessions and running steps are gone), so it ends TERMINATED_WITH_ERRORS.
        """
        for cid in self.store.active_cluster_ids():
            cluster = self.store.get_cluster(cid)
            if cluster is None or cid in self.workers:
                continue
            worker = ClusterWorker(
                cid, self.store, self.placement_for, self.credentials_for, self.home, self.region
            )
            worker.reclaim_instances()
            if cluster["state"] == states.STARTING and not cluster["terminate_requested"]:
                log.info("%s: provisioning again after a restart", cid)
                self.store.notify(cid)
                continue
            log.warning("%s: ending a cluster left %s by a previous run", cid, cluster["state"])
            worker.fail_after_restart()
