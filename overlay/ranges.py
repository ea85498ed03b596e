"""The clouds of one cluster must have disjoint private ranges: the overlay routes them as they are."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from itertools import combinations


def overlapping_ranges_refusal(ranges: Mapping[str, str]) -> str | None:
    """Why clouds with these private ranges (cloud name → CIDR) cannot share a cluster; None if they can.

    Addresses are routed without NAT (Hadoop keys nodes by their registration address), so two
    clouds whose ranges overlap would have nodes the overlay cannot tell apart."""
    networks: dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network] = {}
    for cloud, cidr in sorted(ranges.items()):
        try:
            networks[cloud] = ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError:
            return f"The private range {cidr!r} of cloud {cloud} is not a CIDR block."
    clashes = [
        f"{a} ({networks[a]}) and {b} ({networks[b]})"
        for a, b in combinations(sorted(networks), 2)
        if networks[a].version == networks[b].version and networks[a].overlaps(networks[b])
    ]
    if not clashes:
        return None
    return (
        "The private ranges of clouds "
        + "; ".join(clashes)
        + " overlap: a cluster's clouds need distinct ranges to be joined by the overlay network."
    )
