"""Resilin's provisioning conversation with an EC2 API, against moto's EC2 server on loopback behind a
proxy that injects what real clouds do: capacity refused, partial fulfilment, quotas, throttling,
instances dying while starting.  Two regions of moto are two clouds, for fallback.  Also
reconciliation: leftovers of ended or unknown clusters are removed, nothing else."""

from __future__ import annotations

import pytest

from resilin.aws.sigv4 import Credentials
from resilin.clouds import private_ranges, user_keys
from resilin.clouds.provisioning import (
    TAG_CLUSTER,
    TAG_INSTALLATION,
    ClusterProvisioner,
    Limits,
    Placement,
    ProvisioningFailed,
)
from resilin.clouds.reconciler import Reconciler
from resilin.clouds.ssh import KeyPair
from resilin.jobflows import states
from resilin.jobflows.service import EmrService
from resilin.jobflows.store import JobFlowStore
from resilin.provisioners.ec2client import EC2Client, tags_of
from resilin.settings.cloud_config import CloudConfig, InstanceTypeSpec, Quota
from tests.ec2_fault_proxy import FaultProxy

INSTALLATION = "rsl-test0000000000"
RESILIN = "203.0.113.7/32"  # where Resilin's SSH comes from, as the cloud sees it


@pytest.fixture(scope="module")
def image_name(moto_endpoint) -> str:
    """An image name moto offers in both regions used as clouds."""
    names = []
    for region in ("us-east-1", "us-west-2"):
        ec2 = EC2Client(_cloud("probe", moto_endpoint, region)).ec2
        names.append({i["Name"] for i in ec2.describe_images(Owners=["amazon"])["Images"] if i.get("Name")})
    return sorted(names[0] & names[1])[0]


@pytest.fixture
def proxy(moto_endpoint):
    with FaultProxy(moto_endpoint) as p:
        yield p


def _cloud(name: str, endpoint: str, region: str = "us-east-1", **settings) -> CloudConfig:
    return CloudConfig(
        name=name, endpoint=endpoint, region=region, access_key="testing", secret_key="testing", **settings
    )


class Clouds:
    """``placement_for`` over named clouds (their endpoints: the proxy in front of moto)."""

    def __init__(self, image: str, *clouds: CloudConfig) -> None:
        self.default = clouds[0].name
        self.placements = {
            c.name: Placement(
                c.name, EC2Client(c, sleep=lambda s: None), image, "http://storage", cloud=c, ssh_cidr=RESILIN
            )
            for c in clouds
        }

    def __call__(self, name: str | None) -> Placement:
        return self.placements[name or self.default]

    def client(self, name: str) -> EC2Client:
        return self.placements[name].client


def _cluster(cid: str, core: int = 2, cloud: str | None = None, core_type: str = "m5.xlarge") -> dict:
    return {
        "id": cid,
        "name": "provisioning test",
        "release_label": "emr-7.5.0",
        "tags": [{"Key": "team", "Value": "data"}, {"Key": "aws:reserved", "Value": "x"}],
        "groups": [
            {
                "id": "ig-MASTER",
                "role": "MASTER",
                "instance_type": "m5.xlarge",
                "requested": 1,
                "cloud": cloud,
            },
            {"id": "ig-CORE", "role": "CORE", "instance_type": core_type, "requested": core, "cloud": cloud},
        ],
    }


def _provisioner(clouds: Clouds, cid: str, messages: list[str] | None = None, **limits) -> ClusterProvisioner:
    sleeps: list[float] = []
    provisioner = ClusterProvisioner(
        cid,
        clouds,
        INSTALLATION,
        key=KeyPair.generate(f"resilin-{cid}"),
        progress=(messages.append if messages is not None else lambda m: None),
        limits=Limits(**({"running_timeout": 30, "release_timeout": 30} | limits)),
        sleep=sleeps.append,
    )
    provisioner.sleeps = sleeps  # type: ignore[attr-defined]
    return provisioner


def _live(client: EC2Client, cid: str) -> list[dict]:
    return client.find_tagged({TAG_CLUSTER: cid})


