"""The overlay's plan: gateways, peers, routes and security-group rules from the instances alone."""

from __future__ import annotations

import pytest

from resilin.overlay.plan import (
    KEEPALIVE_SECONDS,
    Member,
    Permission,
    PlanError,
    Route,
    choose_gateways,
    plan_overlay,
)

MASTER = Member("i-m", "east", "MASTER", "10.1.0.10")
CORE_E = Member("i-ce", "east", "CORE", "10.1.0.11")
TASK_W = Member("i-tw", "west", "TASK", "10.2.0.20")
CORE_W1 = Member("i-cw1", "west", "CORE", "10.2.0.21")
CORE_W2 = Member("i-cw2", "west", "CORE", "10.2.0.22")


def test_one_cloud_has_no_gateway():
    assert choose_gateways([MASTER, CORE_E], {}) == {}
    assert plan_overlay([MASTER, CORE_E], {}).routes == {}


def test_the_master_in_its_cloud_and_the_first_core_node_elsewhere():
    gateways = choose_gateways([CORE_E, TASK_W, MASTER, CORE_W1, CORE_W2], {})
    assert gateways == {"east": MASTER, "west": CORE_W1}


def test_a_task_node_when_a_cloud_has_no_core_node():
    assert choose_gateways([MASTER, TASK_W], {})["west"] == TASK_W


def test_a_running_gateway_keeps_its_role_and_a_gone_one_is_replaced():
    members = [MASTER, CORE_W1, CORE_W2]
    assert choose_gateways(members, {"west": "i-cw2"})["west"] == CORE_W2
    assert choose_gateways([MASTER, CORE_W1], {"west": "i-cw2"})["west"] == CORE_W1


def test_a_node_launched_with_a_public_address_is_its_clouds_gateway():
    # ssh_via_gateway gives one node of a cloud a public address: the overlay takes that one.
    public_w2 = Member("i-cw2", "west", "CORE", "10.2.0.22", "198.51.100.7")
    assert choose_gateways([MASTER, CORE_W1, public_w2], {})["west"] == public_w2
    public_core = Member("i-ce", "east", "CORE", "10.1.0.11", "198.51.100.8")
    assert choose_gateways([CORE_E, MASTER, CORE_W1], {})["east"] == MASTER
    assert choose_gateways([public_core, MASTER, CORE_W1], {})["east"] == public_core
    # A gateway keeps its role even when another node has a public address.
    assert choose_gateways([MASTER, CORE_W1, public_w2], {"west": "i-cw1"})["west"] == CORE_W1


def _gateways(members, **public):
    return {
        c: Member(g.instance_id, g.cloud, g.role, g.private_ip, public.get(c, ""))
        for c, g in choose_gateways(members, {}).items()
    }


def test_two_public_gateways_dial_each_other_and_carry_the_remote_nodes():
    members = [MASTER, CORE_E, CORE_W1, CORE_W2]
    plan = plan_overlay(members, _gateways(members, east="198.51.100.1", west="203.0.113.2"))
    [to_west] = plan.peers["east"]
    assert to_west.cloud == "west"
    assert to_west.allowed_ips == ("10.2.0.21/32", "10.2.0.22/32")
    assert to_west.endpoint == "203.0.113.2:51820" and to_west.keepalive is None
    [to_east] = plan.peers["west"]
    assert (
        to_east.allowed_ips == ("10.1.0.10/32", "10.1.0.11/32") and to_east.endpoint == "198.51.100.1:51820"
    )
    assert plan.routes["east"] == (Route("10.2.0.21/32", "i-m"), Route("10.2.0.22/32", "i-m"))
    assert plan.routes["west"] == (Route("10.1.0.10/32", "i-cw1"), Route("10.1.0.11/32", "i-cw1"))
    east = plan.permissions["east"]
    assert Permission("udp", 51820, "203.0.113.2/32", "overlay gateway of west") in east
    assert {p.cidr for p in east if p.protocol == "-1"} == {"10.2.0.21/32", "10.2.0.22/32"}
    assert len(east) == 3  # nothing from the cloud's own nodes, nothing from anywhere else


def test_a_gateway_without_a_public_address_is_a_spoke_that_dials_out():
    members = [MASTER, CORE_W1]
    plan = plan_overlay(members, _gateways(members, east="198.51.100.1"))
    [hub_peer] = plan.peers["west"]
    assert hub_peer.endpoint == "198.51.100.1:51820" and hub_peer.keepalive == KEEPALIVE_SECONDS
    [spoke_peer] = plan.peers["east"]
    assert spoke_peer.endpoint is None and spoke_peer.keepalive is None
    # The hub cannot know the spoke's source address: the WireGuard port is open, nothing else.
    assert Permission("udp", 51820, "0.0.0.0/0", "overlay gateways dialling out") in plan.permissions["east"]
    assert [p.cidr for p in plan.permissions["west"] if p.protocol == "udp"] == ["198.51.100.1/32"]


def test_spokes_reach_each_other_through_the_first_hub():
    north = Member("i-n", "north", "CORE", "10.3.0.30")
    members = [MASTER, CORE_W1, north]
    plan = plan_overlay(members, _gateways(members, east="198.51.100.1"))
    [west_to_hub] = plan.peers["west"]
    assert west_to_hub.allowed_ips == ("10.1.0.10/32", "10.3.0.30/32")
    assert {p.cloud for p in plan.peers["east"]} == {"west", "north"}


def test_no_public_gateway_at_all_is_refused():
    with pytest.raises(PlanError, match="no gateway of the overlay has a public address"):
        plan_overlay([MASTER, CORE_W1], _gateways([MASTER, CORE_W1]))


def test_permissions_in_the_ec2_shape():
    assert Permission("udp", 51820, "192.0.2.1/32", "g").ip_permission() == {
        "IpProtocol": "udp",
        "FromPort": 51820,
        "ToPort": 51820,
        "IpRanges": [{"CidrIp": "192.0.2.1/32", "Description": "g"}],
    }
    assert Permission("-1", None, "10.0.0.1/32").ip_permission() == {
        "IpProtocol": "-1",
        "IpRanges": [{"CidrIp": "10.0.0.1/32"}],
    }
