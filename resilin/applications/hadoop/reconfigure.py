"""Applying an instance group's new configurations to its running nodes (EMR's reconfiguration).

ModifyInstanceGroups records the group's new configurations as a pending version; the
cluster's monitor (resilin.cluster.operations) hands the group here once any resize of it is done.  The group's nodes
are reconfigured a few at a time, as EMR rolls through them: each node's Hadoop files are
rendered again with the group's configurations over the cluster's, the daemons whose
classifications changed are restarted, and the node must be back in HDFS and YARN before
the next ones go.  If a node fails, every node already touched gets the previous
configuration back and the group keeps that one, with the failure as its state-change reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from resilin.applications.hadoop.membership import MembershipError, ident, wait_nodes
from resilin.applications.hadoop_config import (
    DAEMON_TOOLS,
    ClusterSpec,
    daemons_for,
    overrides_from,
    render_reconfigure_script,
)
from resilin.cluster.runtime import ClusterRuntime
from resilin.jobflows import states
from resilin.jobflows.documents import ClusterDoc, InstanceDoc
from resilin.jobflows.store import Doc

log = logging.getLogger(__name__)

SCRIPT_TIMEOUT = 600  # stopping and starting daemons, and the NameNode leaving safe mode
REJOIN_TIMEOUT = 180
ROLLING_SHARE = 10  # at most one node in ten is reconfigured at a time, as on EMR

_EVERY_DAEMON = tuple(DAEMON_TOOLS)
# Which daemons read which classification (configuration keys as overrides_from names them).
RESTARTED_BY: dict[str, tuple[str, ...]] = {
    "core-site": _EVERY_DAEMON,
    "hdfs-site": ("namenode", "datanode"),
    "yarn-site": ("resourcemanager", "nodemanager"),
    "capacity-scheduler": ("resourcemanager",),
    "mapred-site": ("historyserver",),
    "hadoop-env/export": _EVERY_DAEMON,
    "yarn-env/export": ("resourcemanager", "nodemanager"),
    "mapred-env/export": ("historyserver",),
    "hadoop-log4j": _EVERY_DAEMON,
}


class ReconfigurationFailed(Exception):
    pass


def changed_classifications(cluster: list[Doc], before: list[Doc], after: list[Doc]) -> set[str]:
    """The classifications whose effective properties differ once the group's are laid over the cluster's."""
    old, new = overrides_from(cluster, before), overrides_from(cluster, after)
    return {name for name in old.keys() | new.keys() if old.get(name, {}) != new.get(name, {})}


def daemons_to_restart(changed: set[str], running: tuple[str, ...]) -> list[str]:
    """Of the daemons a node runs, those reading a changed classification, in start order."""
    wanted = {daemon for name in changed for daemon in RESTARTED_BY.get(name, ())}
    return [d for d in DAEMON_TOOLS if d in wanted and d in running]


def failure_summary(stderr: str, limit: int = 600) -> str:
    """What went wrong, from a node script's error output: the failing daemon and its root cause.

    hadoop-daemon reports a daemon that died as it started with the tail of its log, mostly a
    stack trace; the line naming the daemon and the innermost exception say what failed.
    """
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    headline = next((line for line in lines if line.startswith("ERROR")), None)
    causes = [line for line in lines if "Exception" in line and not line.startswith("at ")]
    innermost = next((line for line in reversed(causes) if line.startswith("Caused by:")), None)
    cause = innermost or next(iter(causes), None)
    if headline is None and cause is None:
        return stderr.strip()[-limit:]
    return " ".join(part for part in (headline, cause) if part)[:limit]


class Reconfigurer:
    def __init__(self, runtime: ClusterRuntime, spec: Callable[[list[InstanceDoc]], ClusterSpec]) -> None:
        self.runtime = runtime
        self.cid = runtime.cid
        self.store = runtime.store
        self.spec = spec  # the cluster's Hadoop description over the given instances

    def apply(self, gid: str) -> None:
        """Bring the group's nodes to its pending configurations, or back to its previous ones."""
        cluster = self.runtime.cluster
        group = next(g for g in cluster["groups"] if g["id"] == gid)
        pending = group.get("pending_configurations")
        if not pending:
            return
        previous = group.get("applied_configurations", [])
        changed = changed_classifications(cluster["configurations"], previous, group["configurations"])
        members = [i for i in self.runtime.live_instances() if i["group_id"] == gid]
        touched: list[InstanceDoc] = []
        try:
            self._roll(members, group["configurations"], changed, touched)
        except Exception as exc:  # whatever failed, EMR's rule holds: the group goes back
            log.warning("%s: reconfiguring %s failed: %s", self.cid, gid, exc)
            code = (
                states.VALIDATION_ERROR if isinstance(exc, ReconfigurationFailed) else states.INTERNAL_ERROR
            )
            reason = str(exc)
            try:
                self._roll(touched, previous, changed, [])
            except Exception as again:
                log.warning("%s: restoring %s failed: %s", self.cid, gid, again)
                reason += f"; restoring the previous configuration failed too: {again}"
            self._finish(gid, pending["version"], (code, reason))
            return
        self._finish(gid, pending["version"], None)
        log.info("%s: %s reconfigured (version %s)", self.cid, gid, pending["version"])

    def _roll(
        self,
        members: list[InstanceDoc],
        configurations: list[Doc],
        changed: set[str],
        touched: list[InstanceDoc],
    ) -> None:
        """Reconfigure ``members`` a batch at a time with ``configurations``, adding each to ``touched``."""
        spec = self.spec(self.runtime.live_instances())
        by_ip = {n.ip: n for n in spec.nodes}
        for instance in members:
            by_ip[instance["private_ip"]].configurations = configurations
        size = max(1, len(members) // ROLLING_SHARE)
        for start in range(0, len(members), size):
            batch = members[start : start + size]
            touched.extend(batch)  # a node whose script failed half-way needs restoring as well

            def one(instance: InstanceDoc) -> list[str]:
                node = by_ip[instance["private_ip"]]
                restart = daemons_to_restart(changed, daemons_for(spec, node))
                script = render_reconfigure_script(spec, node, restart)
                result = self.runtime.sessions[instance["id"]].run_script(script, timeout=SCRIPT_TIMEOUT)
                if result.exit_status != 0:
                    raise ReconfigurationFailed(
                        f"Reconfiguring {instance['id']} ({instance['ec2_id']}) failed: "
                        f"{failure_summary(result.stderr)}"
                    )
                return restart

            with ThreadPoolExecutor(max_workers=len(batch)) as pool:
                restarted = dict(zip((i["id"] for i in batch), pool.map(one, batch), strict=True))
            self._wait_rejoined(batch, restarted)

    def _wait_rejoined(self, batch: list[InstanceDoc], restarted: dict[str, list[str]]) -> None:
        """Until HDFS and YARN count again every daemon the batch restarted (all of them, after a master's)."""
        live = self.runtime.live_instances()
        master_restarted = {d for i in batch if i["role"] == "MASTER" for d in restarted[i["id"]]}
        datanodes = [i for i in batch if "datanode" in restarted[i["id"]]]
        nodemanagers = [i for i in batch if "nodemanager" in restarted[i["id"]]]
        if "namenode" in master_restarted:
            datanodes = [i for i in live if i["role"] == "CORE"] or datanodes
        if "resourcemanager" in master_restarted:
            nodemanagers = [i for i in live if i["role"] != "MASTER"] or nodemanagers
        if not datanodes and not nodemanagers:
            return
        try:
            wait_nodes(self.runtime, "joined", REJOIN_TIMEOUT, datanodes, nodemanagers)
        except MembershipError as exc:
            names = ", ".join(sorted({ident(i) for i in datanodes + nodemanagers}))
            raise ReconfigurationFailed(f"Hadoop daemons of {names} did not come back: {exc}") from None

    def _finish(self, gid: str, version: int, failure: tuple[str, str] | None) -> None:
        def change(c: ClusterDoc) -> None:
            group = next(g for g in c["groups"] if g["id"] == gid)
            group.pop("pending_configurations", None)
            if failure is None:
                group["applied_configurations"] = group["configurations"]
                group["applied_configurations_version"] = version
                group["state_reason"] = None
            else:
                # EMR reverts: the group keeps the configurations it last applied.
                group["configurations"] = group.get("applied_configurations", [])
                code, reason = failure
                group["state_reason"] = {
                    "code": code,
                    "message": (
                        f"Reconfiguration to version {version} failed and was reverted to version "
                        f"{group.get('applied_configurations_version', 0)}: {reason}"
                    )[:2000],
                }
            if group["state"] == states.GROUP_RECONFIGURING:
                # A resize asked for meanwhile waited for the reconfiguration and goes next.
                group["state"] = (
                    states.GROUP_RESIZING if group["requested"] != group["running"] else states.GROUP_RUNNING
                )

        self.store.update_cluster(self.cid, change)