def test_launch_conversation_tags_group_and_teardown(proxy, image_name):
    clouds = Clouds(image_name, _cloud("east", proxy.endpoint))
    cid = "j-CONVERSATION01"
    provisioner = _provisioner(clouds, cid)
    placement, running = provisioner.launch(_cluster(cid))
    assert placement.cloud_name == "east" and len(running) == 3
    client = clouds.client("east")

    # One security group for the cluster: SSH and the web UIs from Resilin, everything from the
    # cluster itself.
    [group] = client.security_groups_by_tag({TAG_CLUSTER: cid})
    assert group["GroupName"] == f"resilin-{cid}" and tags_of(group)[TAG_INSTALLATION] == INSTALLATION
    tcp = {(p["FromPort"], p["ToPort"]): p for p in group["IpPermissions"] if p["IpProtocol"] == "tcp"}
    assert sorted(tcp) == sorted(
        [(22, 22)] + [(port, port) for port in (9870, 9864, 8088, 8042, 19888, 18080)]
    )
    assert {r["CidrIp"] for p in tcp.values() for r in p["IpRanges"]} == {RESILIN}
    [everything] = [p for p in group["IpPermissions"] if p["IpProtocol"] == "-1"]
    assert [p["GroupId"] for p in everything["UserIdGroupPairs"]] == [group["GroupId"]]
    assert len(group["IpPermissions"]) == 8

    instances = {i["InstanceId"]: i for i in _live(client, cid)}
    assert sorted(instances) == sorted(info.id for _, info in running)
    for launched, info in running:
        inst = instances[info.id]
        tags = tags_of(inst)
        assert tags[TAG_CLUSTER] == cid and tags[TAG_INSTALLATION] == INSTALLATION
        assert tags["resilin:role"] == launched.group["role"] == tags["elasticmapreduce:instance-group-role"]
        assert (
            tags["resilin:group-id"] == launched.group["id"] and tags["elasticmapreduce:job-flow-id"] == cid
        )
        assert tags["team"] == "data" and "aws:reserved" not in tags  # the cluster's own tags, not aws:
        assert [g["GroupId"] for g in inst["SecurityGroups"]] == [group["GroupId"]]
        assert inst["KeyName"] == f"resilin-{cid}"
    assert f"resilin-{cid}" in client.key_pair_names("resilin-")

    assert provisioner.teardown() == []
    assert _live(client, cid) == []
    assert client.security_groups_by_tag({TAG_CLUSTER: cid}) == []
    assert f"resilin-{cid}" not in client.key_pair_names("resilin-")


def test_a_custom_ami_is_what_the_instances_run_and_an_unknown_one_launches_nothing(proxy, image_name):
    clouds = Clouds(image_name, _cloud("east", proxy.endpoint))
    client = clouds.client("east")
    images = client.ec2.describe_images(Owners=["amazon"])["Images"]
    default = client.image_for(image_name)
    custom, for_core = sorted(i["ImageId"] for i in images if i["ImageId"] != default)[:2]
    cluster = _cluster("j-CUSTOMAMI00001", core=1) | {"custom_ami_id": custom}
    cluster["groups"][1]["custom_ami_id"] = for_core  # a group's own wins over the cluster's
    provisioner = _provisioner(clouds, cluster["id"])
    _, running = provisioner.launch(cluster)
    images_of = {i["InstanceId"]: i["ImageId"] for i in _live(client, cluster["id"])}
    assert {launched.group["role"]: images_of[info.id] for launched, info in running} == {
        "MASTER": custom, "CORE": for_core}  # fmt: skip
    provisioner.teardown()

    unknown = _cluster("j-CUSTOMAMI00002", core=1)
    unknown["groups"][1]["custom_ami_id"] = "ami-0123456789abcdef0"
    with pytest.raises(ProvisioningFailed) as excinfo:
        _provisioner(clouds, unknown["id"]).launch(unknown)
    assert excinfo.value.code == states.VALIDATION_ERROR and "ami-0123456789abcdef0" in excinfo.value.message
    assert _live(client, unknown["id"]) == []  # not even the master was launched


