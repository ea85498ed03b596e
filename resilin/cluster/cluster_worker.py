"""Drives one cluster through its life: provision, configure Hadoop, run steps, tear down.

One worker thread per active cluster.  Every way out of ``run`` goes through
``teardown``, which terminates every instance the cluster launched, so a failure
at any point leaves nothing running.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from resilin.applications.hadoop_config import ClusterSpec, render_wait_ready
from resilin.aws.sigv4 import Credentials
from resilin.clouds import known_hosts, user_keys
from resilin.clouds.provisioning import ClusterProvisioner, Limits, Placement, ProvisioningFailed
from resilin.clouds.ssh import KeyPair, Node, SshError
from resilin.cluster import bootstrap, node_logs, node_setup
from resilin.cluster.cluster_credentials import ClusterCredentials
from resilin.cluster.idle_termination import IdleClock
from resilin.cluster.node_health import ClusterMonitor
from resilin.jobflows import states
from resilin.jobflows.store import Doc, JobFlowStore, StateConflict
from resilin.settings.installation import installation_id
from resilin.steps import commands as step_scripts
from resilin.steps.step_scheduler import StepScheduler

log = logging.getLogger(__name__)

RUNNING_TIMEOUT = 300
SSH_TIMEOUT = 300
HADOOP_READY_TIMEOUT = 600


class ClusterFailure(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TerminationRequested(Exception):
    pass


class ClusterWorker(threading.Thread):
    def __init__(
        self,
        cid: str,
        store: JobFlowStore,
        placement_for: Callable[[str], Placement],
        credentials_for: Callable[[str], Credentials],
        home: Path,
        region: str,
    ) -> None:
        super().__init__(name=f"cluster-{cid}", daemon=True)
        self.cid = cid
        self.store = store
        self.placement_for = placement_for
        self.credentials_for = credentials_for
        self.home = home
        self.region = region
        self.wake = threading.Event()
        self.nodes: dict[str, Node] = {}  # ci- id → SSH connection
        self.placement: Placement | None = None
        self.key_name = f"resilin-{cid}"
        self.bootstrap_script = ""
        self.instances: dict[str, Doc] = {}  # ci- id → instance document, written through to the store
        self.hadoop_configured = False
        self.known_hosts = home / "known_hosts"
        self.monitor: ClusterMonitor | None = None  # node health and resizing, once Hadoop runs
        self.user_public_key: str | None = None  # of the key pair Ec2KeyName names, found before launching
        self.provisioner = ClusterProvisioner(
            cid,
            placement_for,
            installation_id(home),
            progress=self._progress,
            phase=self._phase,
            check_termination=self._check_termination,
            preflight=self._find_user_key,
            limits=Limits(running_timeout=RUNNING_TIMEOUT, ssh_timeout=SSH_TIMEOUT),
        )

    # -- helpers --------------------------------------------------------
    @property
    def cluster(self) -> Doc:
        cluster = self.store.get_cluster(self.cid)
        assert cluster is not None
        return cluster

    def _check_termination(self) -> None:
        if self.cluster["terminate_requested"]:
            raise TerminationRequested()

    def _progress(self, message: str) -> None:
        def change(c: Doc) -> None:
            if not c["terminate_requested"]:
                c["state_reason"] = {"code": None, "message": message}

        self.store.update_cluster(self.cid, change)
        log.info("%s: %s", self.cid, message)

    def _phase(self, name: str) -> None:
        def change(c: Doc) -> None:
            c.setdefault("phases", {})[name] = time.time()

        self.store.update_cluster(self.cid, change)

    def _transition(self, state: str, message: str | None = None) -> None:
        try:
            self.store.transition_cluster(self.cid, state, None, message)
        except StateConflict:
            self._check_termination()
            raise

    # -- life -----------------------------------------------------------
    def run(self) -> None:
        try:
            self.provision()
            self.configure()
            self.run_steps()
        except TerminationRequested:
            pass
        except ClusterFailure as failure:
            log.warning("%s failed: %s", self.cid, failure.message)
            self._request_termination(failure.code, failure.message)
        except Exception as exc:  # a bug or an unexpected cloud answer: the cluster still ends cleanly
            log.exception("%s: internal error", self.cid)
            self._request_termination(states.INTERNAL_ERROR, f"Internal error: {type(exc).__name__}: {exc}")
        finally:
            self.teardown()

    def _request_termination(self, code: str, message: str) -> None:
        self.store.update_cluster(self.cid, lambda c: states.begin_termination(c, code, message))

    # -- provisioning ---------------------------------------------------
    def provision(self) -> None:
        """Instances for every group, reachable over SSH (see :mod:`resilin.clouds.provisioning`)."""
        key = KeyPair.generate(self.key_name)
        self._save_key(key)  # kept for `ssh` to the master while the cluster lives
        self.provisioner.key = key
        try:
            ready = self.provisioner.provision(self.cluster)
        except ProvisioningFailed as exc:
            raise ClusterFailure(exc.code, exc.message) from exc
        finally:
            self.placement = self.provisioner.placement
        instances = [r.doc for r in ready]
        for r in ready:
            self.nodes[r.doc["id"]] = r.node
            self.instances[r.doc["id"]] = r.doc
            r.doc.setdefault("timeline", {"created": time.time()})
            self._set_instance_state(r.doc, states.INSTANCE_BOOTSTRAPPING)
            # The same pinned keys for the user's own ssh (and `aws emr ssh`).
            for host in {r.doc["public_dns"], r.doc["public_ip"]}:
                known_hosts.add(self.known_hosts, self.cid, host, r.doc["host_keys"])
        self._authorize_user_key(ready)
        master = next(i for i in instances if i["role"] == "MASTER")

        def ready_groups(c: Doc) -> None:
            c["master_public_dns"] = master["public_dns"]
            for g in c["groups"]:
                g["running"] = sum(1 for i in instances if i["group_id"] == g["id"])
                g["state"] = states.GROUP_BOOTSTRAPPING

        self.store.update_cluster(self.cid, ready_groups)
        self._phase("ssh_ready")
        self._check_termination()

    def _find_user_key(self, placement: Placement) -> None:
        """Before anything is launched in a cloud: the key pair Ec2KeyName names must exist there."""
        cluster = self.cluster
        name = cluster.get("ec2_key_name")
        if not name:
            return
        self.user_public_key = user_keys.require_key_pair(
            placement, name, self.credentials_for(cluster["account"])
        )

    def _authorize_user_key(self, ready) -> None:
        """The public key of the key pair the request named (Ec2KeyName) on every node."""
        if not self.user_public_key:
            return
        for r in ready:
            done = r.node.run_script(user_keys.authorize_script(self.user_public_key), timeout=60)
            if done.exit_status != 0:
                raise ClusterFailure(
                    states.INSTANCE_FAILURE,
                    f"authorizing key pair {self.cluster['ec2_key_name']!r}: {done.stderr.strip()}",
                )

    def _set_instance_state(
        self, instance: Doc, state: str, code: str | None = None, message: str | None = None
    ) -> None:
        instance["state"] = state
        instance["state_reason"] = {"code": code, "message": message}
        timeline = instance.setdefault("timeline", {})
        if state == states.INSTANCE_RUNNING:
            timeline["ready"] = time.time()
        if state == states.INSTANCE_TERMINATED:
            timeline.setdefault("end", time.time())
        self.store.put_instance(self.cid, instance)

    # -- Hadoop ---------------------------------------------------------

    # -- Hadoop ---------------------------------------------------------
    def _spec(self, instances: list[Doc]) -> ClusterSpec:
        cluster = self.cluster
        # The nodes get the cluster's own storage credentials, never the user's key.
        creds = ClusterCredentials(self.store.redis).issue(self.cid, cluster["account"])
        workers = [g for g in cluster["groups"] if g["role"] != "MASTER" and g["requested"]]
        groups = {g["id"]: g for g in cluster["groups"]}
        assert self.placement is not None
        return ClusterSpec(
            cluster_id=self.cid,
            nodes=[node_setup.node_spec(i, groups.get(i.get("group_id", ""))) for i in instances],
            storage_endpoint=self.placement.storage_endpoint,
            region=self.region,
            access_key=creds.access_key,
            secret_key=creds.secret_key,
            session_token=creds.session_token,
            worker_type=(workers[0] if workers else cluster["groups"][0])["instance_type"],
            configurations=cluster["configurations"],
            replication=cluster.get("hdfs_replication"),
            bootstrap_script=self.bootstrap_script,
        )

    def storage(self):
        """An S3 client on Resilin's storage as the cluster's account (bootstrap scripts, logs)."""
        assert self.placement is not None
        return bootstrap.storage_client(
            self.placement.storage_endpoint, self.credentials_for(self.cluster["account"]), self.region
        )

    def keep_bootstrap_logs(self, instance: Doc, node: Node, exit_status: int) -> None:
        actions = self.cluster.get("bootstrap_actions") or []
        if not actions:
            return
        local = self.home / "logs" / self.cid / "node" / instance["ec2_id"] / "bootstrap-actions"
        upload = bootstrap.log_uploader(
            self.storage(), self.cluster.get("log_uri"), f"{self.cid}/node/{instance['ec2_id']}"
        )
        bootstrap.keep_logs(node, len(actions), local, upload)

    def configure(self) -> None:
        self._transition(states.BOOTSTRAPPING, states.MSG_BOOTSTRAPPING)
        self._progress(states.MSG_CONFIGURING)
        began = time.monotonic()
        instances = list(self.instances.values())
        try:
            self.bootstrap_script = bootstrap.render(
                self.cluster.get("bootstrap_actions") or [], bootstrap.fetcher(self.storage())
            )
        except bootstrap.BootstrapError as exc:
            raise ClusterFailure(states.BOOTSTRAP_FAILURE, str(exc)) from None
        spec = self._spec(instances)

        def fix_replication(c: Doc) -> None:
            c["hdfs_replication"] = spec.dfs_replication  # growing the cluster later keeps it

        self.store.update_cluster(self.cid, fix_replication)
        spec.replication = spec.dfs_replication
        # Every node at once: DataNodes and NodeManagers retry until the master's daemons answer.
        self.hadoop_configured = True  # from here on the nodes have logs worth shipping
        try:
            timings = node_setup.configure_nodes(
                spec,
                [(i, self.nodes[i["id"]]) for i in instances],
                HADOOP_READY_TIMEOUT,
                on_done=self.keep_bootstrap_logs,
            )
        except node_setup.NodeSetupError as exc:
            raise ClusterFailure(states.BOOTSTRAP_FAILURE, exc.message) from None
        self._phase("hadoop_configured")
        self._check_termination()
        self._progress("Waiting for HDFS and YARN to register every node")
        master = next(i for i in instances if i["role"] == "MASTER")
        waited = time.monotonic()
        result = self.nodes[master["id"]].run_script(
            render_wait_ready(spec, HADOOP_READY_TIMEOUT), timeout=HADOOP_READY_TIMEOUT + 30
        )
        waited = time.monotonic() - waited
        if result.exit_status != 0:
            raise ClusterFailure(
                states.BOOTSTRAP_FAILURE, f"Hadoop did not become ready: {result.stderr.strip()}"
            )
        for instance in instances:
            self._set_instance_state(instance, states.INSTANCE_RUNNING)

        # Resilin's own share: the configuration phase less the waits for Hadoop's daemons
        # (the slowest node's daemon starts, then readiness) and the user's bootstrap actions.
        slowest = max(timings.values(), key=lambda t: t.daemons + t.bootstrap)
        own = time.monotonic() - began - slowest.daemons - slowest.bootstrap - waited

        def groups_running(c: Doc) -> None:
            now = time.time()
            # Ready to run steps from now on: the cluster's ReadyDateTime precedes any step's start.
            c["timeline"].setdefault("ready", now)
            for g in c["groups"]:
                if g["requested"]:
                    g["state"] = states.GROUP_RUNNING
                    g.setdefault("timeline", {})["ready"] = now
            c["configure_timing"] = {
                "resilin_seconds": round(own, 2),
                "daemon_start_seconds": round(slowest.daemons, 2),
                "bootstrap_seconds": round(slowest.bootstrap, 2),
                "ready_wait_seconds": round(waited, 2),
            }

        self.store.update_cluster(self.cid, groups_running)
        self._phase("hadoop_ready")
        self.monitor = ClusterMonitor(self)
        self.monitor.start()

    # -- steps ----------------------------------------------------------
    def _master_instance(self) -> Doc:
        return next(i for i in self.instances.values() if i["role"] == "MASTER")

    def _master(self) -> Node:
        return self.nodes[self._master_instance()["id"]]

    def _set_state(self, state: str, message: str) -> None:
        """Move to ``state`` with ``message`` unless the cluster already shows exactly that."""
        cluster = self.cluster
        if cluster["state"] == state and (cluster.get("state_reason") or {}).get("message") == message:
            return
        self._transition(state, message)

    def run_steps(self) -> None:
        """Run steps until the cluster has to end: its steps are done (no keep-alive), a step
        failure shuts it down, it idled past its auto-termination policy, or a user terminated it.

        Steps are looked for only now that Hadoop is ready, so steps added while the cluster
        was starting (as mrjob adds them right after RunJobFlow) run even without keep-alive.
        """
        scheduler = StepScheduler(self.store, self.cid, self._master, self._keep_logs, self._log_file)
        idle = IdleClock()
        try:
            while True:
                self._check_termination()
                cluster = self.cluster
                verdict = scheduler.tick(cluster)
                if verdict.terminate:
                    self._request_termination(states.STEP_FAILURE, states.MSG_STEP_FAILED)
                    raise TerminationRequested()
                if verdict.running:
                    idle.reset()
                    self._set_state(states.RUNNING, verdict.message)
                elif not cluster["keep_alive"] and not verdict.hold:
                    if self._end_unless_steps_pending(states.ALL_STEPS_COMPLETED, states.MSG_STEPS_COMPLETED):
                        raise TerminationRequested()
                    continue  # a step arrived at this very moment: run it
                else:
                    self._set_state(states.WAITING, verdict.message)
                    # Termination protection also keeps the auto-termination policy from ending the cluster.
                    if not cluster["termination_protected"] and idle.expired(
                        cluster, self._master(), self._master_instance()["private_ip"]
                    ):
                        message = (
                            f"Auto-terminated: the cluster was idle for more than the "
                            f"{idle.timeout(cluster)} seconds of its auto-termination policy"
                        )
                        if self._end_unless_steps_pending(states.ALL_STEPS_COMPLETED, message):
                            raise TerminationRequested()
                        continue
                self.wake.wait(1.0)
                self.wake.clear()
        finally:
            scheduler.abandon()

    def _end_unless_steps_pending(self, code: str, message: str) -> bool:
        """Start terminating with ``code`` unless a step is PENDING (atomically with AddJobFlowSteps)."""

        ended = self.store.terminate_if_no_steps_pending(
            self.cid, lambda c: states.begin_termination(c, code, message)
        )
        if ended:
            log.info("%s: %s", self.cid, message)
        return ended

    def _record_applications(self, sid: str) -> None:
        logs = self.step_log_dir(sid)
        texts = [(logs / n).read_text(errors="replace") for n in ("stderr", "syslog") if (logs / n).exists()]
        apps = step_scripts.application_ids(*texts)

        def change(step: Doc) -> None:
            step["yarn_application_ids"] = apps

        self.store.update_step(sid, change)

    def _log_file(self, sid: str) -> str:
        log_uri = self.cluster.get("log_uri")
        if log_uri:
            return f"{log_uri.rstrip('/')}/{self.cid}/steps/{sid}/stderr.gz"
        return str(self.step_log_dir(sid) / "stderr")

    def step_log_dir(self, sid: str) -> Path:
        return self.home / "logs" / self.cid / "steps" / sid

    def _keep_logs(self, master: Node, sid: str) -> None:
        """Copy the step's logs from the master into Resilin's home."""
        target = self.step_log_dir(sid)
        target.mkdir(parents=True, exist_ok=True)
        for name, path in step_scripts.log_paths(sid).items():
            try:
                (target / name).write_bytes(master.read_file(path))
            except (OSError, SshError) as exc:
                log.warning("%s: could not fetch %s of step %s: %s", self.cid, name, sid, exc)

        # -- recovery after a restart ----------------------------------------
        self._record_applications(sid)

    def reclaim_instances(self) -> None:
        """Release whatever a previous run launched for this cluster, found by its tags."""
        try:
            clouds: set[str | None] = set(self.provisioner.candidates(self.cluster))
        except ProvisioningFailed:
            clouds = {g["cloud"] for g in self.cluster["groups"]}
        self.provisioner.reclaim(clouds)

    def fail_after_restart(self) -> None:
        self._request_termination(
            states.INTERNAL_ERROR, "Resilin was restarted while the cluster was running"
        )
        self.teardown()

    # -- teardown -------------------------------------------------------
    def teardown(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()
        if (
            self.cluster["state"] not in states.FINAL_CLUSTER_STATES
            and not self.cluster["terminate_requested"]
        ):
            self._request_termination(states.INTERNAL_ERROR, "Cluster worker stopped")
        # Steps are over as soon as the cluster is going: clients waiting on them learn it now.
        self._cancel_active_steps()
        self._ship_node_logs()
        for node in self.nodes.values():
            node.close()
        errors = self.provisioner.teardown()
        known_hosts.remove(self.known_hosts, self.cid)
        reason = self.cluster.get("state_reason") or {}
        code, message = self._member_reason(reason)
        for instance in self.store.instances_of(self.cid):
            self._set_instance_state(instance, states.INSTANCE_TERMINATED, code, message)
        self._cancel_active_steps()  # any added while the instances went
        final = (
            states.TERMINATED
            if reason.get("code") in (states.USER_REQUEST, states.ALL_STEPS_COMPLETED) and not errors
            else states.TERMINATED_WITH_ERRORS
        )

        def finish(c: Doc) -> None:
            now = time.time()
            group_code = code if code in states.GROUP_REASON_CODES else states.CLUSTER_TERMINATED
            for g in c["groups"]:
                g["state"] = states.GROUP_TERMINATED
                g["running"] = 0
                g["state_reason"] = {"code": group_code, "message": message}
                g.setdefault("timeline", {}).setdefault("end", now)
            c.setdefault("phases", {})["terminated"] = now

        self.store.update_cluster(self.cid, finish)
        self.store.transition_cluster(self.cid, final)
        self._delete_key()
        ClusterCredentials(self.store.redis).revoke(self.cid)  # after the nodes' logs were shipped

    def _cancel_active_steps(self) -> None:
        for step in self.store.steps_of(self.cid):
            if step["state"] in states.ACTIVE_STEP_STATES:
                try:
                    self.store.transition_step(step["id"], states.CANCELLED)
                except StateConflict:
                    pass  # it ended on its own at the same moment

    @staticmethod
    def _member_reason(cluster_reason: Doc) -> tuple[str, str]:
        """Why the cluster's instances ended, in the codes instances and groups use."""
        code = cluster_reason.get("code")
        if code in (states.USER_REQUEST, states.ALL_STEPS_COMPLETED, states.STEP_FAILURE, None):
            return states.CLUSTER_TERMINATED, states.MSG_JOB_FLOW_TERMINATED
        return code, cluster_reason.get("message") or states.MSG_JOB_FLOW_TERMINATED

    def _ship_node_logs(self) -> None:
        """Every node's daemon and container logs to LogUri, as EMR leaves them there (best effort)."""
        log_uri = self.cluster.get("log_uri")
        if not log_uri or not self.hadoop_configured or not self.nodes:
            return

        def ship(instance: Doc) -> None:
            node = self.nodes.get(instance["id"])
            if node is None:
                return
            script = node_logs.ship_script(log_uri, self.cid, instance["ec2_id"])
            try:
                done = node.run_script(script, timeout=node_logs.SHIP_TIMEOUT)
                if done.exit_status != 0:
                    log.warning("%s: shipping logs of %s: %s", self.cid, instance["id"], done.stderr[-300:])
            except (SshError, OSError) as exc:
                log.warning("%s: could not ship logs of %s: %s", self.cid, instance["id"], exc)

        with ThreadPoolExecutor(max_workers=min(16, len(self.instances) or 1)) as pool:
            list(pool.map(ship, list(self.instances.values())))

    # -- the cluster's SSH key ------------------------------------------
    def _key_path(self) -> Path:
        return self.home / "keys" / f"{self.cid}.pem"

    def _save_key(self, key: KeyPair) -> None:
        path = self._key_path()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key.private_openssh)
        (path.with_suffix(".pub")).write_text(key.public_line + "\n")

    def _delete_key(self) -> None:
        for path in (self._key_path(), self._key_path().with_suffix(".pub")):
            path.unlink(missing_ok=True)
