"""The job-flow model and EMR operations against a real Redis server."""

import pytest

from resilin.errors import InvalidRequest, ValidationError
from resilin.jobflows import states
from resilin.jobflows.service import EmrService
from resilin.jobflows.store import JobFlowStore, StateConflict

STREAMING_STEP = {
    "Name": "wc",
    "ActionOnFailure": "TERMINATE_CLUSTER",
    "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["hadoop-streaming", "-input", "s3://d/in"]},
}


@pytest.fixture
def service(redis_client):
    return EmrService(JobFlowStore(redis_client))


def _run(service, account="111111111111", **extra):
    params = {
        "Name": "demo",
        "Instances": {
            "MasterInstanceType": "m5.xlarge",
            "SlaveInstanceType": "m5.xlarge",
            "InstanceCount": 3,
        },
        "Steps": [STREAMING_STEP],
    } | extra
    return service.run_job_flow(account, params)["JobFlowId"]


def test_run_job_flow_records_groups_and_steps(service):
    cid = _run(service)
    cluster = service.describe_cluster("111111111111", {"ClusterId": cid})["Cluster"]
    assert cluster["Status"]["State"] == "STARTING"
    assert cluster["AutoTerminate"] is True
    groups = service.store.get_cluster(cid)["groups"]
    assert [(g["role"], g["requested"]) for g in groups] == [("MASTER", 1), ("CORE", 2)]
    steps = service.list_steps("111111111111", {"ClusterId": cid})["Steps"]
    assert [s["Status"]["State"] for s in steps] == ["PENDING"]
    assert service.store.next_notification(1) == cid


def test_accounts_see_only_their_clusters(service):
    cid = _run(service)
    with pytest.raises(InvalidRequest):
        service.describe_cluster("222222222222", {"ClusterId": cid})
    assert service.list_clusters("222222222222", {})["Clusters"] == []
    assert [c["Id"] for c in service.list_clusters("111111111111", {})["Clusters"]] == [cid]


def test_unknown_ids_and_bad_requests_change_nothing(service):
    with pytest.raises(InvalidRequest):
        service.describe_cluster("111111111111", {"ClusterId": "j-NOPE"})
    with pytest.raises(ValidationError):
        _run(service, ReleaseLabel="emr-1.0.0")
    with pytest.raises(ValidationError):
        _run(service, Instances={"InstanceCount": 2})
    assert service.list_clusters("111111111111", {})["Clusters"] == []


def test_list_steps_newest_first_and_filters(service):
    cid = _run(service)
    added = service.add_job_flow_steps("111111111111", {"JobFlowId": cid, "Steps": [STREAMING_STEP] * 2})[
        "StepIds"
    ]
    listed = [s["Id"] for s in service.list_steps("111111111111", {"ClusterId": cid})["Steps"]]
    assert listed[:2] == list(reversed(added))
    only = service.list_steps("111111111111", {"ClusterId": cid, "StepIds": [added[0]]})["Steps"]
    assert [s["Id"] for s in only] == [added[0]]


def test_state_machine_refuses_illegal_transitions(service):
    cid = _run(service)
    with pytest.raises(StateConflict):
        service.store.transition_cluster(cid, states.TERMINATED)
    service.store.transition_cluster(cid, states.BOOTSTRAPPING)
    done = service.store.transition_cluster(cid, states.RUNNING)
    assert done["timeline"]["ready"]
    # Each change of state is kept with its time (the console's phase timeline), a refused one not.
    history = done["state_history"]
    assert [state for state, _ in history] == ["STARTING", "BOOTSTRAPPING", "RUNNING"]
    assert history[0][1] == done["timeline"]["created"]
    assert history[0][1] <= history[1][1] <= history[2][1]


def test_terminate_marks_cluster_terminating_and_respects_protection(service):
    cid = _run(service)
    protected = _run(service, Instances={"MasterInstanceType": "m5.xlarge", "TerminationProtected": True})
    with pytest.raises(ValidationError):
        service.terminate_job_flows("111111111111", {"JobFlowIds": [cid, protected]})
    assert service.store.get_cluster(cid)["state"] == "STARTING"
    service.terminate_job_flows("111111111111", {"JobFlowIds": [cid]})
    status = service.describe_cluster("111111111111", {"ClusterId": cid})["Cluster"]["Status"]
    assert status["State"] == "TERMINATING" and status["StateChangeReason"]["Code"] == "USER_REQUEST"


