"""States, state-change reasons and transition tables of EMR's documents, one enum per kind.

Each kind has its own ``StrEnum``: ``RUNNING`` is a cluster's, a step's, a group's and an
instance's state, but not the same value of the same type.  The members compare equal to (and
hash as) the plain strings that the stored documents hold, so documents need no migration and a
state read back from Redis compares with the enum directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from resilin.jobflows.documents import ClusterDoc


class ClusterState(StrEnum):
    """ClusterState in the EMR model."""

    STARTING = "STARTING"
    BOOTSTRAPPING = "BOOTSTRAPPING"
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"
    TERMINATED_WITH_ERRORS = "TERMINATED_WITH_ERRORS"


class StepState(StrEnum):
    """StepState in the EMR model."""

    PENDING = "PENDING"
    CANCEL_PENDING = "CANCEL_PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    INTERRUPTED = "INTERRUPTED"


class InstanceGroupState(StrEnum):
    """The InstanceGroupState values Resilin uses (instance fleets are stored as groups too)."""

    PROVISIONING = "PROVISIONING"
    BOOTSTRAPPING = "BOOTSTRAPPING"
    RUNNING = "RUNNING"
    RESIZING = "RESIZING"
    RECONFIGURING = "RECONFIGURING"
    # A resize the cloud or Hadoop refused: the group is left alone until it is modified again.
    ARRESTED = "ARRESTED"
    TERMINATED = "TERMINATED"


class InstanceState(StrEnum):
    """InstanceState in the EMR model."""

    AWAITING_FULFILLMENT = "AWAITING_FULFILLMENT"
    PROVISIONING = "PROVISIONING"
    BOOTSTRAPPING = "BOOTSTRAPPING"
    RUNNING = "RUNNING"
    TERMINATED = "TERMINATED"


class JobFlowExecutionState(StrEnum):
    """The older DescribeJobFlows view of a cluster's state."""

    STARTING = "STARTING"
    BOOTSTRAPPING = "BOOTSTRAPPING"
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    TERMINATED = "TERMINATED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class AutoScalingPolicyState(StrEnum):
    """AutoScalingPolicyState: PENDING as put, ATTACHED once the running cluster evaluates it."""

    PENDING = "PENDING"
    ATTACHED = "ATTACHED"


class CancelStepsRequestStatus(StrEnum):
    """The outcome CancelSteps reports for each step."""

    SUBMITTED = "SUBMITTED"
    FAILED = "FAILED"


class ActionOnFailure(StrEnum):
    """What a failed step does to the rest of the job flow."""

    TERMINATE_JOB_FLOW = "TERMINATE_JOB_FLOW"
    TERMINATE_CLUSTER = "TERMINATE_CLUSTER"
    CANCEL_AND_WAIT = "CANCEL_AND_WAIT"
    CONTINUE = "CONTINUE"


class ClusterStateChangeReasonCode(StrEnum):
    INTERNAL_ERROR = "INTERNAL_ERROR"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    INSTANCE_FAILURE = "INSTANCE_FAILURE"
    BOOTSTRAP_FAILURE = "BOOTSTRAP_FAILURE"
    USER_REQUEST = "USER_REQUEST"
    STEP_FAILURE = "STEP_FAILURE"
    ALL_STEPS_COMPLETED = "ALL_STEPS_COMPLETED"


class InstanceGroupStateChangeReasonCode(StrEnum):
    INTERNAL_ERROR = "INTERNAL_ERROR"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    INSTANCE_FAILURE = "INSTANCE_FAILURE"
    CLUSTER_TERMINATED = "CLUSTER_TERMINATED"


class InstanceStateChangeReasonCode(StrEnum):
    INTERNAL_ERROR = "INTERNAL_ERROR"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    INSTANCE_FAILURE = "INSTANCE_FAILURE"
    CLUSTER_TERMINATED = "CLUSTER_TERMINATED"
    BOOTSTRAP_FAILURE = "BOOTSTRAP_FAILURE"


# The module-level names the rest of the code has always used; each is its kind's member.
STARTING = ClusterState.STARTING
BOOTSTRAPPING = ClusterState.BOOTSTRAPPING
RUNNING = ClusterState.RUNNING
WAITING = ClusterState.WAITING
TERMINATING = ClusterState.TERMINATING
TERMINATED = ClusterState.TERMINATED
TERMINATED_WITH_ERRORS = ClusterState.TERMINATED_WITH_ERRORS

