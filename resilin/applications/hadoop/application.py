"""Hadoop on a cluster: configuring and starting it, adding and decommissioning nodes, reconfiguring
groups, and shipping the nodes' logs.  The lifecycle and the operations call it through
:class:`resilin.applications.base.Application`.

Every node gets one rendered configuration script (bootstrap actions included, run before
the daemons start); nodes added later get the same, and the others learn their names.
Shrinking decommissions first: a TASK node gracefully in YARN (running work finishes), a CORE
node in HDFS as well, which re-replicates its blocks before it is let go.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from resilin.applications.base import Application, ApplicationError, NodesRejected, StartTiming
from resilin.applications.hadoop import membership, quiesce, topology
from resilin.applications.hadoop.membership import MembershipError, wait_nodes, write_excludes
from resilin.applications.hadoop.reconfigure import Reconfigurer
from resilin.applications.hadoop_config import (
    ClusterSpec,
    daemons_for,
    render_membership_update,
    render_reconfigure_script,
    render_wait_ready,
)
from resilin.clouds.ssh import Node, SshError
from resilin.cluster import bootstrap, node_logs, node_setup
from resilin.cluster.runtime import ClusterFailure, ClusterRuntime
from resilin.jobflows import states
from resilin.jobflows.documents import ClusterDoc, InstanceDoc, InstanceGroupDoc

log = logging.getLogger(__name__)

HADOOP_READY_TIMEOUT = 600
JOIN_TIMEOUT = 300
DEFAULT_DECOMMISSION_TIMEOUT = 3600


class HadoopApplication(Application):
    name = "hadoop"

    def __init__(self) -> None:
        self.bootstrap_script = ""  # rendered once at start, the same for nodes added later
        self.configured = False  # from then on the nodes have logs worth shipping

    # -- the cluster's description -------------------------------------------------
    def spec(self, runtime: ClusterRuntime, instances: list[InstanceDoc]) -> ClusterSpec:
        cluster = runtime.cluster
        creds = runtime.node_credentials()
        workers = [g for g in cluster["groups"] if g["role"] != "MASTER" and g["requested"]]
        groups = {g["id"]: g for g in cluster["groups"]}
        nodes = [node_setup.node_spec(i, groups.get(i.get("group_id", ""))) for i in instances]
        master = next((i for i in instances if i["role"] == "MASTER"), None) or runtime.master_instance()
        home = cluster.get("home_rack") or topology.home_rack(instances, master["cloud"])
        for node in nodes:
            node.rack = topology.rack_of(node.cloud, master["cloud"], home)
        external = runtime.placement.external_storage
        return ClusterSpec(
            cluster_id=runtime.cid,
            nodes=nodes,
            storage_endpoint=runtime.placement.storage_endpoint,
            # A cluster's storage is its master's cloud's.  Resilin's own is reached at each cloud's
            # address for it; an external service at the one endpoint that cloud names.
            cloud_storage_endpoints={
                cloud: placement.storage_endpoint
                for cloud in {n.cloud for n in nodes if n.cloud}
                if (placement := runtime.placements(cloud)).external_storage is None
            }
            if external is None
            else {},
            region=external.region if external is not None else runtime.region,
            path_style=external.path_style if external is not None else True,
            access_key=creds.access_key,
            secret_key=creds.secret_key,
            session_token=creds.session_token,
            worker_type=(workers[0] if workers else cluster["groups"][0])["instance_type"],
            configurations=cluster["configurations"],
            replication=cluster.get("hdfs_replication"),
            bootstrap_script=self.bootstrap_script,
        )

    def keep_bootstrap_logs(self, runtime: ClusterRuntime, instance: InstanceDoc, node: Node) -> None:
        actions = runtime.cluster.get("bootstrap_actions") or []
        if not actions:
            return
        cid = runtime.cid
        local = runtime.home / "logs" / cid / "node" / instance["ec2_id"] / "bootstrap-actions"
        upload = bootstrap.log_uploader(
            runtime.storage(), runtime.cluster.get("log_uri"), f"{cid}/node/{instance['ec2_id']}"
        )
        bootstrap.keep_logs(node, len(actions), local, upload)

    # -- start -------------------------------------------------------------------------
    def _render_bootstrap(self, runtime: ClusterRuntime) -> None:
        try:
            self.bootstrap_script = bootstrap.render(
                runtime.cluster.get("bootstrap_actions") or [], bootstrap.fetcher(runtime.storage())
            )
        except bootstrap.BootstrapError as exc:
            raise ClusterFailure(states.BOOTSTRAP_FAILURE, str(exc)) from None

    def adopt(self, runtime: ClusterRuntime) -> None:
        """The daemons ran on while Resilin was down; only the bootstrap script nodes added later
        run is rendered again (the actions are fetched from where the cluster's request names)."""
        try:
            self._render_bootstrap(runtime)
        except ClusterFailure as exc:
            raise ApplicationError(f"the cluster's bootstrap actions: {exc.message}") from None
        self.configured = True

    def configure(self, runtime: ClusterRuntime, instances: list[InstanceDoc]) -> StartTiming:
        self._render_bootstrap(runtime)
        spec = self.spec(runtime, instances)

        def fix_replication(c: ClusterDoc) -> None:
            c["hdfs_replication"] = spec.dfs_replication  # growing the cluster later keeps it
            c["home_rack"] = spec.master.rack  # the daemons cache racks: a node's never changes

        runtime.store.update_cluster(runtime.cid, fix_replication)
        spec.replication = spec.dfs_replication
        # Every node at once: DataNodes and NodeManagers retry until the master's daemons answer.
        self.configured = True
        try:
            timings = node_setup.configure_nodes(
                spec,
                [(i, runtime.sessions[i["id"]]) for i in instances],
                HADOOP_READY_TIMEOUT,
                on_done=lambda instance, node, status: self.keep_bootstrap_logs(runtime, instance, node),
            )
        except node_setup.NodeSetupError as exc:
            raise ClusterFailure(states.BOOTSTRAP_FAILURE, exc.message) from None
        runtime.phase("hadoop_configured")
        runtime.check_termination()
        runtime.progress("Waiting for HDFS and YARN to register every node")
        master = next(i for i in instances if i["role"] == "MASTER")
        waited = time.monotonic()
        with ThreadPoolExecutor(max_workers=1) as pool:
            alongside = pool.submit(self.start_alongside, runtime, master)
            result = runtime.sessions[master["id"]].run_script(
                render_wait_ready(spec, HADOOP_READY_TIMEOUT), timeout=HADOOP_READY_TIMEOUT + 30
            )
            if result.exit_status != 0:
                raise ClusterFailure(
                    states.BOOTSTRAP_FAILURE, f"Hadoop did not become ready: {result.stderr.strip()}"
                )
            if not alongside.done():
                runtime.progress(self.alongside_progress)
            alongside.result()  # its ClusterFailure, if it failed
        waited = time.monotonic() - waited
        slowest = max(timings.values(), key=lambda t: t.daemons + t.bootstrap)
        return StartTiming(daemons=slowest.daemons, bootstrap=slowest.bootstrap, ready_wait=waited)

    alongside_progress = ""  # what the cluster reports while start_alongside still runs

    def start_alongside(self, runtime: ClusterRuntime, master: InstanceDoc) -> None:
        """What starts on the master while HDFS and YARN register their nodes (raises ClusterFailure)."""

    # -- growing -----------------------------------------------------------------------
    def add_nodes(self, runtime: ClusterRuntime, new: list[tuple[InstanceDoc, Node]]) -> None:
        # An address the cloud hands out again must not stay excluded from HDFS and YARN.
        new_ips = {i["private_ip"] for i, _ in new}
        if any(e["private_ip"] in new_ips for e in membership.excluded(runtime)):
            write_excludes(runtime, membership.set_excluded(runtime, remove_ips=new_ips), None)

        everyone = runtime.live_instances()
        spec = self.spec(runtime, everyone)
        self.update_membership(runtime, spec, [i for i in everyone if i["private_ip"] not in new_ips])
        runtime.check_cancelled()
        try:
            node_setup.configure_nodes(
                spec,
                new,
                JOIN_TIMEOUT,
                on_done=lambda instance, node, status: self.keep_bootstrap_logs(runtime, instance, node),
            )
        except node_setup.NodeSetupError as exc:
            raise NodesRejected(exc.message) from None
        runtime.check_cancelled()
        joined = [i for i, _ in new]
        wait_nodes(runtime, "joined", JOIN_TIMEOUT, [i for i in joined if i["role"] == "CORE"], joined)

    # -- shrinking ---------------------------------------------------------------------
    def decommission(
        self, runtime: ClusterRuntime, group: InstanceGroupDoc, victims: list[InstanceDoc]
    ) -> None:
        timeout = group.get("decommission_timeout")
        timeout = DEFAULT_DECOMMISSION_TIMEOUT if timeout is None else int(timeout)
        write_excludes(runtime, membership.set_excluded(runtime, add=victims), timeout)
        core = [i for i in victims if i["role"] == "CORE"]
        # HDFS first moves every block off the leaving DataNodes; YARN lets running work finish.
        wait_nodes(runtime, "decommissioned", timeout + 120, core, victims)
        leaving = {i["id"] for i in victims}
        staying = [i for i in runtime.live_instances() if i["id"] not in leaving]
        self.update_membership(runtime, self.spec(runtime, staying), staying)

    def update_membership(self, runtime: ClusterRuntime, spec: ClusterSpec, nodes: list[InstanceDoc]) -> None:
        """Rewrite /etc/hosts and the rack table on ``nodes`` (running ones) to list ``spec``'s nodes.

        Best effort: a node that misses it still reaches the others by address."""

        def one(instance: InstanceDoc) -> None:
            try:
                done = runtime.sessions[instance["id"]].run_script(update, timeout=60)
            except (SshError, OSError, KeyError) as exc:
                log.warning("%s: node list of %s not updated: %s", runtime.cid, instance["id"], exc)
                return
            if done.exit_status != 0:
                log.warning(
                    "%s: node list of %s not updated: %s", runtime.cid, instance["id"], done.stderr[-300:]
                )

        update = render_membership_update(spec)
        with ThreadPoolExecutor(max_workers=min(8, len(nodes) or 1)) as pool:
            list(pool.map(one, nodes))

    def forget_failed(self, runtime: ClusterRuntime, instance: InstanceDoc) -> None:
        """Tell HDFS and YARN at once that a dead node is gone, so its work is redone elsewhere now."""
        try:
            write_excludes(runtime, membership.set_excluded(runtime, add=[instance]), None)
        except (MembershipError, SshError, OSError) as exc:
            log.warning("%s: could not exclude failed node %s: %s", runtime.cid, instance["id"], exc)

    def reconfigure(self, runtime: ClusterRuntime, group_id: str) -> None:
        Reconfigurer(runtime, lambda instances: self.spec(runtime, instances)).apply(group_id)

    # -- relocation ----------------------------------------------------------------------
    state_paths = quiesce.STATE_PATHS

    def quiesce(self, runtime: ClusterRuntime, instances: list[InstanceDoc]) -> None:
        """HDFS's namespace saved in safe mode and every daemon stopped, on every node at once."""
        self._stop(runtime, self.spec(runtime, instances), instances, save=True)

    def _stop(
        self, runtime: ClusterRuntime, spec: ClusterSpec, instances: list[InstanceDoc], save: bool = False
    ) -> None:
        """Every daemon of ``instances`` stopped; with ``save``, after the master saved HDFS's
        namespace in safe mode."""
        by_ip = {n.ip: n for n in spec.nodes}
        master = next(i for i in instances if i["role"] == "MASTER")

        def one(instance: InstanceDoc) -> None:
            daemons = list(daemons_for(spec, by_ip[instance["private_ip"]]))
            done = runtime.sessions[instance["id"]].run_script(
                quiesce.stop_script(daemons, master=save and instance is master),
                timeout=quiesce.QUIESCE_TIMEOUT,
            )
            if done.exit_status != 0:
                raise ApplicationError(
                    f"Stopping Hadoop on {instance['ec2_id']} failed: {done.stderr.strip()[-300:]}"
                )

        # All at once: the master's save needs no DataNode, and no block is written in safe mode.
        node_setup.on_each(instances, one)

    def resume(self, runtime: ClusterRuntime, instances: list[InstanceDoc], stop_first: bool = False) -> None:
        """Hadoop started again on ``instances`` from the state they kept (a move that failed)."""
        spec = self.spec(runtime, instances)
        master = next(i for i in instances if i["role"] == "MASTER")
        if stop_first:  # no namespace save: a NameNode may be down already, and its edit log is whole
            self._stop(runtime, spec, instances)
        with _safemode_shortcut(runtime, master):
            self._start_kept(runtime, spec, instances)
            self._wait_ready(runtime, spec, master)

    def configure_moved(
        self, runtime: ClusterRuntime, staying: list[InstanceDoc], moved: list[InstanceDoc]
    ) -> None:
        """The moved instances configured as new nodes (bootstrap actions included; the NameNode is
        not formatted, its state is there), the staying ones' files rendered again for the new
        addresses and their daemons started; HDFS's safe-mode extension is cut short once every
        block is reported."""
        everyone = staying + moved
        master = next(i for i in everyone if i["role"] == "MASTER")
        with _safemode_shortcut(runtime, master):
            if not staying:
                self.configure(runtime, moved)
            else:
                spec = self.spec(runtime, everyone)
                self._start_kept(runtime, spec, staying)
                try:
                    node_setup.configure_nodes(
                        spec,
                        [(i, runtime.sessions[i["id"]]) for i in moved],
                        HADOOP_READY_TIMEOUT,
                        on_done=lambda instance, node, status: self.keep_bootstrap_logs(
                            runtime, instance, node
                        ),
                    )
                except node_setup.NodeSetupError as exc:
                    raise ApplicationError(exc.message) from None
                self._wait_ready(runtime, spec, master)

    def _start_kept(self, runtime: ClusterRuntime, spec: ClusterSpec, instances: list[InstanceDoc]) -> None:
        """``instances``' files rendered for ``spec`` (node list, addresses) and their daemons
        started from the state they hold; no bootstrap action runs again."""
        by_ip = {n.ip: n for n in spec.nodes}
        self.update_membership(runtime, spec, instances)

        def one(instance: InstanceDoc) -> None:
            node = by_ip[instance["private_ip"]]
            script = render_reconfigure_script(spec, node, restart=()) + quiesce.start_script(
                list(daemons_for(spec, node))
            )
            done = runtime.sessions[instance["id"]].run_script(script, timeout=300)
            if done.exit_status != 0:
                raise ApplicationError(
                    f"Starting Hadoop on {instance['ec2_id']} failed: {done.stderr.strip()[-300:]}"
                )

        node_setup.on_each(
            instances, one
        )  # DataNodes and NodeManagers retry until the master's daemons answer

    def _wait_ready(self, runtime: ClusterRuntime, spec: ClusterSpec, master: InstanceDoc) -> None:
        ready = runtime.sessions[master["id"]].run_script(
            render_wait_ready(spec, quiesce.START_TIMEOUT), timeout=quiesce.START_TIMEOUT + 30
        )
        if ready.exit_status != 0:
            raise ApplicationError(f"HDFS and YARN did not come back: {ready.stderr.strip()[-300:]}")
        self.start_alongside(runtime, master)

    def rewrite_storage_keys(self, runtime: ClusterRuntime) -> None:
        """Every node's configuration files written again with the cluster's current storage keys
        (S3A reads them from core-site.xml); no daemon restarts, since JVMs started from then on
        read the new keys and those already running hold keys still valid for half a session."""
        instances = runtime.live_instances()
        spec = self.spec(runtime, instances)
        by_ip = {n.ip: n for n in spec.nodes}

        def one(instance: InstanceDoc) -> None:
            script = render_reconfigure_script(spec, by_ip[instance["private_ip"]], restart=())
            result = runtime.sessions[instance["id"]].run_script(script, timeout=120)
            if result.exit_status != 0:
                raise RuntimeError(  # the monitor logs it and tries again next round
                    f"Writing new storage keys on {instance['ec2_id']} failed: {result.stderr.strip()[-300:]}",
                )

        node_setup.on_each(instances, one)

    # -- the end -----------------------------------------------------------------------
    def ship_logs(self, runtime: ClusterRuntime, nodes: dict[str, Node]) -> None:
        """Every node's daemon and container logs to LogUri, as EMR leaves them there."""
        log_uri = runtime.cluster.get("log_uri")
        if not log_uri or not self.configured or not nodes:
            return
        cid = runtime.cid

        def ship(instance: InstanceDoc) -> None:
            node = nodes[instance["id"]]
            script = node_logs.ship_script(log_uri, cid, instance["ec2_id"])
            try:
                done = node.run_script(script, timeout=node_logs.SHIP_TIMEOUT)
                if done.exit_status != 0:
                    log.warning("%s: shipping logs of %s: %s", cid, instance["id"], done.stderr[-300:])
            except (SshError, OSError) as exc:
                log.warning("%s: could not ship logs of %s: %s", cid, instance["id"], exc)

        # Every instance with a session: those it started with and those a resize added.
        shipped = [i for i in runtime.store.instances_of(cid) if i["id"] in nodes]
        with ThreadPoolExecutor(max_workers=min(16, len(shipped) or 1)) as pool:
            list(pool.map(ship, shipped))


@contextmanager
def _safemode_shortcut(runtime: ClusterRuntime, master: InstanceDoc) -> Iterator[None]:
    """While the block runs, the NameNode on ``master`` leaves safe mode as soon as every block
    is reported (quiesce.leave_safemode_when_reported), rather than after its extension."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        shortcut = pool.submit(
            runtime.sessions[master["id"]].run_script,
            quiesce.leave_safemode_when_reported(master["private_ip"]),
            quiesce.START_TIMEOUT,
        )
        yield
        if shortcut.result().exit_status != 0:
            log.warning("%s: the NameNode's safe mode was not cut short", runtime.cid)
