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

from resilin import known_hosts, node_logs, user_keys
from resilin import steps as step_scripts
from resilin.hadoop_config import ClusterSpec, NodeSpec, render_node_script, render_wait_ready
from resilin.idle_termination import IdleClock
from resilin.jobflows import ids, states
from resilin.jobflows.store import Doc, JobFlowStore, StateConflict
from resilin.provisioners.ec2client import EC2Client, ProvisioningError
from resilin.sigv4 import Credentials
from resilin.ssh import KeyPair, Node, SshError
from resilin.step_scheduler import StepScheduler

log = logging.getLogger(__name__)

RUNNING_TIMEOUT = 300
SSH_TIMEOUT = 180
HADOOP_READY_TIMEOUT = 600  # generous: a loaded machine starts JVMs slowly


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
    # The cloud's EC2 API as an account of Resilin's sees it (local clouds), to find its key pairs.
    account_client: Callable[[Credentials], EC2Client] | None = None


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
        self.instances: dict[str, Doc] = {}  # ci- id → instance document, written through to the store
        self.hadoop_configured = False
        self.known_hosts = home / "known_hosts"

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
        user_key = self._user_public_key(cluster)  # before launching: a wrong name wastes no instance
        key = KeyPair.generate(self.key_name)
        self._save_key(key)  # kept for `ssh` to the master while the cluster lives
        client.import_key_pair(self.key_name, key.public_line)

        total = sum(g["requested"] for g in cluster["groups"])
        self._progress(f"Launching {total} instance(s) in cloud {self.placement.cloud_name}")
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
            for ec2_id in ec2_ids:
                self._new_instance(group, ec2_id)
            self._check_termination()

        try:
            infos = {
                i.id: i
                for i in client.wait_running(
                    [i["ec2_id"] for i in self.instances.values()], timeout=RUNNING_TIMEOUT
                )
            }
        except Exception as exc:
            raise ClusterFailure(states.INSTANCE_FAILURE, f"Instances did not start: {exc}") from exc
        for instance in self.instances.values():
            info = infos[instance["ec2_id"]]
            instance.update(
                private_ip=info.private_ip,
                public_ip=info.address,
                public_dns=info.dns or info.address,
                private_dns=f"ip-{info.private_ip.replace('.', '-')}",
            )
            self.store.put_instance(self.cid, instance)
        self._phase("instances_running")
        self._check_termination()

        self._progress(f"Waiting for SSH on {total} instance(s)")

        def reach(instance: Doc) -> None:
            host_keys = client.host_keys(instance["ec2_id"], timeout=SSH_TIMEOUT)
            node = Node(instance["public_ip"], host_keys, key)
            node.wait_reachable(SSH_TIMEOUT)
            # Hadoop daemons register under the host's own name, so every node must resolve it.
            hostname = node.run("hostname", timeout=30).stdout.strip()
            if user_key:
                done = node.run_script(user_keys.authorize_script(user_key), timeout=30)
                if done.exit_status != 0:
                    raise SshError(f"authorizing key pair {cluster['ec2_key_name']!r}: {done.stderr.strip()}")
            self.nodes[instance["id"]] = node
            instance.update(hostname=hostname, host_keys=host_keys)
            self._set_instance_state(instance, states.INSTANCE_BOOTSTRAPPING)
            # The same pinned keys for the user's own ssh (and `aws emr ssh`).
            for host in {instance["public_dns"], instance["public_ip"]}:
                known_hosts.add(self.known_hosts, self.cid, host, host_keys)

        try:
            with ThreadPoolExecutor(max_workers=min(16, len(self.instances))) as pool:
                list(pool.map(reach, list(self.instances.values())))
        except (SshError, ProvisioningError) as exc:
            raise ClusterFailure(states.INSTANCE_FAILURE, f"Instance could not be reached: {exc}") from exc
        master = next(i for i in self.instances.values() if i["role"] == "MASTER")

        def ready_groups(c: Doc) -> None:
            c["master_public_dns"] = master["public_dns"]
            for g in c["groups"]:
                g["running"] = sum(1 for i in self.instances.values() if i["group_id"] == g["id"])
                if g["requested"]:
                    g["state"] = states.GROUP_BOOTSTRAPPING

        self.store.update_cluster(self.cid, ready_groups)
        self._phase("ssh_ready")
        self._check_termination()

    def _user_public_key(self, cluster: Doc) -> str | None:
        name = cluster.get("ec2_key_name")
        if not name:
            return None
        assert self.placement is not None
        try:
            return user_keys.find_public_key(
                name,
                self.placement.client,
                self.placement.account_client,
                self.credentials_for(cluster["account"]),
            )
        except user_keys.KeyPairNotFound as exc:
            raise ClusterFailure(states.VALIDATION_ERROR, str(exc)) from None

    def _new_instance(self, group: Doc, ec2_id: str) -> None:
        assert self.placement is not None
        instance = {
            "id": ids.instance_id(),
            "ec2_id": ec2_id,
            "cloud": self.placement.cloud_name,
            "group_id": group["id"],
            "role": group["role"],
            "instance_type": group["instance_type"],
            "market": group.get("market", "ON_DEMAND"),
            "private_ip": None,
            "public_ip": None,
            "public_dns": None,
            "private_dns": None,
            "state": states.INSTANCE_PROVISIONING,
            "state_reason": {"code": None, "message": None},
            "timeline": {"created": time.time()},
        }
        self.instances[instance["id"]] = instance
        self.store.put_instance(self.cid, instance)

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
    def _spec(self, instances: list[Doc]) -> ClusterSpec:
        cluster = self.cluster
        creds = self.credentials_for(cluster["account"])
        workers = [g for g in cluster["groups"] if g["role"] != "MASTER" and g["requested"]]
        nodes = [
            NodeSpec(
                name=f"ip-{i['private_ip'].replace('.', '-')}",
                ip=i["private_ip"],
                role=i["role"],
                hostname=i.get("hostname", ""),
            )
            for i in instances
        ]
        assert self.placement is not None
        return ClusterSpec(
            cluster_id=self.cid,
            nodes=nodes,
            storage_endpoint=self.placement.storage_endpoint,
            region=self.region,
            access_key=creds.access_key,
            secret_key=creds.secret_key,
            worker_type=(workers[0] if workers else cluster["groups"][0])["instance_type"],
            configurations=cluster["configurations"],
        )

    def configure(self) -> None:
        self._transition(states.BOOTSTRAPPING, states.MSG_BOOTSTRAPPING)
        instances = list(self.instances.values())
        spec = self._spec(instances)
        by_ip = {n.ip: n for n in spec.nodes}
        self._progress(states.MSG_CONFIGURING)

        def configure_one(instance: Doc) -> None:
            script = render_node_script(spec, by_ip[instance["private_ip"]])
            result = self.nodes[instance["id"]].run_script(script, timeout=HADOOP_READY_TIMEOUT)
            if result.exit_status != 0:
                raise ClusterFailure(
                    states.BOOTSTRAP_FAILURE,
                    f"Configuring Hadoop on {instance['id']} failed (exit {result.exit_status}): "
                    f"{result.stderr.strip()[-500:]}",
                )

        # Master first so the NameNode and ResourceManager are up when the workers register.
        master = next(i for i in instances if i["role"] == "MASTER")
        self.hadoop_configured = True  # from here on the nodes have logs worth shipping
        configure_one(master)
        workers = [i for i in instances if i["role"] != "MASTER"]
        if workers:
            with ThreadPoolExecutor(max_workers=min(16, len(workers))) as pool:
                list(pool.map(configure_one, workers))
        self._phase("hadoop_configured")
        self._check_termination()
        self._progress("Waiting for HDFS and YARN to register every node")
        result = self.nodes[master["id"]].run_script(
            render_wait_ready(spec, HADOOP_READY_TIMEOUT), timeout=HADOOP_READY_TIMEOUT + 30
        )
        if result.exit_status != 0:
            raise ClusterFailure(
                states.BOOTSTRAP_FAILURE, f"Hadoop did not become ready: {result.stderr.strip()}"
            )
        for instance in instances:
            self._set_instance_state(instance, states.INSTANCE_RUNNING)

        def groups_running(c: Doc) -> None:
            now = time.time()
            # Ready to run steps from now on: the cluster's ReadyDateTime precedes any step's start.
            c["timeline"].setdefault("ready", now)
            for g in c["groups"]:
                if g["requested"]:
                    g["state"] = states.GROUP_RUNNING
                    g.setdefault("timeline", {})["ready"] = now

        self.store.update_cluster(self.cid, groups_running)
        self._phase("hadoop_ready")

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

        def change(c: Doc) -> None:
            if c["terminate_requested"] or c["state"] in states.FINAL_CLUSTER_STATES:
                return
            c["terminate_requested"] = True
            c["state"] = states.TERMINATING
            c["state_reason"] = {"code": code, "message": message}

        ended = self.store.terminate_if_no_steps_pending(self.cid, change)
        if ended:
            log.info("%s: %s", self.cid, message)
        return ended

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
        errors: list[str] = []
        if self.placement is not None:
            client = self.placement.client
            ids_to_kill = self.launched.get(self.placement.cloud_name, [])
            try:
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
