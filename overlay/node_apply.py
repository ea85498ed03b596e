"""The overlay on the nodes, over the cluster's SSH sessions: gateways' configurations and the probe.

A configuration holds its gateway's private key, so it goes to the node on the command's
standard input (never on a command line, in a process list or in a log) and is written by
root, 0600, where ``resilin-overlay-gateway`` (the node image's) reads it.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import paramiko

from resilin.clouds.ssh import Node, SshError
from resilin.cluster.network import NetworkFailure

# What a node's session may raise when the node is gone or its connection broke.
SESSION_ERRORS = (SshError, OSError, EOFError, paramiko.SSHException)
CONFIG_DIR = "/etc/resilin/overlay"
CONFIG_PATH = f"{CONFIG_DIR}/tun0.conf"
GATEWAY_PROGRAM = "/usr/local/sbin/resilin-overlay-gateway"
COMMAND_TIMEOUT = 60
PROBE_PORT = 22
PROBE_CONNECT_SECONDS = 3

# Written to a temporary file and renamed, root's umask 077: the key is never readable by others.
_WRITE_CONFIG = (
    f"sudo -n install -d -m 0700 -o root -g root {CONFIG_DIR} && "
    + "sudo -n sh -c "
    + shlex.quote(
        f"umask 077 && cat > {CONFIG_PATH}.new && chmod 0600 {CONFIG_PATH}.new && mv -f {CONFIG_PATH}.new {CONFIG_PATH}"
    )
)


@dataclass(frozen=True)
class ProbeNode:
    """A node taking part in the probe: its session, its name in messages, its private address."""

    name: str
    node: Node
    private_ip: str


def start_gateway(name: str, node: Node, config: str) -> None:
    """Write the gateway's configuration and bring its tunnel up (or make it re-read the peers)."""
    _checked(name, node, _WRITE_CONFIG, "writing the overlay configuration", stdin=config)
    _checked(name, node, f"sudo -n {GATEWAY_PROGRAM} up", "starting the overlay gateway")


def stop_gateway(name: str, node: Node) -> None:
    """Stop the tunnel and delete the configuration (and so the key) from the node."""
    _checked(name, node, f"sudo -n {GATEWAY_PROGRAM} down", "stopping the overlay gateway")


def _checked(name: str, node: Node, command: str, what: str, stdin: str | None = None) -> None:
    try:
        done = node.run(command, timeout=COMMAND_TIMEOUT, stdin_data=stdin)
    except SESSION_ERRORS as exc:
        raise NetworkFailure(f"{what} on {name} failed: {exc}") from exc
    if done.exit_status != 0:
        why = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise NetworkFailure(
            f"{what} on {name} failed: {why[-1] if why else f'exit status {done.exit_status}'}"
        )


def probe_script(targets: Sequence[str], port: int = PROBE_PORT) -> str:
    """A bash script that connects to every target at once and prints ``unreachable IP`` for each that fails."""
    checks = [
        f"(timeout {PROBE_CONNECT_SECONDS} bash -c {shlex.quote(f'exec 3<>/dev/tcp/{ip}/{port}')} 2>/dev/null "
        f"|| echo {shlex.quote(f'unreachable {ip}')}) &"
        for ip in targets
    ]
    return "\n".join([*checks, "wait", ""])


def unreachable_pairs(nodes: Sequence[ProbeNode], pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Of ``pairs`` (source name, target private ip), those whose TCP connection failed, every
    source probing its targets in parallel."""
    targets: dict[str, list[str]] = {}
    for source, ip in sorted(pairs):
        targets.setdefault(source, []).append(ip)
    by_name = {n.name: n for n in nodes}

    def probe(source: str) -> set[tuple[str, str]]:
        wanted = targets[source]
        try:
            done = by_name[source].node.run_script(probe_script(wanted), timeout=PROBE_CONNECT_SECONDS + 30)
        except SESSION_ERRORS:
            return {(source, ip) for ip in wanted}
        if done.exit_status != 0:
            return {(source, ip) for ip in wanted}
        failed = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("unreachable ")}
        return {(source, ip) for ip in wanted if ip in failed}

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(targets)))) as pool:
        results = list(pool.map(probe, sorted(targets)))
    return set().union(*results) if results else set()


def probe_all(nodes: Sequence[ProbeNode], deadline_seconds: float, pause: float = 1.0) -> None:
    """Every node reaches every other node's SSH port within the deadline (tunnels take a handshake
    to come up, so failed pairs are tried again); NetworkFailure names the pairs that never did."""
    pairs = {(a.name, b.private_ip) for a in nodes for b in nodes if a.name != b.name}
    deadline = time.monotonic() + deadline_seconds
    while pairs:
        pairs = unreachable_pairs(nodes, pairs)
        if not pairs or time.monotonic() + pause > deadline:
            break
        time.sleep(pause)
    if pairs:
        names = {n.private_ip: n.name for n in nodes}
        shown = ", ".join(f"{source} → {names.get(ip, ip)} ({ip})" for source, ip in sorted(pairs)[:10])
        more = f" and {len(pairs) - 10} more" if len(pairs) > 10 else ""
        raise NetworkFailure(
            f"The overlay network did not join every node within {deadline_seconds:.0f}s: "
            f"TCP port {PROBE_PORT} unreachable from {shown}{more}"
        )