def _running(service, cid):
    service.store.transition_cluster(cid, states.BOOTSTRAPPING)
    service.store.transition_cluster(cid, states.WAITING)


def test_instance_groups_change_only_on_running_clusters_and_within_replication(service):
    account = "111111111111"
    cid = _run(service)
    task = {"InstanceRole": "TASK", "InstanceType": "m5.large", "InstanceCount": 2}
    with pytest.raises(ValidationError):  # still STARTING
        service.add_instance_groups(account, {"JobFlowId": cid, "InstanceGroups": [task]})
    _running(service, cid)
    added = service.add_instance_groups(account, {"JobFlowId": cid, "InstanceGroups": [task]})
    groups = service.list_instance_groups(account, {"ClusterId": cid})["InstanceGroups"]
    assert [(g["InstanceGroupType"], g["RequestedInstanceCount"]) for g in groups] == [
        ("MASTER", 1), ("CORE", 2), ("TASK", 2)
    ]  # fmt: skip
    for bad in (
        {"InstanceRole": "MASTER", "InstanceType": "m5.large", "InstanceCount": 1},
        {"InstanceRole": "CORE", "InstanceType": "m5.large", "InstanceCount": 1},
        task | {"Configurations": [{"Classification": "nope", "Properties": {}}]},
    ):
        with pytest.raises(ValidationError):
            service.add_instance_groups(account, {"JobFlowId": cid, "InstanceGroups": [bad]})
    core = next(g for g in groups if g["InstanceGroupType"] == "CORE")
    with pytest.raises(ValidationError, match="replica"):
        service.modify_instance_groups(
            account,
            {"ClusterId": cid, "InstanceGroups": [{"InstanceGroupId": core["Id"], "InstanceCount": 1}]},
        )
    with pytest.raises(InvalidRequest):
        service.modify_instance_groups(
            account,
            {"ClusterId": cid, "InstanceGroups": [{"InstanceGroupId": "ig-NOPE", "InstanceCount": 1}]},
        )
    service.modify_instance_groups(
        account,
        {"InstanceGroups": [{"InstanceGroupId": added["InstanceGroupIds"][0], "InstanceCount": 5}]},
    )
    task_group = service.list_instance_groups(account, {"ClusterId": cid})["InstanceGroups"][-1]
    assert (task_group["RequestedInstanceCount"], task_group["Status"]["State"]) == (5, "RESIZING")
    with pytest.raises(InvalidRequest):  # another account's cluster
        service.list_instances("222222222222", {"ClusterId": cid})


def test_release_labels_ami_versions_and_configurations_are_checked(service):
    with pytest.raises(ValidationError):
        _run(service, ReleaseLabel="emr-7.99.0")
    with pytest.raises(ValidationError):
        _run(service, Configurations=[{"Classification": "hive-site", "Properties": {}}])
    cid = _run(service, AmiVersion="3.11")
    described = service.describe_cluster("111111111111", {"ClusterId": cid})["Cluster"]
    assert described["RequestedAmiVersion"] == "3.11" and described["RunningAmiVersion"] == "3.11.0"
    assert "ReleaseLabel" not in described


def test_cached_summary_views_follow_the_normalized_hours(monkeypatch):
    from resilin.jobflows import views

    created = 1_700_000_000.0
    cluster = {
        "id": "j-CACHEDVIEW", "name": "c", "arn": "arn:aws:elasticmapreduce:us-east-1:1:cluster/j-CACHEDVIEW",
        "state": "WAITING", "timeline": {"created": created, "ready": created + 60},
        "groups": [{"instance_type": "m5.xlarge", "requested": 1}],
    }  # fmt: skip
    raw = b'{"stored form":"j-CACHEDVIEW"}'
    monkeypatch.setattr(views.time, "time", lambda: created + 3500)
    assert views.cluster_summary_of(raw, cluster)["NormalizedInstanceHours"] == 8
    monkeypatch.setattr(views.time, "time", lambda: created + 3700)  # a second hour has started
    assert views.cluster_summary_of(raw, cluster)["NormalizedInstanceHours"] == 16
    assert views.cluster_summary_of(raw, cluster) == views.cluster_summary(cluster)
