"""Shaping an instance's WAN link, as a slow or distant network would: the admin API's WAN fault.

The instance's WAN interface is one end of a veth pair whose other end is on the host, on the WAN
bridge.  A token bucket (``tc`` qdisc ``tbf``) on the host's end limits what the instance
receives; one on its own end (set from the host through ``nsenter``, since the instance has no
CAP_NET_ADMIN and cannot lift it) limits what it sends.  So both directions are shaped without
``ifb``.  Added delay is not done here: this project's hosts have no ``netem`` qdisc, so a delay
line (:mod:`delayline`) holds the frames in user space, and the buckets stay where they are.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

LATENCY_MS = 50  # how long a packet may wait in the bucket before it is dropped


class ShapingError(Exception):
    pass


@dataclass(frozen=True)
class Link:
    inside: str  # the instance's WAN interface, e.g. eth1
    host: str  # its peer on the host, e.g. veth3


def _run(args: list[str], pid: int = 0) -> str:
    command = (["nsenter", "--target", str(pid), "--net"] if pid else []) + args
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise ShapingError(f"{' '.join(args[:3])} failed: {proc.stderr.strip()}")
    return proc.stdout


def wan_link(pid: int, public_ip: str) -> Link:
    """The veth pair of the interface holding ``public_ip`` in the network namespace of ``pid``."""
    for entry in json.loads(_run(["ip", "-j", "-4", "addr", "show"], pid) or "[]"):
        if any(a.get("local") == public_ip for a in entry.get("addr_info", [])):
            peer = entry.get("link_index")
            for link in json.loads(_run(["ip", "-j", "link", "show"]) or "[]"):
                if link.get("ifindex") == peer and link.get("ifname", "").startswith("veth"):
                    return Link(entry["ifname"], link["ifname"])
            raise ShapingError(f"the host end of {entry['ifname']} (index {peer}) was not found")
    raise ShapingError(f"no interface holds {public_ip}: the instance is not on the WAN")


def _qdisc(rate_mbit: float) -> list[str]:
    # Ten milliseconds' worth of tokens, and at least a few full frames (tbf splits larger GSO packets).
    burst = max(int(rate_mbit * 1e6 / 8 / 100), 16 * 1024)
    return ["tbf", "rate", f"{rate_mbit:g}mbit", "burst", str(burst), "latency", f"{LATENCY_MS}ms"]


def shape(pid: int, public_ip: str, rate_mbit: float) -> Link:
    """Limit the WAN link to ``rate_mbit`` each way."""
    link = wan_link(pid, public_ip)
    qdisc = _qdisc(rate_mbit)
    try:
        _run(["tc", "qdisc", "replace", "dev", link.host, "root", *qdisc])
        _run(["tc", "qdisc", "replace", "dev", link.inside, "root", *qdisc], pid)
    except ShapingError:
        clear(pid, public_ip)
        raise
    return link


def clear(pid: int, public_ip: str) -> None:
    """Take any shaping off the WAN link (none: nothing to do)."""
    link = wan_link(pid, public_ip)
    for device, namespace in ((link.host, 0), (link.inside, pid)):
        try:
            _run(["tc", "qdisc", "del", "dev", device, "root"], namespace)
        except ShapingError:
            pass  # no root qdisc of ours there


def current(pid: int, public_ip: str) -> float | None:
    """The rate (Mbit/s) the link is limited to, read from the host's end (None: not limited)."""
    link = wan_link(pid, public_ip)
    for q in json.loads(_run(["tc", "-j", "qdisc", "show", "dev", link.host, "root"]) or "[]"):
        if q.get("kind") == "tbf":
            return float((q.get("options") or {}).get("rate", 0)) * 8 / 1e6
    return None
