"""Private ranges of the clouds one cluster spans: they must not overlap, since the overlay
routes each cloud's addresses as they are (no NAT)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping


def overlapping_ranges_refusal(ranges: Mapping[str, str]) -> str | None:
    """Why clouds with these private ranges (cloud name → CIDR) cannot form one cluster; None if they can."""
    spans = sorted(
        (name, cidr, int(net.network_address), int(net.broadcast_address), net.version)
        for name, cidr in ranges.items()
        for net in [ipaddress.ip_network(cidr, strict=False)]
    )
    clashes = [
        f"{a[0]} ({a[1]}) and {b[0]} ({b[1]})"
        for i, a in enumerate(spans)
        for b in spans[i + 1 :]
        if a[4] == b[4] and a[2] <= b[3] and b[2] <= a[3]
    ]
    if not clashes:
        return None
    return (
        "The private address ranges of the clouds this cluster spans overlap: "
        + "; ".join(clashes)
        + ". The overlay network routes each cloud's addresses as they are: place the groups in "
        "clouds whose ranges do not overlap."
    )
