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
from dataclasses import dataclass
from pathlib import Path

from resilin import bootstrap, node_setup
from resilin import steps as step_scripts
from resilin.hadoop_config import ClusterSpec, render_wait_ready
from resilin.jobflows import ids, states
from resilin.jobflows.store import Doc, JobFlowStore, StateConflict
from resilin.node_health import ClusterMonitor
from resilin.provisioners.ec2client import EC2Client, ProvisioningError
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


@dataclass
class Placement:
    """Where a cluster's instances go: the cloud's EC2 client, image, and the storage endpoint nodes use."""

    cloud_name: str
    client: EC2Client
    image_id: str
    storage_endpoint: str


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
        self.launched: dict[str, list[str]] = {}  # cloud → EC2 instance ids, for teardown
        self.placement: Placement | None = None
        self.key_name = f"resilin-{cid}"
        self.bootstrap_script = ""
        self.monitor: ClusterMonitor | None = None  # node health and resizing, once Hadoop runs

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
        cluster = self.cluster
        clouds = {g["cloud"] for g in cluster["groups"]}
        if len(clouds) > 1:
            raise ClusterFailure(
                states.VALIDATION_ERROR,
                f"Instance groups are placed in several clouds ({', '.join(sorted(str(c) for c in clouds))}), "
                "which cannot reach each other without the overlay network.",
            )
        try:
            self.placement = self.placement_for(clouds.pop())
        except KeyError as exc:
            raise ClusterFailure(states.VALIDATION_ERROR, f"Unknown cloud {exc.args[0]!r}") from None
        client = self.placement.client
        key = KeyPair.generate(self.key_name)
        self._save_key(key)  # kept for `ssh` to the master while the cluster lives
        client.import_key_pair(self.key_name, key.public_line)

        total = sum(g["requested"] for g in cluster["groups"])
        self._progress(f"Launching {total} instance(s) in cloud {self.placement.cloud_name}")
        launched: list[tuple[Doc, str]] = []
        for group in cluster["groups"]:
            if group["requested"] == 0:
                continue
            tags = {
                "resilin:cluster-id": self.cid,
                "resilin:group-id": group["id"],
                "resilin:role": group["role"],
                # EMR's own tags, without the "aws:" prefix that clouds reserve for themselves.
                "elasticmapreduce:job-flow-id": self.cid,
                "elasticmapreduce:instance-group-role": group["role"],
                "Name": f"{cluster['name']} {group['role'].lower()}",
            }
            try:
                ec2_ids = client.launch(
                    image_id=self.placement.image_id,
                    instance_type=group["instance_type"],
                    count=group["requested"],
                    key_name=self.key_name,
                    tags=tags,
                    user_data="",
                )
            except Exception as exc:
                raise ClusterFailure(
                    states.INSTANCE_FAILURE, f"Could not launch {group['role'].lower()} instances: {exc}"
                ) from exc
            self.launched.setdefault(self.placement.cloud_name, []).extend(ec2_ids)
            launched.extend((group, i) for i in ec2_ids)
            self._check_termination()

        try:
            infos = {i.id: i for i in client.wait_running([i for _, i in launched], timeout=RUNNING_TIMEOUT)}
        except Exception as exc:
            raise ClusterFailure(states.INSTANCE_FAILURE, f"Instances did not start: {exc}") from exc
        self._phase("instances_running")
        self._check_termination()

        self._progress(f"Waiting for SSH on {total} instance(s)")

        def reach(item: tuple[Doc, str]) -> Doc:
            group, ec2_id = item
            info = infos[ec2_id]
            host_keys = client.host_keys(ec2_id, timeout=SSH_TIMEOUT)
            address = info.address
            node = Node(address, host_keys, key)
            node.wait_reachable(SSH_TIMEOUT)
            # Hadoop daemons register under the host's own name, so every node must resolve it.
            hostname = node.run("hostname", timeout=30).stdout.strip()
            instance = {
                "id": ids.instance_id(),
                "ec2_id": ec2_id,
                "cloud": self.placement.cloud_name,
                "group_id": group["id"],
                "role": group["role"],
                "instance_type": group["instance_type"],
                "private_ip": info.private_ip,
                "public_ip": address,
                "public_dns": info.dns or address,
                "hostname": hostname,
                "state": states.INSTANCE_BOOTSTRAPPING,
                "host_keys": host_keys,
                "timeline": {"created": time.time()},
            }
            self.nodes[instance["id"]] = node
            return instance

        try:
            with ThreadPoolExecutor(max_workers=min(16, len(launched))) as pool:
                instances = list(pool.map(reach, launched))
        except (SshError, ProvisioningError) as exc:
            raise ClusterFailure(states.INSTANCE_FAILURE, f"Instance could not be reached: {exc}") from exc
        for instance in instances:
            self.store.put_instance(self.cid, instance)
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
            instance.setdefault("timeline", {})["ready"] = time.time()
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
        """Terminate whatever a previous run launched for this cluster, found by its tag."""
        clouds = {g["cloud"] for g in self.cluster["groups"]}
        for cloud in clouds:
            try:
                placement = self.placement_for(cloud)
            except KeyError:
                continue
            found = [i.id for i in placement.client.find_by_tag("resilin:cluster-id", self.cid)]
            if found:
                log.info("%s: terminating %d instance(s) left by a previous run", self.cid, len(found))
                placement.client.terminate(found)
                placement.client.wait_terminated(found)
            self.placement = placement

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
        errors: list[str] = []
        if self.placement is not None:
            client = self.placement.client
            ids_to_kill = self.launched.get(self.placement.cloud_name, [])
            try:
                # Also whatever carries the cluster's tag: a replacement launched as the cluster ended.
                tagged = [i.id for i in client.find_by_tag("resilin:cluster-id", self.cid)]
                ids_to_kill = list(dict.fromkeys([*ids_to_kill, *tagged]))
                if ids_to_kill:
                    client.terminate(ids_to_kill)
                    client.wait_terminated(ids_to_kill)
            except Exception as exc:
                log.exception("%s: terminating instances failed", self.cid)
                errors.append(str(exc))
            try:
                client.delete_key_pair(self.key_name)
            except Exception as exc:
                log.warning("%s: could not delete key pair: %s", self.cid, exc)
        for instance in self.store.instances_of(self.cid):
            if instance.get("state") != states.INSTANCE_TERMINATED:
                instance["state"] = states.INSTANCE_TERMINATED
                instance.setdefault("timeline", {})["end"] = time.time()
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
