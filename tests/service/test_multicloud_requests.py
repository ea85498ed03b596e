"""A cluster may span clouds whose private ranges do not overlap: RunJobFlow and AddInstanceGroups
accept it, and refuse overlapping ones with a ValidationException (HTTP 400) naming the clouds
and their ranges.  Through the real EMR API (boto3) with clouds configured in resilin.toml."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests import emr_api as api

# Beside emr_api's clouds: local 10.250.1.0/24, edge 10.250.2.0/24 (local) and faraway (ec2, no range).
EXTRA_CLOUDS = (
    '\n[[clouds]]\nname = "wide"\nkind = "ec2"\nendpoint = "http://127.0.0.1:9"\nprivate_range = "10.250.0.0/16"\n'
    '\n[[clouds]]\nname = "apart"\nkind = "ec2"\nendpoint = "http://127.0.0.1:9"\nprivate_range = "172.20.0.0/16"\n'
)


@pytest.fixture(scope="module")
def server(redis_server, tmp_path_factory):
    started = api.start(tmp_path_factory.mktemp("multicloud-api"), redis_server.url, EXTRA_CLOUDS)
    yield started
    started.stop()


def _groups(master: str, core: str) -> dict:
    return {
        "InstanceGroups": [
            {"InstanceRole": "MASTER", "InstanceType": master, "InstanceCount": 1},
            {"InstanceRole": "CORE", "InstanceType": core, "InstanceCount": 2},
        ],
        "KeepJobFlowAliveWhenNoSteps": True,
    }


def _refused(call) -> ClientError:
    with pytest.raises(ClientError) as refused:
        call()
    return refused.value


def test_clusters_over_clouds_with_separate_ranges_are_accepted(server):
    emr = server.client()
    for master, core in [
        ("m5.xlarge", "m5.xlarge@edge"),
        ("m5.xlarge@edge", "m5.xlarge@apart"),
        ("m5.xlarge", "m5.xlarge@faraway"),  # faraway's range is asked of it when the cluster is placed
    ]:
        cid = emr.run_job_flow(Name="spread", ReleaseLabel="emr-7.5.0", Instances=_groups(master, core))[
            "JobFlowId"
        ]
        assert emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"] == "STARTING"


def test_clusters_over_overlapping_ranges_are_refused_with_the_clouds_named(server):
    emr = server.client()
    error = _refused(
        lambda: emr.run_job_flow(
            Name="overlap", ReleaseLabel="emr-7.5.0", Instances=_groups("m5.xlarge", "m5.xlarge@wide")
        )
    )
    assert error.response["Error"]["Code"] == "ValidationException"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "local (10.250.1.0/24) and wide (10.250.0.0/16)" in error.response["Error"]["Message"]
    before = emr.list_clusters()["Clusters"]
    assert all(c["Name"] != "overlap" for c in before)  # nothing was recorded


def test_a_group_added_in_an_overlapping_cloud_is_refused(server, redis_client):
    from resilin.jobflows.store import JobFlowStore

    emr = server.client()
    cid = emr.run_job_flow(
        Name="grow", ReleaseLabel="emr-7.5.0", Instances=_groups("m5.xlarge", "m5.xlarge")
    )["JobFlowId"]
    api.worker_runs(JobFlowStore(redis_client), cid)
    task = {"InstanceRole": "TASK", "InstanceCount": 1, "InstanceType": "m5.xlarge@wide"}
    error = _refused(lambda: emr.add_instance_groups(JobFlowId=cid, InstanceGroups=[task]))
    assert error.response["Error"]["Code"] == "ValidationException"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "local (10.250.1.0/24) and wide (10.250.0.0/16)" in error.response["Error"]["Message"]
    # Into a cloud apart from the cluster's: a new cloud for the cluster, accepted.
    added = emr.add_instance_groups(
        JobFlowId=cid, InstanceGroups=[task | {"InstanceType": "m5.xlarge@apart"}]
    )
    groups = emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]
    assert added["InstanceGroupIds"][0] in {g["Id"] for g in groups}


def test_list_instances_and_describe_cluster_show_the_clouds_of_a_spread_cluster(server, redis_client):
    from resilin.jobflows.store import JobFlowStore

    store = JobFlowStore(redis_client)
    emr = server.client()
    spread = emr.run_job_flow(
        Name="shown",
        ReleaseLabel="emr-7.5.0",
        Instances=_groups("m5.xlarge", "m5.xlarge@edge"),
        Tags=[{"Key": "team", "Value": "x"}],
    )["JobFlowId"]
    single = emr.run_job_flow(
        Name="one", ReleaseLabel="emr-7.5.0", Instances=_groups("m5.xlarge", "m5.xlarge")
    )["JobFlowId"]
    for cid in (spread, single):
        api.worker_runs(store, cid)
    for instance in store.instances_of(spread):  # as the worker records them: each in its group's cloud
        if instance["role"] == "CORE":
            store.put_instance(spread, instance | {"cloud": "edge"})

    listed = emr.list_instances(ClusterId=spread)["Instances"]
    assert sorted(i["InstanceType"] for i in listed) == [
        "m5.xlarge@edge",
        "m5.xlarge@edge",
        "m5.xlarge@local",
    ]
    tags = emr.describe_cluster(ClusterId=spread)["Cluster"]["Tags"]
    assert tags == [{"Key": "team", "Value": "x"}, {"Key": "resilin:clouds", "Value": "local edge"}]
    # A cluster in one cloud reads as it always did.
    assert {i["InstanceType"] for i in emr.list_instances(ClusterId=single)["Instances"]} == {"m5.xlarge"}
    assert emr.describe_cluster(ClusterId=single)["Cluster"]["Tags"] == []
