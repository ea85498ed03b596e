"""What the operations on running clusters record for the cluster worker, against a real Redis server.

Their effect on real clusters (steps killed, clusters auto-terminated, …) is tested in
test_cluster_semantics.py; here: what each records, and that bad requests change nothing.
"""

import pytest

from resilin.errors import InvalidRequest, ValidationError
from resilin.jobflows import states
from resilin.jobflows.service import EmrService
from resilin.jobflows.store import JobFlowStore

ACCOUNT = "111111111111"


def _step(name: str) -> dict:
    return {"Name": name, "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["true"]}}


@pytest.fixture
def service(redis_client):
    return EmrService(JobFlowStore(redis_client))


def _run(service, **extra) -> str:
    params = {
        "Name": "ops",
        "Instances": {
            "MasterInstanceType": "m5.xlarge",
            "InstanceCount": 1,
            "KeepJobFlowAliveWhenNoSteps": True,
        },
        "Steps": [_step("first"), _step("second"), _step("third")],
    } | extra
    return service.run_job_flow(ACCOUNT, params)["JobFlowId"]


def test_cancel_steps_cancels_pending_and_asks_running_ones_to_stop(service):
    cid = _run(service)
    first, second, third = service.store.step_ids(cid)
    service.store.transition_step(first, states.STEP_RUNNING)
    service.store.transition_step(third, states.CANCELLED)
    infos = service.cancel_steps(
        ACCOUNT, {"ClusterId": cid, "StepIds": [first, second, third, "s-NOSUCHSTEP"]}
    )
    by_id = {i["StepId"]: i for i in infos["CancelStepsInfoList"]}
    assert by_id[first]["Status"] == by_id[second]["Status"] == "SUBMITTED"
    assert by_id[third]["Status"] == by_id["s-NOSUCHSTEP"]["Status"] == "FAILED"
    assert "CANCELLED" in by_id[third]["Reason"]
    assert service.store.get_step(first)["state"] == states.CANCEL_PENDING  # the worker kills it
    assert service.store.get_step(second)["state"] == states.CANCELLED


def test_modify_cluster_sets_the_step_concurrency_level_within_limits(service):
    cid = _run(service)
    assert service.modify_cluster(ACCOUNT, {"ClusterId": cid, "StepConcurrencyLevel": 4}) == {
        "StepConcurrencyLevel": 4
    }
    for bad in (0, 257):
        with pytest.raises(ValidationError):
            service.modify_cluster(ACCOUNT, {"ClusterId": cid, "StepConcurrencyLevel": bad})
    assert service.store.get_cluster(cid)["step_concurrency_level"] == 4


def test_auto_termination_policy_put_get_remove_and_at_creation(service):
    cid = _run(service)
    assert service.get_auto_termination_policy(ACCOUNT, {"ClusterId": cid}) == {}
    service.put_auto_termination_policy(
        ACCOUNT, {"ClusterId": cid, "AutoTerminationPolicy": {"IdleTimeout": 120}}
    )
    assert service.get_auto_termination_policy(ACCOUNT, {"ClusterId": cid}) == {
        "AutoTerminationPolicy": {"IdleTimeout": 120}
    }
    for bad in (59, 604801):
        with pytest.raises(ValidationError):
            service.put_auto_termination_policy(
                ACCOUNT, {"ClusterId": cid, "AutoTerminationPolicy": {"IdleTimeout": bad}}
            )
    assert service.store.get_cluster(cid)["auto_termination_idle_timeout"] == 120
    service.remove_auto_termination_policy(ACCOUNT, {"ClusterId": cid})
    assert "auto_termination_idle_timeout" not in service.store.get_cluster(cid)
    created = _run(service, AutoTerminationPolicy={"IdleTimeout": 600})
    assert service.store.get_cluster(created)["auto_termination_idle_timeout"] == 600
    with pytest.raises(ValidationError):
        _run(service, AutoTerminationPolicy={"IdleTimeout": 10})


def test_flags_change_for_every_cluster_named_or_for_none(service):
    one, two = _run(service), _run(service)
    service.set_termination_protection(ACCOUNT, {"JobFlowIds": [one, two], "TerminationProtected": True})
    assert service.store.get_cluster(one)["termination_protected"] is True
    assert service.store.get_cluster(two)["termination_protected"] is True
    with pytest.raises(InvalidRequest):
        service.set_keep_job_flow_alive_when_no_steps(
            ACCOUNT, {"JobFlowIds": [one, "j-NOSUCHCLUSTER"], "KeepJobFlowAliveWhenNoSteps": False}
        )
    assert service.store.get_cluster(one)["keep_alive"] is True  # nothing changed
    with pytest.raises(InvalidRequest):  # another account's cluster is not there for it
        service.set_termination_protection(
            "222222222222", {"JobFlowIds": [one], "TerminationProtected": False}
        )


def test_instance_groups_and_instances_as_the_worker_records_them(service):
    cid = _run(service)
    (group,) = service.list_instance_groups(ACCOUNT, {"ClusterId": cid})["InstanceGroups"]
    assert group["Status"]["State"] == "PROVISIONING"
    assert group["InstanceGroupType"] == "MASTER" and group["RequestedInstanceCount"] == 1
    service.store.put_instance(
        cid,
        {
            "id": "ci-ONE",
            "ec2_id": "i-0123",
            "group_id": group["Id"],
            "role": "MASTER",
            "instance_type": "m5.xlarge",
            "private_ip": "10.0.0.2",
            "public_ip": "10.0.0.2",
            "public_dns": "10.0.0.2",
            "private_dns": "ip-10-0-0-2",
            "state": states.INSTANCE_RUNNING,
            "state_reason": {"code": None, "message": None},
            "timeline": {"created": 1700000000.0, "ready": 1700000100.0},
        },
    )
    (instance,) = service.list_instances(ACCOUNT, {"ClusterId": cid, "InstanceStates": ["RUNNING"]})[
        "Instances"
    ]
    assert instance["Ec2InstanceId"] == "i-0123" and instance["Status"]["State"] == "RUNNING"
    assert (
        service.list_instances(ACCOUNT, {"ClusterId": cid, "InstanceGroupTypes": ["CORE"]})["Instances"] == []
    )
    with pytest.raises(InvalidRequest):
        service.list_instances(ACCOUNT, {"ClusterId": cid, "InstanceGroupId": "ig-NOSUCHGROUP"})