def test_capacity_refused_is_retried_with_backoff(proxy, image_name):
    clouds = Clouds(image_name, _cloud("east", proxy.endpoint))
    proxy.fail("RunInstances", "InsufficientInstanceCapacity", 500, times=2)
    messages: list[str] = []
    provisioner = _provisioner(clouds, "j-CAPACITYRETRY1", messages)
    _, running = provisioner.launch(_cluster("j-CAPACITYRETRY1", core=1))
    assert len(running) == 2
    assert proxy.answered("RunInstances") == ["InsufficientInstanceCapacity"] * 2 + ["upstream"] * 2
    assert sum(1 for m in messages if "no capacity" in m) == 2
    # Backed off between attempts: 1-2 s, then 2-4 s (full jitter over doubling delays).
    assert 3 <= sum(provisioner.sleeps) <= 6
    provisioner.teardown()


def test_partial_fulfilment_asks_again_for_the_rest(proxy, image_name):
    clouds = Clouds(image_name, _cloud("east", proxy.endpoint))
    proxy.shrink(max_count=1, times=2)  # the master's launch, then the first of the core group's
    messages: list[str] = []
    provisioner = _provisioner(clouds, "j-PARTIAL000001", messages)
    _, running = provisioner.launch(_cluster("j-PARTIAL000001", core=3))
    assert sorted(launched.group["role"] for launched, _ in running) == ["CORE", "CORE", "CORE", "MASTER"]
    runs = [c.form for c in proxy.calls if c.action == "RunInstances"]
    # The core group asks for 3, gets 1, asks for the 2 others; moto launches MinCount (1) of those,
    # so the last one is asked for once more.  No capacity was refused, so nobody waited.
    counts = [(r["MinCount"][0], r["MaxCount"][0]) for r in runs]
    assert counts == [("1", "1"), ("1", "1"), ("1", "2"), ("1", "1")], (counts, messages)
    assert provisioner.sleeps == []
    assert any("launched 1 of 3" in m for m in messages)
    provisioner.teardown()
    assert _live(clouds.client("east"), "j-PARTIAL000001") == []


def test_no_capacity_falls_back_to_the_next_cloud_and_leaves_nothing_behind(proxy, image_name):
    clouds = Clouds(
        image_name,
        _cloud("east", proxy.endpoint, fallback=("west",)),
        _cloud("west", proxy.endpoint, region="us-west-2"),
    )
    # East launches the master, then has no capacity for the core group, ever.
    proxy.fail("RunInstances", "InsufficientInstanceCapacity", 500, times=100, region="us-east-1")
    proxy.let_through("RunInstances", times=1, region="us-east-1")
    messages: list[str] = []
    cid = "j-FALLBACK000001"
    provisioner = _provisioner(clouds, cid, messages, launch_attempts=3)
    placement, running = provisioner.launch(_cluster(cid))
    assert placement.cloud_name == "west" and len(running) == 3
    assert any("trying cloud west" in m for m in messages)
    east = clouds.client("east")
    assert _live(east, cid) == [] and east.security_groups_by_tag({TAG_CLUSTER: cid}) == []
    assert f"resilin-{cid}" not in east.key_pair_names("resilin-")
    assert len(_live(clouds.client("west"), cid)) == 3
    provisioner.teardown()
    assert _live(clouds.client("west"), cid) == []


def test_groups_placed_by_the_user_stay_in_their_cloud(proxy, image_name):
    clouds = Clouds(
        image_name,
        _cloud("east", proxy.endpoint, fallback=("west",)),
        _cloud("west", proxy.endpoint, region="us-west-2"),
    )
    proxy.fail("RunInstances", "InsufficientInstanceCapacity", 500, times=100, region="us-east-1")
    cid = "j-PINNED00000001"
    provisioner = _provisioner(clouds, cid, launch_attempts=2)
    with pytest.raises(ProvisioningFailed) as failed:
        provisioner.launch(_cluster(cid, cloud="east"))
    assert failed.value.code == states.INSTANCE_FAILURE
    assert (
        "Cloud east has no capacity" in failed.value.message
        and "InsufficientInstanceCapacity" in failed.value.message
    )
    assert not [c for c in proxy.calls if c.region == "us-west-2" and c.action == "RunInstances"]
    assert provisioner.teardown() == []
    assert _live(clouds.client("east"), cid) == []


