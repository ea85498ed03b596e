"""The overlay's conversation with two EC2 clouds (two regions of moto's server), and what it leaves there.

Each cloud has a VPC of its own range with a subnet, the cluster's security group and instances
without public addresses; the nodes are fake (tests/service/cluster_harness.py) and answer every
command, so these tests are about the clouds: the calls in order (recorded by botocore's event
hooks on the real clients) and the routes, rules and addresses moto ends up with.
"""

from __future__ import annotations

import dataclasses
import itertools
import socket
import subprocess

import pytest

from resilin.cluster.network import NetworkContext, NetworkFailure
from resilin.cluster.sessions import NodeSessions
from resilin.jobflows.documents import InstanceDoc
from resilin.overlay.network import OverlayNetwork
from resilin.overlay.node_apply import probe_script
from resilin.overlay.state import OverlayStore
from resilin.provisioners.ec2client import EC2Client
from resilin.settings.cloud_config import CloudConfig
from tests.ec2_fault_proxy import FaultProxy
from tests.service.cluster_harness import FakeNode

RANGES = {"east": ("us-east-1", "10.1"), "west": ("eu-west-1", "10.2")}
CHANGING = (
    "AllocateAddress",
    "AssociateAddress",
    "DisassociateAddress",
    "ReleaseAddress",
    "ModifyInstanceAttribute",
    "AuthorizeSecurityGroupIngress",
    "RevokeSecurityGroupIngress",
    "CreateRoute",
    "ReplaceRoute",
    "DeleteRoute",
)
_ids = itertools.count()


class Cloud:
    """One region of moto as a cloud: a VPC of its own range, a subnet, the cluster's group."""

    def __init__(self, endpoint: str, name: str, calls: list[tuple[str, str]]) -> None:
        region, prefix = RANGES[name]
        self.name = name
        self.client = EC2Client(
            CloudConfig(
                name=name, endpoint=endpoint, region=region, access_key="testing", secret_key="testing"
            ),
            sleep=lambda s: None,
        )
        ec2 = self.client.ec2
        ec2.meta.events.register(
            "before-call.ec2.*",
            lambda model, **kw: calls.append((name, model.name)),
            unique_id=f"record-{name}",
        )
        self.vpc = ec2.create_vpc(CidrBlock=f"{prefix}.0.0/16")["Vpc"]["VpcId"]
        self.subnet = ec2.create_subnet(VpcId=self.vpc, CidrBlock=f"{prefix}.0.0/24")["Subnet"]["SubnetId"]
        self.group = ec2.create_security_group(
            GroupName=f"cluster-{next(_ids)}", Description="c", VpcId=self.vpc
        )["GroupId"]
        self.image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        self.table = ec2.describe_route_tables(
            Filters=[
                {"Name": "vpc-id", "Values": [self.vpc]},
                {"Name": "association.main", "Values": ["true"]},
            ]
        )["RouteTables"][0]["RouteTableId"]

    def launch(self, role: str) -> InstanceDoc:
        [inst] = self.client.ec2.run_instances(
            ImageId=self.image, MinCount=1, MaxCount=1, SubnetId=self.subnet, SecurityGroupIds=[self.group]
        )["Instances"]
        n = next(_ids)
        return {  # type: ignore[typeddict-item]
            "id": f"ci-{n:04d}",
            "ec2_id": inst["InstanceId"],
            "cloud": self.name,
            "group_id": f"ig-{role}",
            "role": role,
            "private_ip": inst["PrivateIpAddress"],
            "state": "BOOTSTRAPPING",
        }

    def routes(self) -> dict[str, str]:
        [table] = self.client.ec2.describe_route_tables(RouteTableIds=[self.table])["RouteTables"]
        return {r["DestinationCidrBlock"]: r["InstanceId"] for r in table["Routes"] if r.get("InstanceId")}

    def ingress(self) -> set[tuple[str, str]]:
        [group] = self.client.ec2.describe_security_groups(GroupIds=[self.group])["SecurityGroups"]
        return {(p["IpProtocol"], r["CidrIp"]) for p in group["IpPermissions"] for r in p.get("IpRanges", [])}

    def addresses(self) -> list[dict]:
        return self.client.ec2.describe_addresses()["Addresses"]

    def source_dest_check(self, instance_id: str) -> bool:
        return self.client.ec2.describe_instance_attribute(
            InstanceId=instance_id, Attribute="sourceDestCheck"
        )["SourceDestCheck"]["Value"]


@pytest.fixture
def overlay(moto_endpoint, store, fake_nodes):
    return _overlay(moto_endpoint, store)


