"""The phase of a cluster's life in which it runs steps, until it has to end.

It ends when its steps are done (no keep-alive), a step failure shuts it down
(ActionOnFailure, see resilin.steps.failure_policy), it idled past its auto-termination
policy, or a user terminated it.  Steps run on the master (resilin.steps.step_scheduler);
their logs are copied into Resilin's home when they end.
"""

from __future__ import annotations

import logging
from pathlib import Path

from resilin.clouds.ssh import Node, SshError
from resilin.cluster.idle_termination import IdleClock
from resilin.cluster.runtime import ClusterRuntime, TerminationRequested
from resilin.jobflows import states
from resilin.jobflows.documents import StepDoc
from resilin.steps import commands as step_scripts
from resilin.steps.step_scheduler import StepScheduler

log = logging.getLogger(__name__)


def run_steps(runtime: ClusterRuntime) -> None:
    """Run steps until the cluster has to end (TerminationRequested).

    Steps are looked for only now that the cluster is ready, so steps added while it was
    starting (as mrjob adds them right after RunJobFlow) run even without keep-alive.
    """
    logs = StepLogs(runtime)
    scheduler = StepScheduler(
        runtime.store, runtime.cid, runtime.master, logs.keep, logs.log_file, runtime.wake.set
    )
    scheduler.reattach()  # steps still running on the master after Resilin restarted
    idle = IdleClock()
    try:
        while True:
            runtime.check_termination()
            cluster = runtime.cluster
            verdict = scheduler.tick(cluster)
            if verdict.terminate:
                runtime.request_termination(states.STEP_FAILURE, states.MSG_STEP_FAILED)
                raise TerminationRequested()
            if verdict.running:
                idle.reset()
                _set_state(runtime, states.RUNNING, verdict.message)
            elif not cluster["keep_alive"] and not verdict.hold:
                if end_unless_steps_pending(runtime, states.ALL_STEPS_COMPLETED, states.MSG_STEPS_COMPLETED):
                    raise TerminationRequested()
                continue  # a step arrived at this very moment: run it
            else:
                _set_state(runtime, states.WAITING, verdict.message)
                # Termination protection also keeps the auto-termination policy from ending the cluster.
                # A move in progress is not idleness.
                if (
                    not cluster["termination_protected"]
                    and not cluster.get("relocation")
                    and idle.expired(cluster, runtime.master(), runtime.master_instance()["private_ip"])
                ):
                    message = (
                        f"Auto-terminated: the cluster was idle for more than the "
                        f"{idle.timeout(cluster)} seconds of its auto-termination policy"
                    )
                    if end_unless_steps_pending(runtime, states.ALL_STEPS_COMPLETED, message):
                        raise TerminationRequested()
                    continue
            runtime.wake.wait(1.0)
            runtime.wake.clear()
    finally:
        scheduler.abandon()


def _set_state(runtime: ClusterRuntime, state: str, message: str) -> None:
    """Move to ``state`` with ``message`` unless the cluster already shows exactly that."""
    cluster = runtime.cluster
    if cluster["state"] == state and (cluster.get("state_reason") or {}).get("message") == message:
        return
    runtime.transition(state, message)


def end_unless_steps_pending(runtime: ClusterRuntime, code: str, message: str) -> bool:
    """Start terminating with ``code`` unless a step is PENDING (atomically with AddJobFlowSteps)."""
    ended = runtime.store.terminate_if_no_steps_pending(
        runtime.cid, lambda c: states.begin_termination(c, code, message)
    )
    if ended:
        log.info("%s: %s", runtime.cid, message)
    return ended


class StepLogs:
    """A step's logs: copied from the master into Resilin's home, and where its log file is."""

    def __init__(self, runtime: ClusterRuntime) -> None:
        self.runtime = runtime

    def log_file(self, sid: str) -> str:
        log_uri = self.runtime.cluster.get("log_uri")
        if log_uri:
            return f"{log_uri.rstrip('/')}/{self.runtime.cid}/steps/{sid}/stderr.gz"
        return str(self.directory(sid) / "stderr")

    def directory(self, sid: str) -> Path:
        return self.runtime.home / "logs" / self.runtime.cid / "steps" / sid

    def keep(self, master: Node, sid: str) -> None:
        """Copy the step's logs from the master into Resilin's home."""
        target = self.directory(sid)
        target.mkdir(parents=True, exist_ok=True)
        for name, path in step_scripts.log_paths(sid).items():
            try:
                (target / name).write_bytes(master.read_file(path))
            except (OSError, SshError) as exc:
                log.warning("%s: could not fetch %s of step %s: %s", self.runtime.cid, name, sid, exc)
        self._record_applications(sid)

    def _record_applications(self, sid: str) -> None:
        logs = self.directory(sid)
        texts = [(logs / n).read_text(errors="replace") for n in ("stderr", "syslog") if (logs / n).exists()]
        apps = step_scripts.application_ids(*texts)

        def change(step: StepDoc) -> None:
            step["yarn_application_ids"] = apps

        self.runtime.store.update_step(sid, change)