def test_quota_refusal_is_not_retried_but_falls_back(proxy, image_name):
    clouds = Clouds(
        image_name,
        _cloud("east", proxy.endpoint, fallback=("west",)),
        _cloud("west", proxy.endpoint, region="us-west-2"),
    )
    proxy.fail("RunInstances", "InstanceLimitExceeded", 400, times=1, region="us-east-1")
    provisioner = _provisioner(clouds, "j-QUOTA000000001")
    placement, _ = provisioner.launch(_cluster("j-QUOTA000000001", core=0))
    assert placement.cloud_name == "west"
    assert [c.answered for c in proxy.calls if c.action == "RunInstances" and c.region == "us-east-1"] == [
        "InstanceLimitExceeded"
    ]
    provisioner.teardown()


def test_what_a_cloud_does_not_offer_is_refused_before_launching(proxy, image_name):
    small = {"m5.xlarge": InstanceTypeSpec("m5.xlarge", 4, 16384, 0.192)}
    clouds = Clouds(
        image_name,
        _cloud("east", proxy.endpoint, instance_types=small, quota=Quota(instances=2)),
    )
    provisioner = _provisioner(clouds, "j-NOTOFFERED0001")
    with pytest.raises(ProvisioningFailed) as failed:
        provisioner.launch(_cluster("j-NOTOFFERED0001", core=1, core_type="r5.large"))
    assert (
        failed.value.code == states.VALIDATION_ERROR
        and "does not offer instance type r5.large" in failed.value.message
    )
    with pytest.raises(ProvisioningFailed) as over:
        provisioner.launch(_cluster("j-NOTOFFERED0001", core=2))
    assert "exceed cloud east's quota of 2" in over.value.message
    assert [c for c in proxy.calls if c.action == "RunInstances"] == []


def test_a_key_pair_no_cloud_has_launches_nothing_and_one_in_a_fallback_is_used(proxy, image_name):
    clouds = Clouds(
        image_name,
        _cloud("east", proxy.endpoint, fallback=("west",)),
        _cloud("west", proxy.endpoint, region="us-west-2"),
    )
    laptop = KeyPair.generate("laptop").public_line
    clouds.client("west").import_key_pair("laptop", laptop)  # only west has it
    account = Credentials("AKIAEXAMPLE000000000", "s", "111111111111")

    def provisioner_for(cid: str, key_name: str) -> tuple[ClusterProvisioner, list[str]]:
        found: list[str] = []
        provisioner = _provisioner(clouds, cid)
        provisioner.preflight = lambda p: found.append(user_keys.require_key_pair(p, key_name, account))
        return provisioner, found

    before = len(proxy.calls)
    provisioner, _ = provisioner_for("j-NOKEY000000001", "no-such-key")
    with pytest.raises(ProvisioningFailed) as failed:
        provisioner.launch(_cluster("j-NOKEY000000001", core=0))
    assert failed.value.code == states.VALIDATION_ERROR
    assert "The key pair 'no-such-key' does not exist in cloud east" in failed.value.message
    assert "in cloud west" in failed.value.message
    assert [c.action for c in proxy.calls[before:] if c.action in ("RunInstances", "ImportKeyPair")] == []

    provisioner, found = provisioner_for("j-WESTKEY0000001", "laptop")
    placement, running = provisioner.launch(_cluster("j-WESTKEY0000001", core=0))
    assert (
        placement.cloud_name == "west"
        and len(running) == 1
        and [f.split()[:2] for f in found] == [laptop.split()[:2]]
    )
    assert not [c for c in proxy.calls if c.action == "RunInstances" and c.region == "us-east-1"]
    provisioner.teardown()
    clouds.client("west").delete_key_pair("laptop")


