"""Which nodes HDFS and YARN count: waiting for nodes to join or leave, and the exclude lists.

A node leaves gracefully by being written into the exclude lists (``dfs.hosts.exclude``,
``yarn.resourcemanager.nodes.exclude-path``) that the master's daemons re-read; the lists
are kept in the cluster's document (``excluded_nodes``) so that an address the cloud hands
out again can be let back in.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from importlib import resources
from typing import Any

from resilin.applications.hadoop_config import DFS_EXCLUDE, YARN_EXCLUDE
from resilin.cluster.runtime import ClusterRuntime
from resilin.jobflows.documents import ClusterDoc, ExcludedNode, InstanceDoc

NODE_STATES = (resources.files("resilin.hadoop_templates") / "node_states.py").read_text()


class MembershipError(Exception):
    pass


def ident(instance: Mapping[str, Any]) -> str:
    return f"{instance['private_ip']}/{instance.get('hostname', '')}"


def wait_nodes(
    runtime: ClusterRuntime,
    goal: str,
    timeout: float,
    datanodes: list[InstanceDoc],
    nodemanagers: list[InstanceDoc],
) -> None:
    """Until the master counts ``datanodes`` and ``nodemanagers`` as ``goal`` (joined, decommissioned)."""
    master = runtime.master_instance()
    command = (
        f"python3 - {goal} {timeout:.0f} --master {master['private_ip']}"
        f" --datanodes {','.join(ident(i) for i in datanodes) or ','}"
        f" --nodemanagers {','.join(ident(i) for i in nodemanagers) or ','}"
    )
    result = runtime.sessions[master["id"]].run(command, timeout=timeout + 60, stdin_data=NODE_STATES)
    if result.exit_status != 0:
        raise MembershipError(result.stderr.strip()[-400:] or f"nodes not {goal}")


def write_excludes(
    runtime: ClusterRuntime, excluded: Sequence[Mapping[str, Any]], graceful_timeout: int | None
) -> None:
    """Make the exclude lists exactly ``excluded`` and have HDFS and YARN re-read them."""
    names = "\n".join(part for i in excluded for part in ident(i).split("/") if part)
    yarn_refresh = "yarn rmadmin -refreshNodes" + (
        f" -g {graceful_timeout} -server" if graceful_timeout is not None else ""
    )
    script = f"""set -e
cat > {DFS_EXCLUDE} <<'EOF'
{names}
EOF
cp {DFS_EXCLUDE} {YARN_EXCLUDE}
hdfs dfsadmin -refreshNodes >/dev/null &
{yarn_refresh} >/dev/null
wait $!
"""
    result = runtime.master().run_script(script, timeout=180)
    if result.exit_status != 0:
        raise MembershipError(f"refreshing the node lists failed: {result.stderr.strip()[-400:]}")


def excluded(runtime: ClusterRuntime) -> list[ExcludedNode]:
    return list((runtime.cluster.get("excluded_nodes") or {}).values())


def set_excluded(
    runtime: ClusterRuntime, add: Sequence[InstanceDoc] = (), remove_ips: Collection[str] = frozenset()
) -> list[ExcludedNode]:
    def change(c: ClusterDoc) -> None:
        current = c.setdefault("excluded_nodes", {})
        for ip in remove_ips:
            current.pop(ip, None)
        for i in add:
            current[i["private_ip"]] = {"private_ip": i["private_ip"], "hostname": i.get("hostname", "")}

    return list(runtime.store.update_cluster(runtime.cid, change)["excluded_nodes"].values())
