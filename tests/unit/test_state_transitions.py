"""The transition tables of clusters, steps, instance groups and instances, as the store enforces them."""

from __future__ import annotations

import pytest

from resilin.jobflows import states
from resilin.jobflows.states import (
    ClusterState,
    InstanceGroupState,
    InstanceState,
    StateConflict,
    StepState,
)

TABLES = {
    "cluster": (ClusterState, states.CLUSTER_TRANSITIONS),
    "step": (StepState, states.STEP_TRANSITIONS),
    "instance group": (InstanceGroupState, states.GROUP_TRANSITIONS),
    "instance": (InstanceState, states.INSTANCE_TRANSITIONS),
}

ALLOWED = [
    (kind, current, new)
    for kind, (_, table) in TABLES.items()
    for current, following in table.items()
    for new in following
]

# One change per kind that its table refuses: ended documents stay ended, nothing goes back.
FORBIDDEN = [
    ("cluster", ClusterState.TERMINATED, ClusterState.RUNNING),
    ("cluster", ClusterState.WAITING, ClusterState.STARTING),
    ("step", StepState.COMPLETED, StepState.RUNNING),
    ("step", StepState.PENDING, StepState.COMPLETED),
    ("instance group", InstanceGroupState.TERMINATED, InstanceGroupState.RUNNING),
    ("instance group", InstanceGroupState.RUNNING, InstanceGroupState.BOOTSTRAPPING),
    ("instance", InstanceState.TERMINATED, InstanceState.RUNNING),
    ("instance", InstanceState.RUNNING, InstanceState.BOOTSTRAPPING),
]


@pytest.mark.parametrize("kind", TABLES)
def test_every_state_of_a_kind_has_a_row(kind):
    enum, table = TABLES[kind]
    assert set(table) == set(enum)
    assert all(new in enum for following in table.values() for new in following)


@pytest.mark.parametrize(("kind", "current", "new"), ALLOWED)
def test_allowed_transition_is_accepted(kind, current, new):
    table = TABLES[kind][1]
    # As the store sees them: the stored value is a plain string.
    states.require_transition(table, kind, str(current), new)


@pytest.mark.parametrize(("kind", "current", "new"), FORBIDDEN)
def test_forbidden_transition_is_refused(kind, current, new):
    table = TABLES[kind][1]
    with pytest.raises(StateConflict, match=f"{kind} cannot go from {current} to {new}"):
        states.require_transition(table, kind, str(current), new)


@pytest.mark.parametrize("kind", TABLES)
def test_staying_in_a_state_is_allowed(kind):
    enum, table = TABLES[kind]
    for state in enum:
        states.require_transition(table, kind, str(state), state)


def test_final_states_have_no_way_out():
    assert all(not states.CLUSTER_TRANSITIONS[s] for s in states.FINAL_CLUSTER_STATES)
    assert all(not states.STEP_TRANSITIONS[s] for s in states.FINAL_STEP_STATES)
    assert not states.GROUP_TRANSITIONS[InstanceGroupState.TERMINATED]
    assert not states.INSTANCE_TRANSITIONS[InstanceState.TERMINATED]


def test_group_changes_of_a_cluster_are_checked_per_group():
    before = {"ig-1": "RUNNING", "ig-2": "TERMINATED"}
    # A resize and a group added by the change (any first state) are fine.
    states.require_group_transitions(
        before,
        [
            {"id": "ig-1", "state": "RESIZING"},
            {"id": "ig-2", "state": "TERMINATED"},
            {"id": "ig-3", "state": "PROVISIONING"},
        ],
    )
    with pytest.raises(StateConflict, match="instance group ig-2 cannot go from TERMINATED to RUNNING"):
        states.require_group_transitions(before, [{"id": "ig-2", "state": "RUNNING"}])


def test_predecessors_are_the_states_a_state_may_follow():
    assert set(states.predecessors(states.INSTANCE_TRANSITIONS, "RUNNING")) == {
        InstanceState.PROVISIONING,
        InstanceState.BOOTSTRAPPING,
        InstanceState.RUNNING,
    }
    assert states.predecessors(states.INSTANCE_TRANSITIONS, "TERMINATED") == tuple(InstanceState)


def test_states_of_each_kind_are_the_stored_strings():
    # No migration: documents written before the enums compare and hash as the members do.
    assert ClusterState.RUNNING == StepState.RUNNING == "RUNNING"
    assert {"RUNNING": 1}[InstanceGroupState.RUNNING] == 1
    assert f"{InstanceState.AWAITING_FULFILLMENT}" == "AWAITING_FULFILLMENT"
    assert states.STEP_RUNNING is StepState.RUNNING
    assert states.GROUP_RUNNING is InstanceGroupState.RUNNING
