"""The store refuses instance-group and instance changes their transition tables do not allow."""

from __future__ import annotations

import pytest

from resilin.jobflows import states
from resilin.jobflows.store import JobFlowStore, StateConflict


def _cluster(cid: str) -> dict:
    return {
        "id": cid,
        "account": "123456789012",
        "state": states.STARTING,
        "timeline": {"created": 1.0},
        "groups": [
            {"id": "ig-master", "instance_type": "m5.xlarge", "requested": 1, "state": "PROVISIONING"},
            {"id": "ig-core", "instance_type": "m5.xlarge", "requested": 2, "state": "PROVISIONING"},
        ],
        "terminate_requested": False,
    }


def _set_groups(state: str):
    def change(c: dict) -> None:
        for g in c["groups"]:
            g["state"] = state

    return change


def test_group_changes_follow_the_table(redis_client):
    store = JobFlowStore(redis_client)
    store.create_cluster(_cluster("j-GROUPS"))
    for state in ("BOOTSTRAPPING", "RUNNING", "RESIZING", "RUNNING", "TERMINATED"):
        store.update_cluster("j-GROUPS", _set_groups(state))
    with pytest.raises(StateConflict, match="instance group ig-master cannot go from TERMINATED to RUNNING"):
        store.update_cluster("j-GROUPS", _set_groups("RUNNING"))
    # Refused whole: nothing of the change was written.
    assert {g["state"] for g in store.get_cluster("j-GROUPS")["groups"]} == {"TERMINATED"}


def test_a_group_added_by_a_change_may_start_anywhere(redis_client):
    store = JobFlowStore(redis_client)
    store.create_cluster(_cluster("j-ADDED"))

    def add(c: dict) -> None:
        c["groups"].append(
            {"id": "ig-task", "instance_type": "m5.xlarge", "requested": 1, "state": "RESIZING"}
        )

    assert store.update_cluster("j-ADDED", add)["groups"][-1]["state"] == "RESIZING"


def test_instance_changes_follow_the_table(redis_client):
    store = JobFlowStore(redis_client)
    instance = {"id": "ci-1", "group_id": "ig-core", "role": "CORE", "state": "BOOTSTRAPPING"}
    store.put_instance("j-INST", instance)
    store.put_instance("j-INST", instance | {"state": "BOOTSTRAPPING", "hostname": "node1"})
    store.put_instance("j-INST", instance | {"state": "RUNNING"})
    store.put_instance("j-INST", instance | {"state": "TERMINATED"})
    store.put_instance("j-INST", instance | {"state": "TERMINATED", "state_reason": {"code": None}})
    with pytest.raises(StateConflict, match="instance ci-1 cannot go from TERMINATED to RUNNING"):
        store.put_instance("j-INST", instance | {"state": "RUNNING"})
    [stored] = store.instances_of("j-INST")
    assert stored["state"] == "TERMINATED" and stored["state_reason"] == {"code": None}
