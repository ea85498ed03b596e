"""Security groups enforced: an nftables ruleset inside each instance's own network namespace.

Every instance gets table ``inet resilin`` whose input chain drops whatever its
security groups do not allow (replies to its own connections are let in, as
EC2's groups are stateful; outbound traffic is free, as with EC2's default
egress rule).  Its forward chain applies the same rules to the packets the
instance forwards (a gateway with SourceDestCheck off): EC2 checks a gateway's
inbound rules on whatever reaches it, whichever its destination, so a gateway
forwards only what its groups admit, and replies to what it forwarded.  The
table lives in the container's namespace, so it goes away with the instance,
and the container (without CAP_NET_ADMIN) cannot change it.  The host's ``nft``
is run there through ``nsenter``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from resilin.provisioners.localcloud import netns

TABLE = "resilin"
# An instance's interface on its cloud's network: the one podman makes first.  Its WAN interface (a
# public address) comes later; members of a group are admitted by their private addresses on this one only.
CLOUD_INTERFACE = "eth0"


class FirewallError(Exception):
    pass


@dataclass(frozen=True)
class Allow:
    """One ingress permission with its sources resolved to networks."""

    protocol: str  # "-1" (all), "tcp", "udp", "icmp", "icmpv6", or an IP protocol number
    from_port: int | None
    to_port: int | None
    sources: tuple[str, ...]  # CIDRs, IPv4 or IPv6
    interface: str = ""  # only packets arriving on this interface; "": any


def _match(protocol: str, from_port: int | None, to_port: int | None, v6: bool) -> str | None:
    """The nft expression selecting the protocol and ports; None when it cannot apply to this family."""
    if protocol == "-1":
        return ""
    if protocol in ("tcp", "udp"):
        ports = f"{from_port}" if from_port == to_port else f"{from_port}-{to_port}"
        return f"{protocol} dport {ports}"
    if protocol in ("icmp", "icmpv6"):
        if (protocol == "icmpv6") != v6:
            return None
        # For ICMP, EC2's FromPort is the type and ToPort the code; -1 means any.
        expr = f"meta l4proto {'ipv6-icmp' if v6 else 'icmp'}"
        if from_port is not None and from_port >= 0:
            expr = f"{protocol} type {from_port}"
            if to_port is not None and to_port >= 0:
                expr += f" {protocol} code {to_port}"
        return expr
    return f"meta l4proto {int(protocol)}"


def ruleset(allows: Iterable[Allow]) -> str:
    """An nft script that atomically replaces the instance's table with one enforcing ``allows``."""
    lines = []
    for allow in allows:
        for v6 in (False, True):
            nets = [s for s in allow.sources if (ipaddress.ip_network(s, strict=False).version == 6) == v6]
            match = _match(allow.protocol, allow.from_port, allow.to_port, v6)
            if not nets or match is None:
                continue
            family = "ip6" if v6 else "ip"
            everyone = "::/0" if v6 else "0.0.0.0/0"
            source = "" if everyone in nets else f"{family} saddr {{ {', '.join(sorted(set(nets)))} }} "
            if not source and not match:
                lines.append(f"meta nfproto {'ipv6' if v6 else 'ipv4'} accept")
            else:
                lines.append(f"{source}{match} accept".replace("  ", " ").strip())
            if allow.interface:
                lines[-1] = f'iifname "{allow.interface}" {lines[-1]}'
    body = "\n".join(f"\t\t{line}" for line in lines)
    # Declaring the table first makes the delete succeed even when there is none yet: one transaction.
    # The forward chain counts what it refuses, so a gateway's drops can be seen (nft list).
    return (
        f"table inet {TABLE}\n"
        f"delete table inet {TABLE}\n"
        f"table inet {TABLE} {{\n"
        "\tchain ingress {\n"
        "\t\ttype filter hook input priority filter; policy drop;\n"
        "\t\tct state established,related accept\n"
        '\t\tiifname "lo" accept\n'
        f"{body}\n"
        "\t}\n"
        "\tchain forward {\n"
        "\t\ttype filter hook forward priority filter; policy drop;\n"
        "\t\tct state established,related accept\n"
        f"{body}\n"
        "\t\tcounter drop\n"
        "\t}\n"
        "}\n"
    )


def apply(pid: int, script: str) -> None:
    """Load ``script`` into the network namespace of process ``pid`` (blocking; run off the reactor)."""
    try:
        netns.run(pid, ["nft", "-f", "-"], stdin=script)
    except netns.NetnsError as exc:
        raise FirewallError(str(exc)) from None


def listing(pid: int) -> str:
    """The instance's current table, as ``nft list`` prints it (for tests and debugging)."""
    return netns.run(pid, ["nft", "list", "table", "inet", TABLE], check=False)