def test_instances_that_die_while_starting_are_replaced(proxy, moto_endpoint, image_name):
    clouds = Clouds(image_name, _cloud("east", proxy.endpoint))
    direct = EC2Client(_cloud("east", moto_endpoint)).ec2

    def kill_first(form, answer: bytes) -> None:
        first = answer.split(b"<instanceId>")[1].split(b"</instanceId>")[0].decode()
        direct.terminate_instances(InstanceIds=[first])  # it dies before anyone saw it run

    proxy.after("RunInstances", kill_first, times=1)
    messages: list[str] = []
    cid = "j-DIEWHILESTART1"
    provisioner = _provisioner(clouds, cid, messages)
    _, running = provisioner.launch(_cluster(cid, core=1))
    assert len(running) == 2 and {launched.group["role"] for launched, _ in running} == {"MASTER", "CORE"}
    assert any("failed while starting" in m and "launching replacements" in m for m in messages)
    assert len([c for c in proxy.calls if c.action == "RunInstances"]) == 3
    provisioner.teardown()
    assert _live(clouds.client("east"), cid) == []


def test_throttled_calls_during_launch_are_retried(proxy, image_name):
    clouds = Clouds(image_name, _cloud("east", proxy.endpoint))
    proxy.fail("DescribeInstances", "RequestLimitExceeded", 503, times=3)
    proxy.fail("CreateSecurityGroup", "Throttling", 400, times=1)
    provisioner = _provisioner(clouds, "j-THROTTLED00001")
    _, running = provisioner.launch(_cluster("j-THROTTLED00001", core=1))
    assert len(running) == 2
    assert proxy.answered("DescribeInstances")[:3] == ["RequestLimitExceeded"] * 3
    provisioner.teardown()


def test_groups_in_clouds_whose_ranges_overlap_or_are_unknown_are_refused_before_any_launch(
    proxy, moto_endpoint, image_name
):
    direct = EC2Client(_cloud("probe", moto_endpoint)).ec2
    vpc = direct.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    subnet_a, subnet_b = (
        direct.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
        for cidr in ("10.30.1.0/24", "10.30.2.0/24")
    )
    cluster = _cluster("j-TWOCLOUDS00001")
    cluster["groups"][1]["cloud"] = "west"

    def refusal(east: dict, west: dict) -> str:
        clouds = Clouds(
            image_name, _cloud("east", proxy.endpoint, **east), _cloud("west", proxy.endpoint, **west)
        )
        with pytest.raises(ProvisioningFailed) as failed:
            _provisioner(clouds, "j-TWOCLOUDS00001").launch(cluster)
        assert failed.value.code == states.VALIDATION_ERROR
        return failed.value.message

    # Neither a private_range nor a subnet: the range cannot be known, nothing is asked or launched.
    assert "range of cloud east is not known" in refusal({}, {})
    assert proxy.calls == []
    # A configured range against a subnet's, read from the cloud (DescribeSubnets): they overlap.
    message = refusal({"private_range": "10.30.0.0/16"}, {"subnet_id": subnet_a})
    assert "east (10.30.0.0/16) and west (10.30.1.0/24)" in message
    assert {c.action for c in proxy.calls} == {"DescribeSubnets"}
    # Two subnets apart: the ranges allow the spread (whether the network does is its own answer).
    apart = Clouds(
        image_name,
        _cloud("east", proxy.endpoint, subnet_id=subnet_a),
        _cloud("west", proxy.endpoint, subnet_id=subnet_b),
    )
    assert private_ranges.spread_refusal([apart("east"), apart("west")]) is None
    assert {c.action for c in proxy.calls} == {"DescribeSubnets"}
    # A cloud nobody configured is named as such.
    cluster["groups"][1]["cloud"] = "nowhere"
    with pytest.raises(ProvisioningFailed, match="Unknown cloud 'nowhere'"):
        _provisioner(apart, "j-TWOCLOUDS00001").launch(cluster)