def _overlay(endpoint: str, store) -> tuple[dict[str, Cloud], list[tuple[str, str]], NetworkContext]:
    calls: list[tuple[str, str]] = []
    clouds = {name: Cloud(endpoint, name, calls) for name in RANGES}
    cid = f"j-OVERLAY{next(_ids)}"
    sessions = NodeSessions()
    context = NetworkContext(
        cid,
        store,
        client_for=lambda name: clouds[name].client,
        security_group_for=lambda name: clouds[name].group,
        sessions=sessions,
        tags={"resilin:cluster-id": cid},
    )
    return clouds, calls, context


def _add(context: NetworkContext, instances: list[InstanceDoc]) -> None:
    for instance in instances:
        if context.sessions.get(instance["id"]) is None:
            context.sessions.add(instance["id"], FakeNode(instance["private_ip"], [], None))  # type: ignore[arg-type]
            context.store.put_instance(context.cid, instance)


def _changes(calls: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [c for c in calls if c[1] in CHANGING]


def _node(context: NetworkContext, instance: InstanceDoc) -> FakeNode:
    return context.sessions[instance["id"]]  # type: ignore[return-value]


def test_a_single_cloud_cluster_makes_no_call_at_all(overlay):
    clouds, calls, context = overlay
    instances = [clouds["east"].launch("MASTER"), clouds["east"].launch("CORE")]
    _add(context, instances)
    calls.clear()
    OverlayNetwork().join(instances, context)
    assert calls == []
    assert not any(_node(context, i).commands for i in instances)
    assert OverlayNetwork().leave(context) == [] and calls == []


def test_join_then_leave_two_clouds(overlay):
    clouds, calls, context = overlay
    east, west = clouds["east"], clouds["west"]
    master, core_e, core_w, task_w = (
        east.launch("MASTER"),
        east.launch("CORE"),
        west.launch("CORE"),
        west.launch("TASK"),
    )
    instances = [master, core_e, core_w, task_w]
    _add(context, instances)
    calls.clear()
    network = OverlayNetwork(probe_seconds=5)
    network.join(instances, context)

    # The calls, in order in each cloud (the clouds are asked at once): the gateway's address and
    # forwarding, then (once every gateway's address is known) the rules in one call, then the routes.
    changes = _changes(calls)
    for cloud in ("east", "west"):
        assert [name for c, name in changes if c == cloud] == [
            "AllocateAddress",
            "AssociateAddress",
            "ModifyInstanceAttribute",
            "AuthorizeSecurityGroupIngress",
            "CreateRoute",
            "CreateRoute",
        ]
    names = [name for _, name in changes]
    assert max(n for n, name in enumerate(names) if name == "ModifyInstanceAttribute") < names.index(
        "AuthorizeSecurityGroupIngress"
    )
    assert ("east", "DescribeRouteTables") in calls and ("west", "DescribeRouteTables") in calls

    # What moto holds: routes to the local gateway, rules for the remote nodes and gateway, addresses.
    assert east.routes() == {
        f"{core_w['private_ip']}/32": master["ec2_id"],
        f"{task_w['private_ip']}/32": master["ec2_id"],
    }
    assert west.routes() == {
        f"{master['private_ip']}/32": core_w["ec2_id"],
        f"{core_e['private_ip']}/32": core_w["ec2_id"],
    }
    [east_ip] = [a for a in east.addresses() if a.get("InstanceId") == master["ec2_id"]]
    [west_ip] = [a for a in west.addresses() if a.get("InstanceId") == core_w["ec2_id"]]
    assert {t["Key"]: t["Value"] for t in east_ip.get("Tags", [])} == {"resilin:cluster-id": context.cid}
    assert east.ingress() >= {
        ("udp", f"{west_ip['PublicIp']}/32"),
        ("-1", f"{core_w['private_ip']}/32"),
        ("-1", f"{task_w['private_ip']}/32"),
    }
    assert west.ingress() >= {("udp", f"{east_ip['PublicIp']}/32"), ("-1", f"{master['private_ip']}/32")}
    assert not east.source_dest_check(master["ec2_id"]) and not west.source_dest_check(core_w["ec2_id"])
    assert east.source_dest_check(core_e["ec2_id"])  # only gateways forward

    # The gateways got their configuration on standard input, never on a command line, then `up`.
    state = OverlayStore(context.store.redis, context.cid).load()
    private = state.keys[master["ec2_id"]].private
    gateway = _node(context, master)
    [write] = [c for c in gateway.commands if "tun0.conf" in c]
    command, _, stdin = write.partition("\n")
    assert private not in command and f"PrivateKey = {private}" in stdin
    assert f"Endpoint = {west_ip['PublicIp']}:51820" in stdin
    assert gateway.ran("sudo -n /usr/local/sbin/resilin-overlay-gateway up")
    assert not _node(context, core_e).ran("tun0.conf")
    # Every node probed every other node's SSH port.
    for instance in instances:
        others = {i["private_ip"] for i in instances} - {instance["private_ip"]}
        [probe] = [c for c in _node(context, instance).commands if "/dev/tcp/" in c]
        assert {ip for ip in others if f"/dev/tcp/{ip}/22" in probe} == others

    # Joining again with the same instances changes nothing in the clouds and reloads no gateway.
    calls.clear()
    before = len(gateway.commands)
    network.join(instances, context)
    assert {name for _, name in _changes(calls)} <= {"ModifyInstanceAttribute"}
    assert not any("tun0.conf" in c for c in gateway.commands[before:])

    # leave: routes deleted, rules revoked, addresses released, keys forgotten.
    calls.clear()
    assert network.leave(context) == []
    changes = _changes(calls)
    assert [name for _, name in changes] == [
        *["DeleteRoute"] * 4,
        *["RevokeSecurityGroupIngress"] * 2,
        *["DisassociateAddress", "ReleaseAddress"] * 2,
    ]
    assert east.routes() == {} and west.routes() == {}
    assert east.ingress() == set() and west.ingress() == set()
    assert east.addresses() == [] or all(
        a.get("InstanceId") not in (master["ec2_id"],) for a in east.addresses()
    )
    assert not [a for a in west.addresses() if a["PublicIp"] == west_ip["PublicIp"]]
    assert not [a for a in east.addresses() if a["PublicIp"] == east_ip["PublicIp"]]
    assert context.store.redis.get(f"resilin:overlay:{context.cid}") is None
    assert gateway.ran("sudo -n /usr/local/sbin/resilin-overlay-gateway down")


def test_a_resize_and_a_replaced_gateway_reform_the_overlay(overlay):
    clouds, calls, context = overlay
    east, west = clouds["east"], clouds["west"]
    master, core_w = east.launch("MASTER"), west.launch("CORE")
    network = OverlayNetwork(probe_seconds=5)
    _add(context, [master, core_w])
    network.join([master, core_w], context)

    # A resize adds a node in the west: a route for it in the east, a rule, the east's peers reloaded.
    core_w2 = west.launch("CORE")
    _add(context, [core_w2])
    calls.clear()
    east_gateway, west_gateway = _node(context, master), _node(context, core_w)
    east_before, west_before = len(east_gateway.commands), len(west_gateway.commands)
    network.join([master, core_w, core_w2], context)
    assert sorted(_changes(calls)) == [
        ("east", "AuthorizeSecurityGroupIngress"),
        ("east", "CreateRoute"),
        ("east", "ModifyInstanceAttribute"),
        ("west", "ModifyInstanceAttribute"),
    ]
    assert east.routes()[f"{core_w2['private_ip']}/32"] == master["ec2_id"]
    assert any(core_w2["private_ip"] in c and "tun0.conf" in c for c in east_gateway.commands[east_before:])
    assert not any("tun0.conf" in c for c in west_gateway.commands[west_before:])  # its peers did not change

    # The west gateway is gone: the next core node takes over, with a new address and the routes moved.
    old_ip = [a for a in west.addresses() if a.get("InstanceId") == core_w["ec2_id"]][0]
    west.client.terminate([core_w["ec2_id"]])
    calls.clear()
    network.join([master, core_w2], context)
    names = [c for c in _changes(calls)]
    assert names[:2] == [("west", "DisassociateAddress"), ("west", "ReleaseAddress")]
    assert ("west", "ReplaceRoute") in names and ("east", "DeleteRoute") in names
    assert west.routes() == {f"{master['private_ip']}/32": core_w2["ec2_id"]}
    assert east.routes() == {f"{core_w2['private_ip']}/32": master["ec2_id"]}
    assert [a["InstanceId"] for a in west.addresses() if a.get("InstanceId")] == [core_w2["ec2_id"]]
    assert old_ip["PublicIp"] not in {a["PublicIp"] for a in west.addresses()}
    assert ("udp", f"{old_ip['PublicIp']}/32") not in east.ingress()
    state = OverlayStore(context.store.redis, context.cid).load()
    assert state.gateways == {"east": master["ec2_id"], "west": core_w2["ec2_id"]}
    assert core_w["ec2_id"] not in state.keys
    # After a restart: another OverlayNetwork, no sessions; what was made is found in the store.
    made = {a.public_ip for a in state.addresses}
    assert OverlayNetwork().leave(dataclasses.replace(context, sessions=NodeSessions())) == []
    assert made and not made & {a["PublicIp"] for c in (east, west) for a in c.addresses()}
    assert east.routes() == {} and west.routes() == {}


def test_unreachable_pairs_are_named(overlay, monkeypatch):
    clouds, calls, context = overlay
    master, core_w = clouds["east"].launch("MASTER"), clouds["west"].launch("CORE")
    _add(context, [master, core_w])
    unreachable = f"unreachable {core_w['private_ip']}"

    def answer(node, text):
        return node.host == master["private_ip"] and "/dev/tcp/" in text

    real_run = FakeNode.run

    def run(self, command, timeout=None, stdin_data=None):
        result = real_run(self, command, timeout, stdin_data)
        if stdin_data and answer(self, stdin_data):
            result.stdout = unreachable + "\n"
        return result

    monkeypatch.setattr(FakeNode, "run", run)
    with pytest.raises(NetworkFailure) as failure:
        OverlayNetwork(probe_seconds=1).join([master, core_w], context)
    assert (
        f"{master['ec2_id']} (master, cloud east) → {core_w['ec2_id']} (core, cloud west) ({core_w['private_ip']})"
        in str(failure.value)
    )
    assert OverlayNetwork().leave(context) == []


def test_the_probe_script_tells_an_open_port_from_a_closed_one():
    """The script the nodes run, run here by bash against a listening and a closed port."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        script = probe_script(["127.0.0.1", "127.0.0.2"], port=port)
        done = subprocess.run(["bash", "-s"], input=script, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert done.stdout.split("\n") == ["unreachable 127.0.0.2", ""]


def test_a_rule_already_there_is_taken_as_made(overlay):
    clouds, calls, context = overlay
    east, west = clouds["east"], clouds["west"]
    master, core_w = east.launch("MASTER"), west.launch("CORE")
    _add(context, [master, core_w])
    # Made by hand (or an earlier run that stopped before recording it).
    east.client.authorize_ingress(
        east.group, [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": f"{core_w['private_ip']}/32"}]}]
    )
    calls.clear()
    network = OverlayNetwork(probe_seconds=5)
    network.join([master, core_w], context)
    # The batch was refused as a duplicate, then each rule was tried alone.
    assert [c for c in _changes(calls) if c == ("east", "AuthorizeSecurityGroupIngress")] == [
        ("east", "AuthorizeSecurityGroupIngress")
    ] * 3
    assert ("-1", f"{core_w['private_ip']}/32") in east.ingress()
    assert any(protocol == "udp" for protocol, _ in east.ingress())
    assert network.leave(context) == []
    assert east.ingress() == set() and west.ingress() == set()


def test_a_cloud_that_gives_no_address_makes_its_gateway_a_spoke(moto_endpoint, store, fake_nodes):
    with FaultProxy(moto_endpoint) as proxy:
        # The east tags no addresses (refused once, then allocated untagged); the west gives none.
        proxy.fail("AllocateAddress", "InvalidParameterValue", 400, times=1, region="us-east-1")
        proxy.fail("AllocateAddress", "AddressLimitExceeded", 400, times=100, region="eu-west-1")
        clouds, calls, context = _overlay(proxy.endpoint, store)
        east, west = clouds["east"], clouds["west"]
        master, core_w = east.launch("MASTER"), west.launch("CORE")
        _add(context, [master, core_w])
        network = OverlayNetwork(probe_seconds=5)
        network.join([master, core_w], context)
        east_answers = [
            c.answered for c in proxy.calls if c.action == "AllocateAddress" and c.region == "us-east-1"
        ]
        assert east_answers == ["InvalidParameterValue", "upstream"]
        assert proxy.answered("AllocateAddress").count("AddressLimitExceeded") == 1
        [hub] = [a for a in east.addresses() if a.get("InstanceId") == master["ec2_id"]]
        assert not hub.get("Tags")
        assert not [a for a in west.addresses() if a.get("InstanceId") == core_w["ec2_id"]]
        # The spoke dials the hub with keep-alives; the hub has no endpoint for it, and admits the
        # WireGuard port from anywhere (the spoke's source address is unknown), nothing else.
        spoke_config = next(c for c in _node(context, core_w).commands if "tun0.conf" in c)
        assert (
            f"Endpoint = {hub['PublicIp']}:51820" in spoke_config
            and "PersistentKeepalive = 25" in spoke_config
        )
        hub_config = next(c for c in _node(context, master).commands if "tun0.conf" in c)
        assert "Endpoint" not in hub_config and "PersistentKeepalive" not in hub_config
        assert east.ingress() == {("udp", "0.0.0.0/0"), ("-1", f"{core_w['private_ip']}/32")}
        assert west.ingress() == {("udp", f"{hub['PublicIp']}/32"), ("-1", f"{master['private_ip']}/32")}
        assert network.leave(context) == []
        assert hub["PublicIp"] not in {a["PublicIp"] for a in east.addresses()}
        assert east.ingress() == set() and east.routes() == {} and west.routes() == {}
