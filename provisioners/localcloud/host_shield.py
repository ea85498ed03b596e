"""What a local cloud's instances may reach on the host: only what Resilin serves them.

Cluster nodes run their users' code.  Every host service listening on all addresses (the EMR API
and the clouds' EC2 endpoints when ``bind_host = "0.0.0.0"``, and anything else the host runs)
would otherwise answer them through the cloud's gateway.  Each cloud gets its own nftables table
on the host (named after the cloud's bridge) whose input chain, for packets arriving on that
bridge, accepts replies to
the host's own connections (SSH to the instances) and new connections to the allowed ports of
the gateway address (storage), and drops everything else.  Traffic between instances is bridged
and does not pass the host's input hook, so it is untouched.

A table belongs to a bridge, not to a cloud's name: a network made anew may get the bridge of one
that is gone, so making a network clears its bridge's table (``Podman.ensure_network``), and
shielding a bridge replaces whatever table it had.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable

TABLE_PREFIX = "resilin_host_"


class HostShieldError(Exception):
    pass


def table_name(bridge: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", bridge):
        raise HostShieldError(f"unexpected bridge interface name {bridge!r}")
    return TABLE_PREFIX + re.sub(r"[^A-Za-z0-9_]", "_", bridge)


def ruleset(bridge: str, gateway: str, tcp_ports: Iterable[int]) -> str:
    """The nft script that (re)defines the bridge's table in one transaction."""
    table = table_name(bridge)
    ports = ", ".join(str(int(p)) for p in sorted(set(tcp_ports)))
    allow = f'\t\tiifname "{bridge}" ip daddr {gateway} tcp dport {{ {ports} }} accept\n' if ports else ""
    return (
        f"table inet {table}\n"
        f"delete table inet {table}\n"
        f"table inet {table} {{\n"
        "\tchain input {\n"
        "\t\ttype filter hook input priority filter; policy accept;\n"
        f'\t\tiifname "{bridge}" ct state established,related accept\n'
        f"{allow}"
        f'\t\tiifname "{bridge}" drop\n'
        "\t}\n"
        "}\n"
    )


def _nft(*args: str, script: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nft", *args], input=script, capture_output=True, text=True, timeout=60)


def shield(bridge: str, gateway: str, tcp_ports: Iterable[int]) -> None:
    """Let the instances on ``bridge`` reach only ``tcp_ports`` of the host's ``gateway`` address (blocking)."""
    done = _nft("-f", "-", script=ruleset(bridge, gateway, tcp_ports))
    if done.returncode != 0:
        raise HostShieldError(f"nft could not shield the host from bridge {bridge}: {done.stderr.strip()}")


def listing(bridge: str) -> str:
    """The bridge's table as ``nft list`` prints it ('' when there is none)."""
    done = _nft("list", "table", "inet", table_name(bridge))
    return done.stdout if done.returncode == 0 else ""


def remove(bridge: str) -> None:
    """Drop the bridge's table, if any (its network is going, or was just made)."""
    _nft("delete", "table", "inet", table_name(bridge))
