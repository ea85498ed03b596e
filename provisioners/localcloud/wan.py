"""The WAN: the "internet" between the local clouds of one Resilin installation.

Each local cloud's own network is internal and apart from the others (podman does not forward
between them).  The WAN is one more podman network, one per installation, that the installation's
clouds share: an instance with a public address gets a second interface on it with that address
(:mod:`public_addresses`).  Like the clouds' networks it is internal (no NAT, no way out of the
host) and has no DNS, and the host shields itself from it: from the WAN only replies to the host's
own connections reach the host.

Its name and subnet are the installation's: ``resilin-wan-<installation id>`` and a /24 of the
shared address space 100.64.0.0/10 (never a cloud's: local clouds' subnets are private ranges)
picked from a start that the name decides, so that concurrent installations on one host (tests
start many) neither share a WAN nor fight over a subnet unless configured to.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from resilin.provisioners.localcloud import host_shield
from resilin.provisioners.localcloud.podman import Podman, PodmanError

SHARED_SPACE = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT's range
PREFIX = 24
ATTEMPTS = 16  # free-looking subnets tried (another host network may hold one podman does not list)
LABEL = "resilin.wan"


@dataclass(frozen=True)
class Wan:
    """The WAN network's name and subnet, as a local cloud is told them."""

    network: str
    subnet: str

    def args(self) -> list[str]:
        """The local cloud's command-line options naming it."""
        return ["--wan-network", self.network, "--wan-subnet", self.subnet]


def default_network(installation: str) -> str:
    """The WAN of installation ``installation`` (``rsl-…``, see resilin.settings.installation)."""
    return "resilin-wan-" + installation.removeprefix("rsl-")


def candidate_subnets(seed: str) -> Iterator[str]:
    """Every /24 of 100.64.0.0/10, from one that ``seed`` decides onwards (wrapping around)."""
    count = 1 << (PREFIX - SHARED_SPACE.prefixlen)
    start = int(hashlib.sha256(seed.encode()).hexdigest(), 16) % count
    base = int(SHARED_SPACE.network_address)
    for i in range(count):
        yield f"{ipaddress.IPv4Address(base + ((start + i) % count) * (1 << (32 - PREFIX)))}/{PREFIX}"


def _subnets_in_use(podman: Podman) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    taken = []
    for name in podman.list_networks():
        try:
            subnets = podman.network_inspect(name).get("subnets") or []
        except PodmanError:  # removed since it was listed
            continue
        taken += [ipaddress.ip_network(s["subnet"]) for s in subnets]
    return taken


def _create(podman: Podman, network: str, subnet: str) -> PodmanError | None:
    """Make the network with ``subnet``; podman's refusal, if it refused (another network has it)."""
    try:
        podman.ensure_network(network, subnet, {LABEL: network})
    except PodmanError as exc:
        if not podman.network_exists(network):  # else made meanwhile by another of the installation's clouds
            return exc
    return None


def ensure(network: str, subnet: str = "", podman: Podman | None = None) -> Wan:
    """Make the WAN network if it is missing and shield the host from it (blocking); returns it.

    With a ``subnet`` the network must have that one; without, an existing network keeps its own and
    a new one takes the first free candidate (:func:`candidate_subnets` of its name).
    """
    podman = podman or Podman()
    if subnet:
        refused = _create(podman, network, subnet)
        if refused:
            raise refused
    elif not podman.network_exists(network):
        taken = _subnets_in_use(podman)
        free = (
            c
            for c in candidate_subnets(network)
            if not any(ipaddress.ip_network(c).overlaps(t) for t in taken)
        )
        refused = PodmanError(f"no free /{PREFIX} of {SHARED_SPACE} for the WAN network {network}")
        for candidate in itertools.islice(free, ATTEMPTS):
            refused = _create(podman, network, candidate)
            if refused is None:
                break
        if refused:
            raise refused
    found = podman.network_inspect(network)
    have = [s["subnet"] for s in found.get("subnets") or []]
    if not have or (subnet and subnet not in have):
        raise PodmanError(f"network {network} exists with subnet(s) {have}, not {subnet}")
    bridge = found.get("network_interface", "")
    if bridge:
        host_shield.shield(bridge, podman.network_gateway(network), [])
    return Wan(network, have[0])


def remove_if_unused(network: str, podman: Podman | None = None) -> bool:
    """Remove the WAN network unless a container still uses it (blocking); True if it is gone."""
    podman = podman or Podman()
    if not podman.network_exists(network):
        return True
    bridge = podman.network_inspect(network).get("network_interface", "")
    if not podman.remove_network(network, force=False):
        return False
    if bridge:
        host_shield.remove(bridge)
    return True