def test_reconciliation_removes_leftovers_of_ended_and_unknown_clusters_only(proxy, image_name, redis_client):
    clouds = Clouds(image_name, _cloud("east", proxy.endpoint))
    store = JobFlowStore(redis_client)
    service = EmrService(store)
    params = {"Name": "c", "Instances": {"MasterInstanceType": "m5.xlarge", "InstanceCount": 1}}
    alive = service.run_job_flow("111111111111", params)["JobFlowId"]
    ended = service.run_job_flow("111111111111", params)["JobFlowId"]
    store.transition_cluster(ended, states.TERMINATING)
    store.transition_cluster(ended, states.TERMINATED_WITH_ERRORS)

    # Leftovers as a crash leaves them: instances, groups and keys of each cluster, and someone else's.
    provisioners = {cid: _provisioner(clouds, cid) for cid in (alive, ended, "j-UNKNOWN0000001")}
    for cid, p in provisioners.items():
        p.launch(_cluster(cid, core=0))
    client = clouds.client("east")
    image = clouds("east").image("emr-7.5.0")
    foreign = client.launch(
        image, "m5.large", 1, "", {TAG_CLUSTER: ended, TAG_INSTALLATION: "rsl-someoneelse"}
    )

    doomed = {i["InstanceId"] for cid in (ended, "j-UNKNOWN0000001") for i in _live(client, cid)}
    reconciler = Reconciler(store, ["east"], clouds, INSTALLATION, interval=0)
    swept = reconciler.sweep()
    assert sorted(swept.instances["east"]) == sorted(doomed - set(foreign)) and len(doomed) == 3
    client.wait_terminated(sorted(doomed - set(foreign)), timeout=30)
    assert len(_live(client, alive)) == 1  # a live cluster keeps its instances
    assert [i.id for i in client.find_by_tag(TAG_INSTALLATION, "rsl-someoneelse")] == foreign  # not ours
    assert f"resilin-{ended}" in swept.key_pairs["east"] and f"resilin-{alive}" in client.key_pair_names()
    # Groups go once their instances have: this sweep or the next one.
    reconciler.sweep()
    remaining = {
        tags_of(g)[TAG_CLUSTER] for g in client.security_groups_by_tag({TAG_INSTALLATION: INSTALLATION})
    }
    assert remaining == {alive}
    provisioners[alive].teardown()
    client.terminate(foreign)


def test_web_uis_are_never_opened_to_the_whole_internet():
    from resilin.clouds.provisioning import web_ui_permissions

    assert web_ui_permissions("0.0.0.0/0") == []
    assert {p["IpRanges"][0]["CidrIp"] for p in web_ui_permissions("10.1.2.3/32")} == {"10.1.2.3/32"}


def test_tags_changed_on_the_cluster_follow_onto_its_instances(proxy, image_name):
    from resilin.clouds.instance_tags import sync_instance_tags, user_tags

    clouds = Clouds(image_name, _cloud("east", proxy.endpoint))
    cid = "j-RETAGGED000001"
    provisioner = _provisioner(clouds, cid)
    cluster = _cluster(cid, core=1)
    provisioner.launch(cluster)
    client = clouds.client("east")
    try:
        assert {tags_of(i)["team"] for i in _live(client, cid)} == {"data"}
        # AddTags changed one value and added a key; RemoveTags took "team" away.
        cluster["tags"] = [{"Key": "cost-center", "Value": "42"}, {"Key": "Name", "Value": "not ours"}]
        assert user_tags(cluster) == {"cost-center": "42"}
        assert sync_instance_tags(client, _live(client, cid), user_tags(cluster)) == 2
        for inst in _live(client, cid):
            tags = tags_of(inst)
            assert tags["cost-center"] == "42" and "team" not in tags
            # Resilin's own tags stay whatever the cluster's tags say.
            assert tags[TAG_CLUSTER] == cid and tags["Name"].startswith("provisioning test")
        assert sync_instance_tags(client, _live(client, cid), user_tags(cluster)) == 0
    finally:
        provisioner.teardown()


