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
from pathlib import Path

from resilin import bootstrap, node_setup
from resilin import steps as step_scripts
from resilin.hadoop_config import ClusterSpec, render_wait_ready
from resilin.installation import installation_id
from resilin.jobflows import states
from resilin.jobflows.store import Doc, JobFlowStore, StateConflict
from resilin.node_health import ClusterMonitor
from resilin.provisioning import ClusterProvisioner, Limits, Placement, ProvisioningFailed
from resilin.sigv4 import Credentials
from resilin.ssh import KeyPair, Node, SshError

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
        self.monitor: ClusterMonitor | None = None  # node health and resizing, once Hadoop runs
        self.provisioner = ClusterProvisioner(
            cid,
            placement_for,
            installation_id(home),
            progress=self._progress,
            phase=self._phase,
            check_termination=self._check_termination,
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
        def change(c: Doc) -> None:
            if c["terminate_requested"] or c["state"] in states.FINAL_CLUSTER_STATES:
                return
            c["terminate_requested"] = True
            c["state"] = states.TERMINATING
            c["state_reason"] = {"code": code, "message": message}

        self.store.update_cluster(self.cid, change)

    # -- provisioning ---------------------------------------------------
    def provision(self) -> None:
        """Instances for every group, reachable over SSH (see :mod:`resilin.provisioning`)."""
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
            self.store.put_instance(self.cid, r.doc)
        master = next(i for i in instances if i["role"] == "MASTER")

        def ready_groups(c: Doc) -> None:
            c["master_public_dns"] = master["public_dns"]
            for g in c["groups"]:
                g["running"] = sum(1 for i in instances if i["group_id"] == g["id"])
                g["state"] = states.GROUP_BOOTSTRAPPING

        self.store.update_cluster(self.cid, ready_groups)
        self._phase("ssh_ready")
        self._check_termination()

    # -- Hadoop ---------------------------------------------------------
    def _spec(self, instances: list[Doc]) -> ClusterSpec:
        cluster = self.cluster
        creds = self.credentials_for(cluster["account"])
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
        self._transition(states.BOOTSTRAPPING, "Configuring Hadoop")
        began = time.monotonic()
        instances = self.store.instances_of(self.cid)
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
            instance["state"] = states.INSTANCE_RUNNING
            self.store.put_instance(self.cid, instance)

        # Resilin's own share: the configuration phase less the waits for Hadoop's daemons
        # (the slowest node's daemon starts, then readiness) and the user's bootstrap actions.
        slowest = max(timings.values(), key=lambda t: t.daemons + t.bootstrap)
        own = time.monotonic() - began - slowest.daemons - slowest.bootstrap - waited

        def groups_running(c: Doc) -> None:
            for g in c["groups"]:
                g["state"] = states.GROUP_RUNNING
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
    def _master(self) -> Node:
        master = next(i for i in self.store.instances_of(self.cid) if i["role"] == "MASTER")
        return self.nodes[master["id"]]

    def run_steps(self) -> None:
        while True:
            self._check_termination()
            pending = [s for s in self.store.steps_of(self.cid) if s["state"] == states.PENDING]
            if pending:
                step = pending[0]
                if self.cluster["state"] != states.RUNNING:
                    self._transition(states.RUNNING, f"Running step {step['id']}")
                if not self.run_step(step):
                    self._after_failure(step)
                continue
            cluster = self.cluster
            if not cluster["keep_alive"]:
                self._request_termination(states.ALL_STEPS_COMPLETED, "Steps completed")
                raise TerminationRequested()
            if cluster["state"] != states.WAITING:
                self._transition(states.WAITING, "Cluster ready to run steps.")
            self.wake.wait(2.0)
            self.wake.clear()

    def _after_failure(self, failed: Doc) -> None:
        action = failed["action_on_failure"]
        if action == states.CONTINUE:
            return
        for step in self.store.steps_of(self.cid):
            if step["state"] == states.PENDING:
                self.store.transition_step(step["id"], states.CANCELLED)
        if action in (states.TERMINATE_CLUSTER, states.TERMINATE_JOB_FLOW):
            self._request_termination(states.STEP_FAILURE, "Shut down as step failed")
            raise TerminationRequested()

    def run_step(self, step: Doc) -> bool:
        """Run one step on the master; True when it completed."""
        sid = step["id"]
        self.store.transition_step(sid, states.STEP_RUNNING)
        master = self._master()
        try:
            script = step_scripts.step_script(step, self.cluster.get("log_uri"), self.cid)
        except ValueError as exc:
            self.store.transition_step(
                sid, states.FAILED, failure={"reason": "Invalid step", "message": str(exc)}
            )
            return False
        outcome: dict = {}

        def execute() -> None:
            try:
                outcome["result"] = master.run_script(script)
            except Exception as exc:  # SSH dropped: the step's fate is unknown, so it failed
                outcome["error"] = exc

        runner = threading.Thread(target=execute, name=f"step-{sid}", daemon=True)
        runner.start()
        while runner.is_alive():
            runner.join(1.0)
            if self.cluster["terminate_requested"]:
                try:
                    master.run(step_scripts.kill_command(sid), timeout=120)
                except Exception as exc:  # the master may be what failed
                    log.warning("%s: could not stop step %s: %s", self.cid, sid, exc)
                runner.join(30)
                self.store.transition_step(sid, states.CANCELLED)
                raise TerminationRequested()
        self._keep_logs(master, sid)
        self._record_applications(sid)
        result = outcome.get("result")
        if result is not None and result.exit_status == 0:
            self.store.transition_step(sid, states.COMPLETED, exit_status=0)
            return True
        if result is None:
            failure = {"reason": "Lost contact with the master", "message": str(outcome.get("error"))}
        else:
            failure = {
                "reason": "Unknown error.",
                "message": f"Step failed with exit status {result.exit_status}",
                "log_file": self._log_file(sid),
            }
        self.store.transition_step(
            sid, states.FAILED, failure=failure, exit_status=getattr(result, "exit_status", None)
        )
        return False

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
        for node in self.nodes.values():
            node.close()
        if (
            self.cluster["state"] not in states.FINAL_CLUSTER_STATES
            and not self.cluster["terminate_requested"]
        ):
            self._request_termination(states.INTERNAL_ERROR, "Cluster worker stopped")
        errors = self.provisioner.teardown()
        for instance in self.store.instances_of(self.cid):
            instance["state"] = states.INSTANCE_TERMINATED
            self.store.put_instance(self.cid, instance)
        for step in self.store.steps_of(self.cid):
            if step["state"] in states.ACTIVE_STEP_STATES:
                self.store.transition_step(step["id"], states.CANCELLED)
        reason = (self.cluster.get("state_reason") or {}).get("code")
        final = (
            states.TERMINATED
            if reason in (states.USER_REQUEST, states.ALL_STEPS_COMPLETED) and not errors
            else states.TERMINATED_WITH_ERRORS
        )

        def finish(c: Doc) -> None:
            for g in c["groups"]:
                g["state"] = states.GROUP_TERMINATED
                g["running"] = 0
            c.setdefault("phases", {})["terminated"] = time.time()

        self.store.update_cluster(self.cid, finish)
        self.store.transition_cluster(self.cid, final)
        self._delete_key()

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
