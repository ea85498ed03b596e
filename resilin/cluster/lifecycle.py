"""A cluster's life: a straight sequence of phases over its runtime, teardown always last.

    provision → join network → configure (the application) → run steps → teardown

Each phase moves the cluster's state and calls the cloud (resilin.clouds.provisioning), the
network (resilin.cluster.network) or the application (resilin.applications.base).  Once the
application is ready, a monitor runs the operations on a running cluster beside the steps
(resilin.cluster.operations).  Every way out goes through :func:`teardown`, which ends those
operations first and then releases every instance the cluster launched, so a failure at any
point leaves nothing running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from resilin.applications.base import Application
from resilin.clouds import known_hosts
from resilin.clouds.provisioning import ProvisioningFailed
from resilin.cluster import adoption, placement_report
from resilin.cluster import provision as provision_phase
from resilin.cluster.cluster_credentials import ClusterCredentials
from resilin.cluster.network import NetworkFailure
from resilin.cluster.node_health import ClusterMonitor
from resilin.cluster.operations import running_cluster_operations
from resilin.cluster.runtime import ClusterFailure, ClusterRuntime, TerminationRequested
from resilin.cluster.storage_sessions import StorageSessions
from resilin.jobflows import states
from resilin.jobflows.documents import ClusterDoc, StateReason
from resilin.jobflows.store import StateConflict
from resilin.steps.step_phase import run_steps

log = logging.getLogger(__name__)


class Lifecycle:
    """One cluster's life; the monitor it starts is stopped by its teardown."""

    def __init__(self, runtime: ClusterRuntime, application: Application) -> None:
        self.runtime = runtime
        self.application = application
        self.monitor: ClusterMonitor | None = None

    def run(self) -> None:
        self._live(self._start)

    def resume(self) -> None:
        """After a restart of Resilin: the running cluster taken back, then on as before."""
        self._live(self._take_back)

    def _start(self) -> None:
        provision_phase.provision(self.runtime)
        join_network(self.runtime)
        configure(self.runtime, self.application)

    def _take_back(self) -> None:
        self.runtime.progress("Resilin restarted: reaching the cluster's nodes again")
        try:
            adoption.adopt(self.runtime, self.application)
        except adoption.NotAdoptable as exc:
            raise ClusterFailure(
                states.INTERNAL_ERROR, f"Resilin was restarted and could not take the cluster back: {exc}"
            ) from None

    def _live(self, begin: Callable[[], None]) -> None:
        """``begin``, then the steps beside the running cluster's operations, until the cluster ends."""
        runtime = self.runtime
        try:
            begin()
            self.monitor = ClusterMonitor(runtime, running_cluster_operations(runtime, self.application))
            self.monitor.start()
            run_steps(runtime)
        except TerminationRequested:
            pass
        except ClusterFailure as failure:
            log.warning("%s failed: %s", runtime.cid, failure.message)
            runtime.request_termination(failure.code, failure.message)
        except Exception as exc:  # a bug or an unexpected cloud answer: the cluster still ends cleanly
            log.exception("%s: internal error", runtime.cid)
            runtime.request_termination(states.INTERNAL_ERROR, f"Internal error: {type(exc).__name__}: {exc}")
        finally:
            self.teardown()

    def teardown(self) -> None:
        teardown(self.runtime, self.application, self.monitor)


def join_network(runtime: ClusterRuntime) -> None:
    try:
        gateways = runtime.network.join(runtime.live_instances(), runtime.network_context())
    except NetworkFailure as exc:
        raise ClusterFailure(states.INSTANCE_FAILURE, str(exc)) from exc
    if gateways:
        runtime.phase("network_joined")
        runtime.progress(placement_report.overlay_message(gateways))


def configure(runtime: ClusterRuntime, application: Application) -> None:
    runtime.transition(states.BOOTSTRAPPING, states.MSG_BOOTSTRAPPING)
    runtime.progress(states.MSG_CONFIGURING)
    began = time.monotonic()
    instances = runtime.live_instances()
    timing = application.configure(runtime, instances)
    for instance in instances:
        runtime.set_instance_state(instance, states.INSTANCE_RUNNING)
    # Resilin's own share: the configuration phase less the waits for the application (the slowest
    # node's daemon starts, then readiness) and the user's bootstrap actions.
    own = time.monotonic() - began - timing.daemons - timing.bootstrap - timing.ready_wait

    def groups_running(c: ClusterDoc) -> None:
        now = time.time()
        # Ready to run steps from now on: the cluster's ReadyDateTime precedes any step's start.
        c["timeline"].setdefault("ready", now)
        for g in c["groups"]:
            if g["requested"]:
                g["state"] = states.GROUP_RUNNING
                g.setdefault("timeline", {})["ready"] = now
        c["configure_timing"] = {
            "resilin_seconds": round(own, 2),
            "daemon_start_seconds": round(timing.daemons, 2),
            "bootstrap_seconds": round(timing.bootstrap, 2),
            "ready_wait_seconds": round(timing.ready_wait, 2),
        }

    runtime.store.update_cluster(runtime.cid, groups_running)
    runtime.phase(f"{application.name}_ready")


