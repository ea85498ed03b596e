"""What the store holds for a cluster has exactly the fields resilin/jobflows/documents.py declares."""

from __future__ import annotations

from resilin.jobflows import documents, states
from resilin.jobflows.service import EmrService
from resilin.jobflows.store import JobFlowStore
from tests.emr_api import worker_ends, worker_runs
from tests.unit.test_documents import assert_shaped

ACCOUNT = "111111111111"


def test_a_cluster_from_run_job_flow_to_its_end(redis_client):
    service = EmrService(JobFlowStore(redis_client))
    cid = service.run_job_flow(
        ACCOUNT,
        {
            "Name": "shapes",
            "Instances": {"MasterInstanceType": "m5.xlarge", "InstanceCount": 2},
            "BootstrapActions": [
                {"Name": "b", "ScriptBootstrapAction": {"Path": "s3://b/x.sh", "Args": ["1"]}}
            ],
            "Steps": [{"Name": "s", "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["true"]}}],
            "Tags": [{"Key": "team", "Value": "data"}],
        },
    )["JobFlowId"]
    store = service.store
    cluster = store.get_cluster(cid)
    assert_shaped(cluster, documents.ClusterDoc)
    assert_shaped(cluster["network"], documents.NetworkDoc)
    assert_shaped(cluster["bootstrap_actions"][0], documents.BootstrapActionDoc)
    for group in cluster["groups"]:
        assert_shaped(group, documents.InstanceGroupDoc)
    [step] = store.steps_of(cid)
    assert_shaped(step, documents.StepDoc)
    [summary] = store.cluster_summaries_of(ACCOUNT, [cid])
    assert_shaped(summary.doc, documents.ClusterSummaryDoc)

    worker_runs(store, cid)
    for instance in store.instances_of(cid):
        assert_shaped(instance, documents.InstanceDoc)
    worker_ends(store, cid)
    cluster = store.get_cluster(cid)
    assert cluster["state"] == states.ClusterState.TERMINATED
    assert_shaped(cluster, documents.ClusterDoc)
