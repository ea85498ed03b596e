"""Growing and shrinking a running cluster's instance groups.

Growing launches instances through the cluster's cloud (tagged like the first ones),
makes them known to every node, configures them with the same rendered script as at
start (bootstrap actions included) and waits until HDFS and YARN count them.

Shrinking decommissions first: a TASK node gracefully in YARN (running work finishes),
a CORE node in HDFS as well, which re-replicates its blocks before it is let go; only
then is the instance terminated.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import TYPE_CHECKING

from resilin.applications.hadoop_config import DFS_EXCLUDE, YARN_EXCLUDE, render_hosts_update
from resilin.clouds.provisioning import ProvisioningFailed
from resilin.clouds.ssh import Node, SshError
from resilin.cluster import node_setup
from resilin.jobflows import states
from resilin.jobflows.store import Doc

if TYPE_CHECKING:
    from resilin.cluster.cluster_worker import ClusterWorker

log = logging.getLogger(__name__)

NODE_STATES = (resources.files("resilin.hadoop_templates") / "node_states.py").read_text()
RUNNING_TIMEOUT = 300
SSH_TIMEOUT = 180
JOIN_TIMEOUT = 300
DEFAULT_DECOMMISSION_TIMEOUT = 3600
LIVE = (states.INSTANCE_BOOTSTRAPPING, states.INSTANCE_RUNNING)


class ResizeError(Exception):
    pass


def ident(instance: Doc) -> str:
    return f"{instance['private_ip']}/{instance.get('hostname', '')}"


class Resizer:
    def __init__(self, worker: ClusterWorker) -> None:
        self.worker = worker
        self.cid = worker.cid
        self.store = worker.store

    # -- helpers --------------------------------------------------------
    def live_instances(self) -> list[Doc]:
        return [i for i in self.store.instances_of(self.cid) if i["state"] in LIVE]

    def master(self) -> tuple[Doc, Node]:
        master = next(i for i in self.store.instances_of(self.cid) if i["role"] == "MASTER")
        return master, self.worker.nodes[master["id"]]

    def wait_nodes(self, goal: str, timeout: float, datanodes: list[Doc], nodemanagers: list[Doc]) -> None:
        master, node = self.master()
        command = (
            f"python3 - {goal} {timeout:.0f} --master {master['private_ip']}"
            f" --datanodes {','.join(ident(i) for i in datanodes) or ','}"
            f" --nodemanagers {','.join(ident(i) for i in nodemanagers) or ','}"
        )
        result = node.run(command, timeout=timeout + 60, stdin_data=NODE_STATES)
        if result.exit_status != 0:
            raise ResizeError(result.stderr.strip()[-400:] or f"nodes not {goal}")

    def write_excludes(self, excluded: list[Doc], graceful_timeout: int | None) -> None:
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
        _, node = self.master()
        result = node.run_script(script, timeout=180)
        if result.exit_status != 0:
            raise ResizeError(f"refreshing the node lists failed: {result.stderr.strip()[-400:]}")

    def excluded(self) -> list[Doc]:
        return list((self.worker.cluster.get("excluded_nodes") or {}).values())

    def set_excluded(self, add: list[Doc] = (), remove_ips: set[str] = frozenset()) -> list[Doc]:
        def change(c: Doc) -> None:
            current = c.setdefault("excluded_nodes", {})
            for ip in remove_ips:
                current.pop(ip, None)
            for i in add:
                current[i["private_ip"]] = {"private_ip": i["private_ip"], "hostname": i.get("hostname", "")}

        return list(self.store.update_cluster(self.cid, change)["excluded_nodes"].values())

    # -- growing --------------------------------------------------------
    def grow(self, group: Doc, count: int) -> None:
        worker = self.worker
        placement = worker.placement
        assert placement is not None
        if group.get("cloud") not in (None, placement.cloud_name):
            raise ResizeError(
                f"instance group {group['id']} is placed in cloud {group['cloud']}, which cannot reach "
                f"the cluster's cloud {placement.cloud_name} without the overlay network"
            )
        try:
            ready = worker.provisioner.grow(worker.cluster, group, count)
        except ProvisioningFailed as exc:
            raise ResizeError(exc.message) from None
        new = []
        for item in ready:
            item.doc.setdefault("timeline", {"created": time.time()})
            new.append((item.doc, item.node))
        for instance, node in new:
            worker.nodes[instance["id"]] = node
            self.store.put_instance(self.cid, instance)

        # An address the cloud hands out again must not stay excluded from HDFS and YARN.
        new_ips = {i["private_ip"] for i, _ in new}
        if any(e["private_ip"] in new_ips for e in self.excluded()):
            self.write_excludes(self.set_excluded(remove_ips=new_ips), None)

        everyone = self.live_instances()
        spec = worker._spec(everyone)
        new_specs = [s for s in spec.nodes if s.ip in new_ips]
        hosts = render_hosts_update(new_specs)
        old = [i for i in everyone if i["private_ip"] not in new_ips]
        with ThreadPoolExecutor(max_workers=min(8, len(old) or 1)) as pool:
            list(pool.map(lambda i: worker.nodes[i["id"]].run_script(hosts, timeout=60), old))
        try:
            node_setup.configure_nodes(spec, new, JOIN_TIMEOUT, on_done=worker.keep_bootstrap_logs)
        except node_setup.NodeSetupError as exc:
            self.retire([i for i, _ in new], exc.message)
            raise ResizeError(exc.message) from None
        joined = [i for i, _ in new]
        self.wait_nodes("joined", JOIN_TIMEOUT, [i for i in joined if i["role"] == "CORE"], joined)
        for instance in joined:
            instance["state"] = states.INSTANCE_RUNNING
            instance.setdefault("timeline", {})["ready"] = time.time()
            self.store.put_instance(self.cid, instance)
        log.info("%s: %d %s instance(s) joined", self.cid, count, group["role"].lower())

    # -- shrinking ------------------------------------------------------
    def shrink(self, group: Doc, count: int) -> None:
        live = [i for i in self.live_instances() if i["group_id"] == group["id"]]
        wanted = set(group.get("terminate_ec2_ids") or [])
        # The instances the request named go first, then the newest.
        victims = sorted(
            live, key=lambda i: (i["ec2_id"] not in wanted, -(i.get("timeline") or {}).get("created", 0))
        )[:count]
        if not victims:
            return
        timeout = group.get("decommission_timeout")
        timeout = DEFAULT_DECOMMISSION_TIMEOUT if timeout is None else int(timeout)
        excluded = self.set_excluded(add=victims)
        self.write_excludes(excluded, timeout)
        core = [i for i in victims if i["role"] == "CORE"]
        # HDFS first moves every block off the leaving DataNodes; YARN lets running work finish.
        self.wait_nodes("decommissioned", timeout + 120, core, victims)
        self.retire(victims, "Instance group was shrunk")
        log.info("%s: %d %s instance(s) decommissioned and terminated", self.cid, len(victims), group["role"])

    def retire(self, instances: list[Doc], reason: str, code: str | None = None) -> None:
        """Terminate instances and record them as TERMINATED."""
        placement = self.worker.placement
        assert placement is not None
        try:
            placement.client.terminate([i["ec2_id"] for i in instances])
        except Exception as exc:  # the teardown sweep by tag catches it at the latest
            log.warning("%s: terminating %s failed: %s", self.cid, [i["ec2_id"] for i in instances], exc)
        for instance in instances:
            instance["state"] = states.INSTANCE_TERMINATED
            instance["state_reason"] = {"code": code, "message": reason}
            instance.setdefault("timeline", {})["end"] = time.time()
            self.store.put_instance(self.cid, instance)
            node = self.worker.nodes.pop(instance["id"], None)
            if node is not None:
                node.close()

    def forget_failed(self, instance: Doc) -> None:
        """Tell HDFS and YARN at once that a dead node is gone, so its work is redone elsewhere now."""
        try:
            self.write_excludes(self.set_excluded(add=[instance]), None)
        except (ResizeError, SshError, OSError) as exc:
            log.warning("%s: could not exclude failed node %s: %s", self.cid, instance["id"], exc)