def test_reconciliation_releases_addresses_and_deletes_routes_of_gone_clusters_only(
    proxy, image_name, redis_client
):
    clouds = Clouds(image_name, _cloud("east", proxy.endpoint))
    store = JobFlowStore(redis_client)
    service = EmrService(store)
    params = {"Name": "c", "Instances": {"MasterInstanceType": "m5.xlarge", "InstanceCount": 1}}
    alive = service.run_job_flow("111111111111", params)["JobFlowId"]
    ended = service.run_job_flow("111111111111", params)["JobFlowId"]
    store.transition_cluster(ended, states.TERMINATING)
    store.transition_cluster(ended, states.TERMINATED_WITH_ERRORS)
    client = clouds.client("east")
    ec2 = client.ec2
    image = clouds("east").image("emr-7.5.0")

    # What an overlay leaves when its teardown never ran: a gateway per cluster with an Elastic IP
    # (tagged as the overlay tags it) and routes to it in the main route table; and the same of
    # another installation, and an untagged address associated with nobody's gateway.
    def gateway(cid: str, installation: str = INSTALLATION) -> tuple[str, str]:
        [instance] = client.launch(
            image, "m5.large", 1, "", {TAG_CLUSTER: cid, TAG_INSTALLATION: installation}
        )
        tags = [{"Key": TAG_CLUSTER, "Value": cid}, {"Key": TAG_INSTALLATION, "Value": installation}]
        allocation = ec2.allocate_address(
            Domain="vpc", TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": tags}]
        )["AllocationId"]
        ec2.associate_address(InstanceId=instance, AllocationId=allocation)
        return instance, allocation

    gateways = {cid: gateway(cid) for cid in (alive, ended, "j-UNKNOWN0000002")}
    foreign = gateway(ended, "rsl-someoneelse")
    # Untagged, but associated with the ended cluster's gateway: found through its instance.
    loose = ec2.allocate_address(Domain="vpc")["AllocationId"]
    [vpc] = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    main = [{"Name": "association.main", "Values": ["true"]}, {"Name": "vpc-id", "Values": [vpc["VpcId"]]}]
    [table] = ec2.describe_route_tables(Filters=main)["RouteTables"]
    rtb = table["RouteTableId"]
    targets = {
        "10.98.0.1/32": gateways[alive][0],
        "10.98.0.2/32": gateways[ended][0],
        "10.98.0.3/32": gateways["j-UNKNOWN0000002"][0],
        "10.98.0.4/32": foreign[0],
    }
    for destination, instance in targets.items():
        ec2.create_route(RouteTableId=rtb, DestinationCidrBlock=destination, InstanceId=instance)
    ec2.terminate_instances(InstanceIds=[gateways[ended][0]])  # a gateway already gone
    ec2.disassociate_address(
        AssociationId=next(
            a["AssociationId"]
            for a in ec2.describe_addresses()["Addresses"]
            if a["AllocationId"] == gateways["j-UNKNOWN0000002"][1]
        )
    )
    ec2.associate_address(InstanceId=gateways["j-UNKNOWN0000002"][0], AllocationId=loose)

    swept = Reconciler(store, ["east"], clouds, INSTALLATION, interval=0).sweep()

    gone = {gateways[ended][1], gateways["j-UNKNOWN0000002"][1], loose}
    assert sorted(swept.addresses["east"]) == sorted(gone)
    left = {a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]}
    assert not gone & left and {gateways[alive][1], foreign[1]} <= left
    assert sorted(swept.routes["east"]) == [f"{rtb} 10.98.0.2/32", f"{rtb} 10.98.0.3/32"]
    routes = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]["Routes"]
    assert {r["DestinationCidrBlock"] for r in routes if r.get("InstanceId")} == {
        "10.98.0.1/32",
        "10.98.0.4/32",
    }
    # A second sweep finds nothing more to remove.
    again = Reconciler(store, ["east"], clouds, INSTALLATION, interval=0).sweep()
    assert again.addresses == {} and again.routes == {} and again.unreachable == []