ACTIVE_CLUSTER_STATES = (STARTING, BOOTSTRAPPING, RUNNING, WAITING, TERMINATING)
FINAL_CLUSTER_STATES = (TERMINATED, TERMINATED_WITH_ERRORS)

# Cluster state-change reason codes.
INTERNAL_ERROR = ClusterStateChangeReasonCode.INTERNAL_ERROR
VALIDATION_ERROR = ClusterStateChangeReasonCode.VALIDATION_ERROR
INSTANCE_FAILURE = ClusterStateChangeReasonCode.INSTANCE_FAILURE
BOOTSTRAP_FAILURE = ClusterStateChangeReasonCode.BOOTSTRAP_FAILURE
USER_REQUEST = ClusterStateChangeReasonCode.USER_REQUEST
STEP_FAILURE = ClusterStateChangeReasonCode.STEP_FAILURE
ALL_STEPS_COMPLETED = ClusterStateChangeReasonCode.ALL_STEPS_COMPLETED

# Instance-group and instance state-change reason codes (beyond the cluster's own).
CLUSTER_TERMINATED = InstanceGroupStateChangeReasonCode.CLUSTER_TERMINATED
GROUP_REASON_CODES = tuple(InstanceGroupStateChangeReasonCode)
INSTANCE_REASON_CODES = tuple(InstanceStateChangeReasonCode)

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
PENDING = StepState.PENDING
CANCEL_PENDING = StepState.CANCEL_PENDING
STEP_RUNNING = StepState.RUNNING
COMPLETED = StepState.COMPLETED
CANCELLED = StepState.CANCELLED
FAILED = StepState.FAILED
INTERRUPTED = StepState.INTERRUPTED

ACTIVE_STEP_STATES = (PENDING, CANCEL_PENDING, STEP_RUNNING)
FINAL_STEP_STATES = (COMPLETED, CANCELLED, FAILED, INTERRUPTED)

TERMINATE_CLUSTER = ActionOnFailure.TERMINATE_CLUSTER
TERMINATE_JOB_FLOW = ActionOnFailure.TERMINATE_JOB_FLOW
CANCEL_AND_WAIT = ActionOnFailure.CANCEL_AND_WAIT
CONTINUE = ActionOnFailure.CONTINUE

# Instance-group and instance states.
GROUP_PROVISIONING = InstanceGroupState.PROVISIONING
GROUP_BOOTSTRAPPING = InstanceGroupState.BOOTSTRAPPING
GROUP_RUNNING = InstanceGroupState.RUNNING
GROUP_RESIZING = InstanceGroupState.RESIZING
GROUP_RECONFIGURING = InstanceGroupState.RECONFIGURING
GROUP_ARRESTED = InstanceGroupState.ARRESTED
GROUP_TERMINATED = InstanceGroupState.TERMINATED
INSTANCE_AWAITING = InstanceState.AWAITING_FULFILLMENT
INSTANCE_PROVISIONING = InstanceState.PROVISIONING
INSTANCE_BOOTSTRAPPING = InstanceState.BOOTSTRAPPING
INSTANCE_RUNNING = InstanceState.RUNNING
INSTANCE_TERMINATED = InstanceState.TERMINATED

# Which states may follow which; the store refuses anything else (staying in a state is allowed).
CLUSTER_TRANSITIONS: dict[ClusterState, tuple[ClusterState, ...]] = {
    STARTING: (BOOTSTRAPPING, TERMINATING),
    BOOTSTRAPPING: (RUNNING, WAITING, TERMINATING),
    RUNNING: (WAITING, TERMINATING),
    WAITING: (RUNNING, TERMINATING),
    TERMINATING: (TERMINATED, TERMINATED_WITH_ERRORS),
    TERMINATED: (),
    TERMINATED_WITH_ERRORS: (),
}

STEP_TRANSITIONS: dict[StepState, tuple[StepState, ...]] = {
    PENDING: (STEP_RUNNING, CANCELLED, CANCEL_PENDING),
    # A running step asked to stop is CANCEL_PENDING until the worker has stopped it (or it ended).
    CANCEL_PENDING: (CANCELLED, STEP_RUNNING, COMPLETED, FAILED, INTERRUPTED),
    STEP_RUNNING: (COMPLETED, FAILED, CANCELLED, INTERRUPTED, CANCEL_PENDING),
    COMPLETED: (),
    CANCELLED: (),
    FAILED: (),
    INTERRUPTED: (),
}

