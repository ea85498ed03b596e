"""A relocation cut short by a restart of Resilin: which way it is settled in each phase, and the
instance documents put back on the source, against the real store in Redis.  (The whole of it on
real clusters: tests/cluster/test_relocation.py.)"""

from __future__ import annotations

import pytest

from resilin.cluster.runtime import ClusterRuntime
from resilin.jobflows import states
from resilin.jobflows.service import EmrService
from resilin.jobflows.store import JobFlowStore
from resilin.migrate import recovery
from tests.service.cluster_harness import ACCOUNT, credentials_for, job_flow


def _no_cloud(name):
    raise KeyError(name)


@pytest.fixture
def moving(redis_client, tmp_path):
    """A cluster whose master stays in cloud a and whose core node is being moved to cloud b."""
    store = JobFlowStore(redis_client)
    cid = EmrService(store).run_job_flow(ACCOUNT, job_flow(core=1))["JobFlowId"]
    docs = {
        "master": ("i-master", "a", "MASTER", states.INSTANCE_RUNNING, None),
        "core-a": ("i-core-a", "a", "CORE", states.INSTANCE_RUNNING, None),
    }
    for ci, (ec2, cloud, role, state, _reason) in docs.items():
        _put(store, cid, ci, ec2, cloud, role, state)

    def relocation(c):
        c["relocation"] = {
            "destination": "b", "groups": {"CORE": ""}, "phase": "PENDING", "requested": 1.0, "progress": {},
            "source_instances": ["core-a"], "staying_instances": ["master"],
        }  # fmt: skip

    store.update_cluster(cid, relocation)
    return ClusterRuntime(cid, store, _no_cloud, credentials_for, tmp_path, "us-east-1")


def _put(store: JobFlowStore, cid: str, ci: str, ec2: str, cloud: str, role: str, state: str) -> None:
    store.put_instance(
        cid,
        {
            "id": ci,
            "ec2_id": ec2,
            "cloud": cloud,
            "role": role,
            "group_id": role,
            "state": state,
            "state_reason": None,
            "timeline": {"created": 1.0},
        },  # fmt: skip
    )


def _phase(runtime: ClusterRuntime, phase: str) -> None:
    runtime.store.update_cluster(runtime.cid, lambda c: c["relocation"].update(phase=phase))


def _swap(runtime: ClusterRuntime) -> None:
    """What the pipeline's REBUILDING does: the destination's instance in, the source's out."""
    _put(runtime.store, runtime.cid, "core-b", "i-core-b", "b", "CORE", states.INSTANCE_BOOTSTRAPPING)
    for doc in runtime.store.instances_of(runtime.cid):
        if doc["id"] == "core-a":
            doc["state"] = states.INSTANCE_TERMINATED
            doc["state_reason"] = {"code": None, "message": recovery.MOVED_MESSAGE}
            doc["timeline"]["end"] = 2.0
            runtime.store.put_instance(runtime.cid, doc)


def _states(runtime: ClusterRuntime) -> dict[str, str]:
    return {d["id"]: d["state"] for d in runtime.store.instances_of(runtime.cid)}


def test_a_move_not_begun_is_left_for_the_monitor(moving):
    assert recovery.settle_documents(moving) is None
    assert moving.cluster["relocation"]["phase"] == "PENDING"


@pytest.mark.parametrize(
    ("phase", "stopped"),
    [("PLANNING", False), ("LAUNCHING", False), ("QUIESCING", True), ("TRANSFERRING", True)],
)
def test_before_the_swap_the_source_stays_and_is_restarted_once_it_was_stopped(moving, phase, stopped):
    _phase(moving, phase)
    move = recovery.settle_documents(moving)
    assert move is not None and not move.completes
    assert move.source_stopped is stopped
    # The destination's instances were never the cluster's documents: the adoption releases them
    # as strays.  The source's are untouched.
    assert _states(moving) == {"master": states.INSTANCE_RUNNING, "core-a": states.INSTANCE_RUNNING}


def test_after_the_swap_the_documents_name_the_source_again(moving):
    _phase(moving, "STARTING")
    _swap(moving)
    move = recovery.settle_documents(moving)
    assert move is not None and move.source_stopped and not move.completes
    now = {d["id"]: d for d in moving.store.instances_of(moving.cid)}
    assert now["core-a"]["state"] == states.INSTANCE_RUNNING
    assert "end" not in now["core-a"]["timeline"] and not now["core-a"].get("state_reason")
    assert now["core-b"]["state"] == states.INSTANCE_TERMINATED
    assert now["core-b"]["state_reason"]["message"] == "Relocation rolled back"
    assert now["master"]["state"] == states.INSTANCE_RUNNING  # it stayed, and stays


def test_from_releasing_on_the_move_is_completed(moving):
    _phase(moving, "RELEASING")
    _swap(moving)
    move = recovery.settle_documents(moving)
    assert move is not None and move.completes and not move.source_stopped
    assert _states(moving)["core-a"] == states.INSTANCE_TERMINATED
    assert _states(moving)["core-b"] == states.INSTANCE_BOOTSTRAPPING
