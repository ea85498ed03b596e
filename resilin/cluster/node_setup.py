"""Runs the rendered configuration script on nodes, all in parallel, one SSH session each.

Used when a cluster starts and when it grows.  Each script reports how long its node
waited for Hadoop daemons and ran bootstrap actions, so Resilin can tell its own time
apart from Hadoop's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from resilin.applications.hadoop_config import ClusterSpec, NodeSpec, render_node_script
from resilin.clouds.ssh import Node, SshError
from resilin.cluster import bootstrap
from resilin.jobflows.documents import InstanceDoc, InstanceGroupDoc

_TIMING = re.compile(r"RESILIN_TIMING daemons_us=(\d+) bootstrap_us=(\d+)")


@dataclass
class NodeTiming:
    total: float  # the whole SSH session, seconds
    daemons: float  # waiting for Hadoop daemons to start
    bootstrap: float  # the user's bootstrap actions


class NodeSetupError(Exception):
    def __init__(self, message: str, instance: InstanceDoc, bootstrap_failed: bool) -> None:
        super().__init__(message)
        self.message = message
        self.instance = instance
        self.bootstrap_failed = bootstrap_failed


def node_spec(instance: InstanceDoc, group: InstanceGroupDoc | None) -> NodeSpec:
    return NodeSpec(
        name=f"ip-{instance['private_ip'].replace('.', '-')}",
        ip=instance["private_ip"],
        role=instance["role"],
        hostname=instance.get("hostname", ""),
        instance_type=instance.get("instance_type", ""),
        group_id=instance.get("group_id", ""),
        configurations=group.get("configurations", []) if group else [],
        cloud=instance.get("cloud", ""),
    )


def configure_nodes(
    spec: ClusterSpec,
    targets: list[tuple[InstanceDoc, Node]],
    timeout: float,
    on_done: Callable[[InstanceDoc, Node, int], None] | None = None,
) -> dict[str, NodeTiming]:
    """Configure every (instance, node) in parallel; the first failure raises :class:`NodeSetupError`.

    ``on_done(instance, node, exit_status)`` runs after each node's script (to keep its logs).
    """
    by_ip = {n.ip: n for n in spec.nodes}

    def one(target: tuple[InstanceDoc, Node]) -> tuple[str, NodeTiming]:
        instance, node = target
        script = render_node_script(spec, by_ip[instance["private_ip"]])
        started = time.monotonic()
        try:
            result = node.run_script(script, timeout=timeout)
        except SshError as exc:
            raise NodeSetupError(f"Configuring {instance['id']} failed: {exc}", instance, False) from exc
        if on_done is not None:
            on_done(instance, node, result.exit_status)
        if result.exit_status == bootstrap.FAILED_EXIT_STATUS:
            raise NodeSetupError(
                f"Bootstrap action failed on {instance['id']} ({instance['ec2_id']}): "
                f"{result.stderr.strip()[-500:]}",
                instance,
                True,
            )
        if result.exit_status != 0:
            raise NodeSetupError(
                f"Configuring Hadoop on {instance['id']} failed (exit {result.exit_status}): "
                f"{result.stderr.strip()[-500:]}",
                instance,
                False,
            )
        match = _TIMING.search(result.stdout)
        daemons, boot = (int(match.group(1)) / 1e6, int(match.group(2)) / 1e6) if match else (0.0, 0.0)
        return instance["id"], NodeTiming(time.monotonic() - started, daemons, boot)

    if not targets:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
        return dict(pool.map(one, targets))


def on_each(instances: list[InstanceDoc], work: Callable[[InstanceDoc], None]) -> None:
    """``work`` on every instance at once (eight at a time); the first failure is raised once
    all have ended."""
    if instances:
        with ThreadPoolExecutor(max_workers=min(8, len(instances))) as pool:
            list(pool.map(work, instances))