_G = InstanceGroupState
# A group is provisioned with its cluster, or added to a running one and grown by the monitor;
# once its cluster runs, ModifyInstanceGroups may resize or reconfigure it from any live state,
# and a failed resize arrests it until the next modification.  Nothing leaves TERMINATED, and
# no group goes back to PROVISIONING or BOOTSTRAPPING.
GROUP_TRANSITIONS: dict[InstanceGroupState, tuple[InstanceGroupState, ...]] = {
    _G.PROVISIONING: (
        _G.BOOTSTRAPPING,
        _G.RUNNING,
        _G.RESIZING,
        _G.RECONFIGURING,
        _G.ARRESTED,
        _G.TERMINATED,
    ),
    _G.BOOTSTRAPPING: (_G.RUNNING, _G.RESIZING, _G.RECONFIGURING, _G.ARRESTED, _G.TERMINATED),
    _G.RUNNING: (_G.RESIZING, _G.RECONFIGURING, _G.ARRESTED, _G.TERMINATED),
    _G.RESIZING: (_G.RUNNING, _G.RECONFIGURING, _G.ARRESTED, _G.TERMINATED),
    _G.RECONFIGURING: (_G.RUNNING, _G.RESIZING, _G.ARRESTED, _G.TERMINATED),
    _G.ARRESTED: (_G.RUNNING, _G.RESIZING, _G.RECONFIGURING, _G.TERMINATED),
    _G.TERMINATED: (),
}

_I = InstanceState
INSTANCE_TRANSITIONS: dict[InstanceState, tuple[InstanceState, ...]] = {
    _I.AWAITING_FULFILLMENT: (_I.PROVISIONING, _I.BOOTSTRAPPING, _I.TERMINATED),
    _I.PROVISIONING: (_I.BOOTSTRAPPING, _I.RUNNING, _I.TERMINATED),
    _I.BOOTSTRAPPING: (_I.RUNNING, _I.TERMINATED),
    _I.RUNNING: (_I.TERMINATED,),
    _I.TERMINATED: (),
}


S = TypeVar("S", bound=StrEnum)


class StateConflict(Exception):
    """A state change that the state machine does not allow from the current state."""


def may_follow(table: Mapping[S, tuple[S, ...]], current: str, new: str) -> bool:
    """Whether ``new`` may follow ``current`` in ``table`` (staying in a state always may)."""
    # Looked up by equality: ``current`` is the plain string a stored document holds.
    return new == current or any(state == current and new in following for state, following in table.items())


def predecessors(table: Mapping[S, tuple[S, ...]], new: str) -> tuple[S, ...]:
    """The states ``new`` may follow in ``table``, itself included."""
    return tuple(state for state, following in table.items() if state == new or new in following)


def require_transition(table: Mapping[S, tuple[S, ...]], what: str, current: str, new: str) -> None:
    """Raise StateConflict unless ``new`` may follow ``current`` for ``what`` (e.g. "step s-1")."""
    if not may_follow(table, current, new):
        raise StateConflict(f"{what} cannot go from {current} to {new}")


def require_group_transitions(before: Mapping[str, str], groups: Iterable[Mapping[str, Any]]) -> None:
    """Raise StateConflict if one of ``groups`` (a cluster's, after a change) left the state
    it had in ``before`` (group id -> state) for one its table does not allow.  A group that
    ``before`` lacks was added by the change and may start in any state."""
    for group in groups:
        current = before.get(group["id"])
        if current is not None:
            require_transition(GROUP_TRANSITIONS, f"instance group {group['id']}", current, group["state"])


def begin_termination(cluster: ClusterDoc, code: str, message: str) -> None:
    """Mark ``cluster`` (a stored document) TERMINATING with ``code`` and ``message``, unless it
    has ended or its termination was already asked for (the first reason is the one kept)."""
    if cluster["terminate_requested"] or cluster["state"] in FINAL_CLUSTER_STATES:
        return
    cluster["terminate_requested"] = True
    cluster["state"] = TERMINATING
    cluster["state_reason"] = {"code": code, "message": message}
