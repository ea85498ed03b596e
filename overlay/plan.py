"""What the overlay of a cluster should be, decided from its instances alone (no I/O).

ViNe's shape: one gateway per cloud (a node that has a public address, as ``ssh_via_gateway``
launches one; else the master in its cloud, the first core node, else task node, elsewhere; a
gateway keeps its role while it runs), each cloud's routes sending the other clouds' nodes to
its gateway, and the gateways joined by WireGuard.  A gateway with a
public address is dialled by the others; one without (a spoke) dials out to those that have
one (the hubs) with keep-alives, and reaches other spokes through the first hub.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WIREGUARD_PORT = 51820
KEEPALIVE_SECONDS = 25
_ROLE_RANK = {"MASTER": 0, "CORE": 1, "TASK": 2}


class PlanError(Exception):
    pass


@dataclass(frozen=True)
class Member:
    """A node of the cluster as the overlay sees it."""

    instance_id: str  # the cloud's id (i-…)
    cloud: str
    role: str  # MASTER, CORE or TASK
    private_ip: str
    public_ip: str = ""  # a public address the other gateways can dial ("" if none)


@dataclass(frozen=True)
class Peer:
    """A remote gateway as a local gateway's WireGuard sees it."""

    cloud: str
    allowed_ips: tuple[str, ...]  # the /32s it carries
    endpoint: str | None  # "ip:port" to dial, None when it dials us
    keepalive: int | None


@dataclass(frozen=True)
class Route:
    destination: str  # a remote node's /32
    target: str  # the local gateway's instance id


@dataclass(frozen=True, order=True)
class Permission:
    """One ingress rule on the cluster's security group in a cloud."""

    protocol: str  # "udp", or "-1" for all traffic
    port: int | None
    cidr: str
    description: str = ""

    def ip_permission(self) -> dict[str, Any]:
        """As AuthorizeSecurityGroupIngress's IpPermissions entry."""
        ip_range: dict[str, str] = {"CidrIp": self.cidr}
        if self.description:
            ip_range["Description"] = self.description
        permission: dict[str, Any] = {"IpProtocol": self.protocol, "IpRanges": [ip_range]}
        if self.port is not None:
            permission["FromPort"] = permission["ToPort"] = self.port
        return permission


@dataclass(frozen=True)
class OverlayPlan:
    gateways: dict[str, Member]  # cloud → its gateway
    peers: dict[str, tuple[Peer, ...]]  # cloud → the peers of its gateway
    routes: dict[str, tuple[Route, ...]]  # cloud → routes in its route table
    permissions: dict[str, tuple[Permission, ...]]  # cloud → ingress on the cluster's group there


def host(ip: str) -> str:
    return f"{ip}/32"


def choose_gateways(members: Sequence[Member], current: Mapping[str, str]) -> dict[str, Member]:
    """cloud → gateway, for a cluster in two clouds or more (none otherwise).

    ``current`` (cloud → instance id) keeps a gateway that is still a member, so that a resize
    never moves the tunnels; otherwise a member with a public address comes first (Resilin may
    reach the cloud's other nodes through it), then by role, then in order of ``members``."""
    clouds = sorted({m.cloud for m in members})
    if len(clouds) < 2:
        return {}
    gateways = {}
    for cloud in clouds:
        here = [m for m in members if m.cloud == cloud]
        kept = [m for m in here if m.instance_id == current.get(cloud)]
        ranked = sorted(here, key=lambda m: (not m.public_ip, _ROLE_RANK.get(m.role, len(_ROLE_RANK))))
        gateways[cloud] = (kept or ranked)[0]
    return gateways


def plan_overlay(members: Sequence[Member], gateways: Mapping[str, Member]) -> OverlayPlan:
    """Peers, routes and security-group rules, given the gateways with their public addresses."""
    if len(gateways) < 2:
        return OverlayPlan(dict(gateways), {}, {}, {})
    nodes = {
        cloud: tuple(sorted(host(m.private_ip) for m in members if m.cloud == cloud)) for cloud in gateways
    }
    hubs = sorted(c for c, g in gateways.items() if g.public_ip)
    spokes = sorted(c for c, g in gateways.items() if not g.public_ip)
    if not hubs:
        raise PlanError(
            "no gateway of the overlay has a public address (clouds "
            + ", ".join(sorted(gateways))
            + "), so none can be dialled"
        )
    relay = hubs[0]  # spokes reach each other through it
    peers: dict[str, tuple[Peer, ...]] = {}
    for cloud in gateways:
        if cloud in hubs:
            peers[cloud] = tuple(
                Peer(other, nodes[other], _endpoint(gateways[other]), None)
                for other in sorted(gateways)
                if other != cloud
            )
        else:
            peers[cloud] = tuple(
                Peer(
                    hub,
                    tuple(sorted(nodes[hub] + (_others(nodes, spokes, cloud) if hub == relay else ()))),
                    _endpoint(gateways[hub]),
                    KEEPALIVE_SECONDS,
                )
                for hub in hubs
            )
    routes = {
        cloud: tuple(
            Route(ip, gateway.instance_id)
            for other in sorted(gateways)
            if other != cloud
            for ip in nodes[other]
        )
        for cloud, gateway in gateways.items()
    }
    permissions = {cloud: _permissions(cloud, gateways, nodes, spokes) for cloud in gateways}
    return OverlayPlan(dict(gateways), peers, routes, permissions)


def _endpoint(gateway: Member) -> str | None:
    return f"{gateway.public_ip}:{WIREGUARD_PORT}" if gateway.public_ip else None


def _others(nodes: Mapping[str, tuple[str, ...]], spokes: Sequence[str], cloud: str) -> tuple[str, ...]:
    return tuple(ip for spoke in spokes if spoke != cloud for ip in nodes[spoke])


def _permissions(
    cloud: str, gateways: Mapping[str, Member], nodes: Mapping[str, tuple[str, ...]], spokes: Sequence[str]
) -> tuple[Permission, ...]:
    wanted = set()
    for other, gateway in gateways.items():
        if other == cloud:
            continue
        if gateway.public_ip:
            wanted.add(
                Permission("udp", WIREGUARD_PORT, host(gateway.public_ip), f"overlay gateway of {other}")
            )
        elif gateways[cloud].public_ip:
            # A spoke dials out from an address it does not know (its cloud's NAT): WireGuard
            # answers no packet that is not from a peer's key, so the port alone is open.
            wanted.add(Permission("udp", WIREGUARD_PORT, "0.0.0.0/0", "overlay gateways dialling out"))
        wanted.update(Permission("-1", None, ip, f"overlay: node of {other}") for ip in nodes[other])
    return tuple(sorted(wanted))