def teardown(runtime: ClusterRuntime, application: Application, monitor: ClusterMonitor | None) -> None:
    cid = runtime.cid
    cluster = runtime.cluster
    if cluster["state"] not in states.FINAL_CLUSTER_STATES and not cluster["terminate_requested"]:
        runtime.request_termination(states.INTERNAL_ERROR, "Cluster worker stopped")
    # No node joins from now on; an operation under way ends before anything below looks at the nodes.
    runtime.sessions.close()
    runtime.cancelled.set()
    if monitor is not None:
        monitor.stop()
    # Steps are over as soon as the cluster is going: clients waiting on them learn it now.
    _cancel_active_steps(runtime)
    nodes = runtime.sessions.snapshot()
    started = time.monotonic()
    application.ship_logs(runtime, nodes)
    shipped = time.monotonic()
    # Before the instances go: the network's addresses, routes and rules are released with them.
    errors = leave_network(runtime)
    for node in nodes.values():
        node.close()
    left = time.monotonic()
    errors += runtime.provisioner.teardown()
    log.info(
        "%s: teardown: logs shipped in %.1fs, network left in %.1fs, instances released in %.1fs",
        cid, shipped - started, left - shipped, time.monotonic() - left,
    )  # fmt: skip
    known_hosts.remove(runtime.known_hosts, cid)
    reason = runtime.cluster.get("state_reason") or {}
    code, message = _member_reason(reason)
    for instance in runtime.store.instances_of(cid):
        runtime.set_instance_state(instance, states.INSTANCE_TERMINATED, code, message)
    _cancel_active_steps(runtime)  # any added while the instances went
    final = (
        states.TERMINATED
        if reason.get("code") in (states.USER_REQUEST, states.ALL_STEPS_COMPLETED) and not errors
        else states.TERMINATED_WITH_ERRORS
    )

    def finish(c: ClusterDoc) -> None:
        now = time.time()
        group_code = code if code in states.GROUP_REASON_CODES else states.CLUSTER_TERMINATED
        for g in c["groups"]:
            g["state"] = states.GROUP_TERMINATED
            g["running"] = 0
            g["state_reason"] = {"code": group_code, "message": message}
            g.setdefault("timeline", {}).setdefault("end", now)
        c.setdefault("phases", {})["terminated"] = now

    runtime.store.update_cluster(cid, finish)
    runtime.store.transition_cluster(cid, final)
    provision_phase.delete_key(runtime)
    ClusterCredentials(runtime.store.redis).revoke(cid)  # after the nodes' logs were shipped
    StorageSessions(runtime.store.redis).forget(cid)


def leave_network(runtime: ClusterRuntime) -> list[str]:
    try:
        return runtime.network.leave(runtime.network_context())
    except Exception as exc:  # never in the way of releasing the instances
        log.exception("%s: leaving the network failed", runtime.cid)
        return [f"leaving the network: {exc}"]


def _cancel_active_steps(runtime: ClusterRuntime) -> None:
    for step in runtime.store.steps_of(runtime.cid):
        if step["state"] in states.ACTIVE_STEP_STATES:
            try:
                runtime.store.transition_step(step["id"], states.CANCELLED)
            except StateConflict:
                pass  # it ended on its own at the same moment


def _member_reason(cluster_reason: StateReason) -> tuple[str, str]:
    """Why the cluster's instances ended, in the codes instances and groups use."""
    code = cluster_reason.get("code")
    if code in (states.USER_REQUEST, states.ALL_STEPS_COMPLETED, states.STEP_FAILURE, None):
        return states.CLUSTER_TERMINATED, states.MSG_JOB_FLOW_TERMINATED
    return code, cluster_reason.get("message") or states.MSG_JOB_FLOW_TERMINATED


# -- after a restart ------------------------------------------------------------------------
def reclaim_instances(runtime: ClusterRuntime) -> None:
    """Release whatever a previous run launched for this cluster, found by its tags (the network's
    addresses, routes and rules first, from what it recorded)."""
    leave_network(runtime)
    try:
        clouds: set[str | None] = set(runtime.provisioner.candidates(runtime.cluster))
    except ProvisioningFailed:
        clouds = {g["cloud"] for g in runtime.cluster["groups"]} | {
            c or None for g in runtime.cluster["groups"] for c in g.get("spread") or {}
        }
    runtime.provisioner.reclaim(clouds)


def fail_after_restart(runtime: ClusterRuntime, application: Application) -> None:
    runtime.request_termination(states.INTERNAL_ERROR, "Resilin was restarted while the cluster was running")
    teardown(runtime, application, None)
