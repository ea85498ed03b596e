"""A cluster spread over two clouds (two regions of moto's server), from RunJobFlow to teardown.

The master's group is in the default cloud, the core group written ``m5.xlarge@west``: each is
launched in its cloud, the overlay joins them (routes, rules, forwarding on the gateways), the
monitor watches both clouds, and teardown leaves nothing in either.  The nodes are fake
(tests/service/cluster_harness.py)."""

from __future__ import annotations

import json
import logging
import time

from resilin.clouds.provisioning import TAG_CLUSTER, Placement
from resilin.cluster import node_health
from resilin.cluster.orchestrator import ClusterWorker
from resilin.jobflows import states
from resilin.jobflows.service import EmrService
from resilin.jobflows.store import JobFlowStore
from resilin.overlay.state import OverlayStore
from resilin.provisioners.ec2client import EC2Client
from resilin.settings.cloud_config import CloudConfig
from tests.service.cluster_harness import ACCOUNT, credentials_for, job_flow, wait_for

REGIONS = {"east": "us-east-1", "west": "eu-west-1"}
# moto gives both regions the same default VPC range; declared apart, as two real clouds' must be.
RANGES = {"east": "10.1.0.0/16", "west": "10.2.0.0/16"}


class TwoClouds:
    """``placement_for`` over two clouds, ``east`` the default."""

    def __init__(self, endpoint: str) -> None:
        self.placements = {}
        for name, region in REGIONS.items():
            config = CloudConfig(
                name=name,
                endpoint=endpoint,
                region=region,
                access_key="testing",
                secret_key="testing",
                private_range=RANGES[name],
            )
            client = EC2Client(config, sleep=lambda s: None)
            image = client.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
            self.placements[name] = Placement(name, client, image, "http://127.0.0.1:9", cloud=config)

    def __call__(self, name: str | None) -> Placement:
        if name not in (None, *self.placements):
            raise KeyError(name)
        return self.placements[name or "east"]

    def live(self, name: str, cid: str) -> list[dict]:
        found = self.placements[name].client.find_tagged({TAG_CLUSTER: cid})
        return [i for i in found if i["State"]["Name"] == "running"]

    def overlay_routes(self, name: str) -> list[dict]:
        tables = self.placements[name].client.ec2.describe_route_tables()["RouteTables"]
        return [r for t in tables for r in t["Routes"] if r.get("InstanceId")]


def wait_until_waiting(store: JobFlowStore, cid: str) -> None:
    wait_for(
        lambda: store.get_cluster(cid)["state"] in (states.WAITING, *states.FINAL_CLUSTER_STATES),
        60,
        "WAITING",
    )
    assert store.get_cluster(cid)["state"] == states.WAITING, store.get_cluster(cid)["state_reason"]


