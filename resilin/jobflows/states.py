"""States and state-change reasons of clusters and steps, as EMR names them."""

from __future__ import annotations

# Cluster states (ClusterState in the EMR model).
STARTING = "STARTING"
BOOTSTRAPPING = "BOOTSTRAPPING"
RUNNING = "RUNNING"
WAITING = "WAITING"
TERMINATING = "TERMINATING"
TERMINATED = "TERMINATED"
TERMINATED_WITH_ERRORS = "TERMINATED_WITH_ERRORS"

ACTIVE_CLUSTER_STATES = (STARTING, BOOTSTRAPPING, RUNNING, WAITING, TERMINATING)
FINAL_CLUSTER_STATES = (TERMINATED, TERMINATED_WITH_ERRORS)

# Cluster state-change reason codes.
INTERNAL_ERROR = "INTERNAL_ERROR"
VALIDATION_ERROR = "VALIDATION_ERROR"
INSTANCE_FAILURE = "INSTANCE_FAILURE"
BOOTSTRAP_FAILURE = "BOOTSTRAP_FAILURE"
USER_REQUEST = "USER_REQUEST"
STEP_FAILURE = "STEP_FAILURE"
ALL_STEPS_COMPLETED = "ALL_STEPS_COMPLETED"

# Instance-group and instance state-change reason codes (beyond the cluster's own).
CLUSTER_TERMINATED = "CLUSTER_TERMINATED"
GROUP_REASON_CODES = (INTERNAL_ERROR, VALIDATION_ERROR, INSTANCE_FAILURE, CLUSTER_TERMINATED)
INSTANCE_REASON_CODES = (*GROUP_REASON_CODES, BOOTSTRAP_FAILURE)

# The state-change messages EMR shows, where clients and people read them.
MSG_CONFIGURING = "Configuring cluster software"
MSG_BOOTSTRAPPING = "Running bootstrap actions"
MSG_RUNNING_STEP = "Running step"
MSG_READY = "Cluster ready to run steps."
MSG_READY_AFTER_COMPLETED = "Cluster ready after last step completed."
MSG_READY_AFTER_FAILED = "Cluster ready after last step failed."
MSG_READY_AFTER_CANCELLED = "Cluster ready after last step was cancelled."
MSG_STEPS_COMPLETED = "Steps completed"
MSG_STEP_FAILED = "Shut down as step failed"
MSG_USER_REQUEST = "Terminated by user request"
MSG_JOB_FLOW_TERMINATED = "Job flow terminated"

# Step states.
PENDING = "PENDING"
CANCEL_PENDING = "CANCEL_PENDING"
STEP_RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
CANCELLED = "CANCELLED"
FAILED = "FAILED"
INTERRUPTED = "INTERRUPTED"

ACTIVE_STEP_STATES = (PENDING, CANCEL_PENDING, STEP_RUNNING)
FINAL_STEP_STATES = (COMPLETED, CANCELLED, FAILED, INTERRUPTED)

# What a failed step does to the rest of the job flow.
TERMINATE_CLUSTER = "TERMINATE_CLUSTER"
TERMINATE_JOB_FLOW = "TERMINATE_JOB_FLOW"
CANCEL_AND_WAIT = "CANCEL_AND_WAIT"
CONTINUE = "CONTINUE"

# Instance-group and instance states.
GROUP_PROVISIONING = "PROVISIONING"
GROUP_BOOTSTRAPPING = "BOOTSTRAPPING"
GROUP_RUNNING = "RUNNING"
GROUP_RESIZING = "RESIZING"
GROUP_RECONFIGURING = "RECONFIGURING"
GROUP_TERMINATED = "TERMINATED"
INSTANCE_AWAITING = "AWAITING_FULFILLMENT"
INSTANCE_PROVISIONING = "PROVISIONING"
INSTANCE_BOOTSTRAPPING = "BOOTSTRAPPING"
INSTANCE_RUNNING = "RUNNING"
INSTANCE_TERMINATED = "TERMINATED"

# Which cluster states may follow which; the store refuses anything else.
CLUSTER_TRANSITIONS: dict[str, tuple[str, ...]] = {
    STARTING: (BOOTSTRAPPING, TERMINATING),
    BOOTSTRAPPING: (RUNNING, WAITING, TERMINATING),
    RUNNING: (WAITING, TERMINATING),
    WAITING: (RUNNING, TERMINATING),
    TERMINATING: (TERMINATED, TERMINATED_WITH_ERRORS),
    TERMINATED: (),
    TERMINATED_WITH_ERRORS: (),
}

STEP_TRANSITIONS: dict[str, tuple[str, ...]] = {
    PENDING: (STEP_RUNNING, CANCELLED, CANCEL_PENDING),
    # A running step asked to stop is CANCEL_PENDING until the worker has stopped it (or it ended).
    CANCEL_PENDING: (CANCELLED, STEP_RUNNING, COMPLETED, FAILED, INTERRUPTED),
    STEP_RUNNING: (COMPLETED, FAILED, CANCELLED, INTERRUPTED, CANCEL_PENDING),
    COMPLETED: (),
    CANCELLED: (),
    FAILED: (),
    INTERRUPTED: (),
}


def begin_termination(cluster: dict, code: str, message: str) -> None:
    """Mark ``cluster`` (a stored document) TERMINATING with ``code`` and ``message``, unless it
    has ended or its termination was already asked for (the first reason is the one kept)."""
    if cluster["terminate_requested"] or cluster["state"] in FINAL_CLUSTER_STATES:
        return
    cluster["terminate_requested"] = True
    cluster["state"] = TERMINATING
    cluster["state_reason"] = {"code": code, "message": message}
