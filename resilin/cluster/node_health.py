"""Watches a running cluster: every few seconds it runs the operations a running cluster may need
(resilin.cluster.operations: replace failed nodes, resize, reconfigure).

One monitor thread per cluster, started once the application is ready.  Teardown stops it
with :meth:`ClusterMonitor.stop`, which waits for the operation under way to end (cancelling
it: the operation stops at its next step, and commands it runs on nodes are interrupted), so
that nothing is added to the cluster once teardown looks at it.
"""

from __future__ import annotations

import logging
import threading

from resilin.cluster.operation import ClusterOperation
from resilin.cluster.runtime import ClusterRuntime

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0
STOP_GRACE = 1.0  # seconds a round may take to notice the stop before its commands are interrupted
# The longest an operation can outlast its cancellation: launching, reaching and joining a node.
STOP_TIMEOUT = 900.0


class ClusterMonitor(threading.Thread):
    def __init__(
        self, runtime: ClusterRuntime, operations: list[ClusterOperation], poll: float | None = None
    ) -> None:
        super().__init__(name=f"monitor-{runtime.cid}", daemon=True)
        self.runtime = runtime
        self.cid = runtime.cid
        self.operations = operations
        self.poll = POLL_SECONDS if poll is None else poll
        self._stopping = threading.Event()  # not _stop: Thread uses that name itself

    def stop(self) -> None:
        """Stop watching, and return once the operation under way (if any) has ended."""
        self._stopping.set()
        self.runtime.cancelled.set()
        if not self.is_alive() or threading.current_thread() is self:
            return
        self.join(STOP_GRACE)
        if self.is_alive():
            self.runtime.sessions.interrupt()
            self.join(STOP_TIMEOUT)
        if self.is_alive():
            log.error("%s: an operation did not end within %.0fs of teardown", self.cid, STOP_TIMEOUT)

    def _ending(self) -> bool:
        return self._stopping.is_set() or bool(self.runtime.cluster["terminate_requested"])

    def run(self) -> None:
        while not self._stopping.wait(self.poll):
            if self._ending():
                return
            try:
                for operation in self.operations:
                    if self._ending():
                        break
                    if operation.wanted(self.runtime):
                        operation.run(self.runtime)
            except Exception:  # keep watching whatever one round met
                log.exception("%s: monitor round failed", self.cid)