def test_a_cluster_over_two_clouds_is_joined_and_leaves_nothing(
    redis_client, moto_endpoint, fake_nodes, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(node_health, "POLL_SECONDS", 0.2)
    store = JobFlowStore(redis_client)
    service = EmrService(store)
    params = job_flow(core=2)
    params["Instances"]["InstanceGroups"][1]["InstanceType"] = "m5.xlarge@west"
    cid = service.run_job_flow(ACCOUNT, params)["JobFlowId"]
    clouds = TwoClouds(moto_endpoint)
    worker = ClusterWorker(cid, store, clouds, credentials_for, tmp_path, "us-east-1")
    worker.start()
    wait_until_waiting(store, cid)

    instances = store.instances_of(cid)
    assert {(i["role"], i["cloud"]) for i in instances} == {("MASTER", "east"), ("CORE", "west")}
    [master] = [i for i in instances if i["role"] == "MASTER"]
    cores = [i for i in instances if i["role"] == "CORE"]
    assert len(clouds.live("east", cid)) == 1 and len(clouds.live("west", cid)) == 2
    # Each cloud routes the other's nodes to its own gateway.
    east_routes = {r["DestinationCidrBlock"]: r["InstanceId"] for r in clouds.overlay_routes("east")}
    assert {f"{c['private_ip']}/32" for c in cores} <= set(east_routes)
    assert {east_routes[f"{c['private_ip']}/32"] for c in cores} == {master["ec2_id"]}
    west_routes = {r["DestinationCidrBlock"]: r["InstanceId"] for r in clouds.overlay_routes("west")}
    assert west_routes[f"{master['private_ip']}/32"] in {c["ec2_id"] for c in cores}

    # The gateways' private keys are nowhere a user or an operator looks.
    private_keys = [k.private for k in OverlayStore(redis_client, cid).load().keys.values()]
    assert len(private_keys) == 2
    answers = json.dumps(
        [
            service.describe_cluster(ACCOUNT, {"ClusterId": cid}),
            service.list_instances(ACCOUNT, {"ClusterId": cid}),
            store.get_cluster(cid),
        ],
        default=str,
    )
    shown = answers + "\n".join(r.getMessage() for r in caplog.records)
    assert not [k for k in private_keys if k in shown]
    assert not [
        p
        for p in tmp_path.rglob("*")
        if p.is_file() and any(k.encode() in p.read_bytes() for k in private_keys)
    ]

    # Some rounds of the monitor: nodes in the other cloud are not taken for failed ones.
    time.sleep(10 * node_health.POLL_SECONDS)
    assert all(i["state"] == states.INSTANCE_RUNNING for i in store.instances_of(cid))

    service.terminate_job_flows(ACCOUNT, {"JobFlowIds": [cid]})
    worker.join(60)
    assert store.get_cluster(cid)["state"] == states.TERMINATED
    assert clouds.live("east", cid) == [] and clouds.live("west", cid) == []
    assert not [r for r in clouds.overlay_routes("east") if r["DestinationCidrBlock"] in east_routes]
    assert not [r for r in clouds.overlay_routes("west") if r["DestinationCidrBlock"] in west_routes]
    assert store.redis.get(f"resilin:overlay:{cid}") is None


def test_a_cloud_that_cannot_take_its_group_fails_the_cluster_and_the_other_cloud_is_released(
    redis_client, moto_endpoint, fake_nodes, tmp_path
):
    store = JobFlowStore(redis_client)
    service = EmrService(store)
    params = job_flow(core=1)
    params["Instances"]["InstanceGroups"][1]["InstanceType"] = "m5.xlarge@west"
    cid = service.run_job_flow(ACCOUNT, params)["JobFlowId"]
    clouds = TwoClouds(moto_endpoint)
    clouds.placements["west"].image_id = "ami-12345678"  # west has no such image
    worker = ClusterWorker(cid, store, clouds, credentials_for, tmp_path, "us-east-1")
    worker.start()
    worker.join(60)
    cluster = store.get_cluster(cid)
    assert cluster["state"] == states.TERMINATED_WITH_ERRORS
    assert cluster["state_reason"]["code"] == states.VALIDATION_ERROR
    assert cluster["state_reason"]["message"].startswith("Cloud west has no image for the cluster")
    assert clouds.live("east", cid) == [] and clouds.live("west", cid) == []
    # The master was launched in the east at the same time, and released.
    ended = clouds.placements["east"].client.find_tagged({TAG_CLUSTER: cid}, states=["terminated"])
    assert len(ended) == 1
    assert store.redis.get(f"resilin:overlay:{cid}") is None


def _live_by_cloud(store: JobFlowStore, cid: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in store.instances_of(cid):
        if i["role"] == "CORE" and i["state"] != states.INSTANCE_TERMINATED:
            counts[i["cloud"]] = counts.get(i["cloud"], 0) + 1
    return counts


def _settled(store: JobFlowStore, cid: str, fleet_id: str, count: int) -> bool:
    fleet = next(g for g in store.get_cluster(cid)["groups"] if g["id"] == fleet_id)
    return fleet["state"] == states.GROUP_RUNNING and fleet["running"] == count


def test_a_core_fleet_over_two_clouds_is_shared_out_grown_shrunk_and_healed_evenly(
    redis_client, moto_endpoint, fake_nodes, tmp_path, monkeypatch
):
    monkeypatch.setattr(node_health, "POLL_SECONDS", 0.2)
    store = JobFlowStore(redis_client)
    service = EmrService(store)
    params = job_flow()
    params["Instances"] = {
        "InstanceFleets": [
            {
                "InstanceFleetType": "MASTER",
                "TargetOnDemandCapacity": 1,
                "InstanceTypeConfigs": [{"InstanceType": "m5.xlarge"}],
            },
            {
                "InstanceFleetType": "CORE",
                "TargetOnDemandCapacity": 3,
                "InstanceTypeConfigs": [
                    {"InstanceType": "m5.large@west"},
                    {"InstanceType": "m5.xlarge@east"},
                ],
            },
        ],
        "KeepJobFlowAliveWhenNoSteps": True,
    }
    cid = service.run_job_flow(ACCOUNT, params)["JobFlowId"]
    clouds = TwoClouds(moto_endpoint)
    worker = ClusterWorker(cid, store, clouds, credentials_for, tmp_path, "us-east-1")
    worker.start()
    wait_until_waiting(store, cid)
    # Shared out in the order the fleet names the clouds, each with its own type.
    assert _live_by_cloud(store, cid) == {"west": 2, "east": 1}
    types = {(i["cloud"], i["instance_type"]) for i in store.instances_of(cid) if i["role"] == "CORE"}
    assert types == {("west", "m5.large"), ("east", "m5.xlarge")}
    assert len(clouds.live("east", cid)) == 2 and len(clouds.live("west", cid)) == 2
    [core] = service.list_instance_fleets(ACCOUNT, {"ClusterId": cid})["InstanceFleets"][1:]
    assert core["ProvisionedOnDemandCapacity"] == 3

    # Grown: into the cloud holding fewest.
    service.modify_instance_fleet(
        ACCOUNT,
        {"ClusterId": cid, "InstanceFleet": {"InstanceFleetId": core["Id"], "TargetOnDemandCapacity": 4}},
    )
    wait_for(lambda: _settled(store, cid, core["Id"], 4), 60, "grown to 4")
    assert _live_by_cloud(store, cid) == {"west": 2, "east": 2}

    # A failed node is replaced in the cloud that lost it.
    [victim] = [i for i in store.instances_of(cid) if i["role"] == "CORE" and i["cloud"] == "east"][:1]
    clouds.placements["east"].client.terminate([victim["ec2_id"]])
    wait_for(
        lambda: (
            any(
                i["id"] == victim["id"] and i["state"] == states.INSTANCE_TERMINATED
                for i in store.instances_of(cid)
            )
            and _settled(store, cid, core["Id"], 4)
        ),
        60,
        "the failed node replaced",
    )
    assert _live_by_cloud(store, cid) == {"west": 2, "east": 2}

    # Shrunk: from the fullest cloud, so that both keep a node.
    service.modify_instance_fleet(
        ACCOUNT,
        {"ClusterId": cid, "InstanceFleet": {"InstanceFleetId": core["Id"], "TargetOnDemandCapacity": 2}},
    )
    wait_for(lambda: _settled(store, cid, core["Id"], 2), 60, "shrunk to 2")
    assert _live_by_cloud(store, cid) == {"west": 1, "east": 1}

    service.terminate_job_flows(ACCOUNT, {"JobFlowIds": [cid]})
    worker.join(60)
    assert store.get_cluster(cid)["state"] == states.TERMINATED
    assert clouds.live("east", cid) == [] and clouds.live("west", cid) == []
