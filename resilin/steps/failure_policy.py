"""What a failed step does to the rest of its cluster: EMR's ActionOnFailure, with its exceptions.

* CONTINUE: nothing; the next step runs.
* CANCEL_AND_WAIT: the PENDING steps are cancelled; the cluster then waits if it is kept
  alive, and ends as its steps are done if not.
* TERMINATE_CLUSTER / TERMINATE_JOB_FLOW: the PENDING steps are cancelled and the cluster
  shuts down (STEP_FAILURE), unless it is termination-protected: a protected cluster is
  never shut down by a job-flow error; it waits instead, whatever KeepJobFlowAliveWhenNoSteps
  says, until the user adds steps or removes the protection and terminates it.
* With StepConcurrencyLevel above 1 (EMR only allows CONTINUE then, so these are steps
  submitted before the level was raised), CANCEL_AND_WAIT cancels nothing and
  TERMINATE_CLUSTER does not terminate, as EMR documents.
"""

from __future__ import annotations

from dataclasses import dataclass

from resilin.jobflows import states


@dataclass(frozen=True)
class FailureResponse:
    cancel_pending: bool = False
    terminate: bool = False
    hold: bool = False  # keep the cluster waiting even if it would otherwise end when idle


def respond_to_failure(action: str, concurrency: int, protected: bool) -> FailureResponse:
    if action == states.CONTINUE or concurrency > 1:
        return FailureResponse()
    if action == states.CANCEL_AND_WAIT:
        return FailureResponse(cancel_pending=True)
    if protected:
        return FailureResponse(cancel_pending=True, hold=True)
    return FailureResponse(cancel_pending=True, terminate=True)
