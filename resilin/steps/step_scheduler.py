"""Which of a cluster's steps run, when, and what their ends do to the cluster.

Called by the cluster worker about once a second.  Each call reaps the steps that
ended, kills those the API put in CANCEL_PENDING, applies ActionOnFailure, and starts
PENDING steps in the order they were added while fewer than StepConcurrencyLevel run.
It answers what the cluster is doing; the worker turns that into cluster states.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from resilin.clouds.ssh import Node
from resilin.jobflows import states
from resilin.jobflows.documents import ClusterDoc, StepDoc
from resilin.jobflows.store import JobFlowStore, StateConflict
from resilin.steps import commands as step_scripts
from resilin.steps.failure_policy import respond_to_failure
from resilin.steps.running_step import RunningStep

log = logging.getLogger(__name__)

_READY_AFTER: dict[str | None, str] = {
    None: states.MSG_READY,
    states.COMPLETED: states.MSG_READY_AFTER_COMPLETED,
    states.FAILED: states.MSG_READY_AFTER_FAILED,
    states.CANCELLED: states.MSG_READY_AFTER_CANCELLED,
}


@dataclass(frozen=True)
class Verdict:
    running: bool  # some step runs: the cluster is RUNNING
    message: str  # the cluster's state-change message
    terminate: bool = False  # a step failure shuts the cluster down (STEP_FAILURE)
    hold: bool = False  # stay WAITING even without keep-alive (protected cluster after a failure)


class StepScheduler:
    def __init__(
        self,
        store: JobFlowStore,
        cluster_id: str,
        master: Callable[[], Node],
        keep_logs: Callable[[Node, str], None],
        log_file: Callable[[str], str],
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.cid = cluster_id
        self.master = master
        self.keep_logs = keep_logs
        self.log_file = log_file
        self.wake = wake  # called as a running step ends, so that the next tick comes at once
        self.running: dict[str, RunningStep] = {}
        self.last_end: str | None = None  # how the step that ended last ended
        self.hold = False
        self.terminate = False  # a failure asked for the cluster to shut down

    def tick(self, cluster: ClusterDoc) -> Verdict:
        steps = {s["id"]: s for s in self.store.steps_of(self.cid)}
        for sid, runner in list(self.running.items()):
            if runner.done:
                del self.running[sid]
                self._finish(cluster, steps.get(sid), runner)
        if self.terminate:
            return Verdict(running=False, message=states.MSG_STEP_FAILED, terminate=True)
        steps = {s["id"]: s for s in self.store.steps_of(self.cid)}
        for sid, step in steps.items():
            if step["state"] != states.CANCEL_PENDING:
                continue
            if sid in self.running:
                self.running[sid].cancel()
            else:  # asked to cancel before it ever ran
                self._end(sid, states.CANCELLED)
        # A cluster being relocated starts no step: the move waits for a step boundary, and steps
        # added meanwhile wait for the move.
        relocating = bool(cluster.get("relocation"))
        if not relocating:
            self._start_pending(cluster, [s for s in steps.values() if s["state"] == states.PENDING])
        if self.terminate:
            return Verdict(running=False, message=states.MSG_STEP_FAILED, terminate=True)
        if self.running:
            return Verdict(running=True, message=states.MSG_RUNNING_STEP)
        return Verdict(running=False, message=_READY_AFTER[self.last_end], hold=self.hold or relocating)

    def reattach(self) -> None:
        """Follow the steps an earlier run of Resilin left running (or being cancelled) on the
        master: their scripts outlive the SSH session that started them."""
        for step in self.store.steps_of(self.cid):
            if (
                step["state"] in (states.STEP_RUNNING, states.CANCEL_PENDING)
                and step["id"] not in self.running
            ):
                if step["state"] == states.CANCEL_PENDING and not step["timeline"].get("start"):
                    continue  # never started: the next tick cancels it
                self.running[step["id"]] = RunningStep.reattach(step["id"], self.master(), self.wake)
                log.info("%s: step %s followed again after a restart", self.cid, step["id"])

    # -- starting -------------------------------------------------------
    def _start_pending(self, cluster: ClusterDoc, pending: list[StepDoc]) -> None:
        level = max(1, int(cluster.get("step_concurrency_level") or 1))
        for step in pending:
            if len(self.running) >= level or self.terminate:
                return
            self._start(cluster, step)

    def _start(self, cluster: ClusterDoc, step: StepDoc) -> None:
        sid = step["id"]
        try:
            script = step_scripts.step_script(step, cluster.get("log_uri"), self.cid)
        except ValueError as exc:
            self._claim(sid)
            self._end(sid, states.FAILED, failure={"reason": "Invalid step", "message": str(exc)})
            self._after_failure(cluster, step)
            return
        if not self._claim(sid):
            return
        self.hold = False  # new work: a protected cluster's hold after a failure is over
        self.running[sid] = RunningStep(sid, self.master(), script, self.wake)
        log.info("%s: step %s (%s) started", self.cid, sid, step["name"])

    def _claim(self, sid: str) -> bool:
        """PENDING → RUNNING; False if the step was cancelled at the same moment."""
        try:
            self.store.transition_step(sid, states.STEP_RUNNING)
            return True
        except StateConflict:
            return False

    # -- ending ---------------------------------------------------------
    def _finish(self, cluster: ClusterDoc, step: StepDoc | None, runner: RunningStep) -> None:
        """Record how a step ended, and act on its failure."""
        sid = runner.step_id
        master = self.master()
        self.keep_logs(master, sid)
        cancelling = runner.killed or (step is not None and step["state"] == states.CANCEL_PENDING)
        if runner.succeeded and not runner.killed:
            self._end(sid, states.COMPLETED, exit_status=0)
            return
        if cancelling:
            self._end(sid, states.CANCELLED)
            return
        result = runner.result
        if result is None:
            failure = {"reason": "Lost contact with the master", "message": str(runner.error)}
        else:
            failure = {
                "reason": "Unknown Error.",
                "message": f"Step failed with exitCode {result.exit_status}.",
                "log_file": self.log_file(sid),
            }
        self._end(sid, states.FAILED, failure=failure, exit_status=getattr(result, "exit_status", None))
        if step is not None:
            self._after_failure(cluster, step)

    def _after_failure(self, cluster: ClusterDoc, step: StepDoc) -> None:
        response = respond_to_failure(
            step["action_on_failure"],
            int(cluster.get("step_concurrency_level") or 1),
            bool(cluster.get("termination_protected")),
        )
        if response.cancel_pending:
            for other in self.store.steps_of(self.cid):
                if (
                    other["state"] in (states.PENDING, states.CANCEL_PENDING)
                    and other["id"] not in self.running
                ):
                    self._end(other["id"], states.CANCELLED, last=False)
        if response.hold:
            self.hold = True
        if response.terminate:
            self.terminate = True

    def _end(self, sid: str, state: str, last: bool = True, **fields: Any) -> None:
        try:
            self.store.transition_step(sid, state, **fields)
        except StateConflict as exc:  # the API changed it first (e.g. cancelled it)
            log.info("%s: %s", self.cid, exc)
            return
        if last:
            self.last_end = state
        log.info("%s: step %s %s", self.cid, sid, state)

    def abandon(self) -> None:
        """The cluster is ending: its instances go, and the steps' SSH channels with them."""
        self.running.clear()
